"""Files and artifacts of a run: what ``Run.save``, ``log_code``, ``log_artifact``, ``use_artifact``,
``log_model``, ``use_model``, ``link_model`` and ``runwatch.restore`` do (W&B semantics).

Every function takes the ``Run`` first; ``Run.finish`` calls :func:`finish` before its exit record.
On the caller's thread they only glob and ``stat`` paths; hashing and HTTP happen on the run's
uploader thread (``runwatch._uploader``), retried while the service is unreachable and, when the run
finishes first, listed in ``<run dir>/files-pending.json`` for ``runwatch sync``. Errors are logged once
and never raised into the training loop, except usage errors (a bad ``policy``, a finished run) and
what the caller waits for: ``use_artifact`` (an artifact that does not exist) and downloads.

``save(glob_str, base_path=None, policy="live")``: ``live`` uploads now and again whenever the file
changes (looked at every few seconds) and at finish; ``now`` uploads once; ``end`` at finish.
"""

from __future__ import annotations

import glob as globlib
import inspect
import os
import re
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from ._log import log_once
from ._uploader import Uploader
from .artifacts import NAME, Artifact, Remote, path_problem
from .errors import Error, UsageError

if TYPE_CHECKING:
    from .run import Run

__all__ = ["RunFile", "finish", "link_model", "log_artifact", "log_code", "log_model", "restore", "save",
           "use_artifact", "use_model"]

POLICIES = ("live", "now", "end")

# Folders log_code never walks into: the run directories, environments, caches and version control.
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", "site-packages",
                        "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "wandb", ".wandb",
                        ".ipynb_checkpoints"})

_lock = threading.Lock()
_uploaders: weakref.WeakKeyDictionary[Run, Uploader] = weakref.WeakKeyDictionary()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the run's uploader ---------------------------------------------------------------------------------
def _usable(run: Run, what: str) -> bool:
    """Whether ``what`` may act for ``run`` here: raises on a finished run; False (warned once) in a
    forked child, which never uploads on its parent's behalf, and in disabled mode."""
    from .run import _FORKED

    uploader = _uploaders.get(run)
    if getattr(run, "_state", None) == _FORKED or (uploader is not None and uploader.pid != os.getpid()):
        log_once(f"forked-{what}", "runwatch: %s() in a forked child process is ignored; only the process that "
                 "called init() stores files for run %s", what, run.id)
        return False
    if run.finished:
        raise UsageError(f"run {run.project}/{run.id} is finished; {what}() must be called before finish()")
    return run.mode != "disabled"


def _uploader(run: Run) -> Uploader:
    with _lock:
        found = _uploaders.get(run)
        if found is None:
            settings = run.settings
            found = Uploader(project=run.project, run_id=run.id, run_dir=Path(run.dir), base_url=settings.base_url,
                             api_key=settings.api_key, timeout=settings.request_timeout,
                             retry_max_backoff=settings.retry_max_backoff, offline=run.mode == "offline")
            _uploaders[run] = found
        return found


def finish(run: Run, timeout: float) -> bool:
    """Called by ``Run.finish`` before the exit record: upload the last versions of ``live`` and ``end``
    files and wait (at most ``timeout`` s) for every upload; what is left is listed in
    ``<run dir>/files-pending.json``. True when nothing is left (also when the run stored no files)."""
    with _lock:
        uploader = _uploaders.pop(run, None)
    if uploader is None or uploader.pid != os.getpid():
        return True
    try:
        return uploader.finish(timeout)
    except Exception as exc:  # finish must complete whatever happens here
        log_once("files-finish", "runwatch: finishing the file uploads failed: %r", exc)
        return False


# -- save -------------------------------------------------------------------------------------------------
def save(run: Run, glob_str: str | os.PathLike[str] | None = None, base_path: str | os.PathLike[str] | None = None,
         policy: str = "live") -> list[str]:
    """Store the files matching ``glob_str`` with the run (W&B ``wandb.save``); returns the matched paths.

    Each is stored under its path relative to ``base_path`` (default: the working directory for a
    relative glob, the glob's grandparent folder for an absolute one). The glob is expanded now: files
    created later are not picked up, except a plain path (no wildcards) saved ``live`` or ``end`` before it
    exists, which is uploaded once it does.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if glob_str is None:
        log_once("save-none", "runwatch: save() needs a path or glob of files to store; nothing was saved")
        return []
    if isinstance(glob_str, bytes):
        glob_str = glob_str.decode("utf-8")
    text = os.fspath(glob_str)
    if text.startswith(("gs://", "s3://")):
        log_once("save-cloud", "runwatch: %s is a cloud storage URL; save() stores local files only", text)
        return []
    if not _usable(run, "save"):
        return []
    pattern = os.path.abspath(text)
    if base_path is not None:
        base = os.path.abspath(os.fspath(base_path))
    elif not PurePath(text).is_absolute():
        base = os.path.abspath(".")
    else:
        log_once("save-absolute", "runwatch: saving files without their folders; pass base_path to save() to keep "
                 'them, e.g. save("/mnt/folder/file.h5", base_path="/mnt")')
        base = os.path.dirname(os.path.dirname(pattern))
    if os.path.commonpath([pattern, base]) != base:
        raise ValueError(f"{text!r} is not under base_path {base!r}")
    matched = [path for path in sorted(globlib.glob(pattern, recursive=True)) if os.path.isfile(path)]
    uploader = _uploader(run)
    if not matched and not globlib.has_magic(text) and policy in ("live", "end"):
        uploader.track(_run_file_name(pattern, base), pattern, "file", policy)  # uploaded once it exists
        return []
    for path in matched:
        name = _run_file_name(path, base)
        if policy != "now":
            uploader.track(name, path, "file", policy)
        if policy != "end":
            uploader.submit({"type": "file", "name": name, "kind": "file", "source": path, "sha256": None,
                             "size": None})
    return matched


def _run_file_name(path: str, base: str) -> str:
    name = os.path.relpath(path, base).replace(os.sep, "/")
    problem = path_problem(name)
    if problem:
        raise ValueError(f"cannot store {path!r} as {name!r}: the name {problem}")
    return name


# -- log_code ---------------------------------------------------------------------------------------------
def log_code(run: Run, root: str | os.PathLike[str] | None = ".", name: str | None = None,
             include_fn: Callable[..., bool] | None = None, exclude_fn: Callable[..., bool] | None = None,
             ) -> Artifact | None:
    """Store the source files under ``root`` (``*.py`` unless ``include_fn`` says otherwise) as a ``code``
    artifact (default name ``source-<project>-<program>``) and as the run's files ``code/<path>``.

    ``include_fn``/``exclude_fn`` take ``(path)`` or ``(path, root)``. Never walked: the Runwatch run
    directories, virtual environments (any folder with a ``pyvenv.cfg``), ``.git``, caches and
    ``node_modules``. Returns None when no file matched.
    """
    if not _usable(run, "log_code") or root is None:
        return None
    top = os.path.abspath(os.fspath(root))
    include = _two_arg(include_fn) if include_fn is not None else (lambda path, _root: path.endswith(".py"))
    exclude = _two_arg(exclude_fn) if exclude_fn is not None else (lambda _path, _root: False)
    skip_roots = {os.path.abspath(run.settings.root_dir), os.path.abspath(run.dir)}
    found: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and os.path.join(folder, d) not in skip_roots
                         and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg")))
        for file in sorted(files):
            path = os.path.join(folder, file)
            if os.path.isfile(path) and include(path, top) and not exclude(path, top):
                found.append((path, os.path.relpath(path, top).replace(os.sep, "/")))
    if not found:
        log_once("log-code-empty", "runwatch: log_code() found no source files under %s; no code was stored", top)
        return None
    artifact = Artifact(name or _code_artifact_name(run), "code")
    for path, rel in found:
        artifact.add_file(path, rel)
    uploader = _uploader(run)
    for path, rel in found:
        uploader.submit({"type": "file", "name": f"code/{rel}", "kind": "code", "source": path, "sha256": None,
                         "size": None})
    _log(run, artifact, [], use=False)
    return artifact


def _two_arg(fn: Callable[..., bool]) -> Callable[[str, str], bool]:
    try:
        positional = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        takes_root = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)
    except (TypeError, ValueError):
        takes_root = True
    return (lambda path, root: bool(fn(path, root))) if takes_root else (lambda path, _root: bool(fn(path)))


def _code_artifact_name(run: Run) -> str:
    program = sys.argv[0] if sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]) else ""
    if program:
        absolute = os.path.abspath(program)
        relative = os.path.relpath(absolute, os.getcwd())
        program = os.path.basename(absolute) if relative.startswith("..") else relative
    safe = re.sub(r"[^A-Za-z0-9_\-.]", "_", f"source-{run.project}-{program or run.id}")
    return safe[:128]


# -- artifacts --------------------------------------------------------------------------------------------
def log_artifact(run: Run, artifact_or_path: Artifact | str | os.PathLike[str], name: str | None = None,
                 type: str | None = None, aliases: Sequence[str] | None = None, tags: Sequence[str] | None = None,
                 **kwargs: Any) -> Artifact:
    """Store an artifact as the run's output (W&B ``run.log_artifact``); returns it at once.

    A path (file, directory or ``s3://``-style URI) becomes an artifact named ``name`` (default
    ``run-<run id>-<basename>``) of ``type`` (default ``unspecified``). The service makes a new version
    only if the contents differ from every existing one; ``artifact.wait()`` blocks until it is stored
    and ``artifact.version`` is known. ``latest`` always names the newest version.
    """
    artifact = _as_artifact(run, artifact_or_path, name, type)
    checked = _aliases(aliases)
    if _usable(run, "log_artifact"):
        _log(run, artifact, checked, use=False)
    return artifact


def log_model(run: Run, path: str | os.PathLike[str], name: str | None = None,
              aliases: Sequence[str] | None = None) -> None:
    """``log_artifact(path, name, type="model", aliases)`` (W&B returns nothing here either)."""
    log_artifact(run, path, name=name, type="model", aliases=aliases)


def _as_artifact(run: Run, artifact_or_path: Artifact | str | os.PathLike[str], name: str | None,
                 type: str | None) -> Artifact:
    if isinstance(artifact_or_path, Artifact):
        return artifact_or_path
    if not isinstance(artifact_or_path, (str, os.PathLike)):
        raise TypeError(f"log_artifact takes a runwatch.Artifact or a path, got {artifact_or_path.__class__.__name__}")
    path = os.fspath(artifact_or_path)
    default = re.sub(r"[^A-Za-z0-9_\-.]", "_", f"run-{run.id}-{os.path.basename(path.rstrip('/')) or 'artifact'}")
    artifact = Artifact(name or default[:128], type or "unspecified")
    if os.path.isfile(path):
        artifact.add_file(path)
    elif os.path.isdir(path):
        artifact.add_dir(path)
    elif "://" in path:
        artifact.add_reference(path)
    else:
        raise ValueError(f"{path!r} is neither a file, a directory nor a reference like s3://bucket/path")
    return artifact


def _aliases(aliases: Sequence[str] | None) -> list[str]:
    found = []
    for alias in [aliases] if isinstance(aliases, str) else list(aliases or []):
        if not isinstance(alias, str) or len(alias) > 128 or not NAME.match(alias) or re.match(r"^v\d+$", alias):
            raise ValueError(f"alias {alias!r} must be letters, digits, '-', '_', '.' (and not v<number>)")
        if alias != "latest":  # always the newest version
            found.append(alias)
    return found


def _log(run: Run, artifact: Artifact, aliases: list[str], *, use: bool) -> None:
    if artifact._logging or artifact._version is not None:
        log_once(f"relog-{id(artifact)}", "runwatch: artifact %s was logged already; logging it again does nothing",
                 artifact.name)
        return
    uploader = _uploader(run)
    artifact.project = run.project
    artifact._logging = True
    artifact._offline = uploader.offline
    artifact._remote = None if uploader.offline else uploader.caller_remote()
    uploader.submit({"type": "artifact", "name": artifact._name, "artifact_type": artifact.type,
                     "description": artifact.description, "metadata": _plain(artifact.metadata),
                     "aliases": aliases, "use": use, "entries": artifact._snapshot()}, artifact)


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    from .values import json_safe

    value = json_safe(metadata)
    return value if isinstance(value, dict) else {}


def use_artifact(run: Run, artifact_or_name: Artifact | str, type: str | None = None,
                 aliases: Sequence[str] | None = None, use_as: str | None = None, **kwargs: Any) -> Artifact:
    """Record an artifact as the run's input and return it (W&B ``run.use_artifact``).

    A name (``"dataset"``, ``"dataset:v1"``, ``"dataset:best"``, ``"other-project/dataset:latest"``) is
    looked up now, blocking for at most the request timeout; :class:`runwatch.Error` if it does not
    exist, is not of ``type`` or the service cannot be reached. An ``Artifact`` object is recorded as it
    is (one this run has not logged is stored as an input).
    """
    checked = _aliases(aliases)
    if isinstance(artifact_or_name, Artifact):
        if _usable(run, "use_artifact"):
            if artifact_or_name.is_draft():
                _log(run, artifact_or_name, checked, use=True)
            elif artifact_or_name._version is not None and artifact_or_name.project is not None:
                _uploader(run).submit({"type": "use", "project": artifact_or_name.project,
                                       "name": artifact_or_name._name, "version": artifact_or_name.version,
                                       "aliases": checked})
        return artifact_or_name
    if not isinstance(artifact_or_name, str):
        raise TypeError(f"use_artifact takes an artifact name or a runwatch.Artifact, got "
                        f"{artifact_or_name.__class__.__name__}")
    project, name, version = parse_name(artifact_or_name, run.project)
    if run.mode != "online":
        raise Error(f"use_artifact({artifact_or_name!r}) needs the Runwatch service, and run {run.id} is {run.mode}")
    if not _usable(run, "use_artifact"):
        raise Error(f"use_artifact({artifact_or_name!r}) cannot be used in a forked child process of the run")
    uploader = _uploader(run)
    artifact = fetch_artifact(uploader.caller_remote(), project, name, version, type)
    uploader.submit({"type": "use", "project": project, "name": name, "version": artifact.version,
                     "aliases": checked})
    return artifact


def parse_name(text: str, default_project: str | None) -> tuple[str, str, str]:
    """``[entity/][project/]name[:version or alias]`` -> (project, name, version); default ``latest``."""
    path, _, version = text.partition(":")
    parts = [part for part in path.split("/") if part]
    if not parts:
        raise ValueError(f"artifact name {text!r} is empty")
    name = parts[-1]
    project = parts[-2] if len(parts) >= 2 else default_project
    if project is None:
        raise ValueError(f"artifact {text!r} names no project: write 'project/{name}:{version or 'latest'}'")
    if not NAME.match(name):
        raise ValueError(f"artifact name {name!r} in {text!r} is not a valid artifact name")
    return project, name, version or "latest"


def fetch_artifact(remote: Remote, project: str, name: str, version: str, type: str | None = None) -> Artifact:
    """The stored version (blocking); :class:`runwatch.Error` when it does not exist or has another type."""
    data = remote.request("GET", f"/api/v1/projects/{quote(project, safe='')}/artifacts/{quote(name, safe='')}/"
                                 f"{quote(version, safe='')}",
                          missing=f"artifact {project}/{name}:{version} does not exist")
    if type is not None and data.get("type") != type:
        raise Error(f"artifact {project}/{name}:{version} is of type {data.get('type')!r}, not {type!r}")
    return Artifact._from_service(data, remote)


def use_model(run: Run, name: str) -> str:
    """Download a model artifact (its type contains ``model``) used by the run; the path of its only file,
    or of its folder when it has several."""
    artifact = use_artifact(run, name)
    if "model" not in artifact.type.lower():
        raise Error(f"artifact {name!r} is of type {artifact.type!r}; use_model() takes model artifacts")
    root = artifact.download()
    listed = os.listdir(root)
    return os.path.join(root, listed[0]) if len(listed) == 1 else root


def link_model(run: Run, path: str | os.PathLike[str], registered_model_name: str, name: str | None = None,
               aliases: Sequence[str] | None = None) -> None:
    """W&B's model registry has no counterpart here: warns once and does nothing."""
    log_once("link-model", "runwatch: link_model() is not supported (Runwatch has no model registry); nothing was "
             "done - log_model() stores the model")


# -- reading run files back (runwatch.Api, runwatch.restore) -----------------------------------------------
class RunFile:
    """A file stored with a run (``Api().run(path).files()``): ``name``, ``size``, ``digest`` (sha256),
    ``kind`` (``file`` or ``code``), ``updated_at``."""

    def __init__(self, data: dict[str, Any], project: str, run_id: str, remote: Remote) -> None:
        self.name: str = str(data["name"])
        self.size: int = int(data.get("size") or 0)
        self.digest: str = str(data.get("sha256"))
        self.sha256 = self.digest
        self.kind: str = str(data.get("kind") or "file")
        self.updated_at: str | None = data.get("updated_at")
        self.project, self.run_id = project, run_id
        self._remote = remote

    @property
    def url(self) -> str:
        return f"{self._remote.base_url}/api/v1/runs/{self.project}/{self.run_id}/files/{quote(self.name)}"

    def __repr__(self) -> str:
        return f"<RunFile {self.name} ({self.size} bytes)>"

    def download(self, root: str | os.PathLike[str] = ".", replace: bool = False, exist_ok: bool = False,
                 ) -> IO[str]:
        """Fetch the file to ``root/<name>`` and return it opened for reading (W&B's ``File.download``).
        An existing file raises ``ValueError`` unless ``replace`` (fetch again) or ``exist_ok`` (keep it)."""
        dest = Path(root).joinpath(*self.name.split("/"))
        if dest.exists() and not replace:
            if not exist_ok:
                raise ValueError(f"{dest} already exists; pass replace=True to download it again or exist_ok=True to "
                                 "keep it")
        else:
            self._remote.download(f"/api/v1/runs/{quote(self.project, safe='')}/{quote(self.run_id, safe='')}/files/"
                                  f"{quote(self.name)}", dest, self.digest)
        return open(dest)


def run_files(remote: Remote, project: str, run_id: str) -> list[RunFile]:
    data = remote.request("GET", f"/api/v1/runs/{quote(project, safe='')}/{quote(run_id, safe='')}/files",
                          missing=f"run {project}/{run_id} does not exist")
    return [RunFile(item, project, run_id, remote) for item in data.get("files", [])]


def restore(name: str, run_path: str | None = None, replace: bool = False,
            root: str | os.PathLike[str] | None = None) -> IO[str] | None:
    """Fetch a file stored with a run (W&B ``wandb.restore``): from ``run_path`` (``"project/run_id"``) or
    the active run, into ``root`` (default the active run's directory, else ``.``); returns it opened for
    reading. A file already there is only fetched again with ``replace``."""
    from . import _session

    active = _session.active_run()
    if run_path is None:
        if active is None:
            raise ValueError("restore() needs run_path='project/run_id' when no run is active")
        project, run_id = active.project, active.id
    else:
        project, _, run_id = run_path.rstrip("/").rpartition("/")
        project = project.rsplit("/", 1)[-1]
        if not project or not run_id:
            raise ValueError(f"run_path must look like 'project/run_id', got {run_path!r}")
    target = Path(root if root is not None else (active.dir if active is not None else "."))
    dest = target.joinpath(*name.split("/"))
    if dest.exists() and not replace:
        return open(dest)
    if active is not None:
        remote = Remote.connect(active.settings.base_url, active.settings.api_key, active.settings.request_timeout)
    else:
        from .settings import DEFAULT_BASE_URL, load_api_key

        url = (os.environ.get("RUNWATCH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        remote = Remote.connect(url, os.environ.get("RUNWATCH_API_KEY") or load_api_key(url), 30.0)
    try:
        found = {f.name: f for f in run_files(remote, project, run_id)}
        if name not in found:
            raise ValueError(f"run {project}/{run_id} has no file {name!r}")
        return found[name].download(target, replace=True)
    finally:
        remote.close()
