"""A real local HTTP server speaking what the webhook presets talk to: Discord, Microsoft Teams, Telegram,
PagerDuty and Opsgenie, each under its own path on one loopback port.

Each endpoint checks the fields and limits its provider documents and answers as the provider does:

- Discord, Execute Webhook (``POST /api/webhooks/{id}/{token}``): content ≤ 2,000 characters, ≤ 10
  embeds, an embed's title ≤ 256, description ≤ 4,096, ≤ 25 fields (name ≤ 256, value ≤ 1,024), footer
  ≤ 2,048, author ≤ 256, all embeds' text ≤ 6,000; content or embeds; ``204``, or ``400`` with code 50035.
- Teams, a Workflows webhook (``POST /workflows/.../invoke?...&sig=``): ``type: message`` with Adaptive
  Card attachments, the request ≤ 28 KB; ``202``, ``413`` when too big, ``400`` otherwise.
- Telegram, Bot API ``sendMessage`` (``POST /bot<token>/sendMessage``): ``chat_id``; ``text`` 1-4,096
  characters after entities parsing; with ``parse_mode: HTML`` every ``<``, ``>``, ``&`` must be part of a
  supported tag or an entity; ``{"ok": true, ...}``, or ``{"ok": false, "error_code": 400, "description":
  "Bad Request: ..."}``.
- PagerDuty, Events API v2 (``POST /v2/enqueue``): ``routing_key`` (32 characters), ``event_action``
  trigger|acknowledge|resolve, ``dedup_key`` ≤ 255; a trigger's ``payload`` has ``summary`` (1-1,024),
  ``source`` and ``severity`` critical|error|warning|info; ``202 {"status": "success", ...}``, or ``400
  {"status": "invalid event", ...}``. Incidents are kept by dedup_key.
- Opsgenie, Alert API (``POST /v2/alerts``, ``POST /v2/alerts/{identifier}/close?identifierType=``),
  ``Authorization: GenieKey <key>``: message 1-130, alias ≤ 512, description ≤ 15,000, ≤ 20 tags of ≤ 50,
  details strings ≤ 8,000 in all, entity ≤ 512, source ≤ 100, priority P1-P5, note ≤ 25,000; ``202
  {"result": "Request will be processed", ...}``, ``401`` for a wrong key, ``422`` otherwise. Alerts are
  kept by alias (Opsgenie keeps one open alert per alias).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.ports import free_port

DISCORD_PATH = "/api/webhooks/112233445566778899/discord-webhook-token-3f9a8b7c6d5e"
TEAMS_PATH = "/workflows/6c1f0e2d/triggers/manual/paths/invoke"
TEAMS_SIGNATURE = "teams-workflow-signature-0a1b2c3d4e5f"
TELEGRAM_TOKEN = "7012345678:AAH-telegram-bot-token-9f8e7d6c5b4a"
TELEGRAM_CHAT = -1001234567890
PAGERDUTY_KEY = "R0uting0Key0PagerDuty0123456789a"  # 32 characters, like PagerDuty's integration keys
OPSGENIE_KEY = "5d2f3c4b-opsgenie-api-key-0123456789ab"

PROVIDERS = ("discord", "teams", "telegram", "pagerduty", "opsgenie")
ECHO = object()
"""A failure's answer that echoes the request (its path, headers and body), as some servers' errors do."""
_TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                  "pre", "blockquote", "tg-emoji"}
_TELEGRAM_TOKEN_RE = re.compile(r"<(/?)([a-z][a-z-]*)((?:\s+[a-z-]+=\"[^\"<>]*\")*)\s*>|&(?:lt|gt|amp|quot|#\d+|"
                                r"#x[0-9a-fA-F]+);|[<>&]")


class ProviderError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


@dataclass
class Received:
    """One request: which provider it went to, its path (with the query), headers (lower-cased names),
    body (``raw``, and parsed), and the answer's status (``error``: why it was refused)."""

    provider: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any = None
    status: int = 0
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def telegram_text(text: str) -> str:
    """The text Telegram shows for an HTML-mode message; ``ProviderError`` where Telegram cannot parse it."""
    stack: list[str] = []
    for match in _TELEGRAM_TOKEN_RE.finditer(text):
        token = match.group(0)
        if token in "<>&":
            raise _telegram_error(f"can't parse entities: unsupported start tag or unescaped {token!r} at byte "
                                  f"offset {len(text[:match.start()].encode())}")
        if match.group(2) is None:
            continue  # an entity
        closing, tag = match.group(1), match.group(2)
        if tag not in _TELEGRAM_TAGS:
            raise _telegram_error(f'can\'t parse entities: unsupported start tag "{tag}"')
        if closing:
            if not stack or stack.pop() != tag:
                raise _telegram_error(f'can\'t parse entities: unmatched end tag "{tag}"')
        else:
            stack.append(tag)
    if stack:
        raise _telegram_error(f"can't parse entities: can't find end tag corresponding to start tag \"{stack[-1]}\"")
    return unescape(re.sub(r"<[^>]*>", "", text))


def _telegram_error(description: str, code: int = 400) -> ProviderError:
    prefix = "Bad Request: " if code == 400 else ""
    return ProviderError(code, {"ok": False, "error_code": code, "description": prefix + description})


def _iso(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


class ProviderServer:
    """``discord_url``, ``teams_url``, ``telegram_url``, ``pagerduty_url``, ``opsgenie_url`` for the
    channels' ``url``; ``requests`` records every request with its answer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.discord_url = self.url + DISCORD_PATH
        self.teams_url = (f"{self.url}{TEAMS_PATH}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
                          f"&sig={TEAMS_SIGNATURE}")
        self.telegram_url = f"{self.url}/bot{TELEGRAM_TOKEN}/sendMessage"
        self.pagerduty_url = f"{self.url}/v2/enqueue"
        self.opsgenie_url = f"{self.url}/v2/alerts"
        self.requests: list[Received] = []
        self.failures: list[tuple[int, dict[str, str], Any]] = []  # answers to give before any checking (or ECHO)
        self.incidents: dict[str, str] = {}  # PagerDuty: dedup_key -> "triggered" | "acknowledged" | "resolved"
        self.opsgenie_alerts: dict[str, str] = {}  # alias -> "open" | "closed"
        self._message_id = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ProviderServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, answer_headers, answer = server._handle(self.path, headers, raw)
                data = b"" if answer is None else (answer if isinstance(answer, bytes) else json.dumps(answer).encode())
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                if answer is not None and not isinstance(answer, bytes):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- reading what arrived --------------------------------------------------------------------------

    def accepted(self, provider: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.provider == provider and r.accepted]

    def refused(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if not r.accepted]

    def wait_until(self, predicate: Callable[[ProviderServer], bool], timeout: float = 60.0,
                   what: str = "the expected provider requests") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                with self._lock:
                    seen = [(r.provider, r.status, r.error) for r in self.requests]
                raise AssertionError(f"{what}: not seen within {timeout}s; requests so far: {seen}")
            time.sleep(0.02)

    # -- dispatch ------------------------------------------------------------------------------------

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        provider = self._provider(path)
        received = Received(provider, path, headers, raw)
        try:
            with self._lock:
                failure = self.failures.pop(0) if self.failures else None
            if failure is not None:
                status, answer_headers, answer = failure
                received.status, received.error = status, "failure on demand"
                if answer is ECHO:
                    lines = [f"POST {path}", *(f"{k}: {v}" for k, v in headers.items()), ""]
                    answer = "\n".join(lines).encode() + raw
                return status, answer_headers, answer
            if not headers.get("content-type", "").startswith("application/json"):
                raise ProviderError(415, {"message": "Content-Type must be application/json"})
            try:
                received.body = json.loads(raw)
            except ValueError:
                raise ProviderError(400, {"message": "The request body contains invalid JSON"}) from None
            handler = {"discord": self._discord, "teams": self._teams, "telegram": self._telegram,
                       "pagerduty": self._pagerduty, "opsgenie": self._opsgenie}.get(provider)
            if handler is None:
                raise ProviderError(404, {"message": f"no such endpoint: {urlsplit(path).path}"})
            status, answer = handler(path, headers, raw, received.body)
            received.status = status
            return status, {}, answer
        except ProviderError as error:
            received.status, received.error = error.status, json.dumps(error.body)
            return error.status, {}, error.body
        finally:
            with self._lock:
                self.requests.append(received)

    @staticmethod
    def _provider(path: str) -> str:
        route = urlsplit(path).path
        if route.startswith("/api/webhooks/"):
            return "discord"
        if route.startswith("/workflows/"):
            return "teams"
        if route.startswith("/bot"):
            return "telegram"
        if route == "/v2/enqueue":
            return "pagerduty"
        if route.startswith("/v2/alerts"):
            return "opsgenie"
        return "unknown"

    # -- Discord ---------------------------------------------------------------------------------------

    def _discord(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        if urlsplit(path).path != DISCORD_PATH:
            raise ProviderError(401, {"message": "Invalid Webhook Token", "code": 50027})
        errors: dict[str, str] = {}
        content = body.get("content")
        embeds = body.get("embeds") or []
        if not content and not embeds:
            raise ProviderError(400, {"message": "Cannot send an empty message", "code": 50006})
        if content is not None and (not isinstance(content, str) or len(content) > 2000):
            errors["content"] = "Must be 2000 or fewer in length."
        if not isinstance(embeds, list) or len(embeds) > 10:
            errors["embeds"] = "Must be 10 or fewer in length."
        total = 0
        for i, embed in enumerate(embeds if isinstance(embeds, list) else []):
            limits = {"title": 256, "description": 4096}
            for key, limit in limits.items():
                value = embed.get(key)
                if value is not None and (not isinstance(value, str) or len(value) > limit):
                    errors[f"embeds.{i}.{key}"] = f"Must be {limit} or fewer in length."
                total += len(value or "")
            fields = embed.get("fields") or []
            if len(fields) > 25:
                errors[f"embeds.{i}.fields"] = "Must be 25 or fewer in length."
            for j, item in enumerate(fields):
                if not 1 <= len(item.get("name", "")) <= 256 or not 1 <= len(item.get("value", "")) <= 1024:
                    errors[f"embeds.{i}.fields.{j}"] = "name 1-256, value 1-1024"
                total += len(item.get("name", "")) + len(item.get("value", ""))
            footer, author = (embed.get("footer") or {}).get("text", ""), (embed.get("author") or {}).get("name", "")
            if len(footer) > 2048 or len(author) > 256:
                errors[f"embeds.{i}"] = "footer.text <= 2048, author.name <= 256"
            total += len(footer) + len(author)
            url = embed.get("url")
            if url is not None and not str(url).startswith(("http://", "https://")):
                errors[f"embeds.{i}.url"] = "Not a well formed URL."
            colour = embed.get("color")
            if colour is not None and not (isinstance(colour, int) and 0 <= colour <= 0xFFFFFF):
                errors[f"embeds.{i}.color"] = "Int value should be less than or equal to 16777215."
            if embed.get("timestamp") is not None and not _iso(embed["timestamp"]):
                errors[f"embeds.{i}.timestamp"] = "Could not parse timestamp."
        if total > 6000:
            errors["embeds"] = "Embed size exceeds maximum size of 6000"
        if errors:
            raise ProviderError(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})
        return 204, None

    # -- Teams -----------------------------------------------------------------------------------------

    def _teams(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        parts = urlsplit(path)
        if parts.path != TEAMS_PATH or parse_qs(parts.query).get("sig") != [TEAMS_SIGNATURE]:
            raise ProviderError(401, {"error": {"code": "DirectApiAuthorizationRequired",
                                                "message": "The request must be authenticated"}})
        if len(raw) > 28 * 1024:
            raise ProviderError(413, {"error": {"code": "RequestEntityTooLarge",
                                                "message": f"{len(raw)} bytes; the limit is 28 KB"}})
        problems = []
        if body.get("type") != "message":
            problems.append("type must be 'message'")
        attachments = body.get("attachments")
        if not isinstance(attachments, list) or not attachments:
            problems.append("attachments: at least one")
        for attachment in attachments or []:
            if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
                problems.append("attachment contentType must be application/vnd.microsoft.card.adaptive")
            card = attachment.get("content") or {}
            if card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
                problems.append("content must be an AdaptiveCard with a version")
            if not isinstance(card.get("body"), list) or any("type" not in e for e in card.get("body") or []):
                problems.append("content.body must be a list of elements with a type")
        if problems:
            raise ProviderError(400, {"error": {"code": "InvalidTemplate", "message": "; ".join(problems)}})
        return 202, None

    # -- Telegram --------------------------------------------------------------------------------------

    def _telegram(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        route = urlsplit(path).path
        if route != f"/bot{TELEGRAM_TOKEN}/sendMessage":
            if route.startswith(f"/bot{TELEGRAM_TOKEN}/"):
                raise ProviderError(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            raise _telegram_error("Unauthorized", 401)
        if body.get("chat_id") != TELEGRAM_CHAT:
            raise _telegram_error("chat not found")
        text = body.get("text")
        if not isinstance(text, str):
            raise _telegram_error("message text is empty")
        mode = body.get("parse_mode")
        if mode not in (None, "HTML", "MarkdownV2", "Markdown"):
            raise _telegram_error(f"unsupported parse_mode {mode!r}")
        shown = telegram_text(text) if mode == "HTML" else text
        if not shown.strip():
            raise _telegram_error("message text is empty")
        if len(shown) > 4096:
            raise _telegram_error("message is too long")
        with self._lock:
            self._message_id += 1
            message_id = self._message_id
        return 200, {"ok": True, "result": {"message_id": message_id, "date": int(time.time()),
                                            "chat": {"id": TELEGRAM_CHAT, "type": "supergroup"}, "text": shown}}

    # -- PagerDuty -------------------------------------------------------------------------------------

    def _pagerduty(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        errors = []
        if len(raw) > 512 * 1024:
            errors.append("Event too large: the limit is 512 KB")
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("'routing_key' must be 32 characters")
        elif key != PAGERDUTY_KEY:
            errors.append("Invalid routing key")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' must be one of trigger, acknowledge, resolve")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is required for trigger")
                payload = {}
            summary = payload.get("summary")
            if not isinstance(summary, str) or not 1 <= len(summary) <= 1024:
                errors.append("'payload.summary' must be 1-1024 characters")
            if not isinstance(payload.get("source"), str) or not payload.get("source"):
                errors.append("'payload.source' is required")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' must be one of critical, error, warning, info")
            if payload.get("timestamp") is not None and not _iso(payload["timestamp"]):
                errors.append("'payload.timestamp' must be ISO 8601")
            for name in ("component", "group", "class"):
                if payload.get(name) is not None and not isinstance(payload[name], str):
                    errors.append(f"'payload.{name}' must be a string")
            if payload.get("custom_details") is not None and not isinstance(payload["custom_details"], dict | str):
                errors.append("'payload.custom_details' must be an object")
            for link in body.get("links") or []:
                if not isinstance(link, dict) or not str(link.get("href", "")).startswith(("http://", "https://")):
                    errors.append("'links' must be objects with an href")
        if errors:
            raise ProviderError(400, {"status": "invalid event", "message": "Event object is invalid",
                                      "errors": errors})
        dedup = dedup or uuid.uuid4().hex
        with self._lock:
            self.incidents[dedup] = {"trigger": "triggered", "acknowledge": "acknowledged",
                                     "resolve": "resolved"}[action]
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    # -- Opsgenie --------------------------------------------------------------------------------------

    def _opsgenie(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        request_id = str(uuid.uuid4())
        if headers.get("authorization") != f"GenieKey {OPSGENIE_KEY}":
            raise ProviderError(401, {"message": "Could not authenticate", "took": 0.0, "requestId": request_id})
        parts = urlsplit(path)
        errors: dict[str, str] = {}

        def text(name: str, limit: int, *, required: bool = False) -> None:
            value = body.get(name)
            if value is None:
                if required:
                    errors[name] = f"{name} is required"
            elif not isinstance(value, str) or len(value) > limit or (required and not value):
                errors[name] = f"{name} must be a string of at most {limit} characters"

        if parts.path == "/v2/alerts":
            text("message", 130, required=True)
            text("alias", 512)
            text("description", 15000)
            text("entity", 512)
            text("source", 100)
            text("note", 25000)
            text("user", 100)
            tags = body.get("tags") or []
            if not isinstance(tags, list) or len(tags) > 20 or any(not isinstance(t, str) or len(t) > 50
                                                                   for t in tags):
                errors["tags"] = "at most 20 tags of at most 50 characters"
            details = body.get("details") or {}
            if not isinstance(details, dict) or any(not isinstance(v, str) for v in details.values()) \
                    or sum(len(k) + len(v) for k, v in details.items()) > 8000:
                errors["details"] = "a map of strings of at most 8000 characters in all"
            if body.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
                errors["priority"] = "priority must be one of P1, P2, P3, P4, P5"
            if errors:
                raise ProviderError(422, {"message": "Request body is not processable. Please check the errors.",
                                          "errors": errors, "took": 0.0, "requestId": request_id})
            with self._lock:
                self.opsgenie_alerts[body.get("alias") or body["message"]] = "open"
            return 202, {"result": "Request will be processed", "took": 0.01, "requestId": request_id}
        match = re.fullmatch(r"/v2/alerts/([^/]+)/close", parts.path)
        if match is None:
            raise ProviderError(404, {"message": "Could not find the endpoint", "took": 0.0, "requestId": request_id})
        identifier_type = parse_qs(parts.query).get("identifierType", ["id"])[0]
        if identifier_type not in ("id", "alias", "tiny"):
            raise ProviderError(422, {"message": "identifierType must be one of id, alias, tiny",
                                      "took": 0.0, "requestId": request_id})
        text("source", 100)
        text("note", 25000)
        text("user", 100)
        if errors:
            raise ProviderError(422, {"message": "Request body is not processable. Please check the errors.",
                                      "errors": errors, "took": 0.0, "requestId": request_id})
        identifier = unquote(match.group(1))
        with self._lock:
            if identifier_type == "alias" and self.opsgenie_alerts.get(identifier) == "open":
                self.opsgenie_alerts[identifier] = "closed"
        return 202, {"result": "Request will be processed", "took": 0.01, "requestId": request_id}
