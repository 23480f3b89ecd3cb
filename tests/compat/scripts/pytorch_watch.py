"""A PyTorch training loop with ``wandb.watch(model, log="all", log_freq=10)``."""

import argparse

import torch
import wandb
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batches", type=int, default=15)
args = parser.parse_args()

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(args.batches * 16, 8)
y = (X.sum(dim=1, keepdim=True) > 0).float()

model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.BCEWithLogitsLoss()

run = wandb.init(project="compat-torch", config={"lr": 0.1, "epochs": args.epochs})
wandb.watch(model, criterion, log="all", log_freq=10)
example_ct = 0
for epoch in range(args.epochs):
    for batch in range(args.batches):
        xb, yb = X[batch * 16:(batch + 1) * 16], y[batch * 16:(batch + 1) * 16]
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        example_ct += len(xb)
        wandb.log({"epoch": epoch, "loss": loss, "example_ct": example_ct})
    with torch.no_grad():
        accuracy = ((model(X) > 0).float() == y).float().mean()
    wandb.log({"train_accuracy": accuracy.item()})
wandb.unwatch(model)
run.finish()
