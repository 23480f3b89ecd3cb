"""The limits of chart delivery: a slow drawing never holds a notification past ``charts.timeout``, chart
URLs expire, and the drawing workers never outlive the service (not even a ``kill -9``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

from alerts.charts.worker import TEST_DELAY_ENV
from tests.charts.delivery import (
    NOT_READY,
    expiry,
    fetch,
    fire,
    mail_parts,
    mails_of,
    service_with_rules,
)
from tests.support.channel_servers import Setup, channel_servers
from tests.support.outbox import wait_settled
from tests.support.slack_server import TOKEN
from tests.support.smtp_server import Certificates, SmtpServer, email_channel
from tests.support.waiting import eventually

BOUND = 1.0
DRAWING = 120.0
"""The injected drawing time: far past the bound, so a notification that waited for it is plain to see."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Setup]:
    with channel_servers(certificates) as (hook, slack, smtp):
        config = {
            "charts": {"timeout": f"{BOUND}s", "url_expiry": "2s"},
            "channels": {
                "slack": {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url},
                "mail": email_channel(smtp, certificates),
                "hook": {"type": "webhook", "url": hook.url},
            },
            "defaults": {"channels": ["slack", "mail", "hook"], "group_wait": "0s"},
        }
        # The test hook of alerts/charts/worker.py: every drawing takes DRAWING seconds longer.
        service = service_with_rules(tmp_path_factory.mktemp("chart-bounds"), config,
                                     env={TEST_DELAY_ENV: str(DRAWING)})
        try:
            yield Setup(service, service.create_key("vision"), hook, slack, smtp)
        finally:
            service.stop()


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_slow_chart_never_holds_the_notification(setup: Setup) -> None:
    fire(setup.service, setup.key, "slow")
    (mail,) = mails_of(setup.smtp, "slow")
    _text, html, related = mail_parts(mail)
    assert related == [] and "cid:" not in html.get_content()
    assert NOT_READY in html.get_content()
    message = next(m for m in setup.slack.wait_for(1, timeout=60) if m.thread_ts is None)
    assert NOT_READY in message.blocks[-1]["elements"][0]["text"]
    assert setup.slack.shared_files() == []
    for notification in wait_settled(setup.service, ["slack", "mail"], count=2):
        assert notification["status"] == "delivered" and notification["attempts"] == 1
        took = seconds(notification["delivered_at"]) - seconds(notification["created_at"])
        # The bound plus a generous margin for a busy machine, and far below the drawing's time.
        assert took < BOUND + 30, notification


def test_an_expired_chart_url_answers_403(setup: Setup) -> None:
    fire(setup.service, setup.key, "expiring")
    (request,) = setup.hook.wait_until(lambda requests: any(r.json()["alerts"][0]["run"]["id"] == "expiring"
                                                            for r in requests), timeout=60)[-1:]
    url = request.json()["alerts"][0]["chart_url"]
    expires = expiry(url)
    assert expires - time.time() <= 2
    eventually(time.time, lambda now: now > expires + 0.5, timeout=30, what="the URL's expiry")
    answer = fetch(url)  # public_url is the service's own loopback address here
    assert (answer.status_code, answer.json()) == (403, {"detail": "invalid or expired chart link"})


def workers_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the chart workers and multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie has exited; only its parent's wait() is missing
            living.append(pid)
    return living


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_chart_workers_end_with_the_service_even_on_kill_9(tmp_path: Path, certificates: Certificates) -> None:
    smtp = SmtpServer(certificates).start()
    try:
        # An email channel draws charts, so the service starts its worker at start-up.
        service = service_with_rules(tmp_path / "svc", {"channels": {"mail": email_channel(smtp, certificates)},
                                                        "defaults": {"channels": ["mail"]}})
        for end in (service.stop, service.kill):
            assert service.process is not None
            workers = eventually(partial(workers_of, service.process.pid),
                                 lambda found: any(b"spawn_main" in cmdline(pid) for pid in found),
                                 timeout=60, what="the chart worker process")
            end()
            eventually(partial(alive, workers), lambda living: living == [], timeout=30,
                       what=f"the end of the workers after {end.__name__}")
            if end == service.stop:
                service.start()
    finally:
        smtp.stop()
