"""Runs of one experiment grouped, with a job type, a name, tags and notes (a CV fold as in W&B's docs)."""

import argparse

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--group", default="cv-experiment-1")
parser.add_argument("--fold", type=int, default=0)
args = parser.parse_args()

run = wandb.init(project="compat-groups", group=args.group, job_type="train", name=f"fold-{args.fold}",
                 tags=["cv", f"fold{args.fold}"], notes="k-fold cross validation", config={"fold": args.fold})
for step in range(3):
    run.log({"fold_loss": (args.fold + 1) / (step + 1)})
run.summary["fold_score"] = 0.5 + args.fold / 10
run.finish()

# The evaluation job of the same group, in the same process.
run = wandb.init(project="compat-groups", group=args.group, job_type="eval", name=f"eval-{args.fold}")
run.log({"eval_score": 0.75})
run.finish()
