"""Run a W&B script of the corpus twice, with the real wandb (offline) and "unmodified but for the
import" against a real Runwatch service, and compare what each side stored.

- :func:`run_wandb` runs the script as written with ``WANDB_MODE=offline`` and reads wandb's own records
  (``wandb_records``).
- :func:`run_runwatch` runs a copy whose only change is the line ``import wandb`` ->
  ``import runwatch as wandb`` against the service, then reads the runs back through the HTTP API.
- :func:`compare_history` and friends assert that both sides committed the same steps with the same
  user keys and numbers; their messages name the script, the step and the key that differ.

Both children run with a fresh working directory, ``HOME`` and run directory of their own, so nothing a
script writes (``wandb.save`` globs, artifact caches, credentials) leaks between them or into the checkout.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.compat.wandb_records import WandbRun, find_runs, flatten, same_number
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TERMINAL_STATES = ("finished", "failed", "crashed", "killed", "stopped")
STDERR_TAIL = 40  # lines of a child's stderr shown when it fails

# Keys only one side logs by design: system metrics, and wandb.watch's per-parameter histograms, which
# Runwatch logs as norms under its own key names (compared by presence in ``compare_watch``).
_SYSTEM = ("system/",)
WATCH_PREFIXES = ("gradients/", "parameters/")
# Files wandb writes into every run's files/ by itself (not the script's wandb.save).
_WANDB_OWN_FILES = {"requirements.txt", "wandb-metadata.json", "output.log", "config.yaml", "wandb-summary.json",
                    "conda-environment.yaml", "diff.patch"}
_IMPORT_LINE = re.compile(r"^import wandb(\s*#.*)?$")


@dataclass
class ChildResult:
    """One child process of the corpus: which script, against which SDK, and what it printed."""

    script: str
    target: str
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def check(self) -> ChildResult:
        assert self.returncode == 0, (
            f"{self.script} ({self.target}) exited with {self.returncode}; stderr tail:\n{tail(self.stderr)}")
        return self

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]


@dataclass
class RunwatchRun:
    """A run as the service stores it: the run object (with events), history rows and media."""

    run: dict[str, Any]
    history: list[dict[str, Any]]
    media: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return str(self.run["id"])

    def steps(self) -> list[int]:
        return [int(row["_step"]) for row in self.history]

    def window(self, first: int, stop: int | None = None) -> RunwatchRun:
        """The same run with only the steps in ``[first, stop)`` (one process' share of a resumed run)."""
        def inside(step: Any) -> bool:
            return int(step) >= first and (stop is None or int(step) < stop)

        return RunwatchRun(run=self.run, history=[r for r in self.history if inside(r["_step"])],
                           media=[m for m in self.media if inside(m["step"])])


def tail(text: str, lines: int = STDERR_TAIL) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join("    " + line for line in kept) or "    (empty)"


def runwatch_copy(script: Path, dest_dir: Path) -> Path:
    """The script with ``import wandb`` replaced by ``import runwatch as wandb`` and nothing else."""
    original = script.read_text("utf-8").splitlines(keepends=True)
    changed = [_IMPORT_LINE.sub(lambda m: "import runwatch as wandb" + (m.group(1) or ""), line.rstrip("\n"))
               + ("\n" if line.endswith("\n") else "") for line in original]
    differing = [i for i, (a, b) in enumerate(zip(original, changed, strict=True)) if a != b]
    assert len(differing) == 1, (f"{script.name}: expected exactly one `import wandb` line to replace, found "
                                 f"{len(differing)} (lines {[i + 1 for i in differing]})")
    assert changed[differing[0]].startswith("import runwatch as wandb")
    dest_dir.mkdir(parents=True, exist_ok=True)
    copy = dest_dir / script.name
    copy.write_text("".join(changed), "utf-8")
    return copy


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RUNWATCH_"))}
    # One thread per numeric library: two children run at once on a 2-core machine.
    env.update(HOME=str(home), MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    home.mkdir(parents=True, exist_ok=True)
    return env


def _run(script: str, target: str, path: Path, args: Iterable[str], env: dict[str, str], cwd: Path,
         timeout: float) -> ChildResult:
    cwd.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, str(path), *args], env=env, cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise AssertionError(f"{script} ({target}) still running after {timeout}s; stderr tail:\n{tail(err)}") \
            from None
    return ChildResult(script, target, done.returncode, done.stdout, done.stderr, cwd)


def run_wandb(script: str, workdir: Path, *args: str, extra_env: dict[str, str] | None = None,
              timeout: float = 240) -> tuple[ChildResult, list[WandbRun]]:
    """The script as written, with the real wandb offline; its runs as wandb recorded them."""
    wandb_dir = workdir / "wandb-dir"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    env = _base_env(workdir / "home")
    env.update(WANDB_MODE="offline", WANDB_DIR=str(wandb_dir), WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
               WANDB_DISABLE_CODE="true", WANDB_CONSOLE="off", WANDB_CACHE_DIR=str(workdir / "wandb-cache"),
               WANDB_DATA_DIR=str(workdir / "wandb-data"), WANDB_CONFIG_DIR=str(workdir / "wandb-config"),
               # No system metrics, machine info or metadata: CPU the comparison has no use for.
               WANDB_X_DISABLE_STATS="true", WANDB_X_DISABLE_META="true", WANDB_X_DISABLE_MACHINE_INFO="true",
               COMPAT_TARGET="wandb", **(extra_env or {}))
    result = _run(script, "wandb", SCRIPTS / script, args, env, workdir / "cwd", timeout).check()
    return result, find_runs(wandb_dir)


def runwatch_env(service: ServiceProcess, workdir: Path, project: str) -> dict[str, str]:
    env = _base_env(workdir / "home")
    env.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=service.admin_key, RUNWATCH_PROJECT=project,
               RUNWATCH_DIR=str(workdir / "rw-dir"), RUNWATCH_SYSTEM_METRICS="0", RUNWATCH_DISABLE_GIT="1",
               COMPAT_TARGET="runwatch")
    return env


def run_runwatch(script: str, service: ServiceProcess, workdir: Path, project: str, *args: str,
                 extra_env: dict[str, str] | None = None, timeout: float = 240,
                 check: bool = True) -> ChildResult:
    """The copy of the script that imports runwatch as wandb, against ``service``."""
    copy = runwatch_copy(SCRIPTS / script, workdir / "src")
    env = {**runwatch_env(service, workdir, project), **(extra_env or {})}
    result = _run(script, "runwatch", copy, args, env, workdir / "cwd", timeout)
    return result.check() if check else result


def run_both(script: str, service: ServiceProcess, workdir: Path, project: str, *args: str,
             extra_env: dict[str, str] | None = None) -> tuple[list[WandbRun], ChildResult]:
    """Both children at once (they share nothing): wandb's runs, and the runwatch child's result."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        wandb_side = pool.submit(run_wandb, script, workdir / "wandb", *args, extra_env=extra_env)
        runwatch_side = pool.submit(run_runwatch, script, service, workdir / "runwatch", project, *args,
                                    extra_env=extra_env)
        return wandb_side.result()[1], runwatch_side.result()


# --- the service's side ---------------------------------------------------------------------------

def _get(service: ServiceProcess, path: str) -> Any:
    response = service.api("GET", path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
    return response.json()


def service_runs(service: ServiceProcess, project: str, count: int, *, script: str) -> list[RunwatchRun]:
    """The project's runs (oldest first) once ``count`` of them have ended; with history and media."""
    def probe() -> list[dict[str, Any]]:
        return list(_get(service, f"/api/v1/runs?project={project}")["runs"])

    try:
        runs = eventually(probe, lambda runs: len(runs) >= count and all(r["state"] in TERMINAL_STATES
                                                                            for r in runs),
                          timeout=120, what=f"{script}: {count} ended run(s) in project {project!r}")
    except AssertionError as exc:
        every = [(r["project"], r["id"], r["state"]) for r in _get(service, "/api/v1/runs")["runs"]]
        raise AssertionError(f"{exc}\n  every run the service has (project, id, state): {every}") from None
    assert len(runs) == count, f"{script}: expected {count} run(s) in {project!r}, the service has {len(runs)}"
    runs.sort(key=lambda run: (_moment(run["started_at"]), _moment(run["created_at"])))
    return [fetch_run(service, project, run["id"]) for run in runs]


def _moment(iso: str | None) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else datetime.min.replace(tzinfo=UTC)


def fetch_run(service: ServiceProcess, project: str, run_id: str) -> RunwatchRun:
    run = _get(service, f"/api/v1/runs/{project}/{run_id}")
    history = _get(service, f"/api/v1/runs/{project}/{run_id}/history?format=json")
    media = _get(service, f"/api/v1/runs/{project}/{run_id}/media")["media"]
    return RunwatchRun(run=run, history=history, media=media)


def optional_get(service: ServiceProcess, path: str, *, feature: str, script: str) -> Any:
    """GET an endpoint that another part of issue 10 adds; a missing route fails naming the feature."""
    response = service.api("GET", path)
    assert response.status_code != 404 or "unknown run" in response.text, (
        f"{script}: runwatch feature missing: {feature} (GET {path} answered 404: {response.text[:200]})")
    assert response.status_code == 200, f"{script}: GET {path}: {response.status_code} {response.text[:500]}"
    return response.json()


# --- comparison -----------------------------------------------------------------------------------

def is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, bool))


def as_number(value: Any) -> float | None:
    """A stored scalar as a float; the service spells non-finite values as strings."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "inf": math.inf,
                "-Infinity": -math.inf, "-inf": -math.inf}.get(value)
    return None


def user_keys(row: dict[str, Any], *, watch: bool = False) -> dict[str, Any]:
    """A row's user data: no ``_`` keys, no system metrics; watch keys only when ``watch``."""
    return {k: v for k, v in row.items()
            if not k.startswith("_") and not k.startswith(_SYSTEM) and k.startswith(WATCH_PREFIXES) == watch}


def chart_keys(wandb_run: WandbRun) -> set[str]:
    """Custom charts (wandb.plot.*, wandb.sklearn.*): wandb logs their data under ``<key>_table`` and
    the chart under the config's ``_wandb.visualize``/``viz``; Runwatch may store either name."""
    meta = wandb_run.config.get("_wandb") or {}
    return set(meta.get("visualize") or {}) | set(meta.get("viz") or {})


def media_by_step(run: RunwatchRun) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for item in run.media:
        out.setdefault(int(item["step"]), {})[str(item["key"])] = item
    return out


def _media_key_matches(wandb_key: str, runwatch_keys: set[str], charts: set[str]) -> str | None:
    if wandb_key in runwatch_keys:
        return wandb_key
    base = wandb_key.removesuffix("_table")
    if base != wandb_key and base in charts and base in runwatch_keys:
        return base
    return None


# wandb's media ``_type`` -> the kind Runwatch should store it as (where the mapping is unambiguous).
MEDIA_KINDS = {"image-file": "image", "histogram": "histogram", "table-file": "table"}


def compare_history(script: str, wandb_run: WandbRun, rw: RunwatchRun, *, step_offset: int = 0,
                    media_kinds: bool = True, optional_media: Iterable[str] = ()) -> None:
    """Same committed steps; per step the same user keys; numbers equal; media present at that step.

    ``step_offset`` shifts wandb's steps (a resumed run continues where the first process stopped; pass
    ``rw.window(...)`` to compare one process' share). ``optional_media`` keys may be missing on
    Runwatch's side (objects it does not store), but if stored, only at wandb's step."""
    optional = set(optional_media)
    wandb_steps = [s + step_offset for s in wandb_run.steps()]
    rw_steps = rw.steps()
    assert rw_steps == wandb_steps, (
        f"{script}: committed steps differ\n  wandb:    {wandb_steps}\n  runwatch: {rw_steps}\n"
        f"  only wandb: {sorted(set(wandb_steps) - set(rw_steps))}, only runwatch: "
        f"{sorted(set(rw_steps) - set(wandb_steps))}")
    rows = {int(row["_step"]): row for row in rw.history}
    media = media_by_step(rw)
    charts = chart_keys(wandb_run)
    for wandb_row in wandb_run.history:
        step = int(wandb_row["_step"]) + step_offset
        expected = user_keys(wandb_row)
        stored = user_keys(rows[step])
        stored_media = {k: v for k, v in media.get(step, {}).items() if not k.startswith(WATCH_PREFIXES)}
        matched_media: set[str] = set()
        for key, value in sorted(expected.items()):
            where = f"{script}: step {step}, key {key!r}"
            if is_scalar(value):
                assert key in stored, (f"{where}: wandb logged {value!r}, runwatch's history row has no such key "
                                       f"(row keys: {sorted(stored)}; media keys: {sorted(stored_media)})")
                got = as_number(stored[key])
                assert got is not None and same_number(float(value), got), (
                    f"{where}: wandb logged {value!r}, runwatch stored {stored[key]!r}")
            else:
                found = _media_key_matches(key, set(stored_media), charts)
                if found is None and key in optional:
                    assert not _elsewhere(media, key, step), (
                        f"{where}: runwatch stored it at steps {_elsewhere(media, key, step)} instead")
                    continue
                assert found is not None, (
                    f"{where}: wandb logged {_kind(value)!r} media, runwatch stored none under that key at this step "
                    f"(media here: {sorted(stored_media)}; media at other steps: {_elsewhere(media, key, step)})")
                matched_media.add(found)
                want = MEDIA_KINDS.get(_kind(value))
                if media_kinds and want is not None and found == key and key.removesuffix("_table") not in charts:
                    assert stored_media[found]["kind"] == want, (
                        f"{where}: wandb logged {_kind(value)!r} media, runwatch stored kind "
                        f"{stored_media[found]['kind']!r} (expected {want!r})")
        extra = sorted(set(stored) - set(expected))
        assert not extra, f"{script}: step {step}: runwatch has keys wandb did not log: {extra}"
        extra_media = sorted(set(stored_media) - matched_media)
        assert not extra_media, f"{script}: step {step}: runwatch has media wandb did not log: {extra_media}"


def wandb_table(wandb_run: WandbRun, value: dict[str, Any]) -> dict[str, Any]:
    """A table wandb logged: its history holds a reference; the table is a JSON file of the run."""
    return dict(json.loads((wandb_run.path.parent / "files" / value["path"]).read_text("utf-8")))


def _cell(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("n", float(f"{float(value):.9g}"))
    return ("v", json.dumps(value, sort_keys=True))


def compare_media(script: str, wandb_run: WandbRun, rw: RunwatchRun, *,
                  skip: Iterable[str] = ()) -> dict[str, int]:
    """The contents of the media both sides stored at the same step and key (``compare_history``
    checks that they are there):

    - tables (``wandb.Table`` and the tables behind ``wandb.plot``/``wandb.sklearn`` charts): same columns,
      same rows in any order (numbers equal whether written as 15 or 15.0);
    - images: same width, height and caption (a figure is rendered at its own size and dpi);
    - histograms: same counts and bin edges.

    Returns how many of each were compared, so a test can pin that its media were looked at."""
    media = media_by_step(rw)
    charts = chart_keys(wandb_run)
    skipped = set(skip)
    compared = {"table-file": 0, "image-file": 0, "histogram": 0}
    for row in wandb_run.history:
        step = int(row["_step"])
        for key, value in row.items():
            kind = _kind(value)
            if kind not in compared or key in skipped or key.startswith(WATCH_PREFIXES):
                continue
            where = f"{script}: step {step}, {kind} {key!r}"
            found = _media_key_matches(key, set(media.get(step, {})), charts)
            assert found is not None, f"{where}: runwatch has no media for it here ({sorted(media.get(step, {}))})"
            got = media[step][found]["value"]
            if kind == "table-file":
                _compare_table(where, wandb_table(wandb_run, value), got)
            elif kind == "image-file":
                want_image = (value.get("width"), value.get("height"), value.get("caption"))
                got_image = (got.get("width"), got.get("height"), got.get("caption"))
                assert got_image == want_image, (
                    f"{where}: (width, height, caption) wandb {want_image}, runwatch {got_image}")
            else:
                assert got.get("values") == value["values"], (
                    f"{where}: counts differ\n  wandb:    {value['values']}\n  runwatch: {got.get('values')}")
                got_bins = got.get("bins") or []
                assert len(got_bins) == len(value["bins"]) and all(
                    same_number(a, b) for a, b in zip(got_bins, value["bins"], strict=True)), (
                    f"{where}: bin edges differ\n  wandb:    {value['bins']}\n  runwatch: {got_bins}")
            compared[kind] += 1
    return {"tables": compared["table-file"], "images": compared["image-file"],
            "histograms": compared["histogram"]}


def _compare_table(where: str, want: dict[str, Any], got: dict[str, Any]) -> None:
    assert got.get("columns") == want["columns"], (
        f"{where}: columns differ\n  wandb:    {want['columns']}\n  runwatch: {got.get('columns')}")
    want_rows = sorted([_cell(c) for c in r] for r in want["data"])
    got_rows = sorted([_cell(c) for c in r] for r in got.get("data") or [])
    assert got_rows == want_rows, f"{where}: rows differ\n  wandb:    {want['data']}\n  runwatch: {got.get('data')}"


def _kind(value: Any) -> str:
    if isinstance(value, dict) and "_type" in value:
        return str(value["_type"])
    return type(value).__name__


def _elsewhere(media: dict[int, dict[str, Any]], key: str, step: int) -> list[int]:
    return sorted(s for s, items in media.items() if s != step and key in items)


def watch_steps(rows: Iterable[dict[str, Any]], prefix: str) -> dict[int, set[str]]:
    """Steps that carry ``prefix`` keys -> the parameter names (the key without the prefix)."""
    out: dict[int, set[str]] = {}
    for row in rows:
        names = {k[len(prefix):] for k in row if k.startswith(prefix)}
        if names:
            out[int(row["_step"])] = names
    return out


def compare_watch(script: str, wandb_run: WandbRun, rw: RunwatchRun) -> None:
    """``watch(log="all")``: presence only. wandb logs histograms under ``gradients/<param>`` and
    ``parameters/<param>``; Runwatch logs norms under its own names (``gradients/norm/<param>``, plus extras
    such as ``gradients/global_norm``), so values and key names are not compared. A Runwatch key names a
    parameter when one of its ``/`` parts is the parameter's name (or starts with it and a separator).

    - gradients: both count backward passes, so the log steps and the parameters must be the same;
    - parameters: wandb counts *forward* passes in a forward hook, so a forward-only pass (an evaluation
      under ``no_grad``) moves its later log points, while Runwatch reads parameter norms at the same
      backward passes as the gradients (its documented design, ``runwatch/watch.py``). Compared: the
      number of log points and the parameters; Runwatch's steps must be its gradient steps.
    """
    rw_rows: dict[int, dict[str, Any]] = {}
    for row in rw.history:
        rw_rows.setdefault(int(row["_step"]), {}).update(row)
    for item in rw.media:
        rw_rows.setdefault(int(item["step"]), {"_step": item["step"]})[item["key"]] = item
    found: dict[str, tuple[dict[int, set[str]], dict[int, set[str]]]] = {}
    for prefix in WATCH_PREFIXES:
        want = watch_steps(wandb_run.history, prefix)
        got = watch_steps(rw_rows.values(), prefix)
        assert want, f"{script}: wandb logged no {prefix}* keys (the corpus script should make it log some)"
        found[prefix] = (want, got)
        if prefix == "gradients/":
            assert sorted(got) == sorted(want), (
                f"{script}: {prefix}* logged at different steps\n  wandb:    {sorted(want)}\n"
                f"  runwatch: {sorted(got)}")
            pairs = [(want[s], got[s], s) for s in sorted(want)]
        else:
            assert len(got) == len(want), (
                f"{script}: {prefix}* logged {len(got)} times by runwatch (steps {sorted(got)}), {len(want)} by "
                f"wandb (steps {sorted(want)})")
            assert sorted(got) == sorted(found["gradients/"][1]), (
                f"{script}: runwatch logged {prefix}* at steps {sorted(got)}, its gradients at "
                f"{sorted(found['gradients/'][1])}")
            pairs = [(want[a], got[b], b) for a, b in zip(sorted(want), sorted(got), strict=True)]
        for params, names, step in pairs:
            missing = sorted(p for p in params if not any(_names_param(n, p) for n in names))
            assert not missing, (f"{script}: step {step}: runwatch has no {prefix}<param> key for {missing} "
                                 f"(runwatch keys there: {sorted(prefix + n for n in names)})")


def _names_param(name: str, param: str) -> bool:
    return any(part == param or part.startswith((param + ".", param + "_")) for part in name.split("/"))


def expected_summary(wandb_run: WandbRun) -> dict[str, Any]:
    """wandb's final summary as Runwatch names it: user scalars, ``define_metric`` aggregates unwrapped
    (wandb keeps ``{"min": 0.4}`` where Runwatch keeps ``0.4``)."""
    out: dict[str, Any] = {}
    for key, value in wandb_run.summary.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict) and "_type" not in value:
            aggregates = {k: v for k, v in value.items() if k in ("min", "max", "mean", "last", "first", "best")}
            if len(aggregates) == 1 and len(value) == 1:
                out[key] = next(iter(aggregates.values()))
                continue
            out.update(flatten(value, f"{key}."))
            continue
        out[key] = value
    return out


def compare_summary(script: str, wandb_run: WandbRun, rw: RunwatchRun, *,
                    ignore: Callable[[str], bool] = lambda key: False) -> None:
    """Every scalar in wandb's summary is in Runwatch's, equal; media entries only by presence."""
    summary = rw.run["summary"] or {}
    for key, value in sorted(expected_summary(wandb_run).items()):
        if ignore(key) or key.startswith(WATCH_PREFIXES):
            continue
        where = f"{script}: summary[{key!r}]"
        if is_scalar(value):
            assert key in summary, f"{where}: wandb has {value!r}, runwatch has no such key ({sorted(summary)})"
            got = as_number(summary[key])
            assert got is not None and same_number(float(value), got), (
                f"{where}: wandb has {value!r}, runwatch has {summary[key]!r}")
        elif isinstance(value, str):
            assert summary.get(key) == value, f"{where}: wandb has {value!r}, runwatch has {summary.get(key)!r}"


def compare_config(script: str, wandb_run: WandbRun, rw: RunwatchRun) -> None:
    want = {k: v for k, v in wandb_run.config.items() if k != "_wandb"}
    got = rw.run["config"] or {}
    assert got == want, (f"{script}: config differs\n  wandb:    {want}\n  runwatch: {got}\n"
                         f"  keys only wandb: {sorted(set(want) - set(got))}, only runwatch: "
                         f"{sorted(set(got) - set(want))}")


def compare_run_fields(script: str, wandb_run: WandbRun, rw: RunwatchRun) -> None:
    """group, job type, tags and notes as both SDKs recorded them; the state is finished."""
    run = rw.run
    assert run["state"] == "finished", (f"{script}: runwatch run {rw.id} is {run['state']!r} "
                                        f"({run.get('failure_reason')})")
    for field_name, want, got in (("group", wandb_run.group, run["group"]),
                                  ("job_type", wandb_run.job_type, run["job_type"]),
                                  ("notes", wandb_run.notes, run["notes"]),
                                  ("tags", sorted(wandb_run.tags), sorted(run["tags"] or []))):
        assert (got or type(want)()) == want, f"{script}: {field_name}: wandb has {want!r}, runwatch has {got!r}"
    if wandb_run.name:
        assert run["name"] == wandb_run.name, f"{script}: name: wandb has {wandb_run.name!r}, runwatch {run['name']!r}"


def compare_all(script: str, wandb_run: WandbRun, rw: RunwatchRun) -> dict[str, int]:
    """The checks every corpus script gets: fields, config, history, summary, and the contents of the
    tables, images and histograms it logged. Returns how many of each kind of media were compared."""
    compare_run_fields(script, wandb_run, rw)
    compare_config(script, wandb_run, rw)
    compare_history(script, wandb_run, rw)
    compare_summary(script, wandb_run, rw)
    return compare_media(script, wandb_run, rw)


def saved_files(wandb_run: WandbRun) -> list[str]:
    """The files the script saved (``wandb.save``), not the ones wandb adds by itself or media."""
    return sorted({f for f in wandb_run.files if f not in _WANDB_OWN_FILES and not f.startswith("media/")})
