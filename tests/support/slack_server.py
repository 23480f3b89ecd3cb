"""A real local HTTP server speaking the parts of Slack that Runwatch uses; the project's only fake.

Web API (https://api.slack.com/web): ``POST /api/<method>`` with ``Authorization: Bearer <token>`` and a
JSON body (``application/json``) or a form body (``application/x-www-form-urlencoded``, where ``token``
may also travel in the body and ``blocks`` is a JSON string). Slack answers HTTP 200 with
``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``; rate limits are HTTP 429 with
``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``. Implemented: ``auth.test``,
``chat.postMessage``, ``chat.update``. As in Slack, ``chat.update`` wants the channel *ID* that
``chat.postMessage`` returned, not the ``#name``. Arguments may also travel in the query string (slack-sdk
sends the ``files.*`` methods' arguments there).

File uploads, the flow of slack-sdk's ``files_upload_v2``
(https://docs.slack.dev/messaging/working-with-files#upload): ``files.getUploadURLExternal``
(``filename``, ``length``) answers a ``file_id`` and an ``upload_url`` on this server; the client POSTs the
bytes there (answered ``200 OK - <length>``; this fake accepts only PNG images, checked by their magic
bytes, of the announced length); ``files.completeUploadExternal`` (``files`` = JSON list of ``{id,
title}``, ``channel_id``, ``thread_ts``) shares them into a channel or a message's thread, which must
exist. ``files`` records every upload and where it was shared.

Incoming webhooks (https://api.slack.com/messaging/webhooks): ``POST /services/T…/B…/<secret>`` with a
JSON body (or form ``payload=<json>``) answers ``200 ok`` as text; errors are plain-text codes with an
HTTP status: ``400 invalid_payload|no_text|invalid_blocks``, ``403 invalid_token``, ``404 no_service``.

Block Kit is checked against Slack's documented limits (50 blocks, header ≤ 150 characters of
plain_text, section/context text ≤ 3000), answering ``invalid_blocks`` like Slack does.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.support.ports import free_port

WEBHOOK_PATH = "/services/T000/B000/XXXX"
TOKEN = "xoxb-test-token"
UPLOAD_PATH = "/upload/v1/"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
API_METHODS = ("auth.test", "chat.postMessage", "chat.update", "files.getUploadURLExternal",
               "files.completeUploadExternal")
_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text", "input", "file",
                "video"}


@dataclass
class SlackMessage:
    """One accepted message: ``method`` is ``chat.postMessage``, ``chat.update`` or ``webhook``."""

    method: str
    body: dict[str, Any]
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.body.get("blocks") or [])


@dataclass
class SlackFile:
    """One file of the upload flow: announced, then uploaded (``data``), then shared (``channel``, ``thread_ts``)."""

    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    completed: bool = False


@dataclass
class _Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error, self.status, self.messages = error, status, messages or []


def validate_blocks(blocks: Any) -> None:
    """Raise ``invalid_blocks`` (with Slack-style ``[ERROR]`` messages) for what Slack would reject."""
    problems = []
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if len(blocks) > 50:
        problems.append("no more than 50 items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            problems.append(f"unsupported type [json-pointer:/blocks/{i}/type]")
            continue
        if block["type"] == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text":
                problems.append(f"must be plain_text [json-pointer:/blocks/{i}/text/type]")
            if not text.get("text") or len(text["text"]) > 150:
                problems.append(f"must be 1-150 characters [json-pointer:/blocks/{i}/text/text]")
        elif block["type"] == "section":
            text = block.get("text")
            if text is None and not block.get("fields"):
                problems.append(f"must provide text or fields [json-pointer:/blocks/{i}]")
            if text is not None and (not text.get("text") or len(text["text"]) > 3000
                                     or text.get("type") not in ("mrkdwn", "plain_text")):
                problems.append(f"text must be 1-3000 characters [json-pointer:/blocks/{i}/text/text]")
        elif block["type"] == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                problems.append(f"must have 1-10 elements [json-pointer:/blocks/{i}/elements]")
            for j, element in enumerate(elements):
                if element.get("type") in ("mrkdwn", "plain_text") and not 1 <= len(element.get("text", "")) <= 3000:
                    problems.append(f"text must be 1-3000 characters [json-pointer:/blocks/{i}/elements/{j}/text]")
    if problems:
        raise SlackError("invalid_blocks", messages=[f"[ERROR] {p}" for p in problems])


class SlackServer:
    """``api_url`` for ``base_url``, ``webhook_url`` for incoming webhooks; ``messages`` records what was accepted."""

    def __init__(self, *, token: str = TOKEN, channels: dict[str, str] | None = None,
                 webhook_path: str = WEBHOOK_PATH) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/"
        self.webhook_path = webhook_path  # the last segment is the webhook's secret
        self.webhook_url = f"{self.url}{webhook_path}"
        self.token = token
        self.channels = channels or {"ml-alerts": "C0MLALERTS"}  # name (without #) -> ID
        self.messages: list[SlackMessage] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, lower-cased headers) of every request
        self.history: dict[tuple[str, str], dict[str, Any]] = {}  # (channel ID, ts) -> current message
        self.files: dict[str, SlackFile] = {}  # file id -> the file, in the order announced
        self.delay = 0.0  # seconds to wait before answering (to provoke client timeouts)
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._clock = int(time.time())
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None

    # -- control ----------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int, *, retry_after: int | None = None, error: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status``; 200 with ``error`` is an ``ok: false`` answer."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._failures += [_Failure(status, headers, error) for _ in range(count)]

    def delete_message(self, channel: str, ts: str) -> None:
        with self._lock:
            del self.history[(channel, ts)]

    def shared_files(self) -> list[SlackFile]:
        """The files uploaded and shared (``files.completeUploadExternal``), in the order announced."""
        with self._lock:
            return [file for file in self.files.values() if file.completed]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SlackMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} Slack messages within {timeout}s, got {len(self.messages)}")

    def start(self) -> SlackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(server.delay)
                status, headers, body = server._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- protocol ---------------------------------------------------------------------------------

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((path, headers))
            failure = self._failures.pop(0) if self._failures else None
        is_api = path.startswith("/api/")
        if failure is not None:
            if failure.status >= 500:
                return failure.status, {"Content-Type": "text/html", **failure.headers}, b"<html>Server Error</html>"
            error = failure.error or ("ratelimited" if failure.status == 429 else "invalid_request")
            if is_api:
                return failure.status, {**_JSON, **failure.headers}, json.dumps({"ok": False, "error": error}).encode()
            return failure.status, {**_TEXT, **failure.headers}, error.encode()
        if path.startswith(UPLOAD_PATH):
            try:
                length = self._upload(path.removeprefix(UPLOAD_PATH).split("?")[0], raw)
            except SlackError as exc:
                return exc.status, _TEXT, exc.error.encode()
            return 200, _TEXT, f"OK - {length}".encode()
        if is_api:
            method, _, query = path.removeprefix("/api/").partition("?")
            try:
                result = self._api(method, headers, raw, query)
            except SlackError as exc:
                answer: dict[str, Any] = {"ok": False, "error": exc.error}
                if exc.messages:
                    answer["response_metadata"] = {"messages": exc.messages}
                return exc.status, _JSON, json.dumps(answer).encode()
            return 200, _JSON, json.dumps({"ok": True, **result}).encode()
        if path.startswith("/services/"):
            try:
                self._webhook(path, headers, raw)
            except SlackError as exc:
                return exc.status, _TEXT, exc.error.encode()
            return 200, _TEXT, b"ok"
        return 404, _TEXT, b"not found"

    def _api(self, method: str, headers: dict[str, str], raw: bytes, query: str = "") -> dict[str, Any]:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                args = json.loads(raw or b"{}")
            except ValueError:
                raise SlackError("invalid_json") from None
            token = _bearer(headers)  # JSON bodies must carry the token in the header
        else:
            args = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
            token = _bearer(headers) or args.pop("token", None)
            if "blocks" in args:
                try:
                    args["blocks"] = json.loads(args["blocks"])
                except ValueError:
                    raise SlackError("invalid_blocks_format") from None
        in_query = {key: values[-1] for key, values in parse_qs(query).items()}
        token = token or in_query.pop("token", None)
        args = {**in_query, **args}
        if method not in API_METHODS:
            raise SlackError("unknown_method", status=404)
        if not token:
            raise SlackError("not_authed")
        if token != self.token:
            raise SlackError("invalid_auth")
        if method == "auth.test":
            return {"url": "https://runwatch-test.slack.com/", "team": "Runwatch Test", "user": "runwatch",
                    "team_id": "T000", "user_id": "U000", "bot_id": "B000"}
        if method == "files.getUploadURLExternal":
            return self._announce(args)
        if method == "files.completeUploadExternal":
            return self._complete(args)
        self._check_content(args)
        with self._lock:
            if method == "chat.postMessage":
                channel = self._channel_id(args.get("channel"), allow_name=True)
                thread_ts = args.get("thread_ts")
                if thread_ts is not None and (channel, thread_ts) not in self.history:
                    raise SlackError("thread_not_found")
                self._counter += 1
                ts = f"{self._clock}.{self._counter:06d}"
                self.history[(channel, ts)] = dict(args)
                self.messages.append(SlackMessage(method, args, channel, ts, thread_ts))
                return {"channel": channel, "ts": ts, "message": {"type": "message", "ts": ts, "bot_id": "B000",
                                                                   "text": args.get("text", "")}}
            channel = self._channel_id(args.get("channel"), allow_name=False)
            ts = args.get("ts")
            if not ts:
                raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: ts"])
            if (channel, ts) not in self.history:
                raise SlackError("message_not_found")
            self.history[(channel, ts)] = {**self.history[(channel, ts)], **args}
            self.messages.append(SlackMessage(method, args, channel, ts, None))
            return {"channel": channel, "ts": ts, "text": args.get("text", ""),
                    "message": {"type": "message", "text": args.get("text", "")}}

    def _announce(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = args.get("filename"), str(args.get("length", ""))
        if not filename or not length.isdigit():
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: filename or length"])
        with self._lock:
            self._counter += 1
            file_id = f"F{self._counter:08d}"
            self.files[file_id] = SlackFile(file_id, str(filename), int(length), args.get("alt_txt"))
        return {"file_id": file_id, "upload_url": f"{self.url}{UPLOAD_PATH}{file_id}"}

    def _upload(self, file_id: str, raw: bytes) -> int:
        with self._lock:
            file = self.files.get(file_id)
            if file is None:
                raise SlackError("file_not_found", status=404)
            if len(raw) != file.length:
                raise SlackError(f"length mismatch: announced {file.length}, sent {len(raw)}", status=400)
            if not raw.startswith(PNG_MAGIC):
                raise SlackError("not a PNG image", status=400)
            file.data = raw
        return len(raw)

    def _complete(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            listed = json.loads(args.get("files") or "")
        except ValueError:
            raise SlackError("invalid_arguments", messages=["[ERROR] files must be a JSON array"]) from None
        if not isinstance(listed, list) or not listed:
            raise SlackError("invalid_arguments", messages=["[ERROR] files must be a non-empty JSON array"])
        with self._lock:
            channel = self._channel_id(args.get("channel_id"), allow_name=False) if args.get("channel_id") else None
            thread_ts = args.get("thread_ts")
            if thread_ts is not None and (channel is None or (channel, thread_ts) not in self.history):
                raise SlackError("invalid_thread_ts")
            shared = []
            for item in listed:
                file = self.files.get(str(item.get("id")))
                if file is None or file.data is None:
                    raise SlackError("file_not_found")
                file.title, file.channel, file.thread_ts, file.completed = item.get("title"), channel, thread_ts, True
                shared.append({"id": file.id, "name": file.filename, "title": file.title, "mimetype": "image/png",
                               "size": len(file.data)})
        return {"files": shared}

    def _channel_id(self, channel: Any, *, allow_name: bool) -> str:
        if not channel:
            raise SlackError("channel_not_found")
        if channel in self.channels.values():
            return str(channel)
        name = str(channel).removeprefix("#")
        if allow_name and name in self.channels:
            return self.channels[name]
        raise SlackError("channel_not_found")

    def _check_content(self, args: dict[str, Any]) -> None:
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            raise SlackError("no_text")
        if "blocks" in args:
            validate_blocks(args["blocks"])
        if len(str(args.get("text", ""))) > 40000:
            raise SlackError("msg_too_long")

    def _webhook(self, path: str, headers: dict[str, str], raw: bytes) -> None:
        if path != self.webhook_path:
            raise SlackError("invalid_token" if path.count("/") == 4 else "no_service",
                             status=403 if path.count("/") == 4 else 404)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json":
                body = json.loads(raw)
            else:
                body = json.loads(parse_qs(raw.decode())["payload"][-1])
        except (ValueError, KeyError):
            raise SlackError("invalid_payload", status=400) from None
        if not isinstance(body, dict):
            raise SlackError("invalid_payload", status=400)
        try:
            self._check_content(body)
        except SlackError as exc:
            raise SlackError(exc.error, status=400) from None
        with self._lock:
            self.messages.append(SlackMessage("webhook", body))


class _Server(ThreadingHTTPServer):
    request_queue_size = 511  # a burst of deliveries (bench/notify.py's storm) overflows the default backlog of 5


_JSON = {"Content-Type": "application/json; charset=utf-8"}
_TEXT = {"Content-Type": "text/html"}


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.startswith("Bearer ") else None
