"""Runwatch service: ingests training-run metrics and alerts, and delivers notifications."""

__version__ = "0.1.0"
