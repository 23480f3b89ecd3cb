"""``define_metric``: summaries other than the last value, and a custom x-axis."""

import wandb

run = wandb.init(project="compat-define-metric")
wandb.define_metric("epoch")
wandb.define_metric("val/*", step_metric="epoch")
wandb.define_metric("val/loss", summary="min")
wandb.define_metric("val/acc", summary="max")
run.define_metric("train/loss", summary="mean")

val_losses = [0.9, 0.4, 0.6, 0.5]
val_accs = [0.5, 0.8, 0.7, 0.75]
for epoch, (val_loss, val_acc) in enumerate(zip(val_losses, val_accs, strict=True)):
    for batch in range(3):
        wandb.log({"train/loss": val_loss + batch * 0.1})
    wandb.log({"epoch": epoch, "val/loss": val_loss, "val/acc": val_acc})
run.finish()
