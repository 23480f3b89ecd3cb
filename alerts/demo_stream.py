"""One simulated training run for ``alerts demo`` (``python -m alerts.demo_stream SCENARIO``).

Written like a user's W&B script: only the import differs. The metric names match the rule files
shipped in ``config/rules/``, so the demo shows rules firing as well as explicit ``alert()`` calls.
"""

from __future__ import annotations

import math
import random
import sys
import time

import runwatch as wandb


def main(scenario: str) -> None:
    random.seed(scenario)
    run = wandb.init(name=f"demo-{scenario}", config={"lr": 0.01, "epochs": 30, "scenario": scenario},
                     tags=["demo"])
    train_loss, val_loss, acc = 2.5, 2.6, 0.4
    for epoch in range(30):
        train_loss = train_loss * 0.9 + random.random() * 0.02
        val_loss = val_loss * 0.9 + random.random() * 0.02
        acc = min(0.99, acc + 0.03 + random.random() * 0.01)
        if scenario == "diverging" and epoch >= 12:
            train_loss = math.nan
        if scenario == "low-accuracy" and epoch < 18:  # then it recovers: the alert fires and resolves
            acc = 0.05 + random.random() * 0.05
        if scenario == "overfitting" and epoch >= 10:
            train_loss, val_loss = train_loss * 0.7, val_loss + 0.1
        wandb.log({"train/train_loss": train_loss, "val/val_loss": val_loss, "val/val_accuracy": acc,
                   "epoch": epoch})
        if math.isnan(train_loss):
            wandb.alert(title="Loss is NaN", text=f"{run.name}: loss diverged at epoch {epoch}",
                        level=wandb.AlertLevel.ERROR)
        if scenario == "crashing" and epoch == 15:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")
        time.sleep(0.1)
    wandb.summary["best_accuracy"] = acc
    wandb.finish()


if __name__ == "__main__":
    main(sys.argv[1])
