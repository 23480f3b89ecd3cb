"""``save``, ``log_code``, artifacts and their downloads through the SDK, against a real service: each
``save`` policy, live re-uploads, outages (uploaded at finish or by ``runwatch sync``), offline runs,
forked children and ``runwatch.Api``."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runwatch
from _sdkutil import QUIET
from runwatch import _uploader, files
from runwatch._log import reset_log_once
from runwatch.sync import sync_path

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

PROJECT = "vision"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("files-sdk-service")) as shared:
        yield shared


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test saves files of its own working directory; live files are looked at often."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(_uploader, "LIVE_POLL_INTERVAL", 0.2)
    return folder


def online(service: ServiceProcess, key: str, **settings: Any) -> runwatch.Run:
    return runwatch.init(project=PROJECT, id=f"f{uuid.uuid4().hex[:10]}",
                         settings={**QUIET, "base_url": service.base_url, "api_key": key, **settings})


def stored(service: ServiceProcess, key: str, run_id: str) -> dict[str, dict[str, Any]]:
    response = service.api("GET", f"/api/v1/runs/{PROJECT}/{run_id}/files", key=key)
    return {f["name"]: f for f in response.json().get("files", [])} if response.status_code == 200 else {}


def contents(service: ServiceProcess, key: str, run_id: str, name: str) -> bytes:
    response = service.api("GET", f"/api/v1/runs/{PROJECT}/{run_id}/files/{name}", key=key)
    assert response.status_code == 200, response.text
    return response.content


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_save_follows_each_policy_and_live_files_go_up_again_when_they_change(service: ServiceProcess,
                                                                               key: str) -> None:
    Path("now.txt").write_text("now v1")
    Path("live.txt").write_text("live v1")
    Path("end.txt").write_text("end v1")
    Path("logs").mkdir()
    for name in ("a.csv", "b.csv", "skip.txt"):
        (Path("logs") / name).write_text(name)
    run = online(service, key)
    assert run.save("now.txt", policy="now") == [str(Path("now.txt").resolve())]
    assert run.save("live.txt") == [str(Path("live.txt").resolve())]
    assert run.save("end.txt", policy="end") == [str(Path("end.txt").resolve())]
    assert run.save("logs/*.csv", base_path="logs", policy="now") == [str(Path("logs/a.csv").resolve()),
                                                                     str(Path("logs/b.csv").resolve())]
    assert run.save("later.txt", policy="live") == []  # not there yet: stored once it is
    with pytest.raises(ValueError):
        run.save("now.txt", policy="sometimes")

    first = {"now.txt", "live.txt", "a.csv", "b.csv"}
    found = eventually(lambda: stored(service, key, run.id), lambda f: first <= set(f), what="the saved files")
    assert "end.txt" not in found and found["live.txt"]["sha256"] == sha(b"live v1")
    Path("live.txt").write_text("live v2, longer")
    eventually(lambda: stored(service, key, run.id).get("live.txt", {}).get("sha256"),
               lambda digest: digest == sha(b"live v2, longer"), what="the changed live file")
    Path("later.txt").write_text("appeared")
    eventually(lambda: stored(service, key, run.id), lambda f: "later.txt" in f,
               what="the file saved before it existed")
    Path("now.txt").write_text("now v2: never uploaded")
    Path("live.txt").write_text("live v3, at finish")
    Path("end.txt").write_text("end v2")
    run.finish()

    final = stored(service, key, run.id)
    assert sorted(final) == ["a.csv", "b.csv", "end.txt", "later.txt", "live.txt", "now.txt"]
    assert contents(service, key, run.id, "now.txt") == b"now v1"
    assert contents(service, key, run.id, "live.txt") == b"live v3, at finish"
    assert contents(service, key, run.id, "end.txt") == b"end v2"
    assert {f["kind"] for f in final.values()} == {"file"}
    assert not (run.dir / _uploader.PENDING_NAME).exists()


def test_log_code_stores_the_sources_but_no_runs_or_environments(service: ServiceProcess, key: str,
                                                                  workdir: Path) -> None:
    for path in ("train.py", "pkg/model.py", "pkg/data.json", "README.md", ".venv/lib/site.py", "env2/tool.py",
                 ".git/hooks/x.py", "pkg/__pycache__/model.py", "node_modules/x.py"):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_text(f"# {path}\n")
    (workdir / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    run = online(service, key, root_dir=str(workdir / "runwatch"))
    (run.dir / "leftover.py").parent.mkdir(parents=True, exist_ok=True)
    (run.dir / "leftover.py").write_text("# in the run directory\n")
    code = run.log_code(".")
    assert code is not None and code.type == "code" and code.name.startswith(f"source-{PROJECT}-")
    assert sorted(code.manifest.entries) == ["pkg/model.py", "train.py"]
    assert code.wait(timeout=60).version == "v0"
    custom = run.log_code(".", name="configs", include_fn=lambda path, root: path.endswith((".py", ".json")),
                          exclude_fn=lambda path: "model" in path)
    assert custom is not None and sorted(custom.manifest.entries) == ["pkg/data.json", "train.py"]
    assert run.log_code("pkg", include_fn=lambda path: path.endswith(".md")) is None  # nothing matched
    run.finish()
    assert custom.version == "v0" and custom.name == "configs:v0"
    found = stored(service, key, run.id)
    assert {name: f["kind"] for name, f in found.items()} == {
        "code/pkg/model.py": "code", "code/train.py": "code", "code/pkg/data.json": "code"}
    assert contents(service, key, run.id, "code/train.py") == b"# train.py\n"
    logged = runwatch.Api(base_url=service.base_url, api_key=key).run(f"{PROJECT}/{run.id}").logged_artifacts()
    assert sorted((a.type, a.version) for a in logged) == [("code", "v0"), ("code", "v0")]


def test_an_artifact_logged_by_one_run_is_used_and_downloaded_by_another(service: ServiceProcess, key: str,
                                                                          workdir: Path, tmp_path: Path) -> None:
    name = f"dataset-{uuid.uuid4().hex[:6]}"
    Path("data/train").mkdir(parents=True)
    Path("data/train/a.txt").write_text("alpha")
    Path("data/train/b.txt").write_text("beta")
    Path("labels.csv").write_text("x,y\n")
    producer = online(service, key)
    artifact = runwatch.Artifact(name, type="dataset", description="toy", metadata={"rows": 2})
    artifact.add_dir("data", name="data")
    artifact.add_file("labels.csv")
    artifact.add_reference("s3://bucket/raw/images.tar")
    with artifact.new_file("notes/readme.txt") as f:
        f.write("made by a test")
    assert artifact.version is None and artifact.name == name
    assert producer.log_artifact(artifact, aliases=["best"]) is artifact
    with pytest.raises(runwatch.UsageError):
        artifact.add_file("labels.csv", name="again.csv")  # logged: its files are fixed
    assert artifact.wait(timeout=60).version == "v0" and artifact.name == f"{name}:v0"
    expected_digest = artifact.digest
    # The same contents in a new object: no new version. Changed contents: v1.
    same = runwatch.Artifact(name, "dataset")
    same.add_dir("data", name="data")
    same.add_file("labels.csv")
    same.add_reference("s3://bucket/raw/images.tar")
    with same.new_file("notes/readme.txt") as f:
        f.write("made by a test")
    assert same.digest == expected_digest  # computed locally, before any upload
    assert producer.log_artifact(same).wait(timeout=60).version == "v0"
    Path("data/train/b.txt").write_text("beta, edited")
    changed = producer.log_artifact("data", name=name, type="dataset")
    assert changed.wait(timeout=60).version == "v1" and changed.aliases == ["latest"]
    Path("model.bin").write_bytes(b"\x00weights\xff")
    producer.log_model("model.bin", name=f"{name}-model", aliases=["prod"])
    producer.finish()

    consumer = online(service, key)
    best = consumer.use_artifact(f"{name}:best")
    assert (best.version, best.type, best.metadata, best.description) == ("v0", "dataset", {"rows": 2}, "toy")
    assert sorted(best.manifest.entries) == ["data/train/a.txt", "data/train/b.txt", "images.tar", "labels.csv",
                                             "notes/readme.txt"]
    assert best.get_entry("images.tar").ref == "s3://bucket/raw/images.tar"
    root = Path(best.download(tmp_path / "best"))
    assert (root / "data/train/b.txt").read_text() == "beta"
    assert (root / "notes/readme.txt").read_text() == "made by a test"
    assert not (root / "images.tar").exists()  # a reference is recorded, never fetched
    assert consumer.use_artifact(f"{PROJECT}/{name}:latest", type="dataset").version == "v1"
    model_path = consumer.use_model(f"{name}-model:prod")
    assert Path(model_path).read_bytes() == b"\x00weights\xff"
    started = time.monotonic()
    with pytest.raises(runwatch.Error, match="does not exist"):
        consumer.use_artifact(f"{name}:v9")
    with pytest.raises(runwatch.Error, match="type"):
        consumer.use_artifact(f"{name}:v0", type="model")
    assert time.monotonic() - started < 60  # bounded by the request timeout, never a hang
    consumer.link_model("model.bin", "registry-name")  # warns once, does nothing
    consumer.finish()

    api = runwatch.Api(base_url=service.base_url, api_key=key)
    used = api.run(f"{PROJECT}/{consumer.id}").used_artifacts()
    assert sorted((a.name, a.type) for a in used) == sorted([(f"{name}:v0", "dataset"), (f"{name}:v1", "dataset"),
                                                             (f"{name}-model:v0", "model")])
    logged = api.run(f"{PROJECT}/{producer.id}").logged_artifacts()
    assert sorted(a.name for a in logged) == sorted([f"{name}:v0", f"{name}:v1", f"{name}-model:v0"])
    v1 = api.artifact(f"{PROJECT}/{name}:v1")
    assert v1.created_by == {"project": PROJECT, "id": producer.id}
    fetched = Path(v1.download(tmp_path / "v1"))
    assert sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*") if p.is_file()) == ["train/a.txt",
                                                                                            "train/b.txt"]
    assert (fetched / "train/b.txt").read_text() == "beta, edited"
    with pytest.raises(runwatch.Error):
        api.artifact(f"{PROJECT}/{name}:nonexistent-alias")


def test_api_lists_and_downloads_run_files(service: ServiceProcess, key: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    Path("weights.pt").write_bytes(os.urandom(300_000))
    run = online(service, key)
    run.save("weights.pt", policy="now")
    run.finish()
    api_run = runwatch.Api(base_url=service.base_url, api_key=key).run(f"{PROJECT}/{run.id}")
    [found] = api_run.files()
    assert (found.name, found.size, found.digest) == ("weights.pt", 300_000, sha(Path("weights.pt").read_bytes()))
    with found.download(tmp_path / "got") as handle:
        assert Path(handle.name).read_bytes() == Path("weights.pt").read_bytes()
    with pytest.raises(ValueError):
        found.download(tmp_path / "got")  # already there
    api_run.file("weights.pt").download(tmp_path / "got", replace=True).close()
    with pytest.raises(runwatch.Error):
        api_run.file("missing.pt")
    monkeypatch.setenv("RUNWATCH_BASE_URL", service.base_url)
    monkeypatch.setenv("RUNWATCH_API_KEY", key)
    restored = runwatch.restore("weights.pt", run_path=f"{PROJECT}/{run.id}", root=tmp_path / "restored")
    assert restored is not None
    restored.close()
    assert (tmp_path / "restored" / "weights.pt").read_bytes() == Path("weights.pt").read_bytes()


def test_a_file_over_the_services_limit_is_reported_once_and_never_raised(service_factory: Any, caplog: Any) -> None:
    small = service_factory({"files": {"max_file_bytes": 1000}}, name="small-files")
    key = small.create_key(PROJECT)
    Path("big.bin").write_bytes(b"x" * 5000)
    Path("ok.txt").write_text("fits")
    run = online(small, key)
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        run.save("big.bin", policy="live")
        run.save("ok.txt", policy="now")
        eventually(lambda: stored(small, key, run.id), lambda f: "ok.txt" in f, what="the small file")
        Path("big.bin").write_bytes(b"y" * 6000)  # changes again: still too large, not reported again
        run.finish()
    reports = [r.getMessage() for r in caplog.records if "big.bin" in r.getMessage()]
    assert len(reports) == 1, reports
    assert "files.max_file_bytes" in reports[0] and "1000 bytes" in reports[0]
    assert sorted(stored(small, key, run.id)) == ["ok.txt"]


def test_files_saved_while_the_service_is_down_go_up_when_it_returns(service_factory: Any) -> None:
    down = service_factory(name="down-then-up")
    key = down.create_key(PROJECT)
    down.stop()
    Path("during.txt").write_text("saved during the outage")
    run = online(down, key, finish_timeout=120)
    run.save("during.txt", policy="now")
    artifact = run.log_artifact("during.txt", name="outage-artifact", type="report")
    time.sleep(1.0)  # the uploader meets the outage at least once
    down.start()
    run.finish()
    assert contents(down, key, run.id, "during.txt") == b"saved during the outage"
    assert artifact.version == "v0"
    assert not (run.dir / _uploader.PENDING_NAME).exists()


def test_files_not_uploaded_by_finish_are_listed_and_synced_later(service_factory: Any) -> None:
    down = service_factory(name="down-for-good")
    key = down.create_key(PROJECT)
    down.stop()
    Path("report.txt").write_text("final report")
    Path("ckpt.bin").write_bytes(b"checkpoint")
    run = online(down, key, finish_timeout=2.0, request_timeout=2.0)
    run.save("report.txt", policy="end")
    artifact = runwatch.Artifact("checkpoint", "model")
    artifact.add_file("ckpt.bin")
    run.log_artifact(artifact, aliases=["last"])
    run.finish()
    pending = _uploader.read_pending(run.dir)
    assert pending is not None and pending["run_id"] == run.id
    assert sorted((i["type"], i["name"]) for i in pending["items"]) == [("artifact", "checkpoint"),
                                                                        ("file", "report.txt")]
    with pytest.raises(runwatch.Error, match="runwatch sync"):
        artifact.wait(timeout=5)
    down.start()
    [result] = sync_path(run.dir, api_key=key)
    assert result.ok, result.error
    assert result.files == 2
    assert contents(down, key, run.id, "report.txt") == b"final report"
    got = down.api("GET", f"/api/v1/projects/{PROJECT}/artifacts/checkpoint/last", key=key)
    assert got.status_code == 200 and got.json()["entries"][0]["path"] == "ckpt.bin"
    assert not (run.dir / _uploader.PENDING_NAME).exists() and (run.dir / _uploader.SYNCED_NAME).exists()
    assert sync_path(run.dir.parent, api_key=key) == []  # nothing left to do


def test_an_offline_run_keeps_copies_in_its_directory_until_sync(service: ServiceProcess, key: str,
                                                                  workdir: Path) -> None:
    Path("metrics.json").write_text('{"acc": 0.9}')
    Path("vocab.txt").write_text("a b c")
    run = runwatch.init(project=PROJECT, mode="offline", settings=QUIET)
    run.log({"acc": 0.9})
    assert run.save("metrics.json", policy="live") == [str(workdir / "metrics.json")]
    artifact = runwatch.Artifact("vocab", "dataset")
    artifact.add_file("vocab.txt")
    run.log_artifact(artifact)
    with pytest.raises(runwatch.Error):
        run.use_artifact("vocab:latest")  # offline: nothing to ask
    run.finish()
    with pytest.raises(runwatch.Error, match="runwatch sync"):
        artifact.wait(timeout=5)
    # The copies are what gets uploaded: the originals may be gone by then.
    Path("metrics.json").unlink()
    Path("vocab.txt").unlink()
    assert len(list((run.dir / _uploader.BLOBS_DIR).iterdir())) == 2
    [result] = sync_path(run.dir, base_url=service.base_url, api_key=key)
    assert result.ok, result.error
    assert (result.records, result.files) == (3, 2)
    assert contents(service, key, run.id, "metrics.json") == b'{"acc": 0.9}'
    vocab = runwatch.Api(base_url=service.base_url, api_key=key).artifact(f"{PROJECT}/vocab:latest")
    assert vocab.created_by == {"project": PROJECT, "id": run.id} and vocab.size == 5


def wait_child(pid: int, *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child was still running after {timeout}s")
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_stores_nothing_for_its_parent(service: ServiceProcess, key: str) -> None:
    Path("parent.txt").write_text("from the parent")
    Path("child.txt").write_text("from the child")
    run = online(service, key)
    run.save("parent.txt", policy="end")
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            seen: list[str] = []
            handler = logging.Handler()
            handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
            logging.getLogger("runwatch").addHandler(handler)
            reset_log_once()
            if run.save("child.txt", policy="now") != []:
                code = 2
            run.log_artifact("child.txt", name="from-child")
            if not files.finish(run, 5.0):
                code = 3
            if not any("forked child process is ignored" in message for message in seen):
                code = 4
        except BaseException:
            code = 1
        os._exit(code)
    assert wait_child(pid, timeout=60) == 0
    run.finish()
    assert sorted(stored(service, key, run.id)) == ["parent.txt"]
    response = service.api("GET", f"/api/v1/projects/{PROJECT}/artifacts/from-child/latest", key=key)
    assert response.status_code == 404


def test_calls_after_finish_are_usage_errors_and_disabled_runs_store_nothing(service: ServiceProcess,
                                                                              key: str) -> None:
    Path("a.txt").write_text("a")
    run = online(service, key)
    run.finish()
    with pytest.raises(runwatch.UsageError):
        run.save("a.txt")
    disabled = runwatch.init(project=PROJECT, mode="disabled", settings=QUIET)
    assert disabled.save("a.txt") == []
    assert disabled.log_artifact("a.txt").version is None
    disabled.finish()
