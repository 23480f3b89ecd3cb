"""One half of a preempted job: launched twice with WANDB_RUN_ID and WANDB_RESUME=allow."""

import argparse

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--phase", type=int, default=1)
parser.add_argument("--steps", type=int, default=4)
args = parser.parse_args()

run = wandb.init(project="compat-resume", config={"lr": 0.05} if args.phase == 1 else None)
print("START-STEP", run.step, "RESUMED", bool(run.resumed))
if args.phase == 2:
    wandb.config.update({"restarted": True})
for i in range(args.steps):
    wandb.log({"loss": 1.0 / (i + 1) / args.phase, "phase": args.phase})
if args.phase == 1:
    wandb.summary["best_loss"] = 0.25
run.finish()
