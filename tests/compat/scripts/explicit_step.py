"""Explicit ``step=``: several calls per step, gaps, ``commit=True``, and a step that went backwards."""

import wandb

run = wandb.init(project="compat-step")
current_step = 0
for batch in range(4):
    run.log({"train-loss": 1.0 / (batch + 1)}, step=current_step)
    run.log({"accuracy": 0.2 * batch}, step=current_step)
    current_step += 1
run.log({"train-loss": 0.1}, step=current_step)
run.log({"accuracy": 0.9}, step=current_step, commit=True)
current_step = 10  # a gap: steps 6..9 are never logged
run.log({"eval/score": 3.5, "eval/diverged": float("inf")}, step=current_step)
run.log({"late": 1.0}, step=7)  # older than the current step: both SDKs drop it with a warning
run.log({"eval/score2": 4.5})  # no step: merges into step 10 and commits it
run.log({"after": 2.0})  # the implicit counter continues after 10
run.finish()
