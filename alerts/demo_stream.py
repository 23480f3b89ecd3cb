"""One simulated training run for ``alerts demo`` (``python -m alerts.demo_stream SCENARIO``).

Written like a user's W&B script: only the import differs.
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
    loss, acc = 2.5, 0.1
    for epoch in range(30):
        loss = loss * 0.9 + random.random() * 0.05
        acc = min(0.99, acc + 0.03 + random.random() * 0.01)
        if scenario == "diverging" and epoch >= 12:
            loss = math.nan
        if scenario == "low-accuracy":
            acc = 0.05 + random.random() * 0.05
        wandb.log({"train/loss": loss, "val/accuracy": acc, "epoch": epoch})
        if math.isnan(loss):
            wandb.alert(title="Loss is NaN", text=f"{run.name}: loss diverged at epoch {epoch}",
                        level=wandb.AlertLevel.ERROR)
        if acc < 0.2 and epoch >= 5:
            wandb.alert(title="Low accuracy", text=f"accuracy {acc:.3f} is below 0.2 at epoch {epoch}",
                        level=wandb.AlertLevel.WARN, wait_duration=300)
        if scenario == "crashing" and epoch == 15:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")
        time.sleep(0.1)
    wandb.summary["best_accuracy"] = acc
    wandb.finish()


if __name__ == "__main__":
    main(sys.argv[1])
