"""``runwatch.Artifact``: W&B's versioned bundle of files (a dataset, a model, source code).

Build one (``add_file``, ``add_dir``, ``add_reference``, ``new_file``) and hand it to
``run.log_artifact``; read one back with ``run.use_artifact("name:latest")`` or
``runwatch.Api().artifact("project/name:v0")`` and ``download()`` it.

Adding a file only records its path and ``stat``: the contents are hashed and uploaded later, on the
run's uploader thread (``runwatch._uploader``), so building an artifact never stalls a training loop.
A file changed after it was added is uploaded as it is then (one warning says so). The service makes a
new version (``v0``, ``v1``, ...) only for contents it has not seen under that name: the digest is the
sha256 of the sorted manifest of (path, file sha256) (:func:`manifest_digest`, the service's too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from ._log import log_once
from .errors import Error, UsageError

__all__ = ["Artifact", "ArtifactEntry", "ArtifactManifest", "Remote", "hash_file", "manifest_digest",
           "path_problem"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CHUNK = 1024 * 1024


def manifest_digest(entries: Iterable[tuple[str, str | None, str | None]]) -> str:
    """sha256 (hex) of ``<path>\\t<sha256 or "ref:" + uri>\\n`` per ``(path, sha256, ref)``, sorted."""
    lines = sorted(f"{path}\t{sha if sha is not None else 'ref:' + (ref or '')}\n" for path, sha, ref in entries)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def hash_file(path: str | os.PathLike[str], abort: Callable[[], bool] | None = None) -> tuple[str, int]:
    """(sha256 hex, size) of the file's contents, read in 1 MiB pieces; ``abort`` is asked between them."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while piece := f.read(_CHUNK):
            if abort is not None and abort():
                raise InterruptedError("hashing was interrupted")
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file of a run or artifact (the service's rule), or None."""
    if not path:
        return "must not be empty"
    if len(path.encode("utf-8", "surrogatepass")) > 1024:
        return "must be at most 1024 bytes long"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "must not contain control characters"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "must be a relative path"
    if "\\" in path:
        return "must use '/' between folders"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain '..', '.' or empty segments"
    return None


def _entry_name(name: str) -> str:
    name = name.replace(os.sep, "/")
    problem = path_problem(name)
    if problem:
        raise ValueError(f"artifact entry name {name!r} {problem}")
    return name


class Remote:
    """Blocking reads from the service for what the user asked to wait for (``use_artifact``,
    ``download``, ``runwatch.Api``); errors are :class:`runwatch.Error` naming what failed."""

    def __init__(self, client: Any, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    @classmethod
    def connect(cls, base_url: str, api_key: str | None, timeout: float) -> Remote:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return cls(httpx.Client(base_url=base_url, headers=headers,
                                timeout=httpx.Timeout(timeout, connect=min(3.0, timeout))), base_url)

    def request(self, method: str, path: str, *, json_body: Any = None, missing: str | None = None) -> Any:
        """The JSON answer; a 404 raises an Error saying ``missing`` (when given)."""
        import httpx

        try:
            resp = self.client.request(method, path, json=json_body)
        except httpx.HTTPError as exc:
            raise Error(f"cannot reach the Runwatch service at {self.base_url} ({type(exc).__name__}: {exc})") from None
        if resp.status_code == 404 and missing:
            raise Error(missing)
        if resp.status_code >= 400:
            raise Error(f"{method} {path} failed: HTTP {resp.status_code}: {_detail(resp.text)}")
        return resp.json()

    def download(self, path: str, dest: Path, sha256: str | None) -> Path:
        """Stream ``path`` into ``dest`` (through a temporary file beside it; checked against ``sha256``)."""
        import httpx

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.runwatch-part")
        digest = hashlib.sha256()
        try:
            with self.client.stream("GET", path) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise Error(f"GET {path} failed: HTTP {resp.status_code}: {_detail(resp.text)}")
                with open(tmp, "wb") as out:
                    for piece in resp.iter_bytes(_CHUNK):
                        digest.update(piece)
                        out.write(piece)
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise Error(f"cannot download {path} from {self.base_url} ({type(exc).__name__}: {exc})") from None
        if sha256 is not None and digest.hexdigest() != sha256:
            tmp.unlink(missing_ok=True)
            raise Error(f"{path} arrived with sha256 {digest.hexdigest()}, not {sha256}; download it again")
        os.replace(tmp, dest)
        return dest

    def close(self) -> None:
        self.client.close()


def _detail(text: str) -> str:
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        return text[:300]
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)[:500]
    return str(detail)[:500]


def _up_to_date(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and hash_file(path)[0] == sha256
    except OSError:
        return False


class ArtifactEntry:
    """One path of an artifact (W&B's ``ArtifactManifestEntry``): contents (``digest`` = sha256, ``size``)
    or a reference URI (``ref``) that is recorded, never fetched."""

    def __init__(self, path: str, *, digest: str | None = None, size: int | None = None, ref: str | None = None,
                 local_path: str | None = None, artifact: Artifact | None = None) -> None:
        self.path = path
        self.digest = digest
        self.size = size
        self.ref = ref
        self.local_path = local_path
        self._artifact = artifact
        self._stat: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.path

    @property
    def sha256(self) -> str | None:
        return self.digest

    def ref_target(self) -> str | None:
        return self.ref

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        """Fetch this file of a logged artifact into ``root`` (default: the artifact's download folder)."""
        if self._artifact is None:
            raise UsageError(f"{self.path!r} belongs to no logged artifact; nothing to download")
        return self._artifact._download_entry(self, root)

    def __repr__(self) -> str:
        what = f"ref={self.ref!r}" if self.ref is not None else f"digest={(self.digest or '?')[:12]} size={self.size}"
        return f"<ArtifactEntry {self.path!r} {what}>"


class ArtifactManifest:
    """``artifact.manifest``: ``entries`` by path."""

    def __init__(self, entries: dict[str, ArtifactEntry]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)


class Artifact:
    """A versioned set of files (W&B's ``wandb.Artifact(name, type, description=None, metadata=None)``).

    Before logging, ``name`` is the name given and ``version`` is None; once the service stored it
    (``wait()``), ``version`` is ``"v0"``, ``"v1"``, ... and ``name`` reads ``"name:v0"`` as in W&B.
    """

    def __init__(self, name: str, type: str, description: str | None = None,
                 metadata: Mapping[str, Any] | None = None, incremental: bool = False, use_as: str | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(name, str) or len(name) > 128 or not NAME.match(name):
            raise ValueError(f"artifact name {name!r} must be 1-128 characters of letters, digits, '-', '_' and "
                             "'.', starting with a letter or digit")
        if not isinstance(type, str) or len(type) > 64 or not NAME.match(type):
            raise ValueError(f"artifact type {type!r} must be 1-64 characters of letters, digits, '-', '_', '.'")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"artifact metadata must be a dict, got {metadata.__class__.__name__}")
        self._name = name
        self.type = type
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.project: str | None = None
        self.aliases: list[str] = []
        self.state = "PENDING"
        """``PENDING`` until the service stored it, then ``COMMITTED`` (W&B's states)."""
        self._entries: dict[str, ArtifactEntry] = {}
        self._entries_loaded = True
        self._version: int | None = None
        self._digest: str | None = None
        self._size: int | None = None
        self._created_by: dict[str, Any] | None = None
        self._remote: Remote | None = None
        self._logging = False
        self._offline = False
        self._done = threading.Event()
        self._error: str | None = None
        self._staging: str | None = None

    # -- identity --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self._name}:v{self._version}" if self._version is not None else self._name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def version(self) -> str | None:
        return f"v{self._version}" if self._version is not None else None

    @property
    def qualified_name(self) -> str:
        return f"{self.project or '?'}/{self.name}"

    @property
    def id(self) -> str | None:
        return self._digest if self._version is not None else None

    @property
    def digest(self) -> str:
        """The manifest digest; for an artifact not stored yet, computed now from its local files."""
        if self._digest is None:
            entries = []
            for entry in self.manifest.entries.values():
                if entry.ref is None and entry.digest is None and entry.local_path is not None:
                    entry.digest, entry.size = hash_file(entry.local_path)
                entries.append((entry.path, entry.digest, entry.ref))
            return manifest_digest(entries)
        return self._digest

    @property
    def size(self) -> int:
        if self._size is not None:
            return self._size
        return sum(e.size or 0 for e in self.manifest.entries.values() if e.ref is None)

    @property
    def file_count(self) -> int:
        return len(self.manifest.entries)

    @property
    def created_by(self) -> dict[str, Any] | None:
        """``{"project", "id"}`` of the run that first logged this version."""
        return self._created_by

    def is_draft(self) -> bool:
        return self._version is None and not self._logging

    def __repr__(self) -> str:
        return f"<runwatch.Artifact {self.qualified_name if self.project else self.name} type={self.type}>"

    # -- building --------------------------------------------------------------------------------
    def _check_mutable(self) -> None:
        if self._logging or self._version is not None:
            raise UsageError(f"artifact {self.name} was logged; build a new Artifact to change its files")

    def add_file(self, local_path: str | os.PathLike[str], name: str | None = None, is_tmp: bool | None = False,
                 skip_cache: bool | None = False, policy: str | None = "mutable", overwrite: bool = False,
                 ) -> ArtifactEntry:
        """Add a file (stored as ``name``, default its file name). Hashed and uploaded when logged."""
        self._check_mutable()
        path = os.fspath(local_path)
        try:
            stat = os.stat(path)
        except OSError:
            raise ValueError(f"{path!r} is not a file") from None
        if not os.path.isfile(path):
            raise ValueError(f"{path!r} is not a file")
        entry_name = _entry_name(name if name is not None else os.path.basename(path))
        if entry_name in self._entries and not overwrite:
            raise ValueError(f"artifact {self._name} already has a file {entry_name!r}; pass overwrite=True to replace "
                             "it")
        entry = ArtifactEntry(entry_name, size=stat.st_size, local_path=os.path.abspath(path), artifact=self)
        entry._stat = (stat.st_size, stat.st_mtime_ns)
        self._entries[entry_name] = entry
        return entry

    def add_dir(self, local_path: str | os.PathLike[str], name: str | None = None, skip_cache: bool | None = False,
                policy: str | None = "mutable", merge: bool = False) -> None:
        """Add every file under ``local_path`` (as ``name/<relative path>``, or the relative path)."""
        self._check_mutable()
        root = os.fspath(local_path)
        if not os.path.isdir(root):
            raise ValueError(f"{root!r} is not a directory")
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for file in sorted(files):
                full = os.path.join(folder, file)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if os.path.isfile(full):
                    self.add_file(full, f"{name.rstrip('/')}/{rel}" if name else rel, overwrite=merge)

    def add_reference(self, uri: str | Any, name: str | os.PathLike[str] | None = None, checksum: bool = True,
                      max_objects: int | None = None) -> list[ArtifactEntry]:
        """Record a URI (``s3://...``, ``https://...``, ``file://...``) as an entry; it is never fetched."""
        self._check_mutable()
        uri = str(uri)
        if "://" not in uri:
            raise ValueError(f"reference {uri!r} must be a URI such as s3://bucket/key or https://host/path")
        default = uri.split("://", 1)[1].rstrip("/").rsplit("/", 1)[-1] or "reference"
        entry = ArtifactEntry(_entry_name(os.fspath(name) if name is not None else default), ref=uri, artifact=self)
        self._entries[entry.path] = entry
        return [entry]

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "w", encoding: str | None = None) -> Iterator[IO[Any]]:
        """Write a new file of the artifact: ``with artifact.new_file("labels.txt") as f: f.write(...)``."""
        self._check_mutable()
        entry_name = _entry_name(name)
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="runwatch-artifact-")
        path = os.path.join(self._staging, *entry_name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
        self.add_file(path, entry_name, overwrite=True)

    def add(self, obj: Any, name: str) -> ArtifactEntry:
        """Store a media object (``runwatch.Table``, ``Image``, ...) as ``name`` (JSON)."""
        from .values import json_safe

        file_name = name if name.endswith(".json") else f"{name}.json"
        with self.new_file(file_name) as f:
            json.dump(json_safe(obj), f)
        return self._entries[_entry_name(file_name)]

    def remove(self, item: str | os.PathLike[str] | ArtifactEntry) -> None:
        self._check_mutable()
        key = item.path if isinstance(item, ArtifactEntry) else os.fspath(item)
        if self._entries.pop(key, None) is None:
            raise FileNotFoundError(f"artifact {self._name} has no file {key!r}")

    def save(self, *args: Any, **kwargs: Any) -> None:
        log_once("artifact-save", "runwatch: Artifact.save() is not supported; log it with run.log_artifact()")

    def link(self, *args: Any, **kwargs: Any) -> None:
        log_once("artifact-link", "runwatch: Artifact.link() is not supported (Runwatch has no model registry)")

    # -- reading ---------------------------------------------------------------------------------
    @property
    def manifest(self) -> ArtifactManifest:
        self._load_entries()
        return ArtifactManifest(self._entries)

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactEntry]:
        """The entries (optionally only ``names``), by path."""
        entries = self.manifest.entries
        return [entries[path] for path in sorted(entries) if names is None or path in names]

    def get_entry(self, name: str | os.PathLike[str]) -> ArtifactEntry:
        key = os.fspath(name)
        entries = self.manifest.entries
        if key not in entries:
            raise KeyError(f"artifact {self.name} has no file {key!r}")
        return entries[key]

    get_path = get_entry

    def get(self, name: str) -> Any:
        """A stored JSON file (``add``) read back."""
        entry = self.get_entry(name if name in self.manifest.entries else f"{name}.json")
        with open(entry.download(), encoding="utf-8") as f:
            return json.load(f)

    def wait(self, timeout: float | None = None) -> Artifact:
        """Block until the service stored this artifact (it then has its ``version``)."""
        if self._version is not None and self._done.is_set() and self._error is None:
            return self
        if not self._logging:
            if self._offline:
                raise Error(f"artifact {self._name} belongs to an offline run; it gets its version when "
                            "`runwatch sync` uploads the run")
            raise UsageError(f"artifact {self._name} was not logged; call run.log_artifact(artifact) first")
        if not self._done.wait(timeout):
            raise Error(f"artifact {self._name} was not stored within {timeout} s")
        if self._error is not None:
            raise Error(self._error)
        return self

    def download(self, root: str | os.PathLike[str] | None = None, allow_missing_references: bool = False,
                 skip_cache: bool | None = None, path_prefix: str | None = None, multipart: bool | None = None,
                 ) -> str:
        """Fetch every stored file into ``root`` (default ``./artifacts/<name>:<version>``); returns ``root``.
        Files already there with the right contents are kept; references are not fetched."""
        if self._logging and self._version is None:
            self.wait()
        if self._version is None or self._remote is None:
            raise UsageError(f"artifact {self._name} is not stored by the service; log it (and wait()) first")
        target = Path(root if root is not None else self._default_root())
        for entry in self.files():
            if entry.ref is None and (path_prefix is None or entry.path.startswith(path_prefix)):
                self._download_entry(entry, target)
        target.mkdir(parents=True, exist_ok=True)
        return str(target)

    def _default_root(self) -> str:
        return os.path.join(".", "artifacts", f"{self._name}:v{self._version}")

    def _download_entry(self, entry: ArtifactEntry, root: str | os.PathLike[str] | None) -> str:
        if self._version is None or self._remote is None:
            raise UsageError(f"artifact {self._name} is not stored by the service; nothing to download")
        if entry.ref is not None or entry.digest is None:
            raise Error(f"{entry.path!r} of artifact {self.name} is a reference to {entry.ref}; it has no stored "
                        "contents")
        dest = Path(root if root is not None else self._default_root()).joinpath(*entry.path.split("/"))
        if not _up_to_date(dest, entry.digest):
            path = f"/api/v1/projects/{quote(self.project or '', safe='')}/artifacts/{quote(self._name, safe='')}/" \
                   f"v{self._version}/files/{quote(entry.path)}"
            self._remote.download(path, dest, entry.digest)
        return str(dest)

    # -- used by runwatch.files and runwatch.Api -------------------------------------------------
    @classmethod
    def _from_service(cls, data: Mapping[str, Any], remote: Remote) -> Artifact:
        """A stored version from its JSON (with ``entries``, or loaded from the service when first needed)."""
        artifact = cls(str(data["name"]), str(data.get("type") or "unspecified"), data.get("description"),
                       data.get("metadata") or {})
        artifact._remote = remote
        artifact._committed(data)
        return artifact

    def _committed(self, data: Mapping[str, Any]) -> None:
        self.project = str(data["project"])
        self._version = int(data["version_index"])
        self._digest = str(data["digest"])
        self._size = int(data.get("size") or 0)
        self.aliases = list(data.get("aliases") or [])
        self._created_by = data.get("created_by")
        self.state = "COMMITTED"
        if "entries" in data:
            self._entries = {e["path"]: ArtifactEntry(e["path"], digest=e.get("sha256"), size=e.get("size"),
                                                      ref=e.get("ref"), artifact=self) for e in data["entries"]}
            self._entries_loaded = True
        else:
            self._entries_loaded = False
        self._done.set()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def _failed(self, message: str) -> None:
        self._error = message
        self._done.set()

    def _load_entries(self) -> None:
        if self._entries_loaded or self._remote is None or self._version is None:
            return
        data = self._remote.request("GET", f"/api/v1/projects/{quote(self.project or '', safe='')}/artifacts/"
                                           f"{quote(self._name, safe='')}/v{self._version}")
        self._committed(data)

    def _snapshot(self) -> list[dict[str, Any]]:
        """The entries as the uploader needs them (what is in the artifact at ``log_artifact`` time)."""
        return [{"path": e.path, "source": e.local_path, "ref": e.ref, "sha256": None,
                 "size": e.size if e.ref is None else None, "stat": list(e._stat) if e._stat else None}
                for e in self._entries.values()]
