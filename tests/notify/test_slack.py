"""The Slack channel against a local server speaking Slack's Web API and incoming-webhook protocol."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.errors import DeliveryError, PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import ChannelContext
from alerts.notify.channels.slack import SlackChannel, SlackConfig
from alerts.storage import Store, open_store
from tests.service.test_delivery import call, send_alerts, start_run
from tests.support.outbox import wait_settled
from tests.support.service import ServiceProcess
from tests.support.slack_server import TOKEN, WEBHOOK_PATH, SlackMessage, SlackServer

GROUP = 'default:{project="vision", rule="loss-nan", run="r1"}'


@pytest.fixture
async def context(tmp_path: Path) -> AsyncIterator[ChannelContext]:
    store: Store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    await store.open()
    yield ChannelContext(timeout=5, public_url="http://localhost:8080", store=store)
    await store.close()


def alert(title: str = "Loss is NaN in exp-1", *, status: str = "firing", severity: str = "critical",
          text: str = "train/loss = NaN at step 120 (value < 0 or > 1e6)", **extra: Any) -> dict[str, Any]:
    url = "http://localhost:8080/runs/vision/r1"
    return {"id": uuid.uuid4().hex, "fingerprint": "f1", "status": status, "source": "rule", "rule": "loss-nan",
            "title": title, "text": text, "severity": severity,
            "labels": {"alertname": "loss-nan", "rule": "loss-nan", "source": "rule", "severity": severity,
                       "project": "vision", "run": "r1", "run_name": "exp-1", "metric": "train/loss",
                       "team": "vision"},
            "project": "vision", "run": {"id": "r1", "name": "exp-1", "url": url, "state": "running"},
            "metric": "train/loss", "value": "NaN", "threshold": 0.3, "step": 120,
            "starts_at": "2026-11-28T17:00:00Z", "ends_at": "2026-11-28T17:05:00Z" if status == "resolved" else None,
            "url": url, "suppressed_count": 0, "delayed": False,
            "resolved_reason": "metric recovered" if status == "resolved" else None, **extra}


def notification(*alerts: dict[str, Any], status: str = "firing", group_key: str = GROUP) -> Notification:
    alerts = alerts or (alert(status=status),)
    return Notification(id=str(uuid.uuid4()), channel="slack", group_key=group_key,
                        message={"status": status, "group_labels": {"project": "vision", "run": "r1",
                                                                    "rule": "loss-nan"}, "alerts": list(alerts)})


def bot(server: SlackServer, context: ChannelContext, **options: Any) -> SlackChannel:
    config = SlackConfig(type="slack", token=TOKEN, channel="#ml-alerts", base_url=server.api_url, **options)
    return SlackChannel("slack", config, context)


def webhook(server: SlackServer, context: ChannelContext, **options: Any) -> SlackChannel:
    return SlackChannel("slack", SlackConfig(type="slack", webhook_url=server.webhook_url, **options), context)


def section_texts(message: SlackMessage) -> list[str]:
    return [block["text"]["text"] for block in message.blocks if block["type"] == "section"]


def context_texts(message: SlackMessage) -> list[str]:
    return [e["text"] for block in message.blocks if block["type"] == "context" for e in block["elements"]]


def header(message: SlackMessage) -> str:
    (block,) = [block for block in message.blocks if block["type"] == "header"]
    return str(block["text"]["text"])


# -- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    ({"webhook_url": "https://hooks.slack.com/services/T/B/x", "token": "xoxb-1", "channel": "#a"}, "not both"),
    ({"token": "xoxb-1"}, "needs channel"),
    ({"channel": "#a"}, "needs token"),
    ({}, "set webhook_url (incoming webhook) or token + channel"),
    ({"webhook_url": "hooks.slack.com/services/T/B/x"}, "must start with https://"),
    ({"token": "xoxb-1", "channel": "#a", "max_alerts": 100}, "less than or equal to 24"),
])
def test_config_needs_exactly_one_mode(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlackConfig(type="slack", **fields)
    assert expected in str(info.value)
    assert "xoxb-1" not in str(info.value) and "T/B/x" not in str(info.value)


# -- webhook mode ------------------------------------------------------------------------------------

async def test_webhook_posts_block_kit_with_fallback(slack: SlackServer, context: ChannelContext) -> None:
    channel = webhook(slack, context, username="Runwatch", icon_emoji=":rotating_light:")
    await channel.send(notification())
    (message,) = slack.messages
    assert message.method == "webhook"
    assert header(message) == "🔥 FIRING · critical · Loss is NaN in exp-1"
    (section,) = section_texts(message)
    assert "*<http://localhost:8080/runs/vision/r1|Loss is NaN in exp-1>*" in section
    assert "(value &lt; 0 or &gt; 1e6)" in section  # mrkdwn control characters escaped
    assert "*Project:* vision" in section and "*Run:* <http://localhost:8080/runs/vision/r1|exp-1> (running)" in section
    assert "*Metric:* `train/loss`  ·  *Value:* NaN  ·  *Threshold:* 0.3  ·  *Step:* 120" in section
    (labels,) = context_texts(message)
    assert "team=vision" in labels and "alertname=loss-nan" in labels and "since 2026-11-28T17:00:00Z" in labels
    assert "run_name" not in labels  # shown in the section already
    assert message.text.startswith("🔥 FIRING · critical · Loss is NaN in exp-1\n• Loss is NaN in exp-1 (vision/exp-1)")
    assert message.body["username"] == "Runwatch" and message.body["icon_emoji"] == ":rotating_light:"
    assert message.body["unfurl_links"] is False

    await channel.send(notification(status="resolved"))  # webhook mode: resolved is a new message
    resolved = slack.messages[1]
    assert header(resolved) == "✅ RESOLVED · critical · Loss is NaN in exp-1"
    assert "*Resolved:* metric recovered" in section_texts(resolved)[0]
    assert "until 2026-11-28T17:05:00Z" in context_texts(resolved)[0]
    await channel.aclose()


async def test_webhook_wrong_url_is_permanent(slack: SlackServer, context: ChannelContext) -> None:
    url = slack.url + "/services/T000/B000/WRONG"
    channel = SlackChannel("slack", SlackConfig(type="slack", webhook_url=url), context)
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(notification())
    assert str(info.value) == "slack: Slack webhook answered HTTP 403 invalid_token"
    await channel.aclose()


# -- bot-token mode ----------------------------------------------------------------------------------

async def test_bot_posts_then_updates_and_replies_in_thread_across_restarts(slack: SlackServer,
                                                                           context: ChannelContext) -> None:
    first = bot(slack, context)
    await first.send(notification())
    (posted,) = slack.messages
    assert posted.method == "chat.postMessage" and posted.channel == "C0MLALERTS" and posted.thread_ts is None
    assert header(posted) == "🔥 FIRING · critical · Loss is NaN in exp-1"
    state = await context.recall("slack", GROUP)
    assert state["channel"] == "C0MLALERTS" and state["ts"] == posted.ts
    await first.aclose()

    second = bot(slack, context)  # a restarted service: only the store remembers the message
    await second.send(notification(status="resolved"))
    update, reply = slack.messages[1:]
    assert update.method == "chat.update" and update.channel == "C0MLALERTS" and update.ts == posted.ts
    assert header(update) == "✅ RESOLVED · critical · Loss is NaN in exp-1"
    assert reply.method == "chat.postMessage" and reply.thread_ts == posted.ts
    assert reply.text == "✅ *Resolved:* Loss is NaN in exp-1 — metric recovered"
    living = slack.history[("C0MLALERTS", str(posted.ts))]
    assert living["blocks"][0]["text"]["text"].startswith("✅ RESOLVED")
    assert [m.ts for m in slack.messages if m.method == "chat.postMessage" and m.thread_ts is None] == [posted.ts]

    await second.send(notification())  # the group fires again after it was resolved: a new message
    again = slack.messages[3]
    assert again.method == "chat.postMessage" and again.thread_ts is None and again.ts != posted.ts
    assert (await context.recall("slack", GROUP))["ts"] == again.ts
    await second.aclose()


async def test_bot_still_firing_update(slack: SlackServer, context: ChannelContext) -> None:
    channel = bot(slack, context)
    await channel.send(notification())
    await channel.send(notification(alert(value=1e9, step=130)))
    update, reply = slack.messages[1:]
    assert update.method == "chat.update" and "*Step:* 130" in section_texts(update)[0]
    assert reply.text == "🔥 *Still firing:* Loss is NaN in exp-1 — `train/loss` = 1e+09 (threshold 0.3) at step 130"
    await channel.aclose()


async def test_bot_posts_a_new_message_when_the_old_one_is_gone(slack: SlackServer, context: ChannelContext) -> None:
    channel = bot(slack, context)
    await channel.send(notification())
    old = slack.messages[0]
    slack.delete_message("C0MLALERTS", str(old.ts))
    await channel.send(notification(status="resolved"))
    new = slack.messages[-1]
    assert new.method == "chat.postMessage" and new.thread_ts is None and new.ts != old.ts
    assert header(new).startswith("✅ RESOLVED")
    assert (await context.recall("slack", GROUP))["ts"] == new.ts
    await channel.aclose()


async def test_retry_of_a_remembered_delivery_posts_nothing(slack: SlackServer, context: ChannelContext) -> None:
    channel = bot(slack, context)
    first = notification()
    await channel.send(first)
    await channel.send(first)  # the retry stage retries when marking delivered failed
    assert len(slack.messages) == 1
    await channel.aclose()


# -- classified errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [bot, webhook])
async def test_429_is_recoverable_with_retry_after(slack: SlackServer, context: ChannelContext,
                                                   make: Callable[..., SlackChannel]) -> None:
    channel = make(slack, context)
    slack.fail_next(1, 429, retry_after=7)
    with pytest.raises(RecoverableDeliveryError) as info:
        await channel.send(notification())
    assert info.value.retry_after == 7.0
    assert len(slack.requests) == 1  # slack-sdk's own retry handlers are off
    await channel.send(notification())
    assert len(slack.messages) == 1
    await channel.aclose()


@pytest.mark.parametrize("make", [bot, webhook])
async def test_5xx_is_recoverable(slack: SlackServer, context: ChannelContext,
                                  make: Callable[..., SlackChannel]) -> None:
    channel = make(slack, context)
    slack.fail_next(1, 503)
    with pytest.raises(RecoverableDeliveryError) as info:
        await channel.send(notification())
    assert "503" in str(info.value) and info.value.retry_after is None
    assert len(slack.requests) == 1
    await channel.aclose()


async def test_ratelimited_error_code_is_recoverable(slack: SlackServer, context: ChannelContext) -> None:
    channel = bot(slack, context)
    slack.fail_next(1, 200, error="ratelimited")
    with pytest.raises(RecoverableDeliveryError, match="ratelimited"):
        await channel.send(notification())
    await channel.aclose()


async def test_invalid_token_is_permanent(slack: SlackServer, context: ChannelContext) -> None:
    config = SlackConfig(type="slack", token="xoxb-wrong-token", channel="#ml-alerts", base_url=slack.api_url)
    channel = SlackChannel("slack", config, context)
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(notification())
    assert str(info.value) == "slack: Slack chat.postMessage failed: invalid_auth"
    await channel.aclose()


async def test_unknown_channel_is_permanent(slack: SlackServer, context: ChannelContext) -> None:
    config = SlackConfig(type="slack", token=TOKEN, channel="#nope", base_url=slack.api_url)
    channel = SlackChannel("slack", config, context)
    with pytest.raises(PermanentDeliveryError, match="channel_not_found"):
        await channel.send(notification())
    await channel.aclose()


@pytest.mark.parametrize("make", [bot, webhook])
async def test_timeout_and_connection_refused_are_recoverable(slack: SlackServer, context: ChannelContext,
                                                              make: Callable[..., SlackChannel]) -> None:
    channel = make(slack, context, timeout="200ms")
    slack.delay = 1.0
    with pytest.raises(RecoverableDeliveryError, match="slack: Slack timed out after 0.2s"):
        await channel.send(notification())
    slack.delay = 0.0
    slack.stop()
    with pytest.raises(RecoverableDeliveryError, match=r"slack: cannot reach Slack \(\w+\)"):
        await channel.send(notification())
    await channel.aclose()


# -- limits ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [bot, webhook])
async def test_a_huge_group_fits_in_one_message(slack: SlackServer, context: ChannelContext,
                                                make: Callable[..., SlackChannel]) -> None:
    channel = make(slack, context)
    alerts = [alert(f"Loss is NaN in exp-{i} " + "x" * 200, text="<" * 5000) for i in range(200)]
    await channel.send(notification(*alerts))  # the server rejects what Slack would (invalid_blocks)
    (message,) = slack.messages
    assert len(message.blocks) <= 50
    assert len(header(message)) == 150 and header(message).endswith("…")
    sections = section_texts(message)
    assert len(sections) == 11 and sections[-1] == "_…and 190 more_"
    assert all(len(text) <= 3000 for text in sections)
    assert sections[0].endswith("…") and "&lt;" in sections[0] and not sections[0].endswith("&…")
    assert message.text.endswith("…and 190 more")
    await channel.aclose()


# -- secrets -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [bot, webhook])
async def test_secrets_never_in_errors_or_logs(slack: SlackServer, context: ChannelContext,
                                               make: Callable[..., SlackChannel],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    channel = make(slack, context, timeout="200ms")
    errors: list[DeliveryError] = []
    await channel.send(notification())
    await channel.send(notification(status="resolved"))
    for status in (429, 500, 404):
        slack.fail_next(1, status, retry_after=3)
        with pytest.raises(DeliveryError) as info:
            await channel.send(notification())
        errors.append(info.value)
    slack.delay = 1.0
    with pytest.raises(DeliveryError) as info:
        await channel.send(notification())
    errors.append(info.value)
    slack.delay = 0.0
    slack.stop()
    with pytest.raises(DeliveryError) as info:
        await channel.send(notification())
    errors.append(info.value)
    await channel.aclose()
    assert any("Sending a request" in record.getMessage() for record in caplog.records)  # slack-sdk did log
    text = caplog.text + "\n".join(str(e) for e in errors)
    for secret in (TOKEN, WEBHOOK_PATH, slack.webhook_url, "B000/XXXX"):
        assert secret not in text


# -- through the service -----------------------------------------------------------------------------

def test_service_delivers_to_slack(service_factory: Callable[..., ServiceProcess], slack: SlackServer) -> None:
    service = service_factory({
        "channels": {"slack": {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url}},
        "defaults": {"channels": ["slack"]},
    })
    key = service.create_key("vision")
    start_run(service, key)
    (result,) = send_alerts(service, key, [call("Loss is NaN", level="error")])
    assert result["status"] == "created"
    (message,) = slack.wait_for(1)
    assert message.method == "chat.postMessage" and message.channel == "C0MLALERTS"
    assert header(message) == "🔥 FIRING · error · Loss is NaN"
    assert f"*Run:* <{service.base_url}/runs/vision/r1|exp-1> (running)" in section_texts(message)[0]

    (record,) = wait_settled(service, ["slack"], count=1)
    assert record["status"] == "delivered" and record["attempts"] == 1
    assert TOKEN not in service.log_text()
    assert TOKEN not in service.api("GET", "/api/v1/notifications?status=delivered").text
