"""Time intervals for quiet hours (Alertmanager's mute_time_intervals)."""
