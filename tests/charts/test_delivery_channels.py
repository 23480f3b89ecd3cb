"""Charts through every channel, end to end: a real service fires a rule and the real receivers check
what arrived (the local Slack server's upload flow, aiosmtpd's mails, a webhook receiver fetching
``chart_url`` with no key)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from alerts.charts.signing import UrlSigner, load_secret
from alerts.storage import open_store
from tests.charts.delivery import (
    PNG_MAGIC,
    expiry,
    fetch,
    fire,
    local,
    log_accuracy,
    mail_parts,
    mails_of,
    recover,
    service_with_rules,
    start_run,
)
from tests.service.test_delivery import call
from tests.support.channel_servers import Setup, channel_servers
from tests.support.outbox import wait_settled
from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.slack_server import TOKEN, SlackMessage, SlackServer
from tests.support.smtp_server import Certificates, email_channel
from tests.support.waiting import eventually

PUBLIC_URL = "http://charts.runwatch.test"
"""Not loopback, so Slack's webhook mode shows image blocks; tests fetch its URLs on the loopback port."""
TEMPLATE = '{"charts": [{% for alert in alerts %}{{ alert.chart_url | tojson }}{{ "," if not loop.last }}' \
           '{% endfor %}]}'
CHANNELS = ["slack", "slack-hook", "mail", "mail-plain", "hook", "am", "tpl", "hook-plain"]
FORBIDDEN = {"detail": "invalid or expired chart link"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Setup]:
    with channel_servers(certificates) as (hook, slack, smtp):
        receiver = f"http://127.0.0.1:{hook.port}"
        config = {
            "server": {"public_url": PUBLIC_URL},
            # These tests are about what arrives: a bound no busy machine misses (test_delivery_bounds.py
            # tests the bound).
            "charts": {"timeout": "60s"},
            "channels": {
                "slack": {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url},
                "slack-hook": {"type": "slack", "webhook_url": slack.webhook_url},
                "mail": email_channel(smtp, certificates),
                "mail-plain": email_channel(smtp, certificates, subject_prefix="[plain]", charts=False),
                "hook": {"type": "webhook", "url": hook.url},
                "am": {"type": "webhook", "url": f"{receiver}/am", "format": "alertmanager"},
                "tpl": {"type": "webhook", "url": f"{receiver}/tpl", "template": TEMPLATE},
                "hook-plain": {"type": "webhook", "url": f"{receiver}/plain", "charts": False},
            },
            "defaults": {"channels": CHANNELS, "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        }
        service = service_with_rules(tmp_path_factory.mktemp("chart-delivery"), config)
        try:
            yield Setup(service, service.create_key("vision"), hook, slack, smtp)
        finally:
            service.stop()


@pytest.fixture(scope="module")
def fired(setup: Setup) -> str:
    """A run whose ``acc-low`` alert fired (each test waits for its own channel's delivery)."""
    fire(setup.service, setup.key, "r1")
    return "r1"


def alerts_at(hook: WebhookReceiver, path: str, run_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The alert objects about ``run_id`` that the receiver got at ``path`` (runwatch format)."""
    def found(requests: list[ReceivedRequest]) -> list[dict[str, Any]]:
        return [alert for request in requests if request.path == path for alert in request.json()["alerts"]
                if (alert.get("run") or {}).get("id") == run_id]

    hook.wait_until(lambda requests: len(found(requests)) >= count, timeout=60, what=f"{path} alerts of {run_id}")
    return found(list(hook.requests))


def posted(slack: SlackServer, run_id: str) -> SlackMessage:
    """The bot's first message about ``run_id``."""
    return eventually(lambda: next((m for m in list(slack.messages) if m.method == "chat.postMessage"
                                    and m.thread_ts is None and f"exp-{run_id}" in m.text), None),
                      lambda message: message is not None, timeout=60, what=f"the Slack message about {run_id}")


def test_slack_bot_uploads_the_chart_into_the_alert_thread(setup: Setup, fired: str) -> None:
    message = posted(setup.slack, fired)

    def thread_files() -> list[Any]:
        return [file for file in setup.slack.shared_files() if file.thread_ts == message.ts]

    (chart,) = eventually(thread_files, lambda files: len(files) == 1, timeout=60, what="the chart in the thread")
    assert chart.channel == message.channel == "C0MLALERTS"
    assert chart.data is not None and chart.data.startswith(PNG_MAGIC) and len(chart.data) < 100_000
    assert chart.filename == "chart.png" and chart.title and "val/acc" in chart.title
    # Resolved: the message is updated, and the resolved state's chart joins the thread; nothing twice.
    recover(setup.service, setup.key, fired)
    eventually(thread_files, lambda files: len(files) == 2, timeout=60, what="the resolved chart in the thread")
    delivered = wait_settled(setup.service, ["slack"])
    ours = [n for n in delivered if f'run="{fired}"' in n["group_key"]]
    assert [n["status"] for n in ours] == ["delivered", "delivered"]
    assert len(thread_files()) == 2
    assert not [m for m in setup.slack.messages if "not ready" in m.text]


def test_slack_webhook_mode_shows_an_image_block_slack_can_fetch(setup: Setup, fired: str) -> None:
    message = eventually(lambda: next((m for m in list(setup.slack.messages)
                                       if m.method == "webhook" and f"exp-{fired}" in m.text), None),
                         lambda found: found is not None, timeout=60, what="the webhook-mode message")
    assert message is not None
    (image,) = [block for block in message.blocks if block["type"] == "image"]
    assert image["image_url"].startswith(f"{PUBLIC_URL}/charts/") and "val/acc" in image["alt_text"]
    response = fetch(local(image["image_url"], setup.service))
    assert response.status_code == 200 and response.content.startswith(PNG_MAGIC)


def test_email_shows_the_chart_inline_and_leaves_the_text_alone(setup: Setup, fired: str) -> None:
    charted = [mail for mail in mails_of(setup.smtp, fired, 2) if "[plain]" not in str(mail.message["Subject"])]
    text, html, related = mail_parts(charted[0])
    assert text.get_content_type() == "text/plain"
    assert "cid:" not in text.get_content() and "not ready" not in text.get_content()
    (image,) = related
    assert image.get_content_type() == "image/png"
    content_id = str(image["Content-ID"]).strip("<>")
    assert f'src="cid:{content_id}"' in html.get_content()
    assert image.get_content().startswith(PNG_MAGIC)
    # charts: false on the other mail channel: the same mail without the image.
    (plain,) = [mail for mail in mails_of(setup.smtp, fired, 2) if "[plain]" in str(mail.message["Subject"])][:1]
    plain_text, plain_html, plain_related = mail_parts(plain)
    assert plain_related == [] and "cid:" not in plain_html.get_content()
    assert plain_text.get_content() == text.get_content()


def test_webhook_chart_url_answers_a_png_to_anyone_holding_it(setup: Setup, fired: str) -> None:
    (alert,) = alerts_at(setup.hook, "/hook", fired)[:1]
    url = alert["chart_url"]
    assert url.startswith(f"{PUBLIC_URL}/charts/{alert['id']}.png?exp=") and "&sig=" in url
    week = 7 * 24 * 3600
    assert abs(expiry(url) - (time.time() + week)) < 600
    response = fetch(local(url, setup.service))  # no Authorization header
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and response.content.startswith(PNG_MAGIC)
    assert "max-age" in response.headers["cache-control"] and response.headers["etag"]
    again = fetch(local(url, setup.service))
    assert again.content == response.content  # the same alert state: the cached drawing

    signature = url.rsplit("sig=", 1)[1]
    changed = ("0" if signature[0] != "0" else "1") + signature[1:]
    tampered = [url.replace(signature, changed),  # one character of the signature
                url.replace(f"/{alert['id']}.png", f"/{alert['id'][:-1]}{'0' if alert['id'][-1] != '0' else '1'}.png"),
                url.replace(f"exp={expiry(url)}", f"exp={expiry(url) + 1}"),  # a later expiry
                url.split("&sig=")[0], url.split("?")[0]]
    for forged in tampered:
        answer = fetch(local(forged, setup.service))
        assert (answer.status_code, answer.json()) == (403, FORBIDDEN), forged


def test_alertmanager_format_and_templates_carry_chart_url(setup: Setup, fired: str) -> None:
    (alert,) = alerts_at(setup.hook, "/hook", fired)[:1]
    path = f"/charts/{alert['id']}.png?exp="

    def am_alerts(requests: list[ReceivedRequest]) -> list[dict[str, Any]]:
        return [a for r in requests if r.path == "/am" for a in r.json()["alerts"] if a["labels"].get("run") == fired]

    setup.hook.wait_until(lambda requests: bool(am_alerts(requests)), timeout=60, what="the alertmanager payload")
    annotations = am_alerts(list(setup.hook.requests))[0]["annotations"]
    assert path in annotations["chart_url"]
    templated = setup.hook.wait_until(lambda requests: any(r.path == "/tpl" and path.encode() in r.body
                                                           for r in requests), timeout=60, what="the template body")
    assert templated
    assert fetch(local(annotations["chart_url"], setup.service)).content.startswith(PNG_MAGIC)


def test_charts_false_on_a_webhook_leaves_chart_url_null(setup: Setup, fired: str) -> None:
    (alert,) = alerts_at(setup.hook, "/plain", fired)[:1]
    assert "chart_url" in alert and alert["chart_url"] is None


def test_alert_calls_have_a_chart_only_with_a_chart_metric(setup: Setup) -> None:
    start_run(setup.service, setup.key, "c1")
    log_accuracy(setup.service, setup.key, "c1", [0.9, 0.8, 0.85, 0.7])
    with_chart = {**call("Accuracy dipped", wait=0), "chart": "val/acc"}
    without = call("Just saying", wait=0)
    response = setup.service.api("POST", "/api/v1/runs/vision/c1/alerts", key=setup.key,
                                 json={"alerts": [with_chart, without]})
    assert response.status_code == 200, response.text
    alerts = {alert["title"]: alert for alert in alerts_at(setup.hook, "/hook", "c1", 2)}
    assert alerts["Just saying"]["chart_url"] is None
    url = alerts["Accuracy dipped"]["chart_url"]
    assert url is not None and fetch(local(url, setup.service)).content.startswith(PNG_MAGIC)


def test_unknown_alert_and_alert_without_chart_answer_404(setup: Setup) -> None:
    """With a genuine signature (made from the secret in the service's database): past the 403 check."""
    start_run(setup.service, setup.key, "c2")
    response = setup.service.api("POST", "/api/v1/runs/vision/c2/alerts", key=setup.key,
                                 json={"alerts": [call("No chart here", wait=0)]})
    (result,) = response.json()["results"]

    async def signer() -> UrlSigner:
        store = open_store(setup.service.storage_url)
        await store.open()
        try:
            return UrlSigner(await load_secret(store), setup.service.base_url)
        finally:
            await store.close()

    sign = asyncio.run(signer())
    for alert_id, detail in (("0" * 32, "unknown alert"), (result["alert_id"], "no chart for this alert")):
        answer = fetch(sign.url(alert_id, expires=int(time.time()) + 600))
        assert (answer.status_code, answer.json()) == (404, {"detail": detail})
