"""``RunwatchCallback`` in real Transformers ``Trainer`` runs (a tiny BERT built from a config, randomly
initialised: nothing is downloaded) against a real service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.sdk_process import history
from tests.e2e.training_process import ended, needs, rules_service, train
from tests.support.service import ServiceProcess

pytestmark = needs("torch", "transformers", "accelerate")

SCRIPT = """
    import torch
    import runwatch
    from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,
                              TrainingArguments)
    from runwatch.integration.transformers import RunwatchCallback

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)

    class Toy(torch.utils.data.Dataset):
        def __init__(self, n):
            generator = torch.Generator().manual_seed(n)
            self.x = torch.randint(0, 50, (n, 8), generator=generator)
            self.y = torch.randint(0, 2, (n,), generator=generator)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"input_ids": self.x[i], "labels": self.y[i]}

    def trainer(callbacks, run_name=None):
        torch.manual_seed(0)
        args = TrainingArguments(output_dir="out", run_name=run_name, max_steps=6, per_device_train_batch_size=4,
                                 logging_steps=2, eval_strategy="steps", eval_steps=3, save_strategy="no",
                                 report_to="none", use_cpu=True, disable_tqdm=True, hub_token="hf_not_a_real_token")
        return Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Toy(24),
                       eval_dataset=Toy(8), callbacks=callbacks)

    # The callback starts its own run and finishes it when training ends; evaluate() afterwards goes on in it.
    callback = RunwatchCallback()
    first = trainer([callback], run_name="tiny-bert")
    first.train()
    print("RUN own", callback.run.id, flush=True)
    print("FINISHED after train", callback.run.finished, flush=True)
    first.evaluate()
    runwatch.finish()

    # The script's own run: the callback logs to it and leaves it running.
    mine = runwatch.init(name="mine")
    trainer([RunwatchCallback()]).train()
    print("RUN mine", mine.id, flush=True)
    print("FINISHED mine after train", mine.finished, flush=True)
    mine.finish()

    # A train() that raises (here a callback, at step 3): the run ends failed.
    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                print("RUN boom", callback.run.id, flush=True)
                raise RuntimeError("boom at step 3")

    callback = RunwatchCallback(name="boom")
    trainer([callback, Boom()]).train()
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, dict[str, str],
                                                                        subprocess.CompletedProcess[str]]]:
    workdir = tmp_path_factory.mktemp("transformers")
    with rules_service(workdir / "service") as service:
        result, runs = train(service, workdir / "script", SCRIPT)
        assert set(runs) == {"own", "mine", "boom"}, result.stderr
        yield service, runs, result


def test_arguments_and_model_config_in_the_run_config(trained: tuple[ServiceProcess, dict[str, str],
                                                                     subprocess.CompletedProcess[str]]) -> None:
    service, runs, result = trained
    run = ended(service, runs["own"], "finished")
    assert run["name"] == "tiny-bert" and run["project"] == "vision"
    config = run["config"]
    # TrainingArguments.to_dict() ...
    assert config["max_steps"] == 6 and config["learning_rate"] == 5e-05 and config["run_name"] == "tiny-bert"
    assert config["per_device_train_batch_size"] == 4 and config["logging_steps"] == 2
    # ... the model's config (nested values flattened) and its size ...
    assert config["hidden_size"] == 16 and config["num_hidden_layers"] == 1 and config["id2label.1"] == "LABEL_1"
    assert config["model/num_parameters"] > 0
    # ... and no secret: the hub token is left out, not masked.
    assert "hub_token" not in config and "hf_not_a_real_token" not in json.dumps(config)
    assert "pad_token_id" in config  # a token *id* is no secret


def test_on_log_metrics_with_the_global_step(trained: tuple[ServiceProcess, dict[str, str],
                                                            subprocess.CompletedProcess[str]]) -> None:
    service, runs, result = trained
    assert "FINISHED after train True" in result.stdout  # its own run ends with train()
    run = ended(service, runs["own"], "finished")
    rows = history(service, runs["own"])
    assert [row["_step"] for row in rows] == list(range(len(rows)))
    assert [row["train/global_step"] for row in rows if "train/loss" in row] == [2, 4, 6]
    assert all({"train/learning_rate", "train/grad_norm", "train/epoch"} <= set(row) for row in rows
               if "train/loss" in row)
    # Two evaluations during train(), one by evaluate() after it (same run, resumed), all at their global step.
    assert [row["train/global_step"] for row in rows if "eval/loss" in row] == [3, 6, 6]
    assert rows[-1]["eval/loss"] == run["summary"]["eval/loss"]
    # End-of-training numbers go to the summary only, as W&B does.
    assert run["summary"]["train_runtime"] > 0 and "train_loss" in run["summary"]
    assert not any("train/train_runtime" in row or "train_runtime" in row for row in rows)


def test_a_run_the_script_started_is_left_running(trained: tuple[ServiceProcess, dict[str, str],
                                                                 subprocess.CompletedProcess[str]]) -> None:
    service, runs, result = trained
    assert "FINISHED mine after train False" in result.stdout
    run = ended(service, runs["mine"], "finished")  # by the script's own finish()
    assert run["name"] == "mine" and run["config"]["max_steps"] == 6
    assert [row["train/global_step"] for row in history(service, runs["mine"]) if "train/loss" in row] == [2, 4, 6]


def test_a_failing_train_fails_the_run(trained: tuple[ServiceProcess, dict[str, str],
                                                      subprocess.CompletedProcess[str]]) -> None:
    service, runs, result = trained
    assert result.returncode == 1 and "RuntimeError: boom at step 3" in result.stderr
    run = ended(service, runs["boom"], "failed")
    assert run["failure_reason"] == "RuntimeError: boom at step 3"
    assert [row["train/global_step"] for row in history(service, runs["boom"])] == [2]
