"""Files and artifacts over the HTTP API against a real service: blobs by digest, run files, versioned
artifacts with aliases, size limits answered 413 naming the file and the limit, and bad input 4xx."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.api.files import FILE_PATH_PATTERN, MAX_PATH_BYTES, path_problem
from tests.support.service import ServiceProcess, running_service

MAX_BODY = 4000
MAX_FILE = 6000
MAX_RUN = 20_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    config = {"server": {"max_body_bytes": MAX_BODY}, "files": {"max_file_bytes": MAX_FILE, "max_run_bytes": MAX_RUN}}
    with running_service(tmp_path_factory.mktemp("files-service"), config) as shared:
        yield shared


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key("vision")


@pytest.fixture(scope="module")
def other_key(service: ServiceProcess) -> str:
    return service.create_key("audio")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_run(service: ServiceProcess, key: str, project: str = "vision") -> str:
    run_id = f"r{uuid.uuid4().hex[:10]}"
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": project, "id": run_id})
    assert response.status_code == 200, response.text
    return run_id


def upload(service: ServiceProcess, key: str, data: bytes, project: str = "vision") -> str:
    digest = sha(data)
    response = service.api("PUT", f"/api/v1/projects/{project}/blobs/{digest}", key=key, content=data)
    assert response.status_code == 200, response.text
    return digest


def log_artifact(service: ServiceProcess, key: str, body: dict[str, Any], project: str = "vision") -> httpx.Response:
    return service.api("POST", f"/api/v1/projects/{project}/artifacts", key=key, json=body)


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return detail


def test_a_file_goes_up_once_by_digest_and_comes_back_streamed(service: ServiceProcess, key: str) -> None:
    run = new_run(service, key)
    data = bytes(range(256)) * 20  # 5120 bytes: over server.max_body_bytes, which blob uploads are not held to
    digest = sha(data)
    missing = service.api("POST", "/api/v1/projects/vision/blobs/missing", key=key, json={"sha256": [digest]})
    assert missing.json() == {"missing": [digest], "max_file_bytes": MAX_FILE}
    assert service.api("HEAD", f"/api/v1/projects/vision/blobs/{digest}", key=key).status_code == 404
    first = service.api("PUT", f"/api/v1/projects/vision/blobs/{digest}", key=key, content=data)
    assert first.status_code == 200 and first.json() == {"sha256": digest, "size": len(data), "created": True}
    again = service.api("PUT", f"/api/v1/projects/vision/blobs/{digest}", key=key, content=iter([data[:99], data[99:]]))
    assert again.status_code == 200 and again.json()["created"] is False  # idempotent, chunked bodies too
    assert service.api("HEAD", f"/api/v1/projects/vision/blobs/{digest}", key=key).status_code == 200

    stored = service.api("PUT", f"/api/v1/runs/vision/{run}/files/checkpoints/model.bin", key=key,
                         json={"sha256": digest})
    assert stored.status_code == 200, stored.text
    assert stored.json()["name"] == "checkpoints/model.bin" and stored.json()["size"] == len(data)
    listed = service.api("GET", f"/api/v1/runs/vision/{run}/files", key=key).json()["files"]
    assert [(f["name"], f["size"], f["sha256"], f["kind"]) for f in listed] == [
        ("checkpoints/model.bin", len(data), digest, "file")]
    got = service.api("GET", listed[0]["url"], key=key)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    # Saving the name again replaces it.
    small = upload(service, key, b"smaller")
    assert service.api("PUT", f"/api/v1/runs/vision/{run}/files/checkpoints/model.bin", key=key,
                       json={"sha256": small, "kind": "code"}).status_code == 200
    got = service.api("GET", f"/api/v1/runs/vision/{run}/files/checkpoints/model.bin", key=key)
    assert got.content == b"smaller"
    missing_file = service.api("GET", f"/api/v1/runs/vision/{run}/files/nope.txt", key=key)
    assert missing_file.status_code == 404 and "nope.txt" in missing_file.json()["detail"]


def test_a_body_that_does_not_hash_to_the_digest_is_refused(service: ServiceProcess, key: str) -> None:
    wrong = service.api("PUT", f"/api/v1/projects/vision/blobs/{sha(b'expected')}", key=key, content=b"other")
    assert wrong.status_code == 422
    assert errors(wrong)[0]["loc"] == ["path", "sha256"] and "hashes to" in errors(wrong)[0]["msg"]
    assert service.api("HEAD", f"/api/v1/projects/vision/blobs/{sha(b'expected')}", key=key).status_code == 404
    bad = service.api("PUT", "/api/v1/projects/vision/blobs/NOT-A-DIGEST", key=key, content=b"x")
    assert bad.status_code == 422 and errors(bad)[0]["loc"] == ["path", "sha256"]
    run = new_run(service, key)
    never = service.api("PUT", f"/api/v1/runs/vision/{run}/files/a.txt", key=key, json={"sha256": sha(b"never sent")})
    assert never.status_code == 409 and never.json()["missing"] == [sha(b"never sent")]
    malformed = service.api("PUT", f"/api/v1/runs/vision/{run}/files/a.txt", key=key, json={"sha256": "abc"})
    assert malformed.status_code == 422 and errors(malformed)[0]["loc"] == ["body", "sha256"]


_AS_SCHEMAS_MEAN_IT = re.compile(FILE_PATH_PATTERN.removesuffix("$") + r"\Z")  # JSON Schema's `$`: the very end


@settings(max_examples=1500, deadline=None, database=None)
@given(st.text(st.sampled_from(list("ab:./\\\x00\x1f\x7f\n é")), max_size=9))
def test_the_documented_path_pattern_accepts_what_the_service_accepts(path: str) -> None:
    """/openapi.json shows FILE_PATH_PATTERN (clients and fuzzers go by it); path_problem decides (its
    messages say what is wrong). The two must agree, length aside (bytes, which a pattern cannot count)."""
    assert len(path.encode()) <= MAX_PATH_BYTES
    assert (path_problem(path) is None) == bool(_AS_SCHEMAS_MEAN_IT.match(path)), path


@pytest.mark.parametrize(("raw_path", "path"), [
    ("%2e%2e/%2e%2e/etc/passwd", "../../etc/passwd"), ("a/%2e%2e/b", "a/../b"), ("/etc/passwd", "/etc/passwd"),
    ("a//b", "a//b"), ("a/%2e/b", "a/./b"), ("a%5Cb", "a\\b"), ("c%3A/x", "c:/x"), ("a%00b", "a\x00b")])
def test_paths_that_could_leave_their_folder_are_refused(service: ServiceProcess, key: str, raw_path: str,
                                                         path: str) -> None:
    run = new_run(service, key)
    digest = upload(service, key, b"contents")
    url = f"{service.base_url}/api/v1/runs/vision/{run}/files/{raw_path}"
    headers = {"Authorization": f"Bearer {key}"}
    put = httpx.put(url, json={"sha256": digest}, headers=headers, timeout=30)
    assert put.status_code == 422, put.text
    assert errors(put)[0]["loc"] == ["path", "path"] and "file path" in errors(put)[0]["msg"]
    get = httpx.get(url, headers=headers, timeout=30)
    assert get.status_code == 422, get.text
    entry = log_artifact(service, key, {"name": "bad", "entries": [{"path": path, "sha256": digest}]})
    assert entry.status_code == 422, entry.text
    assert errors(entry)[0]["loc"] == ["body", "entries", 0, "path"]
    assert service.api("GET", f"/api/v1/runs/vision/{run}/files", key=key).json()["files"] == []


def test_files_over_the_limits_get_413_naming_the_file_and_the_limit(service: ServiceProcess, key: str) -> None:
    big = b"x" * (MAX_FILE + 1)
    declared = service.api("PUT", f"/api/v1/projects/vision/blobs/{sha(big)}", key=key, content=big,
                           params={"path": "weights/huge.pt"})
    assert declared.status_code == 413
    [error] = errors(declared)
    assert error["limit"] == "files.max_file_bytes" and error["file"] == "weights/huge.pt"
    assert "'weights/huge.pt'" in error["msg"] and "files.max_file_bytes" in error["msg"]
    assert str(MAX_FILE) in error["msg"]
    streamed = service.api("PUT", f"/api/v1/projects/vision/blobs/{sha(big)}", key=key,
                           content=iter([big[:3000], big[3000:]]), params={"path": "weights/huge.pt"})
    assert streamed.status_code == 413 and errors(streamed)[0]["limit"] == "files.max_file_bytes"
    assert service.api("HEAD", f"/api/v1/projects/vision/blobs/{sha(big)}", key=key).status_code == 404

    run = new_run(service, key)
    chunks = [upload(service, key, bytes([i]) * 5000) for i in range(5)]  # 5 x 5000 bytes > MAX_RUN
    for i, digest in enumerate(chunks[:4]):
        assert service.api("PUT", f"/api/v1/runs/vision/{run}/files/part{i}", key=key,
                           json={"sha256": digest}).status_code == 200
    over = service.api("PUT", f"/api/v1/runs/vision/{run}/files/part4", key=key, json={"sha256": chunks[4]})
    assert over.status_code == 413
    [error] = errors(over)
    assert error["limit"] == "files.max_run_bytes" and error["file"] == "part4"
    assert f"run vision/{run}" in error["msg"] and str(MAX_RUN) in error["msg"]
    # Replacing a file counts its new size, not both.
    assert service.api("PUT", f"/api/v1/runs/vision/{run}/files/part0", key=key,
                       json={"sha256": chunks[4]}).status_code == 200
    artifact = log_artifact(service, key, {"name": "too-much", "run_id": run,
                                           "entries": [{"path": "p", "sha256": chunks[1]}]})
    assert artifact.status_code == 413 and errors(artifact)[0]["limit"] == "files.max_run_bytes"
    # JSON bodies stay under server.max_body_bytes.
    huge = log_artifact(service, key, {"name": "x", "description": "d" * MAX_BODY})
    assert huge.status_code == 413 and "server.max_body_bytes" in errors(huge)[0]["msg"]


def test_a_manifest_naming_contents_not_uploaded_gets_409_listing_them(service: ServiceProcess, key: str) -> None:
    present = upload(service, key, b"present")
    absent = sha(b"absent")
    response = log_artifact(service, key, {"name": "partial", "type": "dataset", "entries": [
        {"path": "a", "sha256": present}, {"path": "b", "sha256": absent}]})
    assert response.status_code == 409
    assert response.json()["missing"] == [absent]
    assert [e["loc"] for e in errors(response)] == [["body", "entries", 1, "sha256"]]
    assert service.api("GET", "/api/v1/projects/vision/artifacts/partial/latest", key=key).status_code == 404


def test_versions_follow_the_contents_and_aliases_move(service: ServiceProcess, key: str) -> None:
    run = new_run(service, key)
    one, two = upload(service, key, b"one"), upload(service, key, b"two")
    name = f"ds-{uuid.uuid4().hex[:6]}"
    entries = [{"path": "train/a.txt", "sha256": one}, {"path": "remote", "ref": "s3://bucket/key"}]
    v0 = log_artifact(service, key, {"name": name, "type": "dataset", "run_id": run, "aliases": ["best"],
                                     "metadata": {"rows": 2}, "description": "first", "entries": entries})
    assert v0.status_code == 200, v0.text
    first = v0.json()
    assert (first["version"], first["created"], first["aliases"]) == ("v0", True, ["latest", "best"])
    assert first["created_by"] == {"project": "vision", "id": run} and first["metadata"] == {"rows": 2}
    assert first["size"] == 3 and first["file_count"] == 2
    # The same contents again (in another order): the same version, nothing new.
    same = log_artifact(service, key, {"name": name, "type": "dataset", "run_id": run, "entries": entries[::-1]})
    assert (same.json()["version"], same.json()["created"], same.json()["digest"]) == ("v0", False, first["digest"])
    changed = log_artifact(service, key, {"name": name, "type": "dataset", "run_id": run, "aliases": ["best"],
                                          "entries": [*entries, {"path": "train/b.txt", "sha256": two}]})
    second = changed.json()
    assert (second["version"], second["created"], second["aliases"]) == ("v1", True, ["latest", "best"])

    def resolve(version: str) -> dict[str, Any]:
        response = service.api("GET", f"/api/v1/projects/vision/artifacts/{name}/{version}", key=key)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert resolve("latest")["version"] == "v1" and resolve("best")["version"] == "v1"
    assert resolve("v0")["aliases"] == [] and resolve(first["digest"])["version"] == "v0"
    assert [e["path"] for e in resolve("v0")["entries"]] == ["remote", "train/a.txt"]
    assert resolve("v0")["entries"][0] == {"path": "remote", "sha256": None, "size": None, "ref": "s3://bucket/key"}
    got = service.api("GET", f"/api/v1/projects/vision/artifacts/{name}/v1/files/train/b.txt", key=key)
    assert got.status_code == 200 and got.content == b"two"
    ref = service.api("GET", f"/api/v1/projects/vision/artifacts/{name}/v0/files/remote", key=key)
    assert ref.status_code == 404 and "s3://bucket/key" in ref.json()["detail"]
    unknown = service.api("GET", f"/api/v1/projects/vision/artifacts/{name}/v7", key=key)
    assert unknown.status_code == 404 and f"{name}:v7" in unknown.json()["detail"]
    # Moving an alias back; an alias that looks like a version is refused; so is another type.
    assert log_artifact(service, key, {"name": name, "type": "dataset", "aliases": ["best"],
                                       "entries": entries}).json()["version"] == "v0"
    assert resolve("best")["version"] == "v0" and resolve("latest")["version"] == "v1"
    versionlike = log_artifact(service, key, {"name": name, "type": "dataset", "aliases": ["v3"], "entries": entries})
    assert versionlike.status_code == 422 and errors(versionlike)[0]["loc"][:2] == ["body", "aliases"]
    other_type = log_artifact(service, key, {"name": name, "type": "model", "entries": entries})
    assert other_type.status_code == 409 and errors(other_type)[0]["loc"] == ["body", "type"]
    assert "'dataset'" in errors(other_type)[0]["msg"]
    # A digest computed by the client must match the entries.
    altered = log_artifact(service, key, {"name": name, "type": "dataset", "digest": "0" * 64, "entries": entries})
    assert altered.status_code == 422 and errors(altered)[0]["loc"] == ["body", "digest"]
    logged = service.api("GET", f"/api/v1/runs/vision/{run}/artifacts", key=key).json()
    assert [a["version"] for a in logged["logged"]] == ["v0", "v1"] and logged["used"] == []


def test_runs_record_the_artifacts_they_use_even_across_projects(service: ServiceProcess, key: str,
                                                                 other_key: str) -> None:
    producer = new_run(service, key)
    digest = upload(service, key, b"weights")
    name = f"model-{uuid.uuid4().hex[:6]}"
    assert log_artifact(service, key, {"name": name, "type": "model", "run_id": producer,
                                       "entries": [{"path": "w.bin", "sha256": digest}]}).status_code == 200
    consumer = new_run(service, key)
    used = service.api("POST", f"/api/v1/runs/vision/{consumer}/artifacts/used", key=key,
                       json={"name": name, "version": "latest", "aliases": ["in-use"]})
    assert used.status_code == 200, used.text
    assert used.json()["version"] == "v0" and used.json()["entries"][0]["path"] == "w.bin"
    assert used.json()["aliases"] == ["latest", "in-use"]
    listed = service.api("GET", f"/api/v1/runs/vision/{consumer}/artifacts", key=key).json()
    assert listed["logged"] == [] and [a["name"] for a in listed["used"]] == [name]
    # A run of another project may use it with a key that reaches both (admin), not with its own.
    elsewhere = new_run(service, other_key, project="audio")
    denied = service.api("POST", f"/api/v1/runs/audio/{elsewhere}/artifacts/used", key=other_key,
                         json={"project": "vision", "name": name})
    assert denied.status_code == 403
    allowed = service.api("POST", f"/api/v1/runs/audio/{elsewhere}/artifacts/used", key=service.admin_key,
                          json={"project": "vision", "name": name, "version": "v0"})
    assert allowed.status_code == 200 and allowed.json()["project"] == "vision"
    missing = service.api("POST", f"/api/v1/runs/vision/{consumer}/artifacts/used", key=key, json={"name": "nothing"})
    assert missing.status_code == 404 and "nothing:latest" in missing.json()["detail"]


def test_another_projects_key_reaches_nothing(service: ServiceProcess, key: str, other_key: str) -> None:
    run = new_run(service, key)
    digest = upload(service, key, b"private contents")
    assert service.api("PUT", f"/api/v1/runs/vision/{run}/files/secret.txt", key=key,
                       json={"sha256": digest}).status_code == 200
    name = f"private-{uuid.uuid4().hex[:6]}"
    assert log_artifact(service, key, {"name": name, "entries": [{"path": "s", "sha256": digest}]}).status_code == 200
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/v1/runs/vision/{run}/files", {}),
        ("GET", f"/api/v1/runs/vision/{run}/files/secret.txt", {}),
        ("GET", f"/api/v1/runs/vision/{run}/artifacts", {}),
        ("HEAD", f"/api/v1/projects/vision/blobs/{digest}", {}),
        ("PUT", f"/api/v1/projects/vision/blobs/{sha(b'mine')}", {"content": b"mine"}),
        ("POST", "/api/v1/projects/vision/blobs/missing", {"json": {"sha256": [digest]}}),
        ("PUT", f"/api/v1/runs/vision/{run}/files/x", {"json": {"sha256": digest}}),
        ("POST", "/api/v1/projects/vision/artifacts", {"json": {"name": "n", "entries": []}}),
        ("GET", f"/api/v1/projects/vision/artifacts/{name}/latest", {}),
        ("GET", f"/api/v1/projects/vision/artifacts/{name}/v0/files/s", {}),
    ]
    for method, path, kwargs in requests:
        response = service.api(method, path, key=other_key, **kwargs)
        assert response.status_code == 403, (method, path, response.status_code)
    # Knowing a digest is not having the contents: its own project must upload them first.
    run_b = new_run(service, other_key, project="audio")
    borrowed = service.api("PUT", f"/api/v1/runs/audio/{run_b}/files/copy.txt", key=other_key,
                           json={"sha256": digest})
    assert borrowed.status_code == 409
    assert log_artifact(service, other_key, {"name": "copy", "entries": [{"path": "s", "sha256": digest}]},
                        project="audio").status_code == 409
    assert service.api("PUT", f"/api/v1/projects/audio/blobs/{digest}", key=other_key,
                       content=b"private contents").json()["created"] is True
    assert service.api("PUT", f"/api/v1/runs/audio/{run_b}/files/copy.txt", key=other_key,
                       json={"sha256": digest}).status_code == 200
    unknown_run = service.api("GET", "/api/v1/runs/vision/no-such-run/files", key=key)
    assert unknown_run.status_code == 404 and "unknown run" in unknown_run.json()["detail"]
    assert httpx.get(f"{service.base_url}/api/v1/runs/vision/{run}/files", timeout=30).status_code == 401


def test_bad_manifests_get_422_naming_the_field(service: ServiceProcess, key: str) -> None:
    digest = upload(service, key, b"x")
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"name": "bad name!", "entries": []}, ["body", "name"]),
        ({"name": "ok", "type": "a/b", "entries": []}, ["body", "type"]),
        ({"name": "ok", "entries": [{"path": "a"}]}, ["body", "entries", 0]),
        ({"name": "ok", "entries": [{"path": "a", "sha256": digest, "ref": "s3://x"}]}, ["body", "entries", 0]),
        ({"name": "ok", "entries": [{"path": "a", "sha256": digest}, {"path": "a", "sha256": digest}]},
         ["body", "entries", 1, "path"]),
        ({"name": "ok", "metadata": {"x": "y" * 70_000}, "entries": []}, ["body"]),
        ({"name": "ok", "run_id": "no such run!", "entries": []}, ["body", "run_id"]),
    ]
    for body, loc in cases:
        response = log_artifact(service, key, body)
        assert response.status_code in (413, 422), (body, response.text)
        if response.status_code == 422:
            assert any(e["loc"][:len(loc)] == loc for e in errors(response)), (loc, response.text)
    not_json = service.api("POST", "/api/v1/projects/vision/artifacts", key=key, content=b"{",
                           headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    unknown = log_artifact(service, key, {"name": "ok", "run_id": "nope", "entries": []})
    assert unknown.status_code == 404 and "unknown run vision/nope" in unknown.json()["detail"]
