"""Argparse hyperparameters as the run's config, the way W&B's examples pass them."""

import argparse
import math

import wandb

parser = argparse.ArgumentParser(description="toy training with argparse config")
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--arch", default="mlp")
args = parser.parse_args()

run = wandb.init(project="compat-argparse", config=args)
wandb.config.update({"dataset": "synthetic", "seed": 7})
wandb.config.setdefaults({"epochs": 99, "optimizer": "sgd"})  # epochs is already set: stays as given

config = wandb.config
loss = 2.0
for epoch in range(config.epochs):
    loss *= math.exp(-config.lr * 10)
    wandb.log({"epoch": epoch, "loss": loss, "lr": config.lr * (0.5 ** epoch),
               "batch_size": config.batch_size})
print("CONFIG", dict(wandb.config))
run.finish()
