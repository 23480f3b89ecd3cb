"""Webhook presets against a local server speaking each provider's API and checking its documented limits
(tests/support/providers.py): Discord, Teams, Telegram, PagerDuty, Opsgenie. Firing then resolved through
the channel, then through a service fed with records over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from alerts.config import load_settings
from alerts.errors import DeliveryError, PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import ChannelContext
from alerts.notify.channels.webhook import WebhookChannel, WebhookConfig
from alerts.notify.channels.webhook_presets import check_presets
from alerts.storage import open_store
from tests.support.outbox import wait_settled
from tests.support.providers import (
    ECHO,
    OPSGENIE_KEY,
    PAGERDUTY_KEY,
    TEAMS_SIGNATURE,
    TELEGRAM_CHAT,
    TELEGRAM_TOKEN,
    ProviderServer,
    Received,
    telegram_text,
)
from tests.support.service import ServiceProcess

PUBLIC_URL = "http://localhost:8080"
GROUP = '{}:{project="vision", rule="loss-high", run="r1"}'
SEVERITIES = ["info", "warning", "error", "critical"]


@pytest.fixture
def providers() -> Iterator[ProviderServer]:
    server = ProviderServer().start()
    yield server
    server.stop()


def alert(title: str = "Loss high in exp-1", *, status: str = "firing", severity: str = "critical",
          text: str = "train/loss = 12.5 at step 120 (limit 5)", run: str = "r1", **extra: Any) -> dict[str, Any]:
    url = f"{PUBLIC_URL}/runs/vision/{run}"
    return {"id": uuid.uuid4().hex, "fingerprint": uuid.uuid4().hex[:16], "status": status, "source": "rule",
            "rule": "loss-high", "title": title, "text": text, "severity": severity,
            "labels": {"alertname": "loss-high", "rule": "loss-high", "source": "rule", "severity": severity,
                       "project": "vision", "run": run, "run_name": "exp-1", "metric": "train/loss"},
            "project": "vision", "run": {"id": run, "name": "exp-1", "url": url, "state": "running"},
            "metric": "train/loss", "value": 12.5, "threshold": 5.0, "step": 120,
            "starts_at": "2026-11-28T17:00:00Z", "ends_at": "2026-11-28T17:05:00Z" if status == "resolved" else None,
            "url": url, "suppressed_count": 0, "delayed": False,
            "resolved_reason": "metric recovered" if status == "resolved" else None, **extra}


def notification(*alerts: dict[str, Any], status: str = "firing", group_key: str = GROUP) -> Notification:
    alerts = alerts or (alert(status=status),)
    return Notification(id=str(uuid.uuid4()), channel="preset", group_key=group_key,
                        message={"status": status, "group_labels": {"project": "vision", "run": "r1",
                                                                    "rule": "loss-high"},
                                 "alerts": list(alerts), "truncated_alerts": 0})


def resolved(firing: Notification) -> Notification:
    """The same group once every alert resolved."""
    alerts = [{**a, "status": "resolved", "ends_at": "2026-11-28T17:05:00Z", "resolved_reason": "metric recovered"}
              for a in firing.message["alerts"]]
    return notification(*alerts, status="resolved", group_key=firing.group_key)


def preset_config(preset: str, providers: ProviderServer, **options: Any) -> dict[str, Any]:
    urls = {"discord": providers.discord_url, "teams": providers.teams_url, "telegram": providers.telegram_url,
            "pagerduty": providers.pagerduty_url, "opsgenie": providers.opsgenie_url}
    needs = {"telegram": {"chat_id": TELEGRAM_CHAT}, "pagerduty": {"routing_key": PAGERDUTY_KEY},
             "opsgenie": {"api_key": OPSGENIE_KEY}}
    return {"type": "webhook", "preset": preset, "url": urls[preset], **needs.get(preset, {}), **options}


def channel(preset: str, providers: ProviderServer, **options: Any) -> WebhookChannel:
    config = WebhookConfig(**preset_config(preset, providers, **options))
    return WebhookChannel(preset, config, timeout=5, public_url=PUBLIC_URL)


def many(count: int, *, status: str = "firing", title: str = "Loss high in exp-{i} ", text: str = "") -> list[
        dict[str, Any]]:
    return [alert(title.format(i=i) + "x" * 300, text=text or "y" * 5000, status=status,
                  severity=SEVERITIES[i % 4]) for i in range(count)]


def test_every_preset_renders_json_for_the_sample_notifications() -> None:
    check_presets()


# -- Discord -----------------------------------------------------------------------------------------

async def test_discord_keeps_to_its_limits_with_many_alerts(providers: ProviderServer) -> None:
    hook = channel("discord", providers)
    firing = notification(*many(40))
    await hook.send(firing)  # the server refuses what Discord would (400, code 50035)
    (sent,) = providers.accepted("discord")
    body = sent.body
    assert sent.status == 204
    assert len(body["content"]) <= 2000 and len(body["embeds"]) == 10
    assert body["content"].startswith("🔥 FIRING · critical · Loss high in exp-0 ")
    assert body["content"].endswith(" (+39 more)\n…and 30 more not shown")
    assert sum(len(e["title"]) + len(e["description"]) for e in body["embeds"]) <= 6000
    assert all(len(e["title"]) <= 256 and e["title"].endswith("…") for e in body["embeds"])
    assert all(len(e["description"]) <= 4096 and e["description"].endswith("…") for e in body["embeds"])
    assert body["allowed_mentions"] == {"parse": []}  # "@everyone" in an alert's text pings nobody
    assert body["embeds"][0]["url"] == f"{PUBLIC_URL}/runs/vision/r1"

    await hook.send(resolved(firing))
    again = providers.accepted("discord")[1].body
    assert again["content"].startswith("✅ RESOLVED · ")
    assert {e["color"] for e in again["embeds"]} == {0x2DA44E}
    assert again["embeds"][0]["description"].startswith("y" * 100)
    await hook.aclose()


async def test_discord_one_alert_shows_its_facts(providers: ProviderServer) -> None:
    hook = channel("discord", providers)
    await hook.send(notification(alert(text="loss **exploded** @everyone")))
    (sent,) = providers.accepted("discord")
    (embed,) = sent.body["embeds"]
    assert sent.body["content"] == "🔥 FIRING · critical · Loss high in exp-1"
    assert embed["title"] == "🔥 Loss high in exp-1" and embed["color"] == 0xCF222E
    assert embed["description"] == ("loss **exploded** @everyone\n**Run:** vision/exp-1 (running)\n"
                                    "**Metric:** train/loss = 12.5 (threshold 5) at step 120")
    assert embed["timestamp"] == "2026-11-28T17:00:00Z"
    await hook.aclose()


async def test_discord_429_is_recoverable_with_retry_after(providers: ProviderServer) -> None:
    hook = channel("discord", providers)
    providers.failures = [(429, {"Retry-After": "3"}, {"message": "You are being rate limited.",
                                                        "retry_after": 3.0, "global": False})]
    with pytest.raises(RecoverableDeliveryError) as info:
        await hook.send(notification())
    assert info.value.retry_after == 3.0
    await hook.send(notification())
    assert len(providers.accepted("discord")) == 1
    await hook.aclose()


# -- Teams -------------------------------------------------------------------------------------------

async def test_teams_posts_an_adaptive_card(providers: ProviderServer) -> None:
    hook = channel("teams", providers)
    firing = notification(alert(severity="warning"))
    await hook.send(firing)
    await hook.send(resolved(firing))
    first, second = (r.body for r in providers.accepted("teams"))
    (attachment,) = first["attachments"]
    assert first["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    header, container = card["body"]
    assert header["text"] == "🔥 FIRING · warning · Loss high in exp-1" and header["color"] == "Warning"
    title, text, facts, actions = container["items"]
    assert title["text"] == "🔥 Loss high in exp-1" and text["text"].startswith("train/loss = 12.5")
    assert {"title": "Run", "value": "exp-1 (running)"} in facts["facts"]
    assert actions["actions"][0]["url"] == f"{PUBLIC_URL}/runs/vision/r1"
    assert second["attachments"][0]["content"]["body"][0]["text"].startswith("✅ RESOLVED")
    assert second["attachments"][0]["content"]["body"][0]["color"] == "Good"
    await hook.aclose()


async def test_teams_many_alerts_stay_under_28_kb(providers: ProviderServer) -> None:
    hook = channel("teams", providers)
    await hook.send(notification(*many(60, text="ü" * 5000)))  # the server answers 413 past 28 KB
    (sent,) = providers.accepted("teams")
    body = sent.body["attachments"][0]["content"]["body"]
    assert len([e for e in body if e["type"] == "Container"]) == 10
    assert body[-1]["text"] == "…and 50 more"
    assert body[0]["text"].endswith("(+59 more)")
    await hook.aclose()


# -- Telegram ----------------------------------------------------------------------------------------

async def test_telegram_escapes_html(providers: ProviderServer) -> None:
    hook = channel("telegram", providers)
    title = 'Loss <b>high</b> & "rising" in <exp-1>'
    firing = notification(alert(title, text="loss > 5 && acc < 0.3"))
    await hook.send(firing)  # the server parses entities as Telegram does: a stray < or & is a 400
    await hook.send(resolved(firing))
    first, second = providers.accepted("telegram")
    assert first.body["chat_id"] == TELEGRAM_CHAT and first.body["parse_mode"] == "HTML"
    assert first.body["link_preview_options"] == {"is_disabled": True}
    shown = telegram_text(first.body["text"])
    assert shown.splitlines()[0] == f"🔥 FIRING · critical · {title}"
    assert f"🔥 {title}\nloss > 5 && acc < 0.3\nvision/exp-1 (running) · train/loss = 12.5 (threshold 5)" in shown
    assert "&lt;b&gt;high&lt;/b&gt; &amp; &quot;rising&quot;" in first.body["text"]
    assert f'<a href="{PUBLIC_URL}/runs/vision/r1">Open in Runwatch</a>' in first.body["text"]
    assert telegram_text(second.body["text"]).startswith(f"✅ RESOLVED · critical · {title}")
    assert "Resolved: metric recovered" in telegram_text(second.body["text"])
    await hook.aclose()


async def test_telegram_keeps_to_4096_characters(providers: ProviderServer) -> None:
    hook = channel("telegram", providers)
    await hook.send(notification(*many(200, text="<&>" * 2000)))  # "message is too long" past 4,096
    (sent,) = providers.accepted("telegram")
    shown = telegram_text(sent.body["text"])
    assert len(shown) <= 4096
    kept = shown.count("\n🔥 ")
    assert kept >= 2 and shown.endswith(f"\n\n…and {200 - kept} more")
    assert "<&><&>" in shown  # escaped in the request, shown as written
    await hook.aclose()


async def test_telegram_plain_text_is_sent_as_written(providers: ProviderServer) -> None:
    hook = channel("telegram", providers, parse_mode="plain")
    await hook.send(notification(alert("Loss <b>high</b> & rising")))
    (sent,) = providers.accepted("telegram")
    assert "parse_mode" not in sent.body
    assert sent.body["text"].startswith("🔥 FIRING · critical · Loss <b>high</b> & rising\n\n")
    assert "&amp;" not in sent.body["text"] and f"\n{PUBLIC_URL}/runs/vision/r1" in sent.body["text"]
    await hook.aclose()


async def test_telegram_unknown_chat_is_permanent(providers: ProviderServer) -> None:
    hook = channel("telegram", providers, chat_id=42)
    with pytest.raises(PermanentDeliveryError) as info:
        await hook.send(notification())
    assert str(info.value) == ('telegram: receiver answered HTTP 400 Bad Request: {"ok": false, "error_code": 400, '
                               '"description": "Bad Request: chat not found"}')
    await hook.aclose()


# -- PagerDuty ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("severity", SEVERITIES)
async def test_pagerduty_triggers_then_resolves_one_dedup_key(providers: ProviderServer, severity: str) -> None:
    hook = channel("pagerduty", providers)
    firing = notification(alert(severity=severity), alert("Accuracy low", severity="info"))
    await hook.send(firing)
    await hook.send(resolved(firing))
    trigger, resolve = (r.body for r in providers.accepted("pagerduty"))
    assert trigger["routing_key"] == PAGERDUTY_KEY and trigger["event_action"] == "trigger"
    payload = trigger["payload"]
    assert payload["severity"] == severity
    assert payload["summary"] == f"[FIRING] {severity} · Loss high in exp-1 · vision/exp-1 (+1 more)"
    assert payload["source"] == "vision/exp-1" and payload["timestamp"] == "2026-11-28T17:00:00Z"
    assert payload["class"] == "loss-high" and payload["component"] == "train/loss"
    assert [a["title"] for a in payload["custom_details"]["alerts"]] == ["Loss high in exp-1", "Accuracy low"]
    assert trigger["links"] == [{"href": f"{PUBLIC_URL}/runs/vision/r1", "text": "Open in Runwatch"}]
    assert resolve == {"routing_key": PAGERDUTY_KEY, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert providers.incidents == {trigger["dedup_key"]: "resolved"}
    await hook.aclose()


async def test_pagerduty_summary_and_dedup_keys(providers: ProviderServer) -> None:
    hook = channel("pagerduty", providers)
    await hook.send(notification(*many(50, title="T{i} " + "z" * 3000)))
    await hook.send(notification(group_key='{}:{project="vision", rule="loss-high", run="r2"}'))
    restarted = channel("pagerduty", providers)  # a new channel object: the same group, the same key
    await restarted.send(notification())
    big, other, again = (r.body for r in providers.accepted("pagerduty"))
    summary = big["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("… (+49 more)")
    assert len(big["payload"]["custom_details"]["alerts"]) == 20
    assert big["payload"]["custom_details"]["left_out"] == 30
    assert other["dedup_key"] != big["dedup_key"] and again["dedup_key"] == big["dedup_key"]
    assert len(big["dedup_key"]) <= 255
    await hook.aclose()
    await restarted.aclose()


@pytest.mark.parametrize("preset", ["pagerduty", "opsgenie"])
async def test_a_late_retried_trigger_never_reopens_a_resolved_incident(providers: ProviderServer, preset: str,
                                                                         tmp_path: Path) -> None:
    """A trigger that failed and is retried after the group's resolve went out is dropped, not sent: the
    incident stays closed. A newer trigger (the alert fired again) reopens it as it should."""
    store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    await store.open()
    config = WebhookConfig(**preset_config(preset, providers))
    hook = WebhookChannel(preset, config, timeout=5, public_url=PUBLIC_URL,
                          context=ChannelContext(timeout=5, public_url=PUBLIC_URL, store=store))
    firing = notification()
    firing.created_at = 100.0
    resolution = resolved(firing)
    resolution.created_at = 160.0
    await hook.send(resolution)  # the firing's first attempt failed; the resolve went out meanwhile
    with pytest.raises(PermanentDeliveryError, match=f"^{preset}: superseded: a later notification"):
        await hook.send(firing)  # the firing's retry
    incidents = providers.incidents if preset == "pagerduty" else providers.opsgenie_alerts
    assert len(providers.accepted(preset)) == 1 and set(incidents.values()) <= {"resolved", "closed"}

    again = notification(alert())
    again.created_at = 220.0
    await hook.send(again)
    assert len(providers.accepted(preset)) == 2 and set(incidents.values()) == {"triggered" if preset == "pagerduty"
                                                                                 else "open"}
    await hook.aclose()
    await store.close()


@pytest.mark.parametrize("preset", ["pagerduty", "opsgenie"])
def test_send_test_closes_the_incident_it_opens(service_factory: Callable[..., ServiceProcess],
                                                providers: ProviderServer, preset: str) -> None:
    service = service_factory({"channels": {"oncall": preset_config(preset, providers)},
                               "defaults": {"channels": ["oncall"]}})
    result = service.cli("send-test", "oncall")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: test notification delivered to oncall and resolved again" in result.stdout
    assert len(providers.accepted(preset)) == 2
    incidents = providers.incidents if preset == "pagerduty" else providers.opsgenie_alerts
    assert list(incidents.values()) == ["resolved" if preset == "pagerduty" else "closed"]


# -- Opsgenie ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("severity", "priority"), [("critical", "P1"), ("error", "P2"), ("warning", "P3"),
                                                    ("info", "P5")])
async def test_opsgenie_creates_then_closes_by_alias(providers: ProviderServer, severity: str,
                                                     priority: str) -> None:
    hook = channel("opsgenie", providers)
    firing = notification(alert(severity=severity))
    await hook.send(firing)
    await hook.send(resolved(firing))
    create, close = providers.accepted("opsgenie")
    assert create.path == "/v2/alerts" and create.headers["authorization"] == f"GenieKey {OPSGENIE_KEY}"
    alias = create.body["alias"]
    assert create.body["message"] == f"[{severity}] Loss high in exp-1" and create.body["priority"] == priority
    assert create.body["entity"] == "vision/exp-1" and create.body["source"] == "Runwatch"
    assert create.body["tags"] == ["runwatch", severity, "vision", "loss-high", "exp-1"]
    assert create.body["details"]["project"] == "vision" and create.body["details"]["alerts"] == "1"
    assert close.path == f"/v2/alerts/{alias}/close?identifierType=alias"
    assert close.headers["authorization"] == f"GenieKey {OPSGENIE_KEY}"
    assert close.body["note"].startswith("Resolved in Runwatch:\n\n[RESOLVED] ")
    assert providers.opsgenie_alerts == {alias: "closed"}
    await hook.aclose()


async def test_opsgenie_keeps_to_its_limits(providers: ProviderServer) -> None:
    hook = channel("opsgenie", providers)
    await hook.send(notification(*many(300, text="d" * 2000)))  # the server answers 422 past a limit
    (sent,) = providers.accepted("opsgenie")
    assert len(sent.body["message"]) == 130 and sent.body["message"].endswith("… (+299 more)")
    description = sent.body["description"]
    kept = description.count("[FIRING] ")
    assert len(description) <= 15000 and description.endswith(f"\n\n…and {300 - kept} more") and kept >= 5
    await hook.aclose()


# -- secrets and config ------------------------------------------------------------------------------

@pytest.mark.parametrize(("preset", "secret"), [("pagerduty", PAGERDUTY_KEY), ("opsgenie", OPSGENIE_KEY),
                                                ("telegram", TELEGRAM_TOKEN), ("teams", TEAMS_SIGNATURE)])
async def test_secrets_never_in_errors_or_logs(providers: ProviderServer, preset: str, secret: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = channel(preset, providers, timeout="300ms")
    errors: list[DeliveryError] = []
    for status in (400, 401, 503):
        providers.failures = [(status, {}, ECHO)]  # the answer quotes the request: path, headers, body
        with pytest.raises(DeliveryError) as info:
            await hook.send(notification())
        errors.append(info.value)
    assert any(secret in r.path + str(r.headers) + r.raw.decode() for r in providers.requests)  # it was sent
    providers.stop()
    with pytest.raises(RecoverableDeliveryError) as info:
        await hook.send(notification())
    errors.append(info.value)
    await hook.aclose()
    text = caplog.text + "\n".join(str(e) for e in errors)
    assert "receiver answered HTTP 400" in text
    for needle in (secret, secret[len(secret) // 2:]):
        assert needle not in text


@pytest.mark.parametrize(("fields", "expected"), [
    ({"preset": "pagerduty"}, "preset: pagerduty needs routing_key"),
    ({"preset": "opsgenie"}, "preset: opsgenie needs api_key"),
    ({"preset": "telegram", "url": "https://api.telegram.org/botSECRET-TOKEN/sendMessage"},
     "preset: telegram needs chat_id"),
    ({"preset": "telegram", "url": "https://api.telegram.org/botSECRET-TOKEN/getMe", "chat_id": 1},
     "preset: telegram needs a url whose path ends with /sendMessage"),
    ({"preset": "discord"}, "url is required for preset: discord"),
    ({"preset": "discord", "url": "https://x/y", "routing_key": "SECRET-KEY"},
     "routing_key applies to preset: pagerduty only"),
    ({"url": "https://x/y", "api_key": "SECRET-KEY"}, "api_key applies to preset: opsgenie only"),
    ({"preset": "opsgenie", "api_key": "SECRET KEY\u2019"}, "api_key must be printable ASCII without spaces"),
    ({"preset": "teams", "url": "https://x/y", "format": "alertmanager"}, "format applies to the plain webhook"),
    ({"preset": "teams", "url": "https://x/y", "template": "{}"}, "set either preset or template, not both"),
])
def test_preset_config_errors(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookConfig(type="webhook", **fields)
    assert expected in str(info.value)
    assert "SECRET" not in str(info.value)


def test_pagerduty_and_opsgenie_default_to_their_public_apis() -> None:
    pagerduty = WebhookChannel("pd", WebhookConfig(type="webhook", preset="pagerduty", routing_key=PAGERDUTY_KEY),
                               timeout=5)
    opsgenie = WebhookChannel("og", WebhookConfig(type="webhook", preset="opsgenie", api_key=OPSGENIE_KEY),
                              timeout=5)
    firing = notification()
    assert pagerduty.request(firing)[0] == "https://events.pagerduty.com/v2/enqueue"
    assert opsgenie.request(firing)[0] == "https://api.opsgenie.com/v2/alerts"
    alias = opsgenie.request(firing)[1].decode().split('"alias":"')[1].split('"')[0]
    assert opsgenie.request(resolved(firing))[0] == \
        f"https://api.opsgenie.com/v2/alerts/{alias}/close?identifierType=alias"


# -- through the service -----------------------------------------------------------------------------

RULES = """
rules:
  - name: loss-high
    metric: loss
    when: "> 5"
    severity: critical
    title: "Loss high in {{ run.name }}"
    text: "{{ metric }} = {{ value }} at step {{ step }} (limit {{ threshold }})"
"""
SIGNING_SECRET = "preset-signing-secret"


def _record(step: int, loss: float) -> dict[str, Any]:
    return {"seq": step, "type": "history", "step": step, "timestamp": 1_800_000_000.0 + step, "runtime": float(step),
            "data": {"loss": "NaN" if math.isnan(loss) else loss}}


def test_service_sends_a_rule_alert_firing_then_resolved_to_every_preset(
        service_factory: Callable[..., ServiceProcess], providers: ProviderServer, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    presets = ("discord", "teams", "telegram", "pagerduty", "opsgenie")
    channels = {name: preset_config(name, providers, secret=SIGNING_SECRET) for name in presets}
    service = service_factory({"rule_files": [str(rules)], "channels": channels,
                               "defaults": {"channels": list(presets), "group_wait": "0s",
                                            "group_interval": "300ms"}})
    key = service.create_key("vision")
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1", "name": "exp-1"})
    assert response.status_code == 200, response.text

    def post(*records: dict[str, Any]) -> None:
        answer = service.api("POST", "/api/v1/runs/vision/r1/records", key=key, json={"records": list(records)})
        assert answer.status_code == 200, answer.text

    post(_record(1, 12.5))
    providers.wait_until(lambda server: all(server.accepted(name) for name in presets), what="every firing")
    post(_record(2, 1.0))
    providers.wait_until(lambda server: all(len(server.accepted(name)) == 2 for name in presets),
                         what="every resolution")
    settled = wait_settled(service, presets, count=10)
    assert {(n["channel"], n["status"], n["attempts"]) for n in settled} == {(name, "delivered", 1) for name in presets}
    assert providers.refused() == []

    for name in presets:
        for request in providers.accepted(name):
            _verify_signature(request)
    discord = [r.body for r in providers.accepted("discord")]
    assert discord[0]["content"] == "🔥 FIRING · critical · Loss high in exp-1"
    assert discord[0]["embeds"][0]["url"] == f"{service.base_url}/runs/vision/r1"
    assert discord[1]["content"] == "✅ RESOLVED · critical · Loss high in exp-1"
    teams = [r.body["attachments"][0]["content"]["body"][0]["text"] for r in providers.accepted("teams")]
    assert teams == ["🔥 FIRING · critical · Loss high in exp-1", "✅ RESOLVED · critical · Loss high in exp-1"]
    telegram = [telegram_text(r.body["text"]) for r in providers.accepted("telegram")]
    assert telegram[0].startswith("🔥 FIRING") and "loss = 12.5 at step 1 (limit 5.0)" in telegram[0]
    assert telegram[1].startswith("✅ RESOLVED")
    trigger, resolve = (r.body for r in providers.accepted("pagerduty"))
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["payload"]["severity"] == "critical"
    assert providers.incidents == {trigger["dedup_key"]: "resolved"}
    create, close = providers.accepted("opsgenie")
    assert close.path == f"/v2/alerts/{create.body['alias']}/close?identifierType=alias"
    assert create.body["priority"] == "P1" and providers.opsgenie_alerts == {create.body["alias"]: "closed"}

    said = service.log_text() + service.api("GET", "/api/v1/notifications").text
    for secret in (PAGERDUTY_KEY, OPSGENIE_KEY, TELEGRAM_TOKEN, TEAMS_SIGNATURE, SIGNING_SECRET):
        assert secret not in said


def _verify_signature(request: Received) -> None:
    """The plain webhook's signing and delivery id, kept by the presets."""
    parts = dict(part.split("=", 1) for part in request.headers["x-runwatch-signature"].split(","))
    expected = hmac.new(SIGNING_SECRET.encode(), f"{parts['t']}.".encode() + request.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected) and abs(int(parts["t"]) - time.time()) < 120
    uuid.UUID(request.headers["x-runwatch-delivery"])


def test_the_provider_server_refuses_what_the_providers_would(providers: ProviderServer) -> None:
    """The checks the tests above rely on are real: each limit, one past it, is refused."""
    def post(url: str, body: Any, **headers: str) -> int:
        return httpx.post(url, json=body, headers=headers, timeout=10).status_code

    embed = {"title": "t", "description": "d"}
    assert post(providers.discord_url, {"content": "x" * 2000, "embeds": [embed] * 10}) == 204
    assert post(providers.discord_url, {"content": "x" * 2001}) == 400
    assert post(providers.discord_url, {"embeds": [embed] * 11}) == 400
    assert post(providers.discord_url, {"embeds": [{"description": "d" * 4097}]}) == 400
    assert post(providers.discord_url, {"embeds": [{"title": "t" * 257}]}) == 400
    assert post(providers.discord_url, {"embeds": [{"description": "d" * 3000}] * 2 + [embed]}) == 400
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "x" * 29000}]}
    message = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                   "content": card}]}
    assert post(providers.teams_url, message) == 413
    assert post(providers.teams_url, {"type": "message", "attachments": [{"contentType": "text/plain"}]}) == 400
    chat = {"chat_id": TELEGRAM_CHAT, "parse_mode": "HTML"}
    assert post(providers.telegram_url, {**chat, "text": "<b>x</b> &lt;" + "y" * 4093}) == 200
    assert post(providers.telegram_url, {**chat, "text": "y" * 4097}) == 400
    assert post(providers.telegram_url, {**chat, "text": "a < b"}) == 400
    assert post(providers.telegram_url, {**chat, "text": "a & b"}) == 400
    assert post(providers.telegram_url, {**chat, "text": "<b>open"}) == 400
    event = {"routing_key": PAGERDUTY_KEY, "event_action": "trigger",
             "payload": {"summary": "s" * 1024, "source": "x", "severity": "info"}}
    assert post(providers.pagerduty_url, event) == 202
    assert post(providers.pagerduty_url, {**event, "payload": {**event["payload"], "summary": "s" * 1025}}) == 400
    assert post(providers.pagerduty_url, {**event, "payload": {**event["payload"], "severity": "page"}}) == 400
    assert post(providers.pagerduty_url, {**event, "routing_key": "x" * 32}) == 400
    genie = {"Authorization": f"GenieKey {OPSGENIE_KEY}"}
    assert post(providers.opsgenie_url, {"message": "m" * 130, "description": "d" * 15000}, **genie) == 202
    assert post(providers.opsgenie_url, {"message": "m" * 131}, **genie) == 422
    assert post(providers.opsgenie_url, {"message": "m", "description": "d" * 15001}, **genie) == 422
    assert post(providers.opsgenie_url, {"message": "m", "priority": "P0"}, **genie) == 422
    assert post(providers.opsgenie_url, {"message": "m"}, Authorization="GenieKey wrong") == 401


def test_the_readme_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (presets,) = [block for block in blocks if "preset: discord" in block]
    (template,) = [block for block in blocks if "template: |" in block]
    for name in ("DISCORD_WEBHOOK_URL", "TEAMS_WORKFLOW_URL"):
        monkeypatch.setenv(name, "https://example.com/hook")
    for name in ("TELEGRAM_BOT_TOKEN", "PAGERDUTY_ROUTING_KEY", "OPSGENIE_API_KEY"):
        monkeypatch.setenv(name, "secret-value")
    path = tmp_path / "alerts.yaml"
    path.write_text(presets + template + "defaults: {channels: [ml-chat]}\n")
    settings = load_settings(path)
    assert {name: getattr(config, "preset", None) for name, config in settings.channels.items()} == {
        "discord": "discord", "teams": "teams", "telegram": "telegram", "pagerduty": "pagerduty",
        "opsgenie": "opsgenie", "ml-chat": None}
