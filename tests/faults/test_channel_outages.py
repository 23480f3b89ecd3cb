"""Channel outages against a real service: SMTP down then up, Slack answering 429 and 500, a webhook that
hangs past the delivery timeout. Alerts keep coming during the fault and after it; once it clears every
one reaches every channel exactly once, and the channels that were fine never waited for the broken one.

Each alert is an ``alert()`` call in a run of its own, so each is one notification per channel: counting
what each receiver holds is counting notifications.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.service.test_delivery import SECRET, call, send_alerts, start_run, verify_signature
from tests.support.outbox import wait_settled
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.slack_server import TOKEN, SlackMessage, SlackServer
from tests.support.smtp_server import PASSWORD, USERNAME, Certificates, ReceivedMail, SmtpServer, email_channel
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(600)

HALF = 6  # alerts sent while the channel is broken; as many again once it is back
CHANNELS = ("slack", "mail", "hook")
OUTAGE = 6.0  # seconds a fault lasts at least: several retries (backoff 0.2 s doubling to 2 s) meet it
DELIVERY = {"initial_backoff": "200ms", "max_backoff": "2s", "timeout": "2s"}


@dataclass
class Setup:
    service: ServiceProcess
    key: str
    slack: SlackServer
    smtp: SmtpServer
    hook: WebhookReceiver
    sent: list[str]

    def send(self, count: int) -> None:
        """``count`` more alerts, each in a new run (so in a group, and a notification, of its own)."""
        for _ in range(count):
            index = len(self.sent)
            run_id, title = f"run{index}", f"fault alert {index}"
            start_run(self.service, self.key, run_id)
            (result,) = send_alerts(self.service, self.key, [call(title, wait=0)], run_id=run_id)
            assert result["status"] == "created", result
            self.sent.append(title)

    def received(self, channel: str) -> list[str]:
        """Alert titles as the channel's server holds them, one per message accepted."""
        if channel == "slack":
            return [slack_title(m) for m in list(self.slack.messages) if m.method == "chat.postMessage"]
        if channel == "mail":
            return [mail_title(mail) for mail in list(self.smtp.mails)]
        return [a["title"] for request in list(self.hook.requests) for a in request.json()["alerts"]]

    def wait_received(self, channel: str, timeout: float = 120.0) -> list[str]:
        return eventually(lambda: self.received(channel), lambda got: len(got) >= len(self.sent),
                          timeout=timeout, what=f"{len(self.sent)} alerts on {channel}")


def mail_title(mail: ReceivedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    (title,) = set(re.findall(r"fault alert \d+", str(body.get_content())))  # type: ignore[attr-defined]
    return title


def slack_title(message: SlackMessage) -> str:
    (block,) = [block for block in message.blocks if block["type"] == "header"]
    return str(block["text"]["text"]).rsplit(" · ", 1)[-1]


@pytest.fixture
def setup(service_factory: Callable[..., ServiceProcess], slack: SlackServer, smtp: SmtpServer,
          certificates: Certificates, webhook_receiver: WebhookReceiver) -> Setup:
    service = service_factory({
        "channels": {
            "slack": {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url},
            "mail": email_channel(smtp, certificates),
            "hook": {"type": "webhook", "url": webhook_receiver.url, "secret": SECRET},
        },
        "defaults": {"channels": list(CHANNELS)},
        "delivery": DELIVERY,
    })
    return Setup(service, service.create_key("vision"), slack, smtp, webhook_receiver, [])


def check_everything_delivered_once(setup: Setup, report: Callable[..., None], outage: str, broken: str,
                                    recovery: float) -> None:
    """Every alert reached every channel once; the outbox agrees and holds nothing undelivered."""
    outbox = wait_settled(setup.service, count=len(setup.sent) * len(CHANNELS), timeout=120)
    for channel in CHANNELS:
        mine = [n for n in outbox if n["channel"] == channel]
        assert {n["status"] for n in mine} == {"delivered"}, [(n["status"], n["last_error"]) for n in mine]
        told = sorted(a["title"] for n in mine for a in n["message"]["alerts"])
        assert told == sorted(setup.sent), f"{channel}: the outbox's alerts"
        got = setup.received(channel)
        assert sorted(got) == sorted(setup.sent), f"{channel}: received {sorted(got)}"
        report(outage=outage, channel=channel + (" (broken)" if channel == broken else ""),
               notifications=len(mine), delivered=len(got), doubled=len(got) - len(set(got)),
               **{"max attempts": max(n["attempts"] for n in mine),
                  "recovery s": f"{recovery:.1f}" if channel == broken else "-"})


def wait_all_tried(setup: Setup, channel: str, attempts: int) -> None:
    """Every notification of ``channel`` so far has failed at least ``attempts`` times."""
    def tried(found: list[dict[str, Any]]) -> bool:
        return len(found) >= len(setup.sent) and all(n["status"] == "pending" and n["attempts"] >= attempts
                                                     for n in found)
    eventually(lambda: [n for n in setup.service.api("GET", "/api/v1/notifications?limit=1000").json()
                        ["notifications"] if n["channel"] == channel],
               tried, timeout=120, what=f"every {channel} notification tried {attempts} times")


def ride_out(setup: Setup, broken: str, mend: Callable[[], None]) -> float:
    """``broken`` fails from now on: HALF alerts are sent (the other channels get them at once, ``broken``
    retries them), the fault lasts OUTAGE seconds at least, ``mend()`` ends it and HALF more are sent.
    Returns the seconds from ``mend()`` until ``broken`` has received every alert."""
    broken_since = time.monotonic()
    setup.send(HALF)
    for channel in CHANNELS:
        if channel != broken:
            setup.wait_received(channel)  # the others do not wait for the broken one
    wait_all_tried(setup, broken, attempts=2)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - broken_since)))
    assert setup.received(broken) == []
    mend()
    back = time.monotonic()
    setup.send(HALF)
    setup.wait_received(broken)
    return time.monotonic() - back


def test_smtp_down_then_up(setup: Setup, fault_report: Callable[..., None]) -> None:
    setup.smtp.stop()  # connection refused
    recovery = ride_out(setup, "mail", setup.smtp.start)  # started again on the same ports
    check_everything_delivered_once(setup, fault_report, "SMTP down 6 s, then up", "mail", recovery)
    assert all(mail.tls and mail.login == USERNAME for mail in setup.smtp.mails)
    assert PASSWORD not in setup.service.log_text()


def test_slack_answers_429_then_500(setup: Setup, fault_report: Callable[..., None]) -> None:
    # Retry-After (3 s) is longer than the longest backoff (2 s): only a sender that honours it waits that long.
    setup.slack.fail_next(HALF, 429, retry_after=3)
    setup.slack.fail_next(HALF, 500)
    started = time.monotonic()
    setup.send(HALF)
    for channel in ("mail", "hook"):
        setup.wait_received(channel)
    setup.send(HALF)
    setup.wait_received("slack")
    recovery = time.monotonic() - started
    assert recovery >= 3.0, "a rate-limited message was retried before its Retry-After"
    assert len(setup.slack.requests) >= 2 * HALF + len(setup.sent)  # the failures were met, then the retries
    check_everything_delivered_once(setup, fault_report, "Slack 6× 429 (Retry-After 3 s), 6× 500", "slack",
                                    recovery)
    outbox = wait_settled(setup.service, ["slack"])
    assert sum(n["attempts"] > 1 for n in outbox) >= HALF


def test_webhook_hangs_past_the_timeout(setup: Setup, fault_report: Callable[..., None]) -> None:
    setup.hook.stall()  # every request hangs, unanswered, past the 2 s delivery timeout
    recovery = ride_out(setup, "hook", setup.hook.unstall)
    check_everything_delivered_once(setup, fault_report, "webhook hangs 6 s (timeout 2 s)", "hook", recovery)
    delivered = {request.headers["X-Runwatch-Delivery"] for request in setup.hook.requests}
    retried = {request.headers["X-Runwatch-Delivery"] for request in setup.hook.stalled}
    assert len(delivered) == len(setup.sent) and retried and retried <= delivered  # a retry keeps its delivery id
    for request in setup.hook.requests:
        verify_signature(request.headers["X-Runwatch-Signature"], request.body)
