"""Media types Runwatch resolves without supporting (it warns once per name): Html, Video, Object3D.

The scalars around them must still land on the same steps as with wandb.
"""

import numpy as np
import wandb
from PIL import Image as PILImage

frames = [PILImage.fromarray(np.full((8, 8, 3), 60 * i, dtype=np.uint8)) for i in range(3)]
frames[0].save("clip.gif", save_all=True, append_images=frames[1:], duration=100)

run = wandb.init(project="compat-unsupported")
run.log({"loss": 0.5})
run.log({"report": wandb.Html("<p>report <b>ok</b></p>"), "loss": 0.4})
run.log({"clip": wandb.Video("clip.gif", caption="three frames"), "loss": 0.3})
run.log({"points": wandb.Object3D(np.random.default_rng(0).random((10, 3))), "loss": 0.2})
run.log({"loss": 0.1})
run.finish()
