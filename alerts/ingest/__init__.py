"""Ingest: runs, their ordered records and explicit alerts, as the SDK sends them."""
