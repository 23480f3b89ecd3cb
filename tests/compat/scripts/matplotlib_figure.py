"""Matplotlib figures logged as images: ``wandb.Image(fig)`` and ``wandb.Image(plt)``.

W&B's docs also log a bare figure (``wandb.log({"chart": fig})``); the real wandb converts that to a
Plotly chart and fails without ``plotly``, which the test environment does not install, so that form
runs only against Runwatch (``COMPAT_TARGET`` is set by the harness, never by a W&B user).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import wandb  # noqa: E402

run = wandb.init(project="compat-matplotlib")
x = np.linspace(0, 2 * np.pi, 50)
for epoch in range(3):
    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    ax.plot(x, np.sin(x + epoch))
    ax.set_title(f"epoch {epoch}")
    wandb.log({"fig": wandb.Image(fig, caption=f"epoch {epoch}"), "epoch": epoch})
    plt.close(fig)

plt.figure(figsize=(3, 2), dpi=50)
plt.imshow(np.random.default_rng(0).random((8, 8)))
wandb.log({"fig2": wandb.Image(plt), "done": 1})
fig = plt.gcf()
if os.environ.get("COMPAT_TARGET") == "runwatch":
    wandb.log({"fig3": fig})
plt.close("all")
run.finish()
