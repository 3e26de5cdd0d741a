"""A run stopped early and continued from its checkpoint is the run trained straight through (bench/checkpoint.py).

This is what makes successive halving's promotions free (bench/protocol/halving.py): a trial promoted from 1 to 3
epochs trains epochs 2 and 3 only, and scores what its 3-epoch run would have scored. Checked on both backends,
with dropout on (the random generators' state), momentum under a schedule (torch's rescaled buffer) and Adam's
moments, to the last bit of every epoch's metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench import results
from bench.config import validate
from bench.errors import ConfigError
from bench.runner import run_experiment

TIMING = {"epoch_time_s", "train_time_s", "eval_time_s", "train_images_per_s", "step_images_per_s_median"}


def train(compose_config, run_dir: Path, *overrides: str) -> dict:
    cfg = compose_config("train.epochs=3", "dataset.test_fraction=0.2", *overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_experiment(validate(cfg), run_dir, resolved, list(overrides))


def curve(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in results.read_metrics(run_dir)]


@pytest.mark.parametrize(
    "backend, optimizer",
    [
        ("torch", ["optimizer=sgd_l2", "schedule=cosine"]),
        ("torch", ["optimizer=adamw"]),
        ("keras", ["optimizer=sgd_l2", "schedule=cosine"]),
        ("keras", ["optimizer=adamw"]),
        # BatchNorm's moving statistics are state too
        (
            "torch",
            ["optimizer=sgd_l2", "model=resnet", "model.blocks_per_stage=1", "model.stage_filters=[4,8]"],
        ),
        (
            "keras",
            ["optimizer=adamw", "model=resnet", "model.blocks_per_stage=1", "model.stage_filters=[4,8]"],
        ),
    ],
)
def test_a_continued_run_is_the_run_trained_straight_through(compose_config, tmp_path, backend, optimizer):
    dropout = [] if "model=resnet" in optimizer else ["model.dropout=0.3"]
    common = [f"backend={backend}", *dropout, *optimizer]
    straight = train(compose_config, tmp_path / "straight", *common)
    first = train(compose_config, tmp_path / "first", *common, "train.stop_epoch=1")
    assert (
        first["epochs_completed"] == 1 and "test_accuracy" not in first["final"]
    )  # no test split before the end
    assert json.loads((tmp_path / "first" / "checkpoint" / "checkpoint.json").read_text()) == {"epoch": 1}
    middle = train(
        compose_config,
        tmp_path / "middle",
        *common,
        "train.stop_epoch=2",
        f"train.continue_from={tmp_path / 'first'}",
    )
    rest = train(compose_config, tmp_path / "rest", *common, f"train.continue_from={tmp_path / 'middle'}")
    assert curve(tmp_path / "rest") == curve(tmp_path / "straight")  # every epoch, to the bit
    assert rest["final"] == straight["final"] and rest["final"]["test_accuracy"] is not None
    assert rest["continued_from"] == {"run_dir": str(tmp_path / "middle"), "epoch": 2}
    assert middle["continued_from"]["epoch"] == 1 and straight["continued_from"] is None
    assert not (tmp_path / "rest" / "checkpoint").exists()  # a full-length run leaves none
    # the continued run trained its last epoch only: its own images are one epoch's
    trained = [row["train_images"] for row in results.read_metrics(tmp_path / "rest") if row["epoch"] > 2]
    assert len(trained) == 1


def test_continuing_another_experiment_or_a_longer_run_is_refused(compose_config, tmp_path):
    train(compose_config, tmp_path / "first", "backend=torch", "train.stop_epoch=1")
    with pytest.raises(ConfigError, match="another experiment"):
        train(
            compose_config,
            tmp_path / "x",
            "backend=torch",
            "seed=1",
            f"train.continue_from={tmp_path / 'first'}",
        )
    with pytest.raises(ConfigError, match="nothing to continue"):
        train(
            compose_config, tmp_path / "y", "backend=torch", "train.stop_epoch=1",
            f"train.continue_from={tmp_path / 'first'}",
        )  # fmt: skip
    with pytest.raises(ConfigError, match="not a completed run"):
        train(compose_config, tmp_path / "z", "backend=torch", f"train.continue_from={tmp_path / 'nowhere'}")
    assert not (tmp_path / "x" / results.RESULT_FILE).exists()


def test_a_checkpoint_deleted_to_save_disk_means_training_from_the_start(compose_config, tmp_path):
    train(compose_config, tmp_path / "first", "backend=torch", "train.stop_epoch=1")
    straight = train(compose_config, tmp_path / "straight", "backend=torch")
    (tmp_path / "first" / "checkpoint" / "checkpoint.json").unlink()
    rest = train(
        compose_config, tmp_path / "rest", "backend=torch", f"train.continue_from={tmp_path / 'first'}"
    )
    assert rest["continued_from"] is None and rest["final"] == straight["final"]
