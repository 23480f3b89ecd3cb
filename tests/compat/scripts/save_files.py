"""``wandb.save`` of files the script wrote, by glob and by name with a base path."""

import os

import wandb

run = wandb.init(project="compat-save")
with open("notes.txt", "w") as f:
    f.write("first run notes\n")
with open("metrics.txt", "w") as f:
    f.write("loss=0.1\n")
os.makedirs("checkpoints", exist_ok=True)
with open(os.path.join("checkpoints", "model.ckpt"), "wb") as f:
    f.write(b"\x00weights\x01" * 10)
wandb.save("*.txt")
wandb.save(os.path.join("checkpoints", "model.ckpt"), base_path=".")
wandb.log({"loss": 0.1})
run.finish()
