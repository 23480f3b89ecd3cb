"""A real SMTP server (aiosmtpd) on loopback: STARTTLS, implicit TLS, AUTH PLAIN/LOGIN; records every mail.

``port`` speaks plain SMTP and offers STARTTLS; AUTH is offered only after STARTTLS
(``auth_require_tls=True``), as on real submission servers. ``tls_port`` is implicit TLS (SMTPS); aiosmtpd
counts only STARTTLS sessions as encrypted, so AUTH is allowed there without STARTTLS. Both share one
mailbox and one queue of rejections. Certificates come from :func:`make_certificates`: a throwaway CA and
a server certificate for ``localhost`` and ``127.0.0.1`` that clients trust through the CA file.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_port

# aiosmtpd 1.4 sets its own deprecated attribute on every successful AUTH.
warnings.filterwarnings("ignore", "Session.login_data is deprecated", DeprecationWarning)

USERNAME = "runwatch"
PASSWORD = "s3cret-smtp-password"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
REPLIES = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Local error in processing, try again later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    554: "554 5.7.1 Transaction failed",
}


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate signed by it (``localhost``, ``127.0.0.1``), made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "server.ext").write_text(_SERVER_EXTENSIONS)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-new", *_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Runwatch test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *_KEY, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")


@dataclass
class ReceivedMail:
    """One accepted mail: the envelope, the raw bytes, the parsed message and how it arrived."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    tls: bool
    login: str | None
    port: int


@dataclass
class _Rejection:
    stage: Literal["mail", "rcpt", "data"]
    reply: str


class SmtpServer:
    def __init__(self, certificates: Certificates, *, username: str = USERNAME, password: str = PASSWORD) -> None:
        self.certificates = certificates
        self.username = username
        self.password = password
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port()
        self.mails: list[ReceivedMail] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, accepted)
        self._rejections: list[_Rejection] = []
        self._lock = threading.Lock()
        self._controllers: list[Controller] = []

    # -- control -------------------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        common: dict[str, Any] = {"hostname": self.host, "server_hostname": "smtp.runwatch.test",
                                  "authenticator": self._authenticate, "ready_timeout": 10.0}
        starttls = Controller(_Handler(self, tls_port=False), port=self.port,
                              tls_context=self.certificates.server_context(), require_starttls=False,
                              auth_require_tls=True, **common)
        implicit = Controller(_Handler(self, tls_port=True), port=self.tls_port,
                              ssl_context=self.certificates.server_context(), auth_require_tls=False, **common)
        for controller in (starttls, implicit):
            controller.start()
            self._controllers.append(controller)
        return self

    def stop(self) -> None:
        for controller in self._controllers:
            controller.stop()
        self._controllers.clear()

    def reject(self, count: int = 1, code: int = 451, *, stage: Literal["mail", "rcpt", "data"] = "data",
               reply: str | None = None) -> None:
        """Refuse the next ``count`` mails at ``stage`` with ``code`` (or the full ``reply`` line)."""
        with self._lock:
            self._rejections += [_Rejection(stage, reply or REPLIES[code]) for _ in range(count)]

    @property
    def pending_rejections(self) -> int:
        with self._lock:
            return len(self._rejections)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.mails) >= count:
                    return list(self.mails)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} mails, got {len(self.mails)}")

    # -- aiosmtpd hooks --------------------------------------------------------------------------------

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        ok = login == self.username and auth_data.password.decode(errors="replace") == self.password
        with self._lock:
            self.auth_attempts.append((login, ok))
        # handled=False: aiosmtpd answers the failure itself (535 5.7.8 Authentication credentials invalid).
        return AuthResult(success=True, auth_data=login) if ok else AuthResult(success=False, handled=False)

    def _take_rejection(self, stage: str) -> str | None:
        with self._lock:
            if self._rejections and self._rejections[0].stage == stage:
                return self._rejections.pop(0).reply
        return None


class _Handler:
    def __init__(self, server: SmtpServer, *, tls_port: bool) -> None:
        self._server = server
        self._tls_port = tls_port

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        rejection = self._server._take_rejection("mail")
        if rejection is not None:
            return rejection
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        rejection = self._server._take_rejection("rcpt")
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        rejection = self._server._take_rejection("data")
        if rejection is not None:
            return rejection
        data = envelope.content if isinstance(envelope.content, bytes) else envelope.original_content or b""
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        tls = self._tls_port or session.ssl is not None
        login = session.auth_data if isinstance(session.auth_data, str) else None
        mail = ReceivedMail(mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), data=data,
                            message=message, tls=tls, login=login,
                            port=self._server.tls_port if self._tls_port else self._server.port)
        with self._server._lock:
            self._server.mails.append(mail)
        return "250 2.0.0 OK: queued"


def email_channel(smtp: SmtpServer, certificates: Certificates, **options: Any) -> dict[str, Any]:
    """An email channel's config that delivers to ``smtp`` over STARTTLS with AUTH (``options`` added)."""
    return {"type": "email", "to": ["oncall@example.com"], "from": "runwatch@example.com",
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "username": USERNAME, "password": PASSWORD,
                     "tls": "starttls", "ca_file": str(certificates.ca_file)}, **options}
