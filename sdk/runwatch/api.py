"""``runwatch.Api``: read runs, metric history and alerts back from the service (SPEC 3.9)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import Error
from .settings import DEFAULT_BASE_URL, load_api_key
from .values import decode_float

if TYPE_CHECKING:
    from .artifacts import Artifact, Remote
    from .files import RunFile

__all__ = ["Api", "ApiRun"]


class Api:
    """Export client. ``base_url``/``api_key`` default to the same env vars and file as the SDK."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        self.base_url = (base_url or os.environ.get("RUNWATCH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        key = api_key or os.environ.get("RUNWATCH_API_KEY") or load_api_key(self.base_url)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        # An export is as long as the run: bound the wait for each chunk, not the whole download.
        self._stream_timeout = httpx.Timeout(timeout, read=max(timeout, 300.0))

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        import httpx

        try:
            resp = self._client.get(path, params={k: v for k, v in (params or {}).items() if v is not None})
        except httpx.HTTPError as exc:
            raise Error(f"cannot reach the Runwatch service at {self.base_url}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise Error(f"GET {path} failed: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def runs(self, project: str, filters: Mapping[str, Any] | None = None, *, limit: int = 1000) -> list[ApiRun]:
        """Runs of ``project``; ``filters`` may hold ``state``, ``tags`` (or ``tag``) and ``name``."""
        filters = dict(filters or {})
        params: dict[str, Any] = {"project": project, "limit": limit}
        for key in ("state", "name"):
            if filters.get(key) is not None:
                params[key] = filters.pop(key)
        tags = filters.pop("tags", None) or filters.pop("tag", None)
        if filters:
            raise ValueError(f"unsupported run filters {sorted(filters)}; use state, tags, name")
        if isinstance(tags, str):
            params["tag"] = tags
        elif tags:
            params["tag"] = list(tags)
        data = self._get("/api/v1/runs", params)
        return [ApiRun(self, r) for r in data.get("runs", [])]

    def run(self, path: str) -> ApiRun:
        """One run by ``"project/run_id"``."""
        project, sep, run_id = path.partition("/")
        if not sep or not project or not run_id:
            raise ValueError(f"run path must look like 'project/run_id', got {path!r}")
        return ApiRun(self, self._get(f"/api/v1/runs/{project}/{run_id}"))

    def _stream_lines(self, path: str, params: Mapping[str, Any]) -> Iterator[str]:
        """The ``\\n``-separated lines of one streamed answer, read as they arrive (the response closes
        with the iterator). Not ``iter_lines()``: that also splits at U+2028 and the like, which JSON
        strings may hold."""
        import httpx

        try:
            with self._client.stream("GET", path, params=params, timeout=self._stream_timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise Error(f"GET {path} failed: HTTP {resp.status_code}: {resp.text[:300]}")
                start: list[str] = []
                for chunk in resp.iter_text():
                    *complete, rest = chunk.split("\n")
                    if complete:
                        yield "".join([*start, complete[0]])
                        yield from complete[1:]
                        start = []
                    start.append(rest)
                if "".join(start):
                    yield "".join(start)
        except httpx.HTTPError as exc:
            raise Error(f"cannot read {path} from the Runwatch service at {self.base_url}: "
                        f"{type(exc).__name__}") from None

    @property
    def _remote(self) -> Remote:
        from .artifacts import Remote

        return Remote(self._client, self.base_url)

    def artifact(self, name: str, type: str | None = None) -> Artifact:
        """A stored artifact version: ``"project/name:v0"``, ``"project/name:latest"``, ``"name:alias"`` (then
        in ``RUNWATCH_PROJECT``); ``download(root)`` fetches its files. :class:`Error` if it does not exist."""
        from .files import fetch_artifact, parse_name
        from .settings import env_value

        project, artifact, version = parse_name(name, env_value("PROJECT"))
        return fetch_artifact(self._remote, project, artifact, version, type)

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        try:
            self.artifact(name, type)
        except Error:
            return False
        return True

    def alerts(self, project: str | None = None, status: str | None = None, run: str | None = None, *,
               rule: str | None = None, severity: str | None = None, source: str | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
        """Alert history, newest first (SPEC 7 alert objects plus ``suppressed_count`` and ``delayed``).

        Every filter given must match: ``status`` (pending, firing, resolved), ``run`` (an id in
        ``project``), ``rule`` (a rule name), ``severity`` (info, warning, error, critical) and ``source``
        (``sdk`` for ``alert()`` calls, ``rule`` for rule alerts).
        """
        data = self._get("/api/v1/alerts", {"project": project, "status": status, "run": run, "rule": rule,
                                            "severity": severity, "source": source, "limit": limit})
        return list(data.get("alerts", []))


class ApiRun:
    """A run as stored by the service: ``id, name, project, state, config, summary, tags, url``..."""

    def __init__(self, api: Api, data: Mapping[str, Any]) -> None:
        self._api = api
        self._data = dict(data)
        self.id: str = str(data.get("id"))
        self.name: str | None = data.get("name")
        self.project: str = str(data.get("project"))
        self.state: str | None = data.get("state")
        self.url: str | None = data.get("url")
        self.config: dict[str, Any] = dict(data.get("config") or {})
        self.summary: dict[str, Any] = {k: decode_float(v) for k, v in (data.get("summary") or {}).items()}
        self.tags: list[str] = list(data.get("tags") or [])
        self.notes: str | None = data.get("notes")
        self.group: str | None = data.get("group")
        self.job_type: str | None = data.get("job_type")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<ApiRun {self.project}/{self.id} {self.state}>"

    @property
    def path(self) -> str:
        return f"{self.project}/{self.id}"

    def scan_history(self, keys: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every history row in step order, decoded while it downloads (one streamed request).

        Rows are W&B's: ``_step``, ``_timestamp``, ``_runtime`` and the keys that step logged (NaN and
        ±inf as floats). With ``keys``, only the steps that logged one of them, and only those keys.
        ``page_size`` is accepted for W&B compatibility; the export is not paged.
        """
        params: dict[str, Any] = {"format": "json"}
        if keys:
            params["keys"] = ",".join(keys)
        # The service writes one row object per line between "[" and "]", the commas between rows at the
        # start of a line (alerts.export); a comma at the end is read as well.
        for line in self._api._stream_lines(f"/api/v1/runs/{self.project}/{self.id}/history", params):
            line = line.strip().strip(",")
            if line.startswith("{"):
                yield {k: decode_float(v) for k, v in json.loads(line).items()}

    def history(self, keys: Sequence[str] | None = None, pandas: bool = True) -> Any:
        """Every history row (as ``scan_history``): a pandas DataFrame if pandas is installed and wanted,
        else a list of dicts."""
        rows = list(self.scan_history(keys))
        if pandas:
            try:
                import pandas as pd
            except ImportError:
                return rows
            return pd.DataFrame(rows)
        return rows

    def media(self) -> list[dict[str, Any]]:
        """Logged tables/images/text: ``[{"key", "step", "kind", "value"}]``."""
        data = self._api._get(f"/api/v1/runs/{self.project}/{self.id}/media")
        return list(data.get("media", []))

    def files(self, names: Sequence[str] | None = None, per_page: int | None = None) -> list[RunFile]:
        """The files stored with the run (``save``; ``code/...`` from ``log_code``), by name: each has
        ``name``, ``size``, ``digest`` (sha256), ``kind`` and ``download(root=".")``."""
        from .files import run_files

        found = run_files(self._api._remote, self.project, self.id)
        return [f for f in found if names is None or f.name in names]

    def file(self, name: str) -> RunFile:
        """One stored file by name; :class:`Error` if the run has none of that name."""
        for found in self.files():
            if found.name == name:
                return found
        raise Error(f"run {self.project}/{self.id} has no file {name!r}")

    def _artifacts(self, relation: str) -> list[Artifact]:
        from .artifacts import Artifact

        remote = self._api._remote
        data = remote.request("GET", f"/api/v1/runs/{self.project}/{self.id}/artifacts")
        return [Artifact._from_service(item, remote) for item in data.get(relation, [])]

    def logged_artifacts(self) -> list[Artifact]:
        """The artifact versions this run logged (its outputs), oldest first."""
        return self._artifacts("logged")

    def used_artifacts(self) -> list[Artifact]:
        """The artifact versions this run used (its inputs), oldest first."""
        return self._artifacts("used")
