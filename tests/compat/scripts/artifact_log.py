"""A dataset versioned as an artifact: files, a directory, a new file and metadata."""

import os

import wandb

os.makedirs("data/images", exist_ok=True)
with open("data/train.csv", "w") as f:
    f.write("x,y\n1,2\n3,4\n")
for i in range(2):
    with open(f"data/images/{i}.txt", "w") as f:
        f.write(f"image {i}\n")

run = wandb.init(project="compat-artifacts", job_type="upload-dataset")
artifact = wandb.Artifact("toy-dataset", type="dataset", description="two rows and two images",
                          metadata={"rows": 2, "source": "synthetic"})
artifact.add_file("data/train.csv")
artifact.add_dir("data/images", name="images")
with artifact.new_file("README.md") as f:
    f.write("# toy dataset\n")
run.log_artifact(artifact, aliases=["latest", "v-test"])
run.log({"rows": 2})
run.finish()
