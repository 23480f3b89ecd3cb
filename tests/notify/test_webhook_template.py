"""A webhook's own ``template:``: the JSON it renders (signed like the plain webhook), its errors at config
load (file:line) and at delivery (permanent, recorded with the channel's name, never retried)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerts.config import load_settings
from alerts.errors import ConfigError, PermanentDeliveryError
from alerts.model import Notification
from alerts.notify.channels.webhook import WebhookChannel, WebhookConfig
from alerts.notify.channels.webhook_template import clip, dedup_key, fit
from tests.service.test_delivery import call, send_alerts, start_run
from tests.support.outbox import wait_settled
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

SECRET = "template-signing-secret"
GROUP = '{}:{project="vision", run="r1"}'

TEMPLATE = """{
  "text": {{ ("[" ~ status | upper ~ "] " ~ alerts[0].title) | tojson }},
  "to": {{ receiver | tojson }}, "channel": {{ channel | tojson }},
  "group": {{ group_key | tojson }}, "key": {{ dedup_key | tojson }},
  "labels": {{ group_labels | tojson }}, "common": {{ common_labels | tojson }},
  "severity": {{ severity | tojson }}, "firing": {{ firing | length }}, "resolved": {{ resolved | length }},
  "shown": [{% for alert in alerts %}{{ {"title": alert.title | clip(12), "value": alert.value | number,
                                         "html": alert.text | html} | tojson }}{{ "," if not loop.last }}{% endfor %}],
  "hidden": {{ truncated_alerts }},
  "summary": {{ fit(alerts | map(attribute="title") | list, 40, separator="; ", hidden=truncated_alerts) | tojson }},
  "dashboard": {{ public_url | tojson }}
}"""


def alert(title: str, *, status: str = "firing", severity: str = "warning", **labels: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "fingerprint": "f", "status": status, "source": "sdk", "rule": None,
            "title": title, "text": 'loss < 0 & "odd"', "severity": severity,
            "labels": {"project": "vision", "run": "r1", "severity": severity, **labels}, "project": "vision",
            "run": {"id": "r1", "name": "exp-1", "url": "http://dash/runs/vision/r1", "state": "running"},
            "metric": None, "value": 0.123456789, "threshold": None, "step": 3, "starts_at": "2026-11-28T17:00:00Z",
            "ends_at": None, "url": "http://dash/runs/vision/r1", "suppressed_count": 0, "delayed": False,
            "resolved_reason": None}


def notification(*alerts: dict[str, Any]) -> Notification:
    return Notification(id=str(uuid.uuid4()), channel="tpl", group_key=GROUP,
                        message={"status": "firing", "group_labels": {"project": "vision", "run": "r1"},
                                 "alerts": list(alerts), "truncated_alerts": 0})


async def test_template_renders_the_json_it_describes(webhook_receiver: WebhookReceiver) -> None:
    config = WebhookConfig(type="webhook", url=webhook_receiver.url, template=TEMPLATE, secret=SECRET, max_alerts=2,
                           headers={"X-Team": "vision"})
    hook = WebhookChannel("tpl", config, timeout=5, public_url="http://dash")
    sent = notification(alert("Loss is NaN in exp-1", severity="critical", team="ml"),
                        alert("Accuracy low", status="resolved", team="ml"), alert("GPU idle", team="infra"))
    await hook.send(sent)
    (request,) = webhook_receiver.requests
    assert request.json() == {
        "text": "[FIRING] Loss is NaN in exp-1", "to": "tpl", "channel": "tpl", "group": GROUP,
        "key": dedup_key("tpl", GROUP), "labels": {"project": "vision", "run": "r1"},
        "common": {"project": "vision", "run": "r1", "team": "ml"},  # of the alerts shown
        "severity": "critical", "firing": 1, "resolved": 1,
        "shown": [{"title": "Loss is NaN…", "value": "0.123457", "html": "loss &lt; 0 &amp; &quot;odd&quot;"},
                  {"title": "Accuracy low", "value": "0.123457", "html": "loss &lt; 0 &amp; &quot;odd&quot;"}],
        "hidden": 1, "summary": "Loss is NaN in exp-1; …and 2 more", "dashboard": "http://dash"}
    assert request.body == json.dumps(request.json(), ensure_ascii=False, separators=(",", ":")).encode()  # compact
    assert request.headers["Content-Type"] == "application/json" and request.headers["X-Team"] == "vision"
    assert request.headers["X-Runwatch-Delivery"] == sent.id
    parts = dict(part.split("=", 1) for part in request.headers["X-Runwatch-Signature"].split(","))
    digest = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], digest)
    await hook.aclose()


async def test_output_that_is_not_json_is_permanent(webhook_receiver: WebhookReceiver) -> None:
    # Valid JSON for the sample notifications; a quote in a real title breaks it (no tojson).
    config = WebhookConfig(type="webhook", url=webhook_receiver.url, template='{"text": "{{ alerts[0].title }}"}')
    hook = WebhookChannel("tpl", config, timeout=5)
    with pytest.raises(PermanentDeliveryError) as info:
        await hook.send(notification(alert('Loss is "NaN"')))
    assert str(info.value).startswith("tpl: template: the output is not valid JSON (")
    assert str(info.value).endswith("); put values in with the tojson filter")
    assert webhook_receiver.requests == []
    await hook.aclose()


def test_helpers() -> None:
    assert clip("abcdef", 4) == "abc…" and clip("abc", 3) == "abc" and clip(None, 3) == ""
    assert fit(["a" * 10, "b" * 10, "c" * 10], 32) == "a" * 10 + "\n" + "b" * 10 + "\n" + "c" * 10
    assert fit(["a" * 10, "b" * 10, "c" * 10], 31) == "a" * 10 + "\n…and 2 more"  # room for the last line
    assert fit(["a" * 10, "b" * 10, "c" * 20], 33) == "a" * 10 + "\n" + "b" * 10 + "\n…and 1 more"
    assert fit(["a" * 10], 100, hidden=4) == "a" * 10 + "\n…and 4 more"
    assert fit(["<b>x</b> &amp;"], 3, html=True) == "<b>x</b> &amp;"  # as shown: "x &"


# -- config errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ('{"text": {{ alerts[0].title | tojson }', "channels.hook.template: invalid template: unexpected '}'"),
    ('{\n  "text": {{ nope | tojson }}\n}',
     "channels.hook.template: template fails on a sample firing notification: 'nope' is undefined (template line 2)"),
    ('{"text": {{ alerts[0].nope | tojson }}}',
     "channels.hook.template: template fails on a sample firing notification: 'dict object' has no attribute 'nope'"),
    ('{"text": {{ status | tojson }},}', "channels.hook.template: template fails on a sample firing notification: "
                                         "the output is not valid JSON (trailing comma is not allowed: line 1 "
                                         "column 18); put values in with the tojson filter"),
    ('{% if status == "resolved" %}oops{% else %}{}{% endif %}',
     "channels.hook.template: template fails on a sample resolved notification: the output is not valid JSON"),
])
def test_template_errors_name_the_file_and_line(tmp_path: Path, template: str, expected: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(f"channels:\n  console: {{type: console}}\n  hook:\n    type: webhook\n"
                    f"    url: http://127.0.0.1:9/hook\n    template: {json.dumps(template)}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    (error,) = info.value.errors
    assert error.startswith(f"{path}:6:15: {expected}"), error


def test_a_block_template_error_points_at_its_key(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/hook\n    template: |\n"
                    "      {\"text\": {{ alerts[0].title | tojson }},\n       \"n\": {{ undefined_name }}}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.errors == [f"{path}:5:15: channels.hook.template: template fails on a sample firing "
                                 "notification: 'undefined_name' is undefined (template line 2)"]


def test_alerts_serve_refuses_a_bad_template(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory({"channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/x",
                                                     "template": '{"a": {{ nope }}}'}}}, start=False)
    result = service.cli("check-config", str(service.config_path), check=False)
    assert result.returncode == 1
    assert "channels.hook.template: template fails on a sample firing notification: 'nope' is undefined" in \
        result.stdout + result.stderr


# -- through the service -----------------------------------------------------------------------------

def test_invalid_json_at_delivery_is_recorded_as_failed_without_retry(
        service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver) -> None:
    good = '{"title": {{ alerts[0].title | tojson }}, "key": {{ dedup_key | tojson }}}'
    bad = '{"title": "{{ alerts[0].title }}"}'  # no tojson: a quote in a title breaks the JSON
    service = service_factory({
        "channels": {"good": {"type": "webhook", "url": webhook_receiver.url + "/good", "template": good},
                     "bad": {"type": "webhook", "url": webhook_receiver.url + "/bad", "template": bad}},
        "defaults": {"channels": ["good", "bad"]},
    })
    key = service.create_key("vision")
    start_run(service, key)
    send_alerts(service, key, [call('Loss is "NaN"', level="error")])
    (request,) = webhook_receiver.wait_for(1)
    assert request.path == "/hook/good" and request.json()["title"] == 'Loss is "NaN"'
    records = {n["channel"]: n for n in wait_settled(service, ["good", "bad"], count=2)}
    assert records["good"]["status"] == "delivered"
    failed = records["bad"]
    assert failed["status"] == "failed" and failed["attempts"] == 1  # permanent: never retried
    assert failed["last_error"].startswith("bad: template: the output is not valid JSON (")
    log = eventually(service.log_text, lambda text: "failed permanently: bad: template" in text, timeout=30)
    assert "retrying" not in log
    assert [r.path for r in webhook_receiver.requests] == ["/hook/good"]
