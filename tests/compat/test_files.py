"""The corpus' file scripts: ``wandb.save`` and artifacts (``log_artifact``, then ``use_artifact`` and
``download`` in a second run). The saved paths and the artifact's manifest must match what the real
wandb recorded offline; the contents must come back byte for byte (docs/protocol.md has the endpoints)."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.compat.harness import (
    compare_all,
    optional_get,
    run_both,
    run_runwatch,
    saved_files,
    service_runs,
)
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

pytest.importorskip("wandb", reason="the corpus compares against the real wandb (test extra)")


def run_files(service: ServiceProcess, project: str, run_id: str, *, script: str) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/runs/{project}/{id}/files``: name -> entry (name, size, sha256, kind, url)."""
    answer = optional_get(service, f"/api/v1/runs/{project}/{run_id}/files", feature="run files (wandb.save)",
                          script=script)
    return {str(item["name"]): item for item in answer["files"]}


def download(service: ServiceProcess, url: str, *, script: str) -> bytes:
    response = service.api("GET", url)
    assert response.status_code == 200, f"{script}: GET {url}: {response.status_code} {response.text[:300]}"
    return response.content


def run_artifacts(service: ServiceProcess, project: str, run_id: str, *, script: str) -> dict[str, list[Any]]:
    """``GET /api/v1/runs/{project}/{id}/artifacts``: the versions the run ``logged`` and ``used``."""
    return dict(optional_get(service, f"/api/v1/runs/{project}/{run_id}/artifacts",
                             feature="artifacts of a run (log_artifact/use_artifact)", script=script))


def test_save_files(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "save_files.py", "compat-save"
    wandb_runs, child = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    expected = saved_files(wandb_run)
    assert expected == ["checkpoints/model.ckpt", "metrics.txt", "notes.txt"], wandb_run.files
    [rw] = service_runs(service, project, 1, script=script)
    compare_all(script, wandb_run, rw)

    files = eventually(lambda: run_files(service, project, rw.id, script=script),
                       lambda found: set(expected) <= set(found), timeout=60,
                       what=f"{script}: the saved files {expected} listed by the service")
    assert sorted(name for name in files if files[name]["kind"] == "file") == expected, (
        f"{script}: the run's files are {sorted(files)}; wandb saved {expected}")
    for name in expected:
        written = (child.cwd / name).read_bytes()
        entry = files[name]
        assert (entry["size"], entry["sha256"]) == (len(written), hashlib.sha256(written).hexdigest()), (
            f"{script}: {name}: the service has {entry}, the script wrote {len(written)} bytes")
        assert download(service, entry["url"], script=script) == written, f"{script}: {name}: contents differ"


def test_artifact_logged_then_used(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "artifact_log.py", "compat-artifacts"
    wandb_runs, _ = run_both(script, service, tmp_path / "log", project)
    [wandb_run] = wandb_runs
    [wandb_artifact] = wandb_run.artifacts
    assert wandb_artifact["files"] == ["README.md", "images/0.txt", "images/1.txt", "train.csv"]
    [rw] = service_runs(service, project, 1, script=script)
    compare_all(script, wandb_run, rw)

    artifacts = run_artifacts(service, project, rw.id, script=script)
    assert artifacts["used"] == [] and len(artifacts["logged"]) == 1, f"{script}: {artifacts}"
    [logged] = artifacts["logged"]
    for field, want in (("name", wandb_artifact["name"]), ("type", wandb_artifact["type"]),
                        ("description", wandb_artifact["description"]), ("metadata", wandb_artifact["metadata"]),
                        ("version", "v0")):
        assert logged[field] == want, f"{script}: artifact {field}: wandb {want!r}, runwatch {logged[field]!r}"
    assert set(wandb_artifact["aliases"]) - {"latest"} <= set(logged["aliases"]), (
        f"{script}: aliases: wandb {wandb_artifact['aliases']}, runwatch {logged['aliases']}")
    manifest = optional_get(service, logged["url"], feature="artifact manifest", script=script)
    entries = {e["path"]: e for e in manifest["entries"]}
    assert sorted(entries) == wandb_artifact["files"], (
        f"{script}: manifest paths: wandb {wandb_artifact['files']}, runwatch {sorted(entries)}")
    sources = {"train.csv": "data/train.csv", "images/0.txt": "data/images/0.txt",
               "images/1.txt": "data/images/1.txt"}
    for path, source in sources.items():
        written = (tmp_path / "log" / "runwatch" / "cwd" / source).read_bytes()
        assert entries[path]["sha256"] == hashlib.sha256(written).hexdigest(), f"{script}: {path}: {entries[path]}"
    readme = download(service, f"{logged['url']}/files/README.md", script=script)
    assert readme == b"# toy dataset\n", f"{script}: README.md written with new_file(): {readme!r}"

    # The consumer: real wandb cannot resolve "toy-dataset:latest" offline, so it runs against Runwatch only.
    use = "artifact_use.py"
    child = run_runwatch(use, service, tmp_path / "use", project)
    [line] = child.lines("DOWNLOADED")
    top, images = ast.literal_eval(line.split(" ", 1)[1].replace("] [", "], ["))
    assert (top, images) == (["README.md", "images", "train.csv"], ["0.txt", "1.txt"]), f"{use}: {line}"
    [_, consumer] = service_runs(service, project, 2, script=use)
    assert consumer.run["job_type"] == "train" and consumer.run["state"] == "finished", consumer.run
    assert [(r["_step"], r.get("rows_read")) for r in consumer.history] == [(0, 2)], consumer.history
    used = run_artifacts(service, project, consumer.id, script=use)
    assert [(a["name"], a["version"]) for a in used["used"]] == [("toy-dataset", "v0")] and not used["logged"], (
        f"{use}: artifacts of the consumer run: {used}")
