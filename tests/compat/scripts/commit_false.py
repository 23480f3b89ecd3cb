"""Several ``commit=False`` calls gathered into one step, closed by a later call or ``log({})``."""

import argparse
import random

import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=6)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
random.seed(args.seed)

wandb.init(project="compat-commit")
wandb.config.update(args)

for step in range(args.steps):
    wandb.log({"train/loss": 1.0 / (step + 1)}, commit=False)
    wandb.log({"train/lr": 0.1 * 0.9 ** step}, commit=False)
    if step % 2 == 0:
        wandb.log({"val": {"loss": 1.5 / (step + 1), "acc": random.random()}}, commit=False)
    if step % 3 == 2:
        wandb.log({})  # close the step with nothing more to add
    else:
        wandb.log({"accuracy": step / args.steps})
wandb.log({"final": 1}, commit=False)  # left pending: finish commits it
wandb.finish()
