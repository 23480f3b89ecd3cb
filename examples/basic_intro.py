# W&B "track experiments" quickstart (basic intro), running against a Runwatch service.
#
#   alerts serve &                                    # or any running service
#   export RUNWATCH_BASE_URL=http://127.0.0.1:8080
#   export RUNWATCH_API_KEY=$(alerts keys create --project basic-intro)
#   python examples/basic_intro.py
#
# The only change from the W&B sample is the import line.
import random

import runwatch as wandb

# Launch 5 simulated experiments
total_runs = 5
for run in range(total_runs):
    # 🐝 1️⃣ Start a new run to track this script
    wandb.init(
        # Set the project where this run will be logged
        project="basic-intro",
        # We pass a run name (otherwise it’ll be randomly assigned, like sunshine-lollypop-10)
        name=f"experiment_{run}",
        # Track hyperparameters and run metadata
        config={
            "learning_rate": 0.02,
            "architecture": "CNN",
            "dataset": "CIFAR-100",
            "epochs": 10,
        })

    # This simple block simulates a training loop logging metrics
    epochs = 10
    offset = random.random() / 5
    for epoch in range(2, epochs):
        acc = 1 - 2 ** -epoch - random.random() / epoch - offset
        loss = 2 ** -epoch + random.random() / epoch + offset

        # 🐝 2️⃣ Log metrics from your script to Runwatch
        wandb.log({"acc": acc, "loss": loss})

    # Mark the run as finished
    wandb.finish()
