"""Files and artifacts of runs (W&B's ``save``, ``log_code``, ``Artifact``): upload, list, download.

Contents travel once, as blobs named by their sha256 (``PUT /projects/{project}/blobs/{sha256}``, after
``POST .../blobs/missing`` said which the project lacks); a run file or an artifact version then only
names them. Blob uploads stream past ``server.max_body_bytes`` (:class:`BodyLimitExceptUploads`) and are
held to ``files.max_file_bytes`` instead. ``file_json``/``artifact_json`` build the answers, so the
dashboard shows the same data (docs/protocol.md has the shapes).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ConfigDict, Field, field_validator, model_validator
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from alerts.api.answers import (
    DOWNLOAD,
    ArtifactLogged,
    ArtifactManifest,
    BlobStored,
    BlobsToUpload,
    FileAnswer,
    FileList,
    RunArtifacts,
    answers,
)
from alerts.api.auth import CurrentKey, CurrentService, require_project
from alerts.api.errors import BodyLimit
from alerts.api.schemas import RunId
from alerts.ingest.protocol import MAX_SAFE_INTEGER, WHOLE_FLOATS, _Body
from alerts.model import Run
from alerts.presentation import iso
from alerts.service import Service
from alerts.storage.base import (
    ArtifactEntry,
    ArtifactTypeConflict,
    ArtifactVersion,
    MissingBlobs,
    NewArtifact,
    RunBytesExceeded,
    StoredFile,
)
from alerts.storage.files import manifest_digest
from alerts.storage.tables import BLOB_CHUNK_BYTES

router = APIRouter(prefix="/api/v1", strict_content_type=False)

MAX_PATH_BYTES = 1024
MAX_METADATA_BYTES = 64 * 1024
_SPOOL_IN_MEMORY = 8 * 2**20  # an upload up to this size stays in memory; a larger one goes to a temp file
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_BLOB_PUT = re.compile(r"^/api/v1/projects/[^/]+/blobs/[^/]+$")

ArtifactName = Annotated[str, Field(min_length=1, max_length=128, pattern=_NAME)]
ArtifactType = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME)]
# A name, but not v<N> (which names a version): the schema's pattern; _user_aliases says why one is refused.
_ALIAS = r"^(?:[A-Za-uw-z0-9][A-Za-z0-9_.\-]*|v(?:[0-9]*[A-Za-z_.\-][A-Za-z0-9_.\-]*)?)$"
Alias = Annotated[str, Field(min_length=1, max_length=128, pattern=_NAME, json_schema_extra={"pattern": _ALIAS})]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]


class BodyLimitExceptUploads(BodyLimit):
    """``server.max_body_bytes`` for every request but a blob upload, which streams to its route (a
    file may be far larger than any JSON body) and is held to ``files.max_file_bytes`` there."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "PUT" and _BLOB_PUT.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


# Validation ---------------------------------------------------------------------------------------
def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file of a run or an artifact (None if it can): it must be relative,
    ``/``-separated, without ``.``/``..``/empty segments, backslashes or control characters."""
    if not path:
        return "must not be empty"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"must be at most {MAX_PATH_BYTES} bytes long"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "must not contain control characters"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "must be a relative path, not an absolute one"
    if "\\" in path:
        return "must use '/' between folders, not '\\'"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain '..', '.' or empty segments (a relative path such as 'checkpoints/model.pt')"
    return None


# What path_problem accepts, as a regex for /openapi.json (a client may check paths before sending; the
# service checks with path_problem, whose messages say what is wrong). tests/service/test_files_api.py
# holds the two to the same answer. Spelled with explicit classes only: the same in ECMA and Python.
_CHAR = r"[^\x00-\x1f\x7f\\/]"  # anything but control characters and the two slashes
_SEGMENT = rf"(?:[^\x00-\x1f\x7f\\/.]{_CHAR}*|\.[^\x00-\x1f\x7f\\/.]{_CHAR}*|\.\.{_CHAR}+)"  # not . or ..
_FIRST_SEGMENT = (rf"(?:[^\x00-\x1f\x7f\\/.A-Za-z]{_CHAR}*|[A-Za-z](?:[^\x00-\x1f\x7f\\/:]{_CHAR}*)?"
                  rf"|\.[^\x00-\x1f\x7f\\/.]{_CHAR}*|\.\.{_CHAR}+)")  # ... and no drive letter (C:)
FILE_PATH_PATTERN = rf"^{_FIRST_SEGMENT}(?:/{_SEGMENT})*$"
_FILE_PATH_SCHEMA = {"pattern": FILE_PATH_PATTERN, "maxLength": MAX_PATH_BYTES}
_FILE_PATH_DOC = ("a relative, '/'-separated path without '.', '..' or empty segments, backslashes or "
                  f"control characters, at most {MAX_PATH_BYTES} bytes of UTF-8")
FilePath = Annotated[str, Path(description=_FILE_PATH_DOC, json_schema_extra=_FILE_PATH_SCHEMA)]
Digest = Annotated[str, Path(pattern=SHA256_PATTERN, description="the sha256 of the contents, in hex")]


def _invalid(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _checked_path(path: str) -> str:
    problem = path_problem(path)
    if problem:
        raise _invalid(("path", "path"), f"file path {path!r} {problem}")
    return path


def human_size(size: int | None) -> str:
    """``1.5 MiB``-style size for messages and pages."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{size} bytes" if size != 1 else "1 byte"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")  # pragma: no cover


def _too_large(message: str, limit_name: str, file: str | None, loc: tuple[str | int, ...] = ("body",)) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": list(loc), "msg": message, "type": "too_large", "limit": limit_name,
                                     "file": file}]}, status_code=413)


# JSON shapes ---------------------------------------------------------------------------------------
def file_json(file: StoredFile, run: Run) -> dict[str, Any]:
    return {"name": file.path, "size": file.size, "sha256": file.sha256, "kind": file.kind,
            "updated_at": iso(file.updated_at),
            "url": f"/api/v1/runs/{run.project}/{run.id}/files/{quote(file.path)}"}


def entry_json(entry: ArtifactEntry) -> dict[str, Any]:
    return {"path": entry.path, "sha256": entry.sha256, "size": entry.size, "ref": entry.ref}


def artifact_json(version: ArtifactVersion, creators: dict[int, Run] | None = None,
                  entries: list[ArtifactEntry] | None = None) -> dict[str, Any]:
    creator = (creators or {}).get(version.created_by) if version.created_by is not None else None
    found: dict[str, Any] = {
        "project": version.project, "name": version.name, "type": version.type, "version": f"v{version.version}",
        "version_index": version.version, "digest": version.digest, "description": version.description,
        "metadata": version.metadata, "aliases": version.aliases, "size": version.size,
        "file_count": version.file_count, "created_at": iso(version.created_at),
        "created_by": {"project": creator.project, "id": creator.id} if creator else None,
        "url": f"/api/v1/projects/{version.project}/artifacts/{version.name}/v{version.version}",
    }
    if entries is not None:
        found["entries"] = [entry_json(entry) for entry in entries]
    return found


async def artifacts_json(service: Service, versions: list[ArtifactVersion]) -> list[dict[str, Any]]:
    creators = await service.store.get_runs_by_pk([v.created_by for v in versions if v.created_by is not None])
    return [artifact_json(v, creators) for v in versions]


async def run_artifacts_json(service: Service, run: Run) -> dict[str, list[dict[str, Any]]]:
    """The artifact versions the run logged (outputs) and used (inputs), oldest first."""
    pairs = await service.store.run_artifacts(run.pk)
    rendered = await artifacts_json(service, [version for _, version in pairs])
    return {"logged": [r for (relation, _), r in zip(pairs, rendered, strict=True) if relation == "logged"],
            "used": [r for (relation, _), r in zip(pairs, rendered, strict=True) if relation == "used"]}


def download(service: Service, sha256: str, size: int, path: str) -> StreamingResponse:
    """The contents as an attachment, streamed a stored chunk at a time. Never rendered by a browser
    (user files on the dashboard's origin could otherwise run script there)."""
    name = path.rsplit("/", 1)[-1]
    fallback = re.sub(r'[^A-Za-z0-9._\-]', "_", name) or "file"
    return StreamingResponse(service.store.read_blob(sha256), media_type="application/octet-stream", headers={
        "Content-Length": str(size),
        "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox", "Cache-Control": "no-store",
        "ETag": f'"{sha256}"', "X-Runwatch-Sha256": sha256})


# Bodies --------------------------------------------------------------------------------------------
class RunFileBody(_Body):
    sha256: Sha256
    kind: Literal["file", "code"] = "file"


class MissingBody(_Body):
    sha256: list[Sha256] = Field(max_length=100_000)


class EntryBody(_Body):
    model_config = ConfigDict(json_schema_extra={"oneOf": [  # what _contents checks, for /openapi.json
        {"required": ["sha256"], "properties": {"sha256": {"type": "string"}}},
        {"required": ["ref"], "properties": {"ref": {"type": "string"}}}]})

    path: Annotated[str, Field(description=_FILE_PATH_DOC, json_schema_extra=_FILE_PATH_SCHEMA)]
    sha256: Sha256 | None = None
    ref: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    size: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER), WHOLE_FLOATS] | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        problem = path_problem(path)
        if problem:
            raise ValueError(f"{problem}")
        return path

    @model_validator(mode="after")
    def _contents(self) -> EntryBody:
        if (self.sha256 is None) == (self.ref is None):
            raise ValueError("an entry needs exactly one of sha256 (uploaded contents) or ref (a URI)")
        return self


class ArtifactBody(_Body):
    name: ArtifactName
    type: ArtifactType = "unspecified"
    description: Annotated[str, Field(max_length=100_000)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    aliases: list[Alias] = Field(default_factory=list, max_length=100)
    entries: list[EntryBody] = Field(default_factory=list, max_length=100_000)
    run_id: RunId | None = None
    """The run that logs (or, with ``use``, uses) it."""
    use: bool = False
    digest: Sha256 | None = None
    """What the client computed; a different digest here is refused (the manifest was altered)."""

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except (TypeError, orjson.JSONEncodeError):
            raise ValueError("metadata must be plain JSON") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON, got {size}")
        return value

    @field_validator("aliases")
    @classmethod
    def _user_aliases(cls, aliases: list[str]) -> list[str]:
        return _user_aliases(aliases)


class UseBody(_Body):
    project: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The artifact's project; default the run's."""
    name: ArtifactName
    version: Annotated[str, Field(min_length=1, max_length=128)] = "latest"
    aliases: list[Alias] = Field(default_factory=list, max_length=100)

    @field_validator("aliases")
    @classmethod
    def _user_aliases(cls, aliases: list[str]) -> list[str]:
        return _user_aliases(aliases)


def _user_aliases(aliases: list[str]) -> list[str]:
    """``latest`` is implied (always the newest version); ``v<N>`` names versions and cannot be an alias."""
    for alias in aliases:
        if re.match(r"^v\d+$", alias):
            raise ValueError(f"{alias!r} names a version; aliases must not look like v<number>")
    return [alias for alias in dict.fromkeys(aliases) if alias != "latest"]


# Routes --------------------------------------------------------------------------------------------
async def _run_or_404(service: Service, project: str, run_id: str) -> Run:
    run = await service.store.get_run(project, run_id)
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}: call init (POST /api/v1/runs) first")
    return run


@router.post("/projects/{project}/blobs/missing", response_model=BlobsToUpload,
             responses=answers(401, 403, 413, 422))
async def missing_blobs(project: str, body: MissingBody, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    """Which of these contents the project has not uploaded yet, and the size limit of one file."""
    require_project(key, project)
    return {"missing": await service.store.missing_blobs(project, body.sha256),
            "max_file_bytes": int(service.settings.files.max_file_bytes)}


@router.head("/projects/{project}/blobs/{sha256}", response_class=Response, responses={
    **answers(401, 403, 422), 200: {"description": "The project has these contents"},
    404: {"description": "The project has not uploaded these contents"}})
async def has_blob(project: str, sha256: Digest, key: CurrentKey, service: CurrentService) -> Response:
    require_project(key, project)
    missing = await service.store.missing_blobs(project, [sha256])
    return Response(status_code=404 if missing else 200)


@router.put("/projects/{project}/blobs/{sha256}", response_model=BlobStored,
             responses=answers(400, 401, 403, 413, 422), openapi_extra={"requestBody": {
                 "required": True, "content": {"application/octet-stream": {
                     "schema": {"type": "string", "format": "binary"}}}}})
async def put_blob(project: str, sha256: Digest, request: Request, key: CurrentKey, service: CurrentService,
                   path: Annotated[str | None, Query(max_length=MAX_PATH_BYTES,
                                                     description="the file's name, for messages")] = None,
                   ) -> dict[str, Any] | JSONResponse:
    """The raw contents as the body; stored if they hash to ``sha256``. Idempotent."""
    require_project(key, project)
    digest = sha256
    limit = int(service.settings.files.max_file_bytes)
    what = f"file {path!r}" if path else f"blob {digest}"

    def too_large(size: int, exact: bool) -> JSONResponse:
        amount = human_size(size) if exact else f"more than {human_size(limit)}"
        return _too_large(f"{what} is {amount}, over the limit files.max_file_bytes = {human_size(limit)} "
                          f"({limit} bytes)", "files.max_file_bytes", path)

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large(int(declared), True)
    hasher = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return too_large(size, False)
                hasher.update(chunk)
                spool.write(chunk)
        except ClientDisconnect:
            raise HTTPException(400, "the upload was cut off before the end of its body") from None
        if hasher.hexdigest() != digest:
            raise _invalid(("path", "sha256"), f"the body ({size} bytes) hashes to {hasher.hexdigest()}, not to the "
                                               "sha256 in the URL: the file changed or was cut short; send it again")
        spool.seek(0)

        def pieces() -> Iterator[bytes]:
            while piece := spool.read(BLOB_CHUNK_BYTES):
                yield piece

        created = await service.store.put_blob(project, digest, size, pieces(), time.time())
    return {"sha256": digest, "size": size, "created": created}


@router.put("/runs/{project}/{run_id}/files/{path:path}", response_model=FileAnswer,
            responses=answers(401, 403, 404, 409, 413, 422))
async def put_run_file(project: str, run_id: str, path: FilePath, body: RunFileBody, key: CurrentKey,
                       service: CurrentService) -> dict[str, Any] | JSONResponse:
    """Store (or replace) the run's file ``path`` with contents uploaded as a blob."""
    require_project(key, project)
    _checked_path(path)
    run = await _run_or_404(service, project, run_id)
    limit = int(service.settings.files.max_run_bytes)
    try:
        stored = await service.store.put_run_file(run.pk, path, body.sha256, body.kind, time.time(),
                                                  max_run_bytes=limit)
    except MissingBlobs:
        return _missing_response(project, [body.sha256], [("body", "sha256")])
    except RunBytesExceeded as exc:
        return _too_large(f"storing file {path!r} ({human_size(exc.adding)}) would bring run {project}/{run_id} "
                          f"to {human_size(exc.stored + exc.adding)}, over the limit files.max_run_bytes = "
                          f"{human_size(limit)} ({limit} bytes)", "files.max_run_bytes", path, ("path", "path"))
    return file_json(stored, run)


@router.get("/runs/{project}/{run_id}/files", response_model=FileList, responses=answers(401, 403, 404, 422))
async def list_run_files(project: str, run_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    return {"files": [file_json(f, run) for f in await service.store.list_run_files(run.pk)]}


@router.get("/runs/{project}/{run_id}/files/{path:path}", response_model=None,
            response_class=StreamingResponse, responses=answers(401, 403, 404, 422, ok=DOWNLOAD))
async def get_run_file(project: str, run_id: str, path: FilePath, key: CurrentKey,
                       service: CurrentService) -> StreamingResponse:
    require_project(key, project)
    _checked_path(path)
    run = await _run_or_404(service, project, run_id)
    stored = await service.store.get_run_file(run.pk, path)
    if stored is None:
        raise HTTPException(404, f"run {project}/{run_id} has no file {path!r}")
    return download(service, stored.sha256, stored.size, path)


@router.post("/projects/{project}/artifacts", response_model=ArtifactLogged,
             responses=answers(401, 403, 404, 409, 413, 422))
async def log_artifact(project: str, body: ArtifactBody, key: CurrentKey,
                       service: CurrentService) -> dict[str, Any] | JSONResponse:
    """A version of ``body.name`` with these entries: the existing one with the same digest, else a new one."""
    require_project(key, project)
    seen: dict[str, int] = {}
    for index, entry in enumerate(body.entries):
        if entry.path in seen:
            raise _invalid(("body", "entries", index, "path"),
                           f"path {entry.path!r} is already entry {seen[entry.path]} of this manifest")
        seen[entry.path] = index
    entries = [ArtifactEntry(path=e.path, sha256=e.sha256, ref=e.ref, size=e.size) for e in body.entries]
    if body.digest is not None and body.digest != (computed := manifest_digest(entries)):
        raise _invalid(("body", "digest"), f"does not match the entries (their digest is {computed})")
    run = await _run_or_404(service, project, body.run_id) if body.run_id is not None else None
    limit = int(service.settings.files.max_run_bytes)
    new = NewArtifact(project=project, name=body.name, type=body.type, description=body.description,
                      metadata=body.metadata, aliases=body.aliases, entries=entries,
                      run_pk=run.pk if run else None, relation="used" if body.use else "logged")
    try:
        version, created = await service.store.add_artifact(new, time.time(), max_run_bytes=limit)
    except MissingBlobs as exc:
        return _missing_response(project, exc.digests, [
            ("body", "entries", i, "sha256") for i, e in enumerate(entries) if e.sha256 in exc.digests])
    except ArtifactTypeConflict as exc:
        raise HTTPException(409, [{"loc": ["body", "type"], "type": "type_conflict",
                                   "msg": f"artifact {exc.name!r} of project {project} is of type {exc.existing!r}, "
                                          f"not {exc.requested!r}"}]) from None
    except RunBytesExceeded as exc:
        assert run is not None
        return _too_large(f"artifact {body.name!r} ({human_size(exc.adding)}) would bring run {project}/{run.id} to "
                          f"{human_size(exc.stored + exc.adding)}, over the limit files.max_run_bytes = "
                          f"{human_size(limit)} ({limit} bytes)", "files.max_run_bytes", None)
    creators = await service.store.get_runs_by_pk([version.created_by] if version.created_by is not None else [])
    return {**artifact_json(version, creators, await service.store.artifact_entries(version.pk)), "created": created}


def _missing_response(project: str, digests: list[str], locs: list[tuple[str | int, ...]]) -> JSONResponse:
    message = (f"no contents with this sha256 were uploaded to project {project}: upload them first "
               f"(PUT /api/v1/projects/{project}/blobs/<sha256>)")
    return JSONResponse({"detail": [{"loc": list(loc), "msg": message, "type": "missing_blob"} for loc in locs],
                         "missing": digests}, status_code=409)


async def _artifact_or_404(service: Service, project: str, name: str, version: str) -> ArtifactVersion:
    found = await service.store.find_artifact(project, name, version)
    if found is None:
        raise HTTPException(404, f"artifact {project}/{name}:{version} does not exist (versions are v0, v1, ...; "
                                 "aliases such as latest)")
    return found


@router.get("/projects/{project}/artifacts/{name}/{version}", response_model=ArtifactManifest,
            responses=answers(401, 403, 404, 422))
async def get_artifact(project: str, name: str, version: str, key: CurrentKey,
                       service: CurrentService) -> dict[str, Any]:
    """The manifest of ``v<N>``, ``latest``, an alias or a digest."""
    require_project(key, project)
    found = await _artifact_or_404(service, project, name, version)
    creators = await service.store.get_runs_by_pk([found.created_by] if found.created_by is not None else [])
    return artifact_json(found, creators, await service.store.artifact_entries(found.pk))


@router.get("/projects/{project}/artifacts/{name}/{version}/files/{path:path}", response_model=None,
            response_class=StreamingResponse, responses=answers(401, 403, 404, 422, ok=DOWNLOAD))
async def get_artifact_file(project: str, name: str, version: str, path: FilePath, key: CurrentKey,
                            service: CurrentService) -> StreamingResponse:
    require_project(key, project)
    _checked_path(path)
    found = await _artifact_or_404(service, project, name, version)
    return await artifact_file_download(service, found, path)


async def artifact_file_download(service: Service, version: ArtifactVersion, path: str) -> StreamingResponse:
    entries = await service.store.artifact_entries(version.pk, path)
    label = f"{version.project}/{version.name}:v{version.version}"
    if not entries:
        raise HTTPException(404, f"artifact {label} has no file {path!r}")
    entry = entries[0]
    if entry.sha256 is None:
        raise HTTPException(404, f"{path!r} of artifact {label} is a reference to {entry.ref}: it has no stored "
                                 "contents")
    return download(service, entry.sha256, entry.size or 0, path)


@router.post("/runs/{project}/{run_id}/artifacts/used", response_model=ArtifactManifest,
             responses=answers(401, 403, 404, 413, 422))
async def use_artifact(project: str, run_id: str, body: UseBody, key: CurrentKey,
                       service: CurrentService) -> dict[str, Any]:
    """Record that the run uses an artifact version (of its project or, with the key's access, another)."""
    require_project(key, project)
    target = body.project or project
    require_project(key, target)
    run = await _run_or_404(service, project, run_id)
    found = await _artifact_or_404(service, target, body.name, body.version)
    used = await service.store.use_artifact(run.pk, found, body.aliases, time.time())
    creators = await service.store.get_runs_by_pk([used.created_by] if used.created_by is not None else [])
    return artifact_json(used, creators, await service.store.artifact_entries(used.pk))


@router.get("/runs/{project}/{run_id}/artifacts", response_model=RunArtifacts,
            responses=answers(401, 403, 404, 422))
async def run_artifacts(project: str, run_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    return await run_artifacts_json(service, run)
