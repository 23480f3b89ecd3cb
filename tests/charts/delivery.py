"""Shared by the chart delivery tests: a service with a metric rule, and runs that make it fire."""

from __future__ import annotations

import email.policy
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.service import ServiceProcess
from tests.support.smtp_server import ReceivedMail, SmtpServer
from tests.support.waiting import eventually

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_READY = "chart not ready in time"
RULES = """\
rules:
  - name: acc-low
    metric: val/acc
    when: "< 0.3"
    recover_when: "> 0.6"
    severity: warning
    title: "Accuracy low in {{ run.name }}"
    text: "{{ metric }} = {{ value | round(3) }} at step {{ step }} (floor {{ threshold }})"
"""


def service_with_rules(workdir: Path, config: dict[str, Any], *, env: dict[str, str] | None = None) -> ServiceProcess:
    """A started service with :data:`RULES` and ``config`` (and ``env`` added to its environment)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(RULES)
    return ServiceProcess(workdir, config={**config, "rule_files": ["rules.yaml"]}, env=env).start()


def start_run(service: ServiceProcess, key: str, run_id: str, name: str | None = None) -> None:
    response = service.api("POST", "/api/v1/runs", key=key,
                           json={"project": "vision", "id": run_id, "name": name or f"exp-{run_id}"})
    assert response.status_code == 200, response.text


def log_accuracy(service: ServiceProcess, key: str, run_id: str, values: list[float], *, first_step: int = 0,
                 first_seq: int = 1) -> None:
    """``val/acc`` at consecutive steps, as the SDK sends it."""
    now = time.time()
    records = [{"seq": first_seq + i, "type": "history", "step": first_step + i, "timestamp": now + i * 0.001,
                "data": {"val/acc": value, "train/loss": 1.0 - value}} for i, value in enumerate(values)]
    response = service.api("POST", f"/api/v1/runs/vision/{run_id}/records", key=key, json={"records": records})
    assert response.status_code == 200, response.text


def fire(service: ServiceProcess, key: str, run_id: str) -> None:
    """A run whose accuracy slides from 0.9 to 0.1 over 40 steps: ``acc-low`` fires."""
    start_run(service, key, run_id)
    log_accuracy(service, key, run_id, [0.9 - 0.02 * step for step in range(41)])


def recover(service: ServiceProcess, key: str, run_id: str) -> None:
    """The run of :func:`fire` climbs back to 0.8: ``acc-low`` resolves."""
    log_accuracy(service, key, run_id, [0.8] * 5, first_step=41, first_seq=42)


def mails_of(smtp: SmtpServer, run_id: str, count: int = 1, timeout: float = 60) -> list[ReceivedMail]:
    """The mails about ``run_id``, once there are ``count``."""
    return eventually(lambda: [mail for mail in list(smtp.mails) if f"run={run_id}" in str(mail.message["Subject"])],
                      lambda found: len(found) >= count, timeout=timeout, what=f"{count} mail(s) about {run_id}")


def mail_parts(mail: ReceivedMail) -> tuple[EmailMessage, EmailMessage, list[EmailMessage]]:
    """The text part, the HTML part and the parts related to the HTML (inline images)."""
    message = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage) and message.get_content_type() == "multipart/alternative"
    text, rich = list(message.iter_parts())
    assert isinstance(text, EmailMessage) and isinstance(rich, EmailMessage)
    if rich.get_content_type() == "multipart/related":
        html, *related = list(rich.iter_parts())
        assert isinstance(html, EmailMessage)
        return text, html, [part for part in related if isinstance(part, EmailMessage)]
    return text, rich, []


def local(url: str, service: ServiceProcess) -> str:
    """A chart URL made for ``public_url``, pointed at the service's loopback address (where the test is)."""
    parts = urlsplit(url)
    return f"{service.base_url}{parts.path}?{parts.query}"


def fetch(url: str) -> httpx.Response:
    """A GET with no key at all, as a receiver or Slack fetches a chart."""
    return httpx.get(url, timeout=60)


def expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["exp"][0])
