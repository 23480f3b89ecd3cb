"""Every firing is seen (issue 14), end to end: an SDK process logs what makes a rule fire and clear in
one batch (or end the run), and every channel tells the firing first, then the resolution.

A real service with a webhook, a Slack bot-token channel (the Slack Web API fake) and an email channel
(aiosmtpd with STARTTLS and AUTH), ``group_wait: 0s`` and ``group_interval: 1s``; each scenario is a run
of its own (so a group of its own per rule). Before the fix the only notification of such an alert
said "resolved": a green message for a loss that diverged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import Script, find_run, get_run, run_script, sdk_env
from tests.support.channel_servers import Setup, channel_servers
from tests.support.outbox import wait_settled
from tests.support.service import running_service
from tests.support.slack_server import TOKEN, SlackMessage
from tests.support.smtp_server import Certificates, ReceivedMail, email_channel
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

RULES = """
rules:
  - name: loss-not-finite
    metric: loss
    when: not finite
    severity: critical
  - name: grad-spike
    metric: grad_norm
    zscore: {window: 5, threshold: 4, direction: either}
"""
CHANNELS = ("hook", "slack", "mail")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("firing-first")
    (workdir / "rules.yaml").write_text(RULES)
    with channel_servers(certificates) as (hook, slack, smtp):
        config = {
            "rule_files": [str(workdir / "rules.yaml")],
            "channels": {
                "hook": {"type": "webhook", "url": hook.url},
                "slack": {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url},
                "mail": email_channel(smtp, certificates),
            },
            "defaults": {"channels": list(CHANNELS), "group_by": ["project", "run", "rule"], "group_wait": "0s",
                         "group_interval": "1s", "repeat_interval": "1h", "send_resolved": True},
            # With a group_wait the run's end always comes before the first flush of its alert's group (with
            # none, that flush usually starts while the end is being saved).
            "routes": [{"match": {"run": "ends-waiting"}, "group_wait": "2s"}],
        }
        with running_service(workdir, config) as service:
            yield Setup(service, service.create_key("vision"), hook, slack, smtp)


# What each channel received for one run ---------------------------------------------------------------
def webhook_alerts(setup: Setup, run_id: str) -> list[dict[str, Any]]:
    """The run's alerts as the webhook calls carried them, in the order they arrived."""
    return [alert for payload in setup.hook.payloads() for alert in payload["alerts"] if alert["run"]["id"] == run_id]


def slack_messages(setup: Setup, run_name: str) -> list[SlackMessage]:
    """The run's Slack calls in order: its group's messages (named in the fallback text) and their
    updates and thread replies (by ``ts``)."""
    messages = list(setup.slack.messages)
    posts = {m.ts for m in messages if m.method == "chat.postMessage" and m.thread_ts is None
             and f"(vision/{run_name})" in m.text}
    return [m for m in messages if m.ts in posts or m.thread_ts in posts]


def mails(setup: Setup, run_id: str) -> list[ReceivedMail]:
    """The run's mails in the order they arrived (the subject names the group's labels)."""
    return [mail for mail in list(setup.smtp.mails) if f" run={run_id} " in str(mail.message["Subject"])]


def header(message: SlackMessage) -> str:
    (block,) = [block for block in message.blocks if block["type"] == "header"]
    return str(block["text"]["text"])


def check_firing_then_resolved(setup: Setup, run_id: str, run_name: str, rule: str, reason: str) -> None:
    """Each channel told the run's one alert firing, then resolved: two webhook calls in that order, one
    Slack message updated to resolved (and a thread reply), two mails in one thread."""
    eventually(lambda: [a["status"] for a in webhook_alerts(setup, run_id)], lambda got: "resolved" in got,
               timeout=120, what=f"the webhook's resolved notice for {run_id}")
    eventually(lambda: [m.method for m in slack_messages(setup, run_name)], lambda got: "chat.update" in got,
               timeout=120, what=f"the Slack update for {run_name}")
    eventually(lambda: len(mails(setup, run_id)), lambda got: got >= 2, timeout=120, what=f"two mails for {run_id}")
    outbox = wait_settled(setup.service, CHANNELS, timeout=120)  # nothing is still on its way
    mine = [n for n in outbox if any(a["run"]["id"] == run_id for a in n["message"]["alerts"])]
    assert sorted(n["channel"] for n in mine) == sorted(CHANNELS * 2), mine
    assert {n["status"] for n in mine} == {"delivered"}, mine

    first, second = webhook_alerts(setup, run_id)
    assert (first["rule"], first["status"], first["ends_at"]) == (rule, "firing", None)
    assert (second["rule"], second["status"]) == (rule, "resolved") and second["id"] == first["id"]
    assert second["ends_at"] is not None and second["resolved_reason"] == reason
    assert second["starts_at"] == first["starts_at"]

    post, update, reply = slack_messages(setup, run_name)
    assert post.method == "chat.postMessage" and header(post).startswith("🔥 FIRING")
    assert (update.method, update.ts, update.channel) == ("chat.update", post.ts, post.channel)
    assert header(update).startswith("✅ RESOLVED")
    assert reply.method == "chat.postMessage" and reply.thread_ts == post.ts and "Resolved" in reply.text

    opened, closed = (mail.message for mail in mails(setup, run_id))
    assert str(opened["Subject"]).startswith("[FIRING:1]") and opened["In-Reply-To"] is None
    assert str(closed["Subject"]).startswith("[RESOLVED]")
    assert closed["In-Reply-To"] == opened["Message-ID"] and closed["References"] == opened["Message-ID"]
    assert str(closed["Subject"]).removeprefix("[RESOLVED]") == str(opened["Subject"]).removeprefix("[FIRING:1]")


# The scenarios -------------------------------------------------------------------------------------------
def test_a_nan_that_clears_in_the_same_batch(setup: Setup, tmp_path: Path) -> None:
    env = sdk_env(setup.service, setup.key, tmp_path)
    result = run_script("""
        import math, runwatch
        run = runwatch.init(id="nan-blip", name="nan-blip")
        # Holding the sender's lock until the loop is queued makes it one batch, however slow this machine.
        with run._sender.lock:
            for loss in [1.0, 0.9, math.nan, 0.8]:
                runwatch.log({"loss": loss})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    check_firing_then_resolved(setup, "nan-blip", "nan-blip", "loss-not-finite", "condition cleared")
    first = webhook_alerts(setup, "nan-blip")[0]
    assert first["value"] == "NaN" and first["step"] == 2


def test_a_one_step_zscore_spike(setup: Setup, tmp_path: Path) -> None:
    env = sdk_env(setup.service, setup.key, tmp_path)
    result = run_script("""
        import runwatch
        run = runwatch.init(id="spike", name="spike")
        with run._sender.lock:
            for grad in [1.0, 1.1, 0.9, 1.0, 1.05, 1.02, 9.0, 1.0]:
                runwatch.log({"grad_norm": grad})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    check_firing_then_resolved(setup, "spike", "spike", "grad-spike", "condition cleared")
    first = webhook_alerts(setup, "spike")[0]
    assert first["value"] == 9.0 and first["step"] == 6


@pytest.mark.parametrize("run_id", ["ends-at-once", "ends-waiting"])
def test_a_run_that_ends_in_the_batch_of_its_first_firing(setup: Setup, tmp_path: Path, run_id: str) -> None:
    env = sdk_env(setup.service, setup.key, tmp_path)
    with Script("""
        import math, sys, runwatch
        # linger: the sender waits a moment after a wake-up, so the NaN and the run's end go in one batch.
        run = runwatch.init(id="__RUN__", name="__RUN__", settings={"linger": 1.0})
        runwatch.log({"loss": 1.0})
        runwatch.log({"loss": 0.9})
        print("LOGGED", flush=True)
        sys.stdin.readline()
        runwatch.log({"loss": math.nan})
        runwatch.finish()
    """.replace("__RUN__", run_id), env) as script:
        script.expect("LOGGED")
        eventually(lambda: find_run(setup.service, run_id), lambda run: run is not None and run["last_step"] == 1,
                   timeout=60, what="the run's first points stored")
        assert webhook_alerts(setup, run_id) == []
        script.send()
        assert script.wait() == 0, script.stderr
    assert get_run(setup.service, run_id)["state"] == "finished"
    check_firing_then_resolved(setup, run_id, run_id, "loss-not-finite", "run finished")
