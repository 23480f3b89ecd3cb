"""PostgreSQL restarted under a live run: a clean restart, then a crash (``immediate``: recovered from the
WAL), each while an SDK process keeps logging points that fire and resolve a threshold rule. After the
database is back the service carries on by itself: every point is stored once, in order, every episode
is one alert, and the webhook is told of each alert's firing and resolution at most once (and of every
resolution exactly once).

The database is a server of this test's own: restarting the session's would cut other tests' services.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import Script, history, sdk_env, stored_alerts
from tests.support.outbox import wait_settled
from tests.support.postgres import PostgresServer, required_bindir
from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

STEPS = 3000
EPISODE_EVERY, EPISODE_LENGTH = 200, 60  # loss > 1 on steps 150-209, 350-409, ...
RULES = "rules:\n  - {name: loss-high, metric: loss, when: '> 1', severity: warning}\n"
DOWN = 3.0  # seconds the database stays down each time


@pytest.fixture
def database() -> Iterator[PostgresServer]:
    server = PostgresServer(required_bindir()).start()
    yield server
    server.stop()


def episodes() -> list[tuple[int, int]]:
    """(first, last) step of each stretch the script logs with loss > 1."""
    return [(start, start + EPISODE_LENGTH - 1)
            for start in range(EPISODE_EVERY - EPISODE_LENGTH // 2 - 20, STEPS, EPISODE_EVERY)
            if start + EPISODE_LENGTH - 1 < STEPS]


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-service", "two-replicas"])
def test_postgresql_restarted_and_crashed_mid_stream(database: PostgresServer, webhook_receiver: WebhookReceiver,
                                                     tmp_path: Path, replicas: int,
                                                     fault_report) -> None:  # type: ignore[no-untyped-def]
    """With two replicas the run's evaluation (a lease) and the dispatch leadership (a session advisory
    lock on a connection the restart cuts) must be taken again after the database is back."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    url = database.create_database()
    services = [ServiceProcess(tmp_path / f"service{index}", storage_url=url, config={
        "rule_files": [str(rules)],
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
        "defaults": {"channels": ["hook"], "group_wait": "0s", "group_interval": "1s", "send_resolved": True},
        **({"cluster": {"enabled": True, "lease_ttl": 6, "leader_check_interval": 0.5}} if replicas > 1 else {}),
    }) for index in range(replicas)]
    try:
        for service in services:
            service.start()
        run_stream(services[0], database, webhook_receiver, tmp_path, fault_report,
                   "one service" if replicas == 1 else f"{replicas} replicas")
        for service in services:
            check_log(service)
    finally:
        for service in services:
            service.stop()


def check_log(service: ServiceProcess) -> None:
    """An outage is expected: requests met 503 + Retry-After, loops logged a line; no traceback, no 500."""
    text = service.log_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-5000:]


def run_stream(service: ServiceProcess, database: PostgresServer, receiver: WebhookReceiver, tmp_path: Path,
               fault_report, label: str) -> None:  # type: ignore[no-untyped-def]
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    high = {step for first, last in episodes() for step in range(first, last + 1)}
    with Script(f"""
        import sys, time, runwatch
        high = set({sorted(high)!r})
        runwatch.init(id="pgfault")
        for step in range({STEPS}):
            if step in (1000, 2000):
                print("AT", step, flush=True)          # the test restarts the database meanwhile
            if step in (1200, 2200):                    # in the outage too (records meet it first)
                runwatch.alert(title=f"marker {{step}}", text="a call while the database restarts", wait_duration=0)
            runwatch.log({{"loss": 2.0 if step in high else 0.5, "step_copy": step}})
            time.sleep(0.004)
        print("LOGGED", flush=True)
        sys.stdin.readline()                            # finish only once the database is surely back
        runwatch.finish()
    """, env) as script:
        recoveries = []
        for marker, mode in (("AT 1000", "fast"), ("AT 2000", "immediate")):
            script.expect(marker, timeout=180)
            database.shut_down(mode)
            time.sleep(DOWN)
            database.start_again()
            back = time.monotonic()
            # The service answers again by itself (no restart of it): a read that needs the database.
            eventually(lambda: service.api("GET", "/api/v1/runs/vision/pgfault").status_code, lambda code: code == 200,
                       timeout=120, interval=0.05, what="the service reading the database again")
            recoveries.append(time.monotonic() - back)
        script.expect("LOGGED", timeout=300)
        script.send()
        assert script.wait(timeout=180) == 0, script.stderr

    assert "the database is unavailable" in service.log_text()  # the stream did meet the restarts

    rows = history(service, "pgfault")
    assert [row["_step"] for row in rows] == list(range(STEPS))
    assert [row["step_copy"] for row in rows] == [float(s) for s in range(STEPS)]

    alerts = eventually(lambda: stored_alerts(service, "pgfault"),
                        lambda found: sum(a["rule"] == "loss-high" and a["status"] == "resolved"
                                          for a in found) == len(episodes()),
                        timeout=120, what="every episode stored, resolved")
    rule_alerts = [a for a in alerts if a["rule"] == "loss-high"]
    assert sorted(a["step"] for a in rule_alerts) == [first for first, _ in episodes()]
    markers = sorted(a["title"] for a in alerts if a["source"] == "sdk")
    assert markers == ["marker 1200", "marker 2200"]

    # Told: every rule alert's resolution (its firing, too, unless it resolved before its group's flush) and
    # every marker. A group flushes every second: wait for the last ones, then for the outbox to settle.
    wanted = ({(a["id"], "resolved") for a in rule_alerts}
              | {(a["id"], "firing") for a in alerts if a["source"] == "sdk"})

    def told_of(requests: list[ReceivedRequest]) -> Counter[tuple[str, str]]:
        return Counter((a["id"], a["status"]) for request in requests for a in request.json()["alerts"])

    receiver.wait_until(lambda requests: wanted <= set(told_of(requests)), timeout=120,
                        what="every alert's last state told")
    outbox = wait_settled(service, ["hook"], timeout=120)
    assert {n["status"] for n in outbox} == {"delivered"}
    told = told_of(receiver.requests)
    doubled = {key: count for key, count in told.items() if count > 1}
    assert not doubled, f"told more than once: {doubled}"
    assert {alert_id for alert_id, _ in told} == {a["id"] for a in alerts}  # nothing else was told
    fault_report(outage=f"PostgreSQL restart + crash mid-stream ({label})", channel="hook",
                 notifications=len(outbox), delivered=len(receiver.requests), doubled=sum(doubled.values()),
                 **{"max attempts": max(n["attempts"] for n in outbox),
                    "recovery s": " / ".join(f"{r:.1f}" for r in recoveries)})
    fault_report(outage="  (points stored once, in order)", channel="-", notifications="-",
                 delivered=f"{len(rows)}/{STEPS} points", doubled=0)
