"""Several replicas on one PostgreSQL database (``docs/architecture.md``).

- ``ownership``: each running run is evaluated by the replica holding its lease;
- ``routing``: a replica forwards a run's points to the replica that holds it;
- ``leader``: one replica, elected by an advisory lock, runs the dispatcher, woken by ``LISTEN/NOTIFY``.
Delivery needs nothing here: every replica claims outbox rows with ``FOR UPDATE SKIP LOCKED``.
"""
