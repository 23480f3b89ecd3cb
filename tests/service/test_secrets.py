"""Secrets never leave the service: not in its log, API answers, CLI output or error messages (SPEC §4.2).

One real ``alerts serve`` holds every kind of secret at once: a Slack bot token, a Slack incoming-webhook
URL, SMTP credentials (the password through ``${VAR}``), webhook signing secrets, ``Authorization``
headers, tokens in webhook URLs, and the API keys made by ``alerts keys create``. It delivers through
every channel, fails in every way we can provoke (5xx, 429, 401, invalid_auth, a rejected SMTP login, a
closed port), answers every endpoint and CLI command, and rejects broken configs. Everything it says is
captured, then searched for every secret (whole, and the first half of its random part).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sdk_process import run_script, sdk_env
from tests.service.test_delivery import call, send_alerts
from tests.support.ports import free_port
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import USERNAME, Certificates, SmtpServer

KEY_PREFIX = "rwk_"


def _secret(kind: str) -> str:
    return f"SECRET-{re.sub(r'[^A-Za-z0-9]+', '-', kind)}-{uuid.uuid4().hex}"


@dataclass
class Secrets:
    """Every secret of one test, by what it is; each is unique to the test run."""

    values: dict[str, str] = field(default_factory=dict)

    def new(self, label: str, value: str | None = None) -> str:
        self.values[label] = value or _secret(label)
        return self.values[label]

    def needles(self) -> list[tuple[str, str]]:
        """(label, text to look for): each secret whole and the first half of its random part."""
        found = []
        for label, value in self.values.items():
            found.append((label, value))
            core = value.removeprefix(KEY_PREFIX) if value.startswith(KEY_PREFIX) else value.rsplit("-", 1)[-1]
            if len(core) >= 32:
                found.append((f"{label} (random part)", core[:16]))
        return found


@dataclass
class Captured:
    """Everything the service said, by source: HTTP answers (status, headers, body), CLI output, logs."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, text: str) -> None:
        name, n = source, 2
        while name in self.texts:
            name, n = f"{source} #{n}", n + 1
        self.texts[name] = text

    def http(self, label: str, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        self.add(f"HTTP {label}", f"{response.status_code}\n{headers}\n\n{response.text}")
        return response

    def process(self, label: str, result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.add(f"{label} (stdout)", result.stdout)
        self.add(f"{label} (stderr)", result.stderr)
        return result

    def leaks(self, secrets: Secrets) -> list[str]:
        found = []
        for source, text in self.texts.items():
            for label, needle in secrets.needles():
                at = text.find(needle)
                if at >= 0:
                    context = text[max(0, at - 120):at + len(needle) + 40].replace("\n", "⏎")
                    found.append(f"{label} leaked in {source}: …{context}…")
        return found


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest.fixture
def slack(secrets: Secrets) -> Iterator[SlackServer]:
    server = SlackServer(token=secrets.new("slack bot token", f"xoxb-SECRET-slack-token-{uuid.uuid4().hex}"),
                         webhook_path=f"/services/T000/B000/{secrets.new('slack webhook path secret')}").start()
    secrets.new("slack webhook url", server.webhook_url)
    yield server
    server.stop()


@pytest.fixture
def smtp(certificates: Certificates, secrets: Secrets) -> Iterator[SmtpServer]:
    server = SmtpServer(certificates, password=secrets.new("smtp password")).start()
    yield server
    server.stop()


@pytest.fixture
def receivers() -> Iterator[dict[str, WebhookReceiver]]:
    started = {"good": WebhookReceiver().start(), "failing": WebhookReceiver().start()}
    yield started
    for receiver in started.values():
        receiver.stop()


def alerts_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60, check=False)


def verify_signature(secret: str, header: str, body: bytes) -> None:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


def notifications(service: ServiceProcess, captured: Captured, status: str = "") -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    response = captured.http(f"GET /api/v1/notifications{query}",
                             service.api("GET", f"/api/v1/notifications{query}"))
    assert response.status_code == 200, response.text
    return list(response.json()["notifications"])


def by_channel(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for notification in found:
        grouped.setdefault(notification["channel"], []).append(notification)
    return grouped


def assert_no_leaks(captured: Captured, secrets: Secrets) -> None:
    leaks = captured.leaks(secrets)
    if leaks:
        print("\n".join(leaks))
    assert not leaks, f"{len(leaks)} secret leak(s):\n" + "\n".join(leaks)


def test_no_secret_in_logs_api_answers_cli_output_or_errors(
        service_factory: Callable[..., ServiceProcess], slack: SlackServer, smtp: SmtpServer,
        receivers: dict[str, WebhookReceiver], certificates: Certificates, secrets: Secrets,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    captured = Captured()
    good, failing = receivers["good"], receivers["failing"]
    monkeypatch.setenv("RW_TEST_SMTP_PASSWORD", secrets.values["smtp password"])  # through ${VAR}
    wrong_slack_token = secrets.new("wrong slack bot token", f"xoxb-SECRET-wrong-token-{uuid.uuid4().hex}")
    wrong_hook_path = secrets.new("wrong slack webhook path secret")
    hook_query, hook_bearer = secrets.new("webhook url token"), secrets.new("webhook bearer token")
    hook_hmac = secrets.new("webhook signing secret")
    failing_query, failing_bearer = secrets.new("failing webhook url token"), secrets.new("failing webhook bearer")
    failing_hmac = secrets.new("failing webhook signing secret")
    closed_query, closed_header = secrets.new("closed-port webhook url token"), secrets.new("closed-port api key")
    badheader_query = secrets.new("bad-header webhook url token")
    badheader_bearer = secrets.new("bad-header bearer")

    smtp_common = {"host": "127.0.0.1", "port": smtp.port, "username": USERNAME, "tls": "starttls",
                   "ca_file": str(certificates.ca_file)}
    channels: dict[str, Any] = {
        "console": {"type": "console"},
        "slack-bot": {"type": "slack", "token": slack.token, "channel": "#ml-alerts", "base_url": slack.api_url},
        "slack-hook": {"type": "slack", "webhook_url": slack.webhook_url},
        "slack-badtoken": {"type": "slack", "token": wrong_slack_token, "channel": "#ml-alerts",
                           "base_url": slack.api_url},
        "slack-badhook": {"type": "slack", "webhook_url": f"{slack.url}/services/T000/B000/{wrong_hook_path}"},
        "mail": {"type": "email", "to": ["oncall@example.com"], "from": "runwatch@example.com",
                 "smtp": {**smtp_common, "password": "${RW_TEST_SMTP_PASSWORD}"}},
        "mail-badauth": {"type": "email", "to": ["oncall@example.com"], "from": "runwatch@example.com",
                         "smtp": {**smtp_common, "password": secrets.new("wrong smtp password")}},
        "hook": {"type": "webhook", "url": f"{good.url}?token={hook_query}", "secret": hook_hmac,
                 "headers": {"Authorization": f"Bearer {hook_bearer}"}},
        "hook-401": {"type": "webhook", "url": f"{failing.url}?token={failing_query}", "secret": failing_hmac,
                     "headers": {"Authorization": f"Bearer {failing_bearer}"}, "format": "alertmanager"},
        "hook-closed": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook?token={closed_query}",
                        "headers": {"X-Api-Key": closed_header}},
    }
    service = service_factory({
        "logging": {"format": "json"},  # structured lines carry the same messages: held to the same rule
        "delivery": {"initial_backoff": "200ms", "max_backoff": "1s", "timeout": "3s"},
        "channels": channels,
        "defaults": {"channels": list(channels), "group_wait": "0s", "group_interval": "1s"},
    })

    # -- API keys: made by the CLI (whose output *is* the key, so it is not searched) -------------------
    admin = secrets.new("admin API key", service.admin_key)
    project = secrets.new("project API key", service.create_key("vision"))
    other = secrets.new("other project API key", service.create_key("other"))
    before = set(captured.process("alerts keys list", service.cli("keys", "list")).stdout.split())
    revoked = secrets.new("revoked API key", service.create_key("vision"))
    (revoked_id,) = [line.split("\t")[0] for line in service.cli("keys", "list").stdout.splitlines()
                     if line.split("\t")[0] not in before]
    captured.process("alerts keys revoke", service.cli("keys", "revoke", revoked_id))
    listing = captured.process("alerts keys list", service.cli("keys", "list")).stdout
    assert len(listing.splitlines()) == 4 and f"{revoked_id}\tproject=vision\trevoked" in listing
    wrong = secrets.new("made-up API key", KEY_PREFIX + uuid.uuid4().hex + uuid.uuid4().hex)
    near_miss = secrets.new("admin API key with a typo", admin[:-1] + ("A" if admin[-1] != "A" else "B"))

    # -- requests with wrong keys ---------------------------------------------------------------------
    for label, headers in [("made-up key", {"Authorization": f"Bearer {wrong}"}),
                           ("admin key with a typo", {"Authorization": f"Bearer {near_miss}"}),
                           ("revoked key", {"Authorization": f"Bearer {revoked}"}),
                           ("Basic scheme", {"Authorization": f"Basic {admin}"}),
                           ("key without scheme", {"Authorization": admin}),
                           ("no key", {})]:
        for method, path in [("GET", "/api/v1/auth"), ("GET", "/api/v1/runs"), ("POST", "/api/v1/reload")]:
            response = httpx.request(method, f"{service.base_url}{path}", headers=headers, timeout=10)
            captured.http(f"{method} {path} [{label}]", response)
            assert response.status_code == 401, (label, response.text)
    forbidden = [("POST", "/api/v1/runs", {"json": {"project": "other", "id": "x1"}}),
                 ("GET", "/api/v1/notifications", {}), ("POST", "/api/v1/reload", {}),
                 ("GET", "/api/v1/runs?project=other", {})]
    for method, path, extra in forbidden:
        response = captured.http(f"{method} {path} [project key, forbidden]",
                                 service.api(method, path, key=project, **extra))
        assert response.status_code == 403, response.text
    for method, path in [("GET", "/api/v1/runs/vision/r1"), ("GET", "/api/v1/alerts?project=vision")]:
        response = captured.http(f"{method} {path} [other project's key]", service.api(method, path, key=other))
        assert response.status_code == 403, response.text
    # A key pasted into the wrong field by mistake: the 422 names the field but must not echo the value.
    response = captured.http("POST /api/v1/runs [key as a bad value]", service.api(
        "POST", "/api/v1/runs", key=project, json={"project": "vision", "id": "r2", "pid": project}))
    assert response.status_code == 422, response.text

    # -- deliveries, with failures on the way --------------------------------------------------------
    slack.fail_next(1, 500)
    slack.fail_next(1, 429, retry_after=1)
    good.failures = [(500, {}), (429, {"Retry-After": "1"})]
    failing.failures = [(500, {}), *[(401, {})] * 50]
    response = captured.http("POST /api/v1/runs", service.api(
        "POST", "/api/v1/runs", key=project, json={"project": "vision", "id": "r1", "name": "exp-1"}))
    assert response.status_code == 200, response.text
    response = captured.http("POST /api/v1/runs/vision/r1/alerts", service.api(
        "POST", "/api/v1/runs/vision/r1/alerts", key=project, json={"alerts": [call("Loss is NaN", level="error")]}))
    assert [r["status"] for r in response.json()["results"]] == ["created"]

    slack.wait_for(2)  # the bot's message and the incoming webhook's
    smtp.wait_for(1)
    good.wait_for(1)
    (second,) = send_alerts(service, project, [call("Accuracy low", wait=0)])  # the group changes: follow-ups
    assert second["status"] == "created"

    def delivered_everywhere() -> bool:
        methods = [m.method for m in slack.messages]
        return methods.count("webhook") >= 2 and "chat.update" in methods and len(smtp.mails) >= 2 \
            and len(good.requests) >= 2

    service.wait_for(delivered_everywhere, timeout=30)

    expected_status = {"console": "delivered", "slack-bot": "delivered", "slack-hook": "delivered",
                       "mail": "delivered", "hook": "delivered", "slack-badtoken": "failed",
                       "slack-badhook": "failed", "mail-badauth": "failed", "hook-401": "failed",
                       "hook-closed": "pending"}

    def settled() -> dict[str, list[dict[str, Any]]] | None:
        grouped = by_channel(notifications(service, captured))
        done = all(len(grouped.get(name, [])) == 2 and {n["status"] for n in grouped[name]} == {status}
                   for name, status in expected_status.items())
        return grouped if done and all(n["attempts"] >= 2 for n in grouped["hook-closed"]) else None

    grouped = service.wait_for(settled, timeout=30, interval=0.3)

    # Not vacuous: every secret was really used, and every failure really happened and was recorded.
    bot_posts = [request for request in slack.requests if request[0].startswith("/api/chat.")]
    assert f"Bearer {slack.token}" in {headers.get("authorization") for _, headers in bot_posts}
    assert f"Bearer {wrong_slack_token}" in {headers.get("authorization") for _, headers in bot_posts}
    assert any(path == f"/services/T000/B000/{wrong_hook_path}" for path, _ in slack.requests)
    assert {mail.login for mail in smtp.mails} == {USERNAME} and all(mail.tls for mail in smtp.mails)
    assert (USERNAME, False) in smtp.auth_attempts  # the wrong password was tried and refused
    for request in good.requests:
        assert request.path == f"/hook?token={hook_query}"
        assert request.headers["Authorization"] == f"Bearer {hook_bearer}"
        verify_signature(hook_hmac, request.headers["X-Runwatch-Signature"], request.body)
    assert failing.rejected[-1].headers["Authorization"] == f"Bearer {failing_bearer}"
    verify_signature(failing_hmac, failing.rejected[-1].headers["X-Runwatch-Signature"], failing.rejected[-1].body)
    errors = {name: {str(n["last_error"]) for n in found} for name, found in grouped.items()}
    assert errors["slack-badtoken"] == {"slack-badtoken: Slack chat.postMessage failed: invalid_auth"}
    assert errors["slack-badhook"] == {"slack-badhook: Slack webhook answered HTTP 403 invalid_token"}
    assert errors["mail-badauth"] == {"mail-badauth: SMTP authentication failed: 535 5.7.8"}
    assert errors["hook-401"] == {"hook-401: receiver answered HTTP 401 Unauthorized: ok"}
    assert errors["hook-closed"] == {"hook-closed: ConnectError"}

    # -- silences -----------------------------------------------------------------------------------
    response = captured.http("POST /api/v1/silences", service.api("POST", "/api/v1/silences", json={
        "matchers": ["project=vision", "run=r-none"], "duration": "1h", "created_by": "test",
        "comment": "maintenance"}))
    assert response.status_code == 200, response.text
    silence_id = response.json()["id"]
    captured.process("alerts silence list", service.cli("silence", "list", "--all"))

    # -- an SDK run logging at DEBUG: its output and its console tail (uploaded to the run) ----------
    sdk_result = run_script("""
        import logging, runwatch
        logging.basicConfig(level=logging.DEBUG)
        run = runwatch.init(id="sdk1", settings={"finish_timeout": 10})
        print(repr(run.settings))
        runwatch.log({"loss": 0.5})
        runwatch.alert(title="From the SDK", text="an alert() call", level="warning", wait_duration=0)
        runwatch.finish()
    """, sdk_env(service, project, tmp_path), timeout=60)
    captured.process("SDK script", sdk_result)
    assert sdk_result.returncode == 0, sdk_result.stderr
    service.wait_for(lambda: any("From the SDK" in r.body.decode() for r in good.requests), timeout=20)

    # -- every read endpoint, as admin and as the project; reload by API and by SIGHUP --------------

    reads = ["/healthz", "/openapi.json", "/api/v1/auth", "/api/v1/runs", "/api/v1/runs?project=vision",
             "/api/v1/runs/vision/r1", "/api/v1/runs/vision/sdk1", "/api/v1/runs/vision/r1/history",
             "/api/v1/runs/vision/sdk1/history", "/api/v1/runs/vision/r1/media", "/api/v1/runs/vision/nope",
             "/api/v1/alerts", "/api/v1/alerts?project=vision&status=firing", "/api/v1/alerts?project=vision&run=r1",
             "/api/v1/silences", "/api/v1/silences?state=active"]
    for label, key in [("admin", admin), ("project", project)]:
        for path in reads:
            captured.http(f"GET {path} [{label}]", service.api("GET", path, key=key))
    for status in ("", "pending", "delivered", "failed"):
        notifications(service, captured, status)
    response = captured.http("POST /api/v1/reload", service.api("POST", "/api/v1/reload"))
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    assert service.process is not None
    assert service.log_text().count("reloaded the config") == 1  # the API's reload, answered already
    service.process.send_signal(signal.SIGHUP)
    service.wait_for(lambda: service.log_text().count("reloaded the config") == 2, timeout=30)
    response = captured.http("DELETE /api/v1/silences/{id}", service.api("DELETE", f"/api/v1/silences/{silence_id}"))
    assert response.status_code == 200, response.text

    # -- the CLI: check-config, send-test to every channel ------------------------------------------
    result = captured.process("alerts check-config", service.cli("check-config"))
    assert result.returncode == 0 and f"ok ({len(channels)} channels" in result.stdout, result.stderr
    permanent, temporary = "error (permanent)", "error (temporary, would be retried)"
    expected_send_test = {
        **{name: f"ok: test notification delivered to {name} (delivery "
           for name in ("slack-bot", "slack-hook", "mail", "hook", "console")},
        "slack-badtoken": f"{permanent}: slack-badtoken: Slack chat.postMessage failed: invalid_auth\n",
        "slack-badhook": f"{permanent}: slack-badhook: Slack webhook answered HTTP 403 invalid_token\n",
        "mail-badauth": f"{permanent}: mail-badauth: SMTP authentication failed: 535 5.7.8\n",
        "hook-401": f"{permanent}: hook-401: receiver answered HTTP 401 Unauthorized: ok\n",
        "hook-closed": f"{temporary}: hook-closed: ConnectError\n",
    }
    for name, printed in expected_send_test.items():
        result = captured.process(f"alerts send-test {name}", service.cli("send-test", name, check=False))
        ok = printed.startswith("ok: ")
        assert result.returncode == (0 if ok else 1), (name, result.stdout, result.stderr)
        assert result.stdout.startswith(printed) if ok else result.stdout == printed, (name, result.stdout)
    result = captured.process("alerts send-test unknown", service.cli("send-test", "nope", check=False))
    assert result.returncode == 1 and result.stdout.startswith("error: unknown channel 'nope'"), result.stdout

    # -- broken configs that hold the same secrets --------------------------------------------------
    broken = tmp_path / "broken"
    broken.mkdir()
    invalid = broken / "invalid.yaml"
    invalid.write_text(f"""\
server: {{host: 127.0.0.1, port: {free_port()}}}
storage: {{url: "sqlite:///broken.db"}}
channels:
  mail:
    type: email
    to: [oncall@example.com]
    from: runwatch@example.com
    smtp: {{host: 127.0.0.1, port: not-a-port, username: runwatch, password: "{secrets.values['smtp password']}",
           tls: ssl}}
  slack-both:
    type: slack
    token: "{slack.token}"
    webhook_url: "{slack.webhook_url}"
    channel: "#ml-alerts"
  slack-badurl:
    type: slack
    webhook_url: "hooks.slack.com/services/T000/B000/{secrets.values['slack webhook path secret']}"
  slack-badtoken:
    type: slack
    token: ["{wrong_slack_token}"]
    channel: "#ml-alerts"
    timeout: soon
  hook:
    type: webhook
    url: "ftp://127.0.0.1/hook?token={hook_query}"
    secret: {{value: "{hook_hmac}"}}
    headers: {{Authorization: {{bearer: "{hook_bearer}"}}}}
    format: xml
    extra_token: "{failing_bearer}"
  hook-badheader:
    type: webhook
    url: "{good.url}?token={badheader_query}"
    headers: {{Authorization: "Bearer {badheader_bearer}\u201d"}}
defaults: {{channels: [mail, missing-channel]}}
""")
    env = service.env()
    result = captured.process("alerts check-config invalid.yaml", alerts_cli("check-config", str(invalid),
                                                                              cwd=broken, env=env))
    assert result.returncode == 1
    for expected in ("smtp.port", "smtp.tls", "not both", "webhook_url must start with https://",
                     "slack-badtoken.token", "hook.url", "hook.secret", "hook.headers.Authorization",
                     "hook.format", "unknown key",
                     # a pasted typographic quote: refused with its place, not at every delivery attempt
                     f"hook-badheader.headers: header 'Authorization': character {len(badheader_bearer) + 8} "
                     "of the value (U+201D"):
        assert expected in result.stderr, (expected, result.stderr)
    result = captured.process("alerts serve invalid.yaml", alerts_cli("serve", "--config", str(invalid),
                                                                       cwd=broken, env=env))
    assert result.returncode == 1 and "smtp.tls" in result.stderr
    result = captured.process("alerts send-test invalid.yaml", alerts_cli("send-test", "mail", "--config",
                                                                           str(invalid), cwd=broken, env=env))
    assert result.returncode == 1 and "smtp.tls" in result.stderr
    unparsable = {  # YAML syntax errors on the very lines that hold secrets
        "trailing.yaml": f'channels:\n  slack: {{type: slack, token: "{slack.token}", channel: "#a"}} {hook_bearer}\n',
        "unterminated.yaml": f'channels:\n  mail:\n    smtp: {{host: h, password: "{secrets.values["smtp password"]}\n',
    }
    for name, text in unparsable.items():
        (broken / name).write_text(text)
        result = captured.process(f"alerts check-config {name}", alerts_cli("check-config", str(broken / name),
                                                                             cwd=broken, env=env))
        assert result.returncode == 1 and "invalid YAML" in result.stderr, result.stderr
    env_missing = broken / "env.yaml"
    env_missing.write_text(f"""\
channels:
  mail:
    type: email
    to: [oncall@example.com]
    from: runwatch@example.com
    smtp: {{host: 127.0.0.1, username: runwatch, password: "{secrets.values['smtp password']}${{RW_TEST_UNSET}}"}}
""")
    result = captured.process("alerts check-config env.yaml", alerts_cli("check-config", str(env_missing),
                                                                          cwd=broken, env=env))
    assert result.returncode == 1 and "RW_TEST_UNSET is not set" in result.stderr, result.stderr

    # -- the service log ----------------------------------------------------------------------------
    service.stop()  # everything it logs at shutdown is in too
    log = service.log_text()
    captured.add("service log", log)
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line one JSON object
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)  # the server's own lines too
    log = "\n".join(entry["message"] + "\n" + entry.get("exception", "") for entry in entries)
    failed_permanently = {name: re.search(rf"delivery \S+ to {re.escape(name)} failed permanently: (.*)", log)
                          for name in ("slack-badtoken", "slack-badhook", "mail-badauth", "hook-401")}
    assert all(failed_permanently.values()), log
    assert re.search(r"delivery \S+ to hook-closed failed \(attempt 2\), retrying in .*: hook-closed: ConnectError",
                     log), log
    assert re.search(r"delivery \S+ to hook failed \(attempt 1\), retrying in .*: hook: receiver answered HTTP 500",
                     log), log
    assert re.search(r"delivery \S+ to slack-\S+ failed \(attempt 1\), retrying in .*(500|429|ratelimited)", log), log
    assert "Loss is NaN" in log and "From the SDK" in log  # the console channel's lines
    assert "reloaded" in log

    # Stored hashed, never in plain: the database files hold none of the API keys.
    database = b"".join(path.read_bytes() for path in service.workdir.glob("alerts.db*"))
    for label in ("admin API key", "project API key", "other project API key", "revoked API key"):
        assert secrets.values[label].encode() not in database, f"{label} is stored in plain"

    assert len(captured.texts) >= 100  # HTTP answers, CLI runs, the SDK, the service log
    assert_no_leaks(captured, secrets)


def test_a_receiver_echoing_the_request_does_not_put_secrets_in_errors(
        service_factory: Callable[..., ServiceProcess], receivers: dict[str, WebhookReceiver],
        secrets: Secrets) -> None:
    """Receivers answer errors with what they were sent (the URL, the headers); the email channel never quotes
    the SMTP reply for that reason. A webhook's error must not carry its URL token or its headers either."""
    captured = Captured()
    failing = receivers["failing"]
    failing.echo_failures = True
    failing.failures = [(401, {})] * 10
    query, bearer = secrets.new("webhook url token"), secrets.new("webhook bearer token")
    service = service_factory({
        "channels": {"hook": {"type": "webhook", "url": f"{failing.url}?token={query}",
                              "secret": secrets.new("webhook signing secret"),
                              "headers": {"Authorization": f"Bearer {bearer}"}}},
        "defaults": {"channels": ["hook"]},
    })
    project = secrets.new("project API key", service.create_key("vision"))
    captured.http("POST /api/v1/runs", service.api("POST", "/api/v1/runs", key=project,
                                                   json={"project": "vision", "id": "r1"}))
    send_alerts(service, project, [call("Loss is NaN", level="error")])

    def failed() -> list[dict[str, Any]]:
        return [n for n in notifications(service, captured, "failed") if n["channel"] == "hook"]

    (notification,) = service.wait_for(failed, timeout=20)
    assert "HTTP 401" in str(notification["last_error"])
    assert failing.rejected[0].path == f"/hook?token={query}"  # the receiver did echo it
    result = captured.process("alerts send-test hook", service.cli("send-test", "hook", check=False))
    assert result.returncode == 1 and "HTTP 401" in result.stdout
    service.stop()
    log = service.log_text()
    assert "failed permanently" in log
    captured.add("service log", log)
    assert_no_leaks(captured, secrets)

