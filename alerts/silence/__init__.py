"""Silences: label matchers that mute alerts for a time (Alertmanager semantics)."""
