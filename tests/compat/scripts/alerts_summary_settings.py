"""Settings, explicit summary values, an alert, and a job marking itself preempted before it stops."""

from datetime import timedelta

import wandb

run = wandb.init(project="compat-alerts", settings=wandb.Settings(silent=True))
best = 0.0
for step in range(5):
    acc = [0.2, 0.5, 0.7, 0.3, 0.25][step]
    best = max(best, acc)
    wandb.log({"acc": acc})
    if acc < 0.35 and step > 0:
        wandb.alert(title="Accuracy dropped", text=f"acc {acc} at step {step} is below 0.35",
                    level=wandb.AlertLevel.WARN, wait_duration=timedelta(minutes=5))
wandb.summary["best_acc"] = best
wandb.summary.update({"note": "done", "epochs_run": 5})
run.summary["acc"] = best  # overrides the last logged value
run.mark_preempting()
run.finish()
