"""The consumer of ``artifact_log.py``'s dataset: ``use_artifact(...).download()``.

The real wandb needs its server to resolve ``"toy-dataset:latest"`` (offline it cannot), so this script
only runs against Runwatch.
"""

import os

import wandb

run = wandb.init(project="compat-artifacts", job_type="train")
artifact = run.use_artifact("toy-dataset:latest")
path = artifact.download()
with open(os.path.join(path, "train.csv")) as f:
    rows = f.read().splitlines()[1:]
print("DOWNLOADED", sorted(os.listdir(path)), sorted(os.listdir(os.path.join(path, "images"))))
run.log({"rows_read": len(rows)})
run.finish()
