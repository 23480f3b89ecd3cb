"""HTTP to the service, with every outcome classified the way the sender needs it.

``ok`` (2xx), ``transient`` (connection error, timeout, 408, 429, 5xx: spool and retry with backoff) or
``permanent`` (any other 4xx: record once, keep the data on disk, move on). The API key travels only in
the ``Authorization`` header and never appears in a result's message.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal, Protocol

__all__ = ["HttpTransport", "Result", "Transport", "classify"]

Outcome = Literal["ok", "transient", "permanent"]


@dataclasses.dataclass
class Result:
    outcome: Outcome
    status: int | None = None
    data: Any = None
    message: str = ""


class Transport(Protocol):
    """What the sender needs from the network; tests substitute a fake."""

    def request(self, method: str, path: str, body: bytes | None = None) -> Result: ...

    def close(self) -> None: ...


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return "ok"
    if status in (408, 429) or status >= 500:
        return "transient"
    return "permanent"


def _detail(text: str) -> str:
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text[:200]
    return json.dumps(detail)[:300] if not isinstance(detail, str) else detail[:300]


class HttpTransport:
    """httpx-based transport; httpx is imported on first use so ``import runwatch`` stays light."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 10.0) -> None:
        import httpx

        headers = {"Content-Type": "application/json", "User-Agent": "runwatch-python/0.1.0"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(3.0, timeout))
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> Result:
        try:
            resp = self._client.request(method, path, content=body)
        except self._httpx.TimeoutException as exc:
            return Result("transient", None, None, f"timeout: {type(exc).__name__}")
        except self._httpx.HTTPError as exc:
            return Result("transient", None, None, f"connection error: {type(exc).__name__}: {exc}")
        outcome = classify(resp.status_code)
        data: Any = None
        if outcome == "ok":
            try:
                data = resp.json() if resp.content else None
            except ValueError:
                data = None
            return Result("ok", resp.status_code, data)
        return Result(outcome, resp.status_code, None, f"HTTP {resp.status_code}: {_detail(resp.text)}")

    def close(self) -> None:
        self._client.close()
