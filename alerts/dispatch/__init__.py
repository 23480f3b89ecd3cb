"""Dispatch: which channels an alert goes to, and under which group."""
