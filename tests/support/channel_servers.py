"""What a service's channels deliver to in end-to-end tests that look at every kind of channel: a webhook
receiver, the Slack Web API server and aiosmtpd (STARTTLS + AUTH), started together and stopped together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import Certificates, SmtpServer


@dataclass
class Setup:
    """A module's service, a project key of it and the servers its channels deliver to."""

    service: ServiceProcess
    key: str
    hook: WebhookReceiver
    slack: SlackServer
    smtp: SmtpServer


@contextmanager
def channel_servers(certificates: Certificates) -> Iterator[tuple[WebhookReceiver, SlackServer, SmtpServer]]:
    """The three servers, running for the block."""
    hook, slack, smtp = WebhookReceiver().start(), SlackServer().start(), SmtpServer(certificates).start()
    try:
        yield hook, slack, smtp
    finally:
        for server in (hook, slack, smtp):
            server.stop()
