"""The pieces of chart delivery on their own: URL signing, the chart cache, and the Slack channel's upload
against the local Slack server when a notification is retried or the upload fails."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from alerts.charts.service import Charts, _Cache, _loopback, may_have_chart
from alerts.charts.signing import UrlSigner, load_secret
from alerts.config.settings import ChartsSettings
from alerts.model import Notification
from alerts.notify.channels.base import ChannelContext, ChartImage, ChartSkipped
from alerts.notify.channels.slack import SlackChannel, SlackConfig
from alerts.storage import Store
from tests.support.slack_server import TOKEN, SlackServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


# -- signed URLs --------------------------------------------------------------------------------------

async def test_every_replica_signs_with_the_one_stored_secret(sqlite_store: Store) -> None:
    first, second = await load_secret(sqlite_store), await load_secret(sqlite_store)
    assert first == second and len(first) == 32
    # The dashboard's session secret lives beside it, under another name: the two never coincide.
    assert await sqlite_store.get_channel_state("_charts", "url_secret") is not None
    assert await sqlite_store.get_channel_state("_dashboard", "session_secret") is None


def test_signed_urls_check_alert_expiry_and_signature() -> None:
    signer = UrlSigner(b"k" * 32, "https://alerts.example.com/")
    alert_id = uuid.uuid4().hex
    url = signer.url(alert_id, expires=2_000_000_000)
    assert url.startswith(f"https://alerts.example.com/charts/{alert_id}.png?exp=2000000000&sig=")
    sig = url.rsplit("=", 1)[1]
    assert signer.valid(alert_id, "2000000000", sig, now=1_900_000_000)
    assert not signer.valid(alert_id, "2000000000", sig, now=2_000_000_000)  # expired
    assert not signer.valid(alert_id, "2000000001", sig, now=1_900_000_000)  # expiry pushed out
    assert not signer.valid(uuid.uuid4().hex, "2000000000", sig, now=1_900_000_000)  # another alert
    assert not UrlSigner(b"x" * 32, "").valid(alert_id, "2000000000", sig, now=1_900_000_000)  # another key
    for exp, forged in (("2000000000", sig.upper()), ("2000000000", sig[:-1]), ("-1", sig), ("2e9", sig),
                        (None, sig), ("2000000000", None), ("9" * 40, sig)):
        assert not signer.valid(alert_id, exp, forged, now=1_900_000_000)
    assert not signer.valid("../etc", "2000000000", sig, now=1_900_000_000)


# -- what may have a chart, where Slack can fetch it, what is kept -------------------------------------

def test_which_alerts_may_have_a_chart() -> None:
    run = {"id": "r1", "name": "exp-1"}
    assert may_have_chart({"source": "rule", "run": run, "metric": None})  # run_state, absent
    assert may_have_chart({"source": "sdk", "run": run, "metric": "val/acc"})  # alert(chart=...)
    assert not may_have_chart({"source": "sdk", "run": run, "metric": None})
    assert not may_have_chart({"source": "prometheus", "run": None, "metric": None})


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://[::1]:8080/", True),
    ("http://0.0.0.0:8080", True), ("http://alerts.localhost", True), ("https://alerts.example.com", False),
    ("http://10.0.0.5:8080", False),
])
def test_loopback_public_urls_are_not_fetchable_by_slack(url: str, loopback: bool) -> None:
    assert _loopback(url) is loopback


async def test_viewers_charts_never_queue_ahead_of_notifications(sqlite_store: Store) -> None:
    """A page of undrawn thumbnails asks for many charts at once: they are drawn one at a time, so a
    notification's chart still finds the workers free enough to be drawn (not skipped as backlogged)."""
    charts = Charts(ChartsSettings(workers=1), sqlite_store, rules=list, public_url="http://dash.example")
    await charts.start()
    started: list[str] = []
    release = asyncio.Event()

    async def make(key: Any, alerts: list[Mapping[str, Any]]) -> ChartImage:  # the drawing, held until released
        started.append(str(alerts[0]["id"]))
        await release.wait()
        return ChartImage(PNG, alt_text="chart")

    charts._make = make  # type: ignore[method-assign]  # the scheduling is under test, not the drawing

    def alert(alert_id: str) -> dict[str, Any]:
        return {"id": alert_id, "status": "firing", "step": 3, "source": "rule", "run": {"id": "r1"}}

    page = [asyncio.create_task(charts._chart([alert(f"viewed-{i}")], wait=30, queue_anyway=True)) for i in range(6)]
    await asyncio.sleep(0.2)
    assert started == ["viewed-0"]
    notified = asyncio.create_task(charts.for_notification([alert("notified")]))
    async with asyncio.timeout(30):
        while len(started) < 2 and not notified.done():
            await asyncio.sleep(0.01)
    assert started == ["viewed-0", "notified"]
    release.set()
    assert isinstance(await notified, ChartImage)
    assert all(isinstance(image, ChartImage) for image in await asyncio.gather(*page))
    assert sorted(started) == sorted(["notified", *(f"viewed-{i}" for i in range(6))])
    await charts.stop()


def test_the_cache_is_bounded_in_bytes_and_keeps_the_recently_used() -> None:
    cache = _Cache(max_bytes=1000)
    image = ChartImage(b"x" * 400, alt_text="")
    keys = [((f"a{i}", "firing", i),) for i in range(4)]
    cache.put(keys[0], image)
    cache.put(keys[1], image)
    assert cache.get(keys[0]) == (True, image)  # now the most recently used
    cache.put(keys[2], image)
    assert cache.get(keys[1]) == (False, None) and cache.get(keys[0])[0] and cache.get(keys[2])[0]
    cache.put(keys[3], None)  # "nothing to draw" is remembered too, and costs no bytes
    assert cache.get(keys[3]) == (True, None)
    cache.put(((("huge", "firing", 0)),), ChartImage(b"x" * 2000, alt_text=""))
    assert cache.get((("huge", "firing", 0),)) == (False, None)


# -- the Slack upload when notifications are retried or the upload fails --------------------------------

class FixedCharts:
    """A chart source answering one fixed result (the channel's side of the contract, nothing drawn)."""

    def __init__(self, result: ChartImage | ChartSkipped | None) -> None:
        self.result = result
        self.asked = 0

    async def for_notification(self, alerts: Sequence[Mapping[str, Any]]) -> ChartImage | ChartSkipped | None:
        self.asked += 1
        return self.result

    def chart_url(self, alert: Mapping[str, Any]) -> str | None:
        return f"https://alerts.example.com/charts/{alert['id']}.png?exp=1&sig=0"

    @property
    def urls_reachable(self) -> bool:
        return True


def notification(status: str = "firing", *, run: str = "r1") -> Notification:
    url = "http://localhost:8080/runs/vision/r1"
    alert = {"id": uuid.uuid4().hex, "fingerprint": "f1", "status": status, "source": "rule", "rule": "acc-low",
             "title": "Accuracy low in exp-1", "text": "", "severity": "warning", "labels": {},
             "project": "vision", "run": {"id": "r1", "name": "exp-1", "url": url, "state": "running"},
             "metric": "val/acc", "value": 0.2, "threshold": 0.3, "step": 12, "starts_at": "2026-11-28T17:00:00Z",
             "ends_at": None, "url": url, "suppressed_count": 0, "delayed": False, "resolved_reason": None}
    return Notification(id=str(uuid.uuid4()), channel="slack", group_key=f'default:{{run="{run}"}}',
                        message={"status": status, "group_labels": {"run": run}, "alerts": [alert]},
                        created_at=time.time())


def bot(slack: SlackServer, store: Store, source: FixedCharts, **options: Any) -> SlackChannel:
    config = SlackConfig(type="slack", token=TOKEN, channel="#ml-alerts", base_url=slack.api_url, **options)
    return SlackChannel("slack", config, ChannelContext(timeout=5, public_url="http://localhost:8080", store=store,
                                                        charts=source))


async def test_a_retried_notification_never_uploads_its_chart_twice(slack: SlackServer, sqlite_store: Store) -> None:
    channel = bot(slack, sqlite_store, FixedCharts(ChartImage(PNG, alt_text="Chart of exp-1 · val/acc")))
    first = notification()
    await channel.send(first)
    await channel.send(first)  # the retry stage again: the first attempt's success was not recorded
    (file,) = slack.shared_files()
    (message,) = [m for m in slack.messages if m.method == "chat.postMessage"]
    assert (file.channel, file.thread_ts, file.data) == (message.channel, message.ts, PNG)
    assert file.alt_txt == "Chart of exp-1 · val/acc"
    await channel.send(notification(status="resolved"))  # the next notification of the group: its own chart
    assert [f.thread_ts for f in slack.shared_files()] == [message.ts, message.ts]
    await channel.aclose()


async def test_a_failed_upload_is_logged_and_the_delivery_stands(slack: SlackServer, sqlite_store: Store,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # The local server takes PNG images only, as a stand-in for any upload Slack refuses.
    channel = bot(slack, sqlite_store, FixedCharts(ChartImage(b"GIF89a not a png", alt_text="chart")))
    with caplog.at_level(logging.WARNING, logger="alerts.notify.slack"):
        await channel.send(notification())
    assert slack.shared_files() == [] and [m.method for m in slack.messages] == ["chat.postMessage"]
    assert "slack: the chart did not reach Slack" in caplog.text and TOKEN not in caplog.text
    await channel.aclose()


async def test_charts_false_and_a_skipped_chart(slack: SlackServer, sqlite_store: Store) -> None:
    off = FixedCharts(ChartImage(PNG, alt_text="chart"))
    channel = bot(slack, sqlite_store, off, charts=False)
    await channel.send(notification())
    assert off.asked == 0 and slack.shared_files() == [] and len(slack.messages) == 1
    await channel.aclose()
    late = bot(slack, sqlite_store, FixedCharts(ChartSkipped("chart not ready in time")))
    await late.send(notification(run="r2"))
    (post,) = slack.messages[1:]  # the message says so itself: no second call
    assert post.blocks[-1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "_chart not ready in time_"}]}
    assert slack.shared_files() == []
    await late.aclose()


async def test_webhook_mode_image_block_points_at_the_chart_url(slack: SlackServer, sqlite_store: Store) -> None:
    charts = FixedCharts(ChartImage(PNG, alt_text="Chart of exp-1 · val/acc"))
    config = SlackConfig(type="slack", webhook_url=slack.webhook_url)
    channel = SlackChannel("slack", config, ChannelContext(timeout=5, public_url="https://alerts.example.com",
                                                           store=sqlite_store, charts=charts))
    sent = notification()
    await channel.send(sent)
    (message,) = slack.messages
    image = message.blocks[-1]
    alert_id = sent.message["alerts"][0]["id"]
    assert image == {"type": "image", "image_url": f"https://alerts.example.com/charts/{alert_id}.png?exp=1&sig=0",
                     "alt_text": "Chart of exp-1 · val/acc"}
    await channel.aclose()
