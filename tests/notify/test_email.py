"""The email channel against a real local SMTP server (aiosmtpd): TLS modes, AUTH, threading, errors."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.config.loader import load_settings
from alerts.errors import ConfigError, PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import ChannelContext
from alerts.notify.channels.email import EmailChannel, EmailConfig, SmtpConfig
from alerts.storage import Store
from tests.service.test_delivery import call, send_alerts, start_run
from tests.support.outbox import wait_for_status
from tests.support.ports import free_port
from tests.support.service import ServiceProcess
from tests.support.smtp_server import PASSWORD, USERNAME, Certificates, ReceivedMail, SmtpServer

GROUP_LABELS = {"project": "vision", "run": "r1", "rule": "x"}
GROUP = 'default:{project="vision", rule="x", run="r1"}'
SUBJECT_GROUP = "project=vision run=r1 rule=x"


@pytest.fixture
def context(store: Store) -> ChannelContext:
    return ChannelContext(timeout=5, public_url="http://localhost:8080", store=store)


def alert(title: str = "Accuracy low in exp-1", *, status: str = "firing", severity: str = "warning",
          **extra: Any) -> dict[str, Any]:
    url = "http://localhost:8080/runs/vision/r1"
    return {"id": uuid.uuid4().hex, "fingerprint": uuid.uuid4().hex[:16], "status": status, "source": "rule",
            "rule": "x", "title": title, "text": "val/acc = 0.21 at step 12 (floor 0.3)", "severity": severity,
            "labels": {"alertname": "x", "rule": "x", "source": "rule", "severity": severity, "project": "vision",
                       "run": "r1", "run_name": "exp-1", "metric": "val/acc", "team": "vision"},
            "project": "vision", "run": {"id": "r1", "name": "exp-1", "url": url, "state": "running"},
            "metric": "val/acc", "value": 0.21, "threshold": 0.3, "step": 12,
            "starts_at": "2026-11-28T17:00:00Z", "ends_at": "2026-11-28T17:05:00Z" if status == "resolved" else None,
            "url": url, "suppressed_count": 0, "delayed": False,
            "resolved_reason": "metric recovered (val/acc = 0.41)" if status == "resolved" else None, **extra}


def notification(*alerts: dict[str, Any], status: str = "firing", group_key: str = GROUP,
                 group_labels: dict[str, str] | None = None) -> Notification:
    alerts = alerts or (alert(status=status),)
    return Notification(id=str(uuid.uuid4()), channel="mail", group_key=group_key, created_at=1_800_000_000.0,
                        message={"status": status, "group_labels": group_labels or GROUP_LABELS,
                                 "alerts": list(alerts), "truncated_alerts": 0})


def config(server: SmtpServer, certificates: Certificates, *, tls: str = "starttls", auth: bool = True,
           **options: Any) -> EmailConfig:
    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": server.tls_port if tls == "tls" else server.port,
                            "tls": tls, **options.pop("smtp", {})}
    if tls != "none":
        smtp.setdefault("ca_file", str(certificates.ca_file))
    if auth:
        smtp.setdefault("username", USERNAME)
        smtp.setdefault("password", PASSWORD)
    return EmailConfig.model_validate({"type": "email", "to": ["oncall@example.com", "Ml Team <ml@example.com>"],
                                       "from": "Runwatch <runwatch@example.com>", "smtp": smtp, **options})


@pytest.fixture
def channel(smtp: SmtpServer, certificates: Certificates,
            context: ChannelContext) -> Callable[..., EmailChannel]:
    def make(**options: Any) -> EmailChannel:
        return EmailChannel("mail", config(smtp, certificates, **options), context)
    return make


def parts(mail: ReceivedMail) -> tuple[str, str]:
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    assert isinstance(text_part, EmailMessage) and isinstance(html_part, EmailMessage)
    assert text_part.get_content_type() == "text/plain" and html_part.get_content_type() == "text/html"
    # Mail travels with CRLF line ends; compare with the channel's LF text.
    text, html = (str(part.get_content()).replace("\r\n", "\n") for part in (text_part, html_part))
    return text, html


# -- config ------------------------------------------------------------------------------------------

def test_port_defaults_follow_the_tls_mode() -> None:
    assert SmtpConfig(host="smtp.example.com").port == 587
    assert SmtpConfig(host="smtp.example.com", tls="tls").port == 465
    assert SmtpConfig(host="smtp.example.com", tls="none").port == 25
    assert SmtpConfig(host="smtp.example.com", tls="tls", port=2465).port == 2465
    by_name = EmailConfig.model_validate({"type": "email", "to": ["a@example.com"], "from_": "b@example.com",
                                          "smtp": SmtpConfig(host="smtp.example.com")})
    assert by_name.from_ == "b@example.com" and by_name.max_alerts == 50 and by_name.subject_prefix == ""


@pytest.mark.parametrize(("changes", "expected"), [
    ({"to": []}, "at least 1 item"),
    ({"to": ["not-an-address"]}, "invalid email address 'not-an-address'"),
    ({"from": "runwatch at example.com"}, "invalid email address"),
    ({"smtp": {"host": "smtp.example.com", "username": "runwatch"}}, "username and password go together"),
    ({"smtp": {"host": "smtp.example.com", "password": "pw-in-error"}}, "username and password go together"),
    ({"smtp": {"host": "smtp.example.com", "tls": "ssl"}}, "'starttls', 'tls' or 'none'"),
    ({"smtp": {"host": "smtp://smtp.example.com"}}, "not a URL"),
    ({"smtp": {"host": "smtp.example.com", "tls": "none", "ca_file": "/ca.pem"}}, "ca_file needs tls"),
    ({"headers": {"Message-ID": "<x@y>"}}, "cannot be overridden"),
    ({"headers": {"X-Team": "a\r\nBcc: evil@example.com"}}, "line breaks"),
    ({"max_alerts": 0}, "greater than or equal to 1"),
])
def test_config_rejects(changes: dict[str, Any], expected: str) -> None:
    raw: dict[str, Any] = {"type": "email", "to": ["oncall@example.com"], "from": "runwatch@example.com",
                           "smtp": {"host": "smtp.example.com", "username": "runwatch", "password": "pw-in-error"}}
    with pytest.raises(ValidationError) as info:
        EmailConfig.model_validate({**raw, **changes})
    assert expected in str(info.value)
    assert "pw-in-error" not in str(info.value)


def test_spec_example_loads_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "from-the-environment")
    path = tmp_path / "alerts.yaml"
    path.write_text("""\
channels:
  oncall: {type: email, to: [oncall@example.com], from: runwatch@example.com,
           smtp: {host: smtp.example.com, port: 587, username: runwatch, password: "${SMTP_PASSWORD}",
                  tls: starttls}}
defaults: {channels: [oncall]}
""")
    settings = load_settings(path)
    oncall = settings.channels["oncall"]
    assert isinstance(oncall, EmailConfig)
    assert oncall.from_ == "runwatch@example.com" and oncall.smtp.port == 587
    assert oncall.smtp.password is not None and oncall.smtp.password.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(oncall)
    path.write_text("channels:\n  oncall: {type: email, to: [nobody], from: runwatch@example.com,"
                    " smtp: {host: smtp.example.com, password: hunter2, username: u, port: nope}}\n"
                    "defaults: {channels: [oncall]}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "alerts.yaml:2:" in str(info.value) and "channels.oncall.to.0" in str(info.value)
    assert "channels.oncall.smtp.port" in str(info.value) and "hunter2" not in str(info.value)


# -- delivery ----------------------------------------------------------------------------------------

async def test_starttls_auth_delivery_field_by_field(smtp: SmtpServer, channel: Callable[..., EmailChannel]) -> None:
    sent = notification(alert("Accuracy low in exp-1", severity="critical"), alert("Loss rising", value=float("nan")))
    await channel(headers={"Reply-To": "ml-team@example.com"}, subject_prefix="[runwatch]").send(sent)
    (mail,) = smtp.mails
    assert mail.tls and mail.login == USERNAME and mail.port == smtp.port
    assert mail.mail_from == "runwatch@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "ml@example.com"]
    message = mail.message
    assert message["Subject"] == f"[runwatch] [FIRING:2] {SUBJECT_GROUP}"
    assert message["From"] == "Runwatch <runwatch@example.com>"
    assert message["To"] == "oncall@example.com, Ml Team <ml@example.com>"
    assert message["Message-ID"] == f"<{sent.id}@runwatch>"
    assert message["X-Runwatch-Delivery"] == sent.id
    assert message["Reply-To"] == "ml-team@example.com"
    assert message["Date"].datetime.timestamp() == sent.created_at  # the same on every retry
    assert message["In-Reply-To"] is None and message["References"] is None  # the first mail of its group
    text, html = parts(mail)
    assert text.startswith(f"FIRING: 2 alerts for {SUBJECT_GROUP}\n")
    assert "[FIRING] [CRITICAL] Accuracy low in exp-1" in text
    assert "Project: vision   Run: exp-1 (running) http://localhost:8080/runs/vision/r1" in text
    assert "Metric: val/acc   Value: 0.21   Threshold: 0.3   Step: 12" in text
    assert "Value: nan" in text
    assert "Labels: alertname=x, rule=x, source=rule, team=vision" in text
    assert "Sent by Runwatch http://localhost:8080" in text
    assert "<th" in html and html.count("<tr><td") == 2
    assert '<a href="http://localhost:8080/runs/vision/r1" style="color:#0969da">exp-1</a> (running)' in html
    assert "<code>val/acc</code>" in html and ">0.21<" in html and ">0.3<" in html and ">12<" in html
    assert "team=vision" in html and "run_name=" not in html
    assert ">critical</span>" in html and ">warning</span>" in html


async def test_implicit_tls(smtp: SmtpServer, channel: Callable[..., EmailChannel]) -> None:
    await channel(tls="tls").send(notification())
    (mail,) = smtp.mails
    assert mail.tls and mail.login == USERNAME and mail.port == smtp.tls_port
    assert mail.message["Subject"] == f"[FIRING:1] {SUBJECT_GROUP}"


async def test_plain_smtp_without_auth(smtp: SmtpServer, channel: Callable[..., EmailChannel]) -> None:
    await channel(tls="none", auth=False).send(notification())
    (mail,) = smtp.mails
    assert not mail.tls and mail.login is None
    parts(mail)


async def test_resolved_mail_shows_the_reason(smtp: SmtpServer, channel: Callable[..., EmailChannel]) -> None:
    await channel().send(notification(status="resolved"))
    text, html = parts(smtp.mails[0])
    assert smtp.mails[0].message["Subject"] == f"[RESOLVED] {SUBJECT_GROUP}"
    assert "Resolved: metric recovered (val/acc = 0.41)" in text
    assert "<em>Resolved: metric recovered (val/acc = 0.41)</em>" in html
    assert "until 2026-11-28T17:05:00Z" in text


async def test_html_is_escaped(smtp: SmtpServer, channel: Callable[..., EmailChannel]) -> None:
    hostile = alert('<script>alert("x")</script> & more', text="a < b > c", labels={"note": '"><img src=x>'},
                    url="javascript:alert(1)", metric="<b>m</b>")
    await channel().send(notification(hostile))
    text, html = parts(smtp.mails[0])
    assert "<script>" not in html and "<img" not in html and "<b>m</b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert "a &lt; b &gt; c" in html and "note=&quot;&gt;&lt;img src=x&gt;" in html
    assert "javascript:" not in html  # only http(s) URLs become links
    assert '<script>alert("x")</script> & more' in text  # plain text stays as written


async def test_max_alerts_lists_the_rest_as_a_count(smtp: SmtpServer,
                                                    channel: Callable[..., EmailChannel]) -> None:
    await channel(max_alerts=2).send(notification(*(alert(f"alert {i}") for i in range(5))))
    mail = smtp.mails[0]
    text, html = parts(mail)
    assert mail.message["Subject"] == f"[FIRING:5] {SUBJECT_GROUP}"
    assert "alert 1" in text and "alert 2" not in text and "…and 3 more alerts not listed here." in text
    assert html.count('<tr><td style') == 2 and "…and 3 more alerts" in html


async def test_empty_group_labels_are_left_out_of_the_subject(smtp: SmtpServer,
                                                              channel: Callable[..., EmailChannel]) -> None:
    await channel().send(notification(group_labels={"project": "vision", "run": "r1", "rule": ""}))
    assert smtp.mails[0].message["Subject"] == "[FIRING:1] project=vision run=r1"


# -- threading ---------------------------------------------------------------------------------------

async def test_one_thread_per_group_across_channel_instances(smtp: SmtpServer,
                                                             channel: Callable[..., EmailChannel]) -> None:
    first = notification(alert(), alert("Loss rising"))
    mail_channel = channel()
    await mail_channel.send(first)
    await mail_channel.send(first)  # a retry after a lost acknowledgement: same id, still the root
    await mail_channel.send(notification(status="resolved"))
    await channel().send(notification())  # a new instance over the same store (a restart) keeps the thread
    await mail_channel.send(notification(group_key="other-group"))
    root = f"<{first.id}@runwatch>"
    messages = [mail.message for mail in smtp.wait_for(5)]
    assert len(smtp.mails) == 5  # every send was awaited, and a mail is recorded before its 250
    assert [m["Message-ID"] for m in messages[:2]] == [root, root]
    assert messages[0]["In-Reply-To"] is None and messages[1]["In-Reply-To"] is None
    for message in messages[2:4]:
        assert message["In-Reply-To"] == root and message["References"] == root
        assert message["Message-ID"] != root
    assert messages[2]["Subject"] == f"[RESOLVED] {SUBJECT_GROUP}"
    assert messages[3]["Subject"] == f"[FIRING:1] {SUBJECT_GROUP}"
    assert messages[4]["In-Reply-To"] is None  # another group, another thread


async def test_concurrent_sends_of_a_group_make_one_root(smtp: SmtpServer,
                                                         channel: Callable[..., EmailChannel]) -> None:
    mail_channel = channel()
    await asyncio.gather(*(mail_channel.send(notification()) for _ in range(4)))
    messages = [mail.message for mail in smtp.wait_for(4)]
    assert len(smtp.mails) == 4  # every send was awaited, and a mail is recorded before its 250
    roots = [m for m in messages if m["In-Reply-To"] is None]
    assert len(roots) == 1
    assert {m["In-Reply-To"] for m in messages if m is not roots[0]} == {roots[0]["Message-ID"]}


async def test_a_failed_first_mail_does_not_become_the_root(smtp: SmtpServer,
                                                            channel: Callable[..., EmailChannel]) -> None:
    mail_channel = channel()
    smtp.reject(1, 550)
    with pytest.raises(PermanentDeliveryError):
        await mail_channel.send(notification())
    second = notification()
    await mail_channel.send(second)
    await mail_channel.send(notification(status="resolved"))
    first, reply = smtp.wait_for(2)
    assert first.message["In-Reply-To"] is None
    assert reply.message["In-Reply-To"] == f"<{second.id}@runwatch>"


# -- errors ------------------------------------------------------------------------------------------

async def test_wrong_password_is_permanent_and_never_echoed(smtp: SmtpServer,
                                                            channel: Callable[..., EmailChannel]) -> None:
    wrong = "wrong-password-must-not-leak"
    with pytest.raises(PermanentDeliveryError) as info:
        await channel(smtp={"password": wrong}).send(notification())
    assert "535" in str(info.value) and "authentication failed" in str(info.value)
    assert wrong not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
    assert smtp.auth_attempts and not any(ok for _, ok in smtp.auth_attempts)
    assert smtp.mails == []


@pytest.mark.parametrize(("code", "stage"), [(451, "data"), (452, "rcpt"), (450, "mail"), (421, "data")])
async def test_transient_replies_are_recoverable(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                                 code: int, stage: Any) -> None:
    mail_channel = channel()
    sent = notification()
    smtp.reject(2 if stage == "rcpt" else 1, code, stage=stage)  # each of the two recipients
    with pytest.raises(RecoverableDeliveryError) as info:
        await mail_channel.send(sent)
    assert str(code) in str(info.value)
    await mail_channel.send(sent)  # the retry stage's next attempt
    (mail,) = smtp.mails
    assert mail.message["Message-ID"] == f"<{sent.id}@runwatch>"


@pytest.mark.parametrize(("code", "stage"), [(550, "rcpt"), (550, "data"), (554, "data"), (552, "mail")])
async def test_permanent_replies_are_permanent(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                               code: int, stage: Any) -> None:
    smtp.reject(2 if stage == "rcpt" else 1, code, stage=stage, reply=f"{code} 5.7.1 rejected, you said {PASSWORD}")
    with pytest.raises(PermanentDeliveryError) as info:
        await channel().send(notification())
    assert f"{code} 5.7.1" in str(info.value)
    assert PASSWORD not in str(info.value)  # the server's reply text is never repeated
    assert smtp.mails == []


async def test_mixed_recipient_refusals_stay_recoverable(smtp: SmtpServer,
                                                         channel: Callable[..., EmailChannel]) -> None:
    smtp.reject(1, 550, stage="rcpt")
    smtp.reject(1, 452, stage="rcpt")
    with pytest.raises(RecoverableDeliveryError) as info:
        await channel().send(notification())
    assert "oncall@example.com (550 5.1.1)" in str(info.value) and "ml@example.com (452 4.3.1)" in str(info.value)


async def test_one_refused_recipient_of_two_still_delivers(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    smtp.reject(1, 550, stage="rcpt")
    await channel().send(notification())
    (mail,) = smtp.mails
    assert mail.rcpt_tos == ["ml@example.com"]
    assert "refused oncall@example.com (550)" in caplog.text


async def test_server_down_is_recoverable(certificates: Certificates, context: ChannelContext) -> None:
    down = EmailConfig.model_validate({"type": "email", "to": ["a@example.com"], "from": "b@example.com",
                                       "smtp": {"host": "127.0.0.1", "port": free_port(), "username": USERNAME,
                                                "password": PASSWORD, "ca_file": str(certificates.ca_file)}})
    with pytest.raises(RecoverableDeliveryError) as info:
        await EmailChannel("mail", down, context).send(notification())
    assert "cannot connect (ConnectionRefusedError)" in str(info.value)
    assert PASSWORD not in str(info.value)


async def test_silent_server_times_out_recoverably(context: ChannelContext) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never greets
        port = silent.getsockname()[1]
        mute = EmailConfig.model_validate({"type": "email", "to": ["a@example.com"], "from": "b@example.com",
                                           "smtp": {"host": "127.0.0.1", "port": port, "timeout": "300ms"}})
        with pytest.raises(RecoverableDeliveryError) as info:
            await EmailChannel("mail", mute, context).send(notification())
    assert "timed out after 0.3s" in str(info.value)


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_untrusted_certificate_is_permanent(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                                  tls: str) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await channel(tls=tls, smtp={"ca_file": None}).send(notification())  # the system CAs only
    assert "certificate not trusted" in str(info.value) and "smtp.ca_file" in str(info.value)
    assert smtp.mails == [] and smtp.auth_attempts == []


async def test_implicit_tls_against_a_starttls_port_is_permanent(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                                                 certificates: Certificates) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await channel(tls="tls", smtp={"port": smtp.port}).send(notification())
    assert "TLS handshake failed" in str(info.value) and "smtp.tls" in str(info.value)


async def test_unreadable_ca_file_is_permanent(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                               tmp_path: Path) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await channel(smtp={"ca_file": str(tmp_path / "missing.pem")}).send(notification())
    assert "cannot load smtp.ca_file" in str(info.value) and "No such file or directory" in str(info.value)


async def test_password_never_reaches_the_logs(smtp: SmtpServer, channel: Callable[..., EmailChannel],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await channel().send(notification())
    await channel(tls="tls").send(notification())
    with pytest.raises(PermanentDeliveryError):
        await channel(smtp={"password": "another-secret-value"}).send(notification())
    smtp.reject(1, 451, reply=f"451 4.3.0 try later, {PASSWORD}")
    with pytest.raises(RecoverableDeliveryError):
        await channel().send(notification())
    smtp.reject(1, 550, stage="rcpt", reply=f"550 5.1.1 no such user here, {PASSWORD}")
    await channel().send(notification())  # delivered to one recipient of two: logged as a warning
    # Everything logged in this process except the test server's own protocol log ("mail.log"),
    # which repeats the replies it was told to send.
    ours = [record for record in caplog.records if not record.name.startswith("mail.log")]
    assert any(record.name == "alerts.notify.email" for record in ours)
    logged = "".join(f"{record.getMessage()} {record.exc_text or ''}" for record in ours)
    assert PASSWORD not in logged and "another-secret-value" not in logged
    assert len(smtp.mails) == 3


# -- through the service -----------------------------------------------------------------------------

def test_service_delivers_an_alert_by_email(service_factory: Callable[..., ServiceProcess], smtp: SmtpServer,
                                            certificates: Certificates) -> None:
    service = service_factory({
        "channels": {"mail": {"type": "email", "to": ["oncall@example.com"], "from": "runwatch@example.com",
                              "smtp": {"host": "127.0.0.1", "port": smtp.port, "username": USERNAME,
                                       "password": PASSWORD, "tls": "starttls",
                                       "ca_file": str(certificates.ca_file)}}},
        "defaults": {"channels": ["mail"]},
    })
    key = service.create_key("vision")
    start_run(service, key)
    smtp.reject(1, 451)  # the first attempt is refused; the retry stage tries again
    (result,) = send_alerts(service, key, [call("Low accuracy", level="error")])
    (mail,) = smtp.wait_for(1, timeout=30)
    assert smtp.pending_rejections == 0
    assert mail.tls and mail.login == USERNAME and mail.rcpt_tos == ["oncall@example.com"]
    message = mail.message
    assert message["Subject"] == "[FIRING:1] project=vision run=r1"
    # Marked delivered only once the server's answer is back and the outcome written: wait for that state.
    delivered = wait_for_status(service, str(message["X-Runwatch-Delivery"]), "delivered")
    assert delivered["channel"] == "mail" and delivered["attempts"] == 2
    assert message["Message-ID"] == f"<{delivered['id']}@runwatch>"
    text, html = parts(mail)
    assert "Low accuracy" in text and "accuracy 0.1 below 0.3" in html
    assert "/runs/vision/r1" in html
    assert PASSWORD not in service.log_text()
    assert result["status"] == "created"
