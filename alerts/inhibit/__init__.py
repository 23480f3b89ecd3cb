"""Inhibition: a firing alert mutes others that share labels (Alertmanager semantics)."""
