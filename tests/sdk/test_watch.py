"""``runwatch.watch``: gradient and parameter norms of a real tiny PyTorch model, read back from the spool,
and the shipped gradient rules firing on a model made to explode, through a real service."""

from __future__ import annotations

import copy
import importlib
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import runwatch  # noqa: E402
from _sdkutil import history, offline  # noqa: E402
from runwatch import _session  # noqa: E402
from runwatch.values import decode_float  # noqa: E402

from tests.e2e.sdk_process import history as service_history  # noqa: E402
from tests.e2e.sdk_process import run_script, sdk_env, stored_alerts  # noqa: E402
from tests.support.service import ServiceProcess  # noqa: E402
from tests.support.waiting import eventually  # noqa: E402

# `runwatch.watch` is the function; the module behind it is reached through sys.modules.
watch_module = importlib.import_module("runwatch.watch")
RULES = Path(__file__).resolve().parents[2] / "config" / "rules" / "gradients.yaml"
NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]


def tiny_model(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def batch(seed: int) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)


def loss_of(model: Any, seed: int) -> Any:
    x, y = batch(seed)
    return torch.nn.functional.mse_loss(model(x), y)


def train(model: Any, steps: int, *, log: Callable[[int, float], None] | None = None, lr: float = 0.1) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, i)
        loss.backward()
        opt.step()
        if log is not None:
            log(i, loss.item())


def rows(run: runwatch.Run) -> list[tuple[int, dict[str, Any]]]:
    """(step, data) of every history record the run spooled, non-finite values decoded."""
    return [(r["step"], {k: decode_float(v) for k, v in r["data"].items()}) for r in history(run)]


def hooks(model: Any) -> int:
    """Tensor hooks on the model's parameters plus forward pre-hooks on the model."""
    tensor_hooks = sum(len(p._backward_hooks or {}) for p in model.parameters())
    return tensor_hooks + len(model._forward_pre_hooks)


def expected_norms(model: Any, seed: int) -> dict[str, float]:
    """What watch must log for one backward pass of ``loss_of(model, seed)``, computed by hand."""
    probe = copy.deepcopy(model)
    grads = torch.autograd.grad(loss_of(probe, seed), list(probe.parameters()))
    out = {f"gradients/norm/{name}": g.norm().item() for name, g in zip(NAMES, grads, strict=True)}
    out["gradients/global_norm"] = torch.nn.utils.get_total_norm(list(grads)).item()
    out.update({f"parameters/norm/{name}": p.norm().item() for name, p in zip(NAMES, probe.parameters(), strict=True)})
    return out


def approx(values: dict[str, float]) -> dict[str, Any]:
    return {k: pytest.approx(v, rel=1e-5) for k, v in values.items()}


def watched(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k.startswith(("gradients/", "parameters/"))}


# -- values -----------------------------------------------------------------------------------------
def test_norms_equal_what_torch_computes_and_join_the_logged_step() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="all", log_freq=1)
    expected = [expected_norms(model, 0)]
    snapshot = copy.deepcopy(model)
    train(snapshot, 1)
    expected.append(expected_norms(snapshot, 1))
    train(model, 2, log=lambda i, loss: run.log({"loss": loss}))
    run.finish()
    found = rows(run)
    assert [step for step, _ in found] == [0, 1]
    for (_, data), want in zip(found, expected, strict=True):
        assert "loss" in data  # the norms of a backward pass are in the row the script logs after it
        assert watched(data) == approx(want)


def test_log_freq_counts_backward_passes_and_one_hook_counts_between_log_points() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="gradients", log_freq=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for i in range(7):
        opt.zero_grad()
        loss_of(model, i).backward()
        seen.append(hooks(model))
        opt.step()
        run.log({"loss": 1.0})
    run.finish()
    logged = [step for step, data in rows(run) if "gradients/global_norm" in data]
    assert logged == [2, 5]  # the 3rd and the 6th backward pass
    # One sentinel hook, except after the pass before a log point: a hook per parameter and a forward hook.
    assert seen == [1, 5, 1, 1, 5, 1, 1]


def test_gradient_accumulation_logs_each_backward_pass_gradient_not_the_sum() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="gradients", log_freq=1)
    want = [expected_norms(model, 0), expected_norms(model, 1)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    loss_of(model, 0).backward()
    loss_of(model, 1).backward()  # accumulates into .grad
    accumulated = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
    opt.step()
    run.log({"loss": 1.0})
    run.finish()
    found = rows(run)
    # The first pass's values were still unsent in the open row when the second came: they went out first.
    assert [step for step, _ in found] == [0, 0]
    for (_, data), expected in zip(found, want, strict=True):
        grads = {k: v for k, v in expected.items() if k.startswith("gradients/")}
        assert watched(data) == approx(grads)
    assert found[1][1]["gradients/global_norm"] != pytest.approx(accumulated, rel=1e-3)


@pytest.mark.parametrize(("log", "prefixes"), [
    ("gradients", {"gradients/"}),
    ("parameters", {"parameters/"}),
    ("all", {"gradients/", "parameters/"}),
    (None, set()),
])
def test_log_chooses_gradients_parameters_or_both(log: str | None, prefixes: set[str]) -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log=log, log_freq=2)
    if log is None:
        assert hooks(model) == 0
    train(model, 4, log=lambda i, loss: run.log({"loss": loss}))
    run.finish()
    found = rows(run)
    keys = {k for _, data in found for k in watched(data)}
    assert {k.split("/")[0] + "/" for k in keys} == prefixes
    if "gradients/" in prefixes:
        assert keys >= {"gradients/global_norm", *(f"gradients/norm/{n}" for n in NAMES)}
    if "parameters/" in prefixes:
        assert keys >= {f"parameters/norm/{n}" for n in NAMES}
        assert [step for step, data in found if "parameters/norm/0.weight" in data] == [1, 3]


def test_nan_and_inf_gradients_give_non_finite_norms() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="all", log_freq=1)
    (model(batch(0)[0]).sum() * math.nan).backward()
    run.log({"loss": 1.0})
    model.zero_grad()
    weight = model[2].weight
    (model(batch(0)[0]).sum() + (weight * math.inf).sum()).backward()  # d/dw of w*inf is inf
    run.log({"loss": 2.0})
    run.finish()
    (_, nan_row), (_, inf_row) = rows(run)
    assert all(math.isnan(nan_row[f"gradients/norm/{n}"]) for n in NAMES)
    assert math.isnan(nan_row["gradients/global_norm"])
    assert all(math.isfinite(nan_row[f"parameters/norm/{n}"]) for n in NAMES)
    assert inf_row["gradients/norm/2.weight"] == math.inf
    assert inf_row["gradients/global_norm"] == math.inf
    assert math.isfinite(inf_row["gradients/norm/0.weight"])


def test_histograms_of_gradients_and_parameters() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="all", log_freq=1, histograms=True)
    (model(batch(0)[0]).sum() + (model[2].bias * math.nan).sum()).backward()
    run.log({"loss": 1.0})
    run.finish()
    (_, data), = rows(run)
    sizes = dict(zip(NAMES, (p.numel() for p in model.parameters()), strict=True))
    for section in ("gradients", "parameters"):
        for name, size in sizes.items():
            h = data[f"{section}/hist/{name}"]
            assert h["_type"] == "histogram"
            assert len(h["values"]) == 64 and len(h["bins"]) == 65
            assert sum(h["values"]) + sum(h["nonfinite"].values()) == size
    assert data["gradients/hist/2.bias"]["nonfinite"] == {"nan": 2, "inf": 0, "-inf": 0}
    weight = model[0].weight.detach()
    bins = data["parameters/hist/0.weight"]["bins"]
    assert bins[0] == pytest.approx(weight.min().item()) and bins[-1] == pytest.approx(weight.max().item())


# -- steps --------------------------------------------------------------------------------------------
def test_with_explicit_steps_the_norms_join_the_open_step() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="gradients", log_freq=1)
    want = [expected_norms(model, 0)["gradients/global_norm"]]
    snapshot = copy.deepcopy(model)
    train(snapshot, 1)
    want.append(expected_norms(snapshot, 1)["gradients/global_norm"])
    train(model, 2, log=lambda i, loss: run.log({"loss": loss}, step=10 + i))
    run.finish()
    found = rows(run)
    # W&B's semantics: log(step=s) keeps step s open until a later step is logged, so the norms of the
    # backward pass before it land in the row of the step logged before (step 0 for the first).
    assert [(step, sorted(data)) for step, data in found] == [
        (0, sorted(watched(found[0][1]))), (10, sorted(["loss", *watched(found[1][1])])), (11, ["loss"])]
    assert [found[0][1]["gradients/global_norm"], found[1][1]["gradients/global_norm"]] == pytest.approx(want)


def test_a_script_that_logs_nothing_else_still_sends_every_log_point() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="gradients", log_freq=2)
    train(model, 8)
    run.finish()
    found = rows(run)
    # Four log points, each its own record at the open step (W&B would keep only the last one).
    assert [step for step, _ in found] == [0, 0, 0, 0]
    norms = [data["gradients/global_norm"] for _, data in found]
    assert len(set(norms)) == 4


# -- hooks ----------------------------------------------------------------------------------------------
def test_watching_twice_replaces_the_hooks() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="gradients", log_freq=1)
    once = hooks(model)
    run.watch(model, log="gradients", log_freq=1)
    run.watch(model, log="all", log_freq=2)
    assert hooks(model) == once
    train(model, 4, log=lambda i, loss: run.log({"loss": loss}))
    run.finish()
    found = rows(run)
    assert [step for step, data in found if "parameters/norm/0.weight" in data] == [1, 3]
    assert [step for step, data in found if "gradients/global_norm" in data] == [1, 3]


def test_unwatch_removes_every_hook() -> None:
    run = offline()
    model, other = tiny_model(), tiny_model(1)
    run.watch([model, other], log="all", log_freq=1)
    train(model, 1, log=lambda i, loss: run.log({"loss": loss}))
    run.unwatch(model)
    assert hooks(model) == 0 and hooks(other) > 0
    train(model, 2, log=lambda i, loss: run.log({"loss": loss}))
    run.unwatch()
    assert hooks(other) == 0
    assert watch_module._active_watches(run) == []
    run.finish()
    assert [sorted(watched(data)) != [] for _, data in rows(run)] == [True, False, False]


def test_several_models_get_graph_prefixes() -> None:
    run = offline()
    first, second = tiny_model(), tiny_model(1)
    run.watch([first, second], log="all", log_freq=1)
    (first(batch(0)[0]).sum() + second(batch(1)[0]).sum()).backward()
    run.log({"loss": 1.0})
    run.finish()
    (_, data), = rows(run)
    assert "gradients/global_norm" in data and "gradients/graph_1/global_norm" in data
    assert "gradients/graph_1/norm/0.weight" in data and "parameters/graph_1/norm/2.bias" in data


def test_module_level_watch_and_unwatch_use_the_active_run() -> None:
    run = offline()
    model = tiny_model()
    _session.watch(model, log_freq=1)  # what runwatch.watch is bound to (see the next test)
    train(model, 1, log=lambda i, loss: runwatch.log({"loss": loss}))
    runwatch.unwatch(model)
    assert hooks(model) == 0
    run.finish()
    assert "gradients/global_norm" in rows(run)[0][1]


def test_runwatch_watch_stays_the_function_after_first_use() -> None:
    importlib.import_module("runwatch.watch")
    assert runwatch.watch is _session.watch


def test_bad_arguments_are_refused() -> None:
    run = offline()
    model = tiny_model()
    with pytest.raises(ValueError, match=r"'gradients', 'parameters', 'all' or None, got 'grads'"):
        run.watch(model, log="grads")
    with pytest.raises(ValueError, match="log_freq must be a positive int"):
        run.watch(model, log_freq=0)
    with pytest.raises(TypeError, match=r"torch.nn.Module .*got str"):
        run.watch("model")
    assert hooks(model) == 0


def test_log_graph_is_ignored_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    run = offline()
    model = tiny_model()
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        run.watch(model, log_graph=True)
        run.watch(model, log_graph=True)
    assert sum("log_graph" in r.getMessage() for r in caplog.records) == 1
    assert hooks(model) > 0


def test_a_disabled_run_installs_nothing() -> None:
    run = runwatch.init(project="p", mode="disabled")
    model = tiny_model()
    watch_module.watch(run, model, log="all", log_freq=1)
    assert hooks(model) == 0


def test_after_finish_the_hooks_go_away_without_touching_training() -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="all", log_freq=2)
    run.finish()
    train(model, 4)
    assert hooks(model) == 0


def test_internal_errors_never_reach_the_training_loop(caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = offline()
    model = tiny_model()
    run.watch(model, log="all", log_freq=1)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "log", broken)
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        train(model, 3)
    assert hooks(model) == 0
    assert sum("boom" in r.getMessage() for r in caplog.records) == 1


class _FailOnce(torch.autograd.Function):
    """Identity whose backward raises the first time (an OOM a training loop catches and skips)."""

    armed = True

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        if _FailOnce.armed:
            _FailOnce.armed = False
            raise RuntimeError("out of memory (simulated)")
        return grad


def test_a_backward_pass_that_raised_does_not_stop_the_counting() -> None:
    run = offline()
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 2)
    body = torch.nn.Linear(4, 8)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = body, head

        def forward(self, x: Any) -> Any:
            return self.head(_FailOnce.apply(self.body(x)))

    model = Net()
    run.watch(model, log="gradients", log_freq=1)
    x = batch(0)[0]
    with pytest.raises(RuntimeError, match="simulated"):
        model(x).sum().backward()  # the head's gradient arrived, then the pass died before its end
    model.zero_grad()
    model(x).sum().backward()
    run.log({"loss": 1.0})
    model.zero_grad()
    model(x).sum().backward()
    run.log({"loss": 2.0})
    run.finish()
    found = [data for _, data in rows(run)]
    assert [sorted(k for k in data if k.startswith("gradients/norm/")) for data in found] == \
        [["gradients/norm/body.bias", "gradients/norm/body.weight", "gradients/norm/head.bias",
          "gradients/norm/head.weight"]] * 2


# -- end to end: the shipped rules, a real model made to explode, a real service ----------------------------
EXPLODE = """
    import torch, runwatch
    torch.manual_seed(0)
    run = runwatch.init(id="explode", name="explode")
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    runwatch.watch(model, log="all", log_freq=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    for step in range(45):
        if step == 30:  # a learning-rate schedule gone wrong: the loss explodes, then turns NaN
            for group in opt.param_groups:
                group["lr"] = 5.0
        loss = torch.nn.functional.mse_loss(model(x + 0.1 * torch.randn_like(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        runwatch.log({"train/loss": loss.item()})
    runwatch.finish()
"""


def test_an_exploding_model_fires_the_gradient_rules(service_factory: Callable[..., ServiceProcess],
                                                     tmp_path: Path) -> None:
    service = service_factory({"rule_files": [str(RULES)]})
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script(EXPLODE, env, timeout=300)
    assert result.returncode == 0, result.stderr

    wanted = {"gradients-exploding", "gradient-norm-high", "gradients-not-finite"}
    found = eventually(lambda: stored_alerts(service, "explode"),
                       lambda alerts: wanted <= {a["rule"] for a in alerts},
                       timeout=120, what="the gradient alerts of run explode")
    rules = {a["rule"] for a in found}
    assert "gradients-vanishing" not in rules
    exploding = next(a for a in found if a["rule"] == "gradients-exploding")
    assert exploding["metric"] == "gradients/global_norm" and exploding["severity"] == "error"
    assert exploding["step"] >= 30  # nothing before the learning rate went wrong
    not_finite = {a["metric"] for a in found if a["rule"] == "gradients-not-finite"}
    assert "gradients/global_norm" in not_finite and "gradients/norm/0.weight" in not_finite
    rows = service_history(service, "explode")
    assert len(rows) == 45
    norms = [row.get("gradients/global_norm") for row in rows]
    assert all(isinstance(n, float) and 0 < n < 1000 for n in norms[:30])
    assert norms[-1] == "NaN"
