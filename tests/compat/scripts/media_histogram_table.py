"""Histograms, a table, a line plot from a table, and an image from an array."""

import numpy as np
import wandb

rng = np.random.default_rng(0)
run = wandb.init(project="compat-media")
for step in range(3):
    weights = rng.normal(loc=step, scale=1.0, size=500)
    wandb.log({"weights": wandb.Histogram(weights), "mean_weight": float(weights.mean())})
counts, edges = np.histogram(rng.uniform(size=200), bins=10)
wandb.log({"np_hist": wandb.Histogram(np_histogram=(counts, edges))})

table = wandb.Table(columns=["x", "y"])
for x in range(10):
    table.add_data(x, x * x)
wandb.log({"squares": table})
wandb.log({"squares_plot": wandb.plot.line(table, "x", "y", title="x squared")})

frame = wandb.Table(columns=["id", "label", "score"], data=[[1, "cat", 0.9], [2, "dog", 0.4]])
wandb.log({"predictions": frame, "image": wandb.Image(rng.random((16, 16, 3)), caption="noise")})
run.finish()
