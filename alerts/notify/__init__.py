"""Notify: turn alerts into persisted notifications and deliver them through channels."""
