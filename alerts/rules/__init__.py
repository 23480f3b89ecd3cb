"""Rules: YAML rule files, streaming evaluation per condition kind, alert lifecycle."""
