"""The sender against a fake service: init first, alerts first, spill/replay, permanent errors, timeout."""

from __future__ import annotations

import json
import time
from typing import Any

import runwatch
from _sdkutil import QUIET, FakeTransport
from runwatch.sender import Sender
from runwatch.spool import REJECTED_NAME, SPOOL_NAME


def online(fake: FakeTransport, **settings: object) -> runwatch.Run:
    return runwatch.init(
        project="p",
        id="run1",
        settings={**QUIET, "retry_max_backoff": 0.05, **settings},
        transport_factory=lambda: fake,
    )


def answered(fake: FakeTransport, **settings: object) -> tuple[runwatch.Run, Sender]:
    """An online run whose init the service has answered, and whose answer (url, heartbeat interval) the
    sender has applied: what a test that then steers the sender must wait for."""
    run = online(fake, **settings)
    assert wait_for(lambda: run.url == "http://svc/r")
    assert run._sender is not None
    return run, run._sender


def wait_for(cond, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_init_is_sent_first_then_records_in_seq_order() -> None:
    fake = FakeTransport()
    run = online(fake)
    for i in range(50):
        run.log({"i": i})
    run.finish()
    assert fake.calls[0][0] == "/api/v1/runs"
    assert fake.calls[0][1]["id"] == "run1"
    recs = fake.records()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert [r["data"]["i"] for r in recs if r["type"] == "history"] == list(range(50))
    assert recs[-1]["type"] == "exit" and recs[-2]["type"] == "summary"
    assert run.url == "http://svc/r"
    assert not (run.dir / SPOOL_NAME).exists()


def test_a_log_ships_quickly_when_idle() -> None:
    fake = FakeTransport()
    run, sender = answered(fake)
    # No timer of the sender's may fire during the test: the log must ship because log() woke it.
    timers: list[float] = []

    def no_timer() -> float:
        timers.append(3600.0)
        return 3600.0

    sender._next_timeout = no_timer  # type: ignore[method-assign]
    sender.wake()
    assert wait_for(lambda: bool(timers) and sender.idle)  # asleep, for an hour unless woken
    run.log({"a": 1})
    assert wait_for(lambda: len(fake.records()) == 1)
    run.finish()


def test_init_goes_first_after_an_outage_then_the_spooled_metrics_in_order() -> None:
    fake = FakeTransport()
    fake.down = True
    run = online(fake)
    for i in range(10):
        run.log({"i": i})
    assert wait_for(lambda: "/api/v1/runs" in fake.failed)  # the init was tried while down
    fake.down = False
    run.finish()
    # Spooled data is replayed in order after init; nothing lost, nothing before init.
    assert set(fake.failed) == {"/api/v1/runs"}
    assert fake.paths()[0] == "runs"
    assert [r["data"]["i"] for r in fake.records() if r["type"] == "history"] == list(range(10))


def test_alerts_overtake_queued_metrics() -> None:
    fake = FakeTransport()
    run, sender = answered(fake)
    with sender.lock:  # the sender cannot take these metrics before the alert is queued behind them
        for i in range(50):
            run.log({"i": i})
        run.alert("urgent", "now")
    run.finish()
    paths = fake.paths()
    assert paths.count("alerts") == 1 and paths.index("alerts") < paths.index("records"), paths
    assert [r["data"]["i"] for r in fake.records() if r["type"] == "history"] == list(range(50))


def spooled(run: runwatch.Run) -> list[dict[str, Any]]:
    """The spool's complete lines so far (the sender may be writing the next one)."""
    path = run.dir / SPOOL_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").split("\n")[:-1]]


def test_outage_spills_to_spool_and_replays_in_order_then_clears() -> None:
    fake = FakeTransport()
    run = online(fake)
    run.log({"i": 0})
    assert wait_for(lambda: len(fake.records()) == 1)
    fake.down = True
    for i in range(1, 20):
        run.log({"i": i})
    run.alert("during outage", "x")
    # Everything raised during the outage is on disk before the link comes back.
    assert wait_for(lambda: sorted(r["data"]["i"] for r in spooled(run) if r.get("type") == "history")
                    == list(range(1, 20)) and any(r.get("type") == "alert" for r in spooled(run)))
    fake.down = False
    run.finish()
    hist = [r["data"]["i"] for r in fake.records() if r["type"] == "history"]
    assert hist == list(range(20))
    seqs = [r["seq"] for r in fake.records()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert fake.paths().count("alerts") == 1
    assert not (run.dir / SPOOL_NAME).exists()


def test_memory_bound_spills_to_spool_without_dropping(caplog) -> None:  # type: ignore[no-untyped-def]
    fake = FakeTransport()
    run, sender = answered(fake, max_queue_bytes=2000)  # the service is up and answered the init
    # Holding the sender's lock keeps it from draining while the loop logs: 200 rows, well over 2,000 bytes,
    # reach its memory buffer at once, however fast or slow this machine is.
    with caplog.at_level("WARNING", logger="runwatch"), sender.lock:
        for i in range(200):
            run.log({"i": i, "pad": 1.0})
    assert wait_for(lambda: "more than 2000 bytes queued in memory" in caplog.text), caplog.text
    run.finish()
    assert [r["data"]["i"] for r in fake.records() if r["type"] == "history"] == list(range(200))
    assert not (run.dir / SPOOL_NAME).exists()  # replayed from the spool, then cleared


def test_permanent_refusal_keeps_data_on_disk_and_continues() -> None:
    fake = FakeTransport()
    fake.refuse_records = 422
    run = online(fake)
    run.log({"a": 1})
    run.finish()
    rejected = [json.loads(line) for line in (run.dir / REJECTED_NAME).read_text().splitlines()]
    assert any(r.get("type") == "history" for r in rejected)
    assert any(r.get("type") == "exit" for r in rejected)


def test_finish_timeout_leaves_everything_in_spool_with_sync_hint(capsys) -> None:  # type: ignore[no-untyped-def]
    fake = FakeTransport()
    fake.down = True
    run = online(fake, finish_timeout=0.3)
    for i in range(5):
        run.log({"i": i})
    run.alert("a", "b")
    t0 = time.monotonic()
    run.finish()
    assert time.monotonic() - t0 < 20  # gave up after its finish_timeout, well before the default 30 s
    assert "runwatch sync" in capsys.readouterr().err
    lines = [json.loads(x) for x in (run.dir / SPOOL_NAME).read_text().splitlines()]
    assert lines[0]["type"] == "init"
    assert [r["data"]["i"] for r in lines if r.get("type") == "history"] == list(range(5))
    assert [r["type"] for r in lines if r.get("type") in ("alert", "exit")] == ["alert", "exit"]


def test_heartbeat_when_quiet() -> None:
    fake = FakeTransport()
    # After the init's answer is applied: it would overwrite the shorter interval.
    run, sender = answered(fake)
    # The init answer said 10 s (as the service would); shorten it so the test stays fast.
    sender.heartbeat_interval = 0.05
    sender.wake()
    assert wait_for(lambda: "heartbeat" in fake.paths())
    run.finish()
