"""Shared fixtures: the real Hydra config, shrunk; tiny photo trees; the real photos through FLOWER_PHOTOS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from bench.architecture import CNNSpec
from bench.config import RunConfig, register_configs, validate

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")

# Small enough to train in well under a second per epoch, big enough for two conv blocks.
TINY = ["dataset.image_size=16", "train.batch_size=8", "train.epochs=2"]


def make_photo_tree(root: Path, per_class: int = 6, size: int = 24) -> Path:
    """A flower_photos-style tree of JPEGs whose colour depends on the class, so a model can learn them."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.array([50 * label, 255 - 40 * label, 120], np.float64)
            pixels = np.clip(base + rng.normal(0, 30, (size, size + i, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:03d}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory) -> Path:
    """A read-only-by-convention tiny photo tree shared by the session (copy it before changing it)."""
    return make_photo_tree(tmp_path_factory.mktemp("flower_photos"))


@pytest.fixture(scope="session")
def real_photos() -> Path:
    """The real tf_flowers photos, found through FLOWER_PHOTOS (.ci/run sets it)."""
    path = os.environ.get("FLOWER_PHOTOS")
    if not path or not Path(path).is_dir():
        pytest.skip("FLOWER_PHOTOS is not set to the flower_photos folder")
    return Path(path)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def compose_config(tiny_photos, cache_dir):
    """Compose the real config (conf/config.yaml) with the tiny photos, plus any overrides."""
    register_configs()

    def _compose(*overrides: str, shrink: bool = True):
        base = [f"dataset.path={tiny_photos}", f"dataset.cache_dir={cache_dir}"] + (TINY if shrink else [])
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=base + list(overrides), return_hydra_config=False)

    return _compose


def compose_run(*overrides: str) -> RunConfig:
    """The validated run config of conf/config.yaml with ``overrides``, composed as a run's is."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def l2_penalty(weights: dict[str, np.ndarray], spec: CNNSpec, l2: float) -> float:
    """``l2 * sum(kernel**2)`` in float64: the term Keras' l2 regularizers add to the loss, as a reference."""
    return float(l2 * sum(np.sum(weights[name].astype(np.float64) ** 2) for name in spec.kernel_names()))


def run_cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a subprocess, as a user runs it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Loaded by every Python process that has its folder on PYTHONPATH, launcher workers included: seed 1's
# training crashes, as a bug or a lost device would, inside whichever process runs the job.
CRASH_SEED_1 = """
import bench.backend as backend

real_load_backend = backend.load_backend


def load_backend_that_crashes_seed_1(name):
    trainer_class = real_load_backend(name)

    class CrashingTrainer(trainer_class):
        def train_epoch(self, batches, on_step=None):
            if self.run.seed == 1:
                raise RuntimeError("simulated crash in seed 1")
            return super().train_epoch(batches, on_step)

    return CrashingTrainer


backend.load_backend = load_backend_that_crashes_seed_1
"""


def crash_seed_1_env(tmp_path: Path) -> dict[str, str]:
    """Environment for :func:`run_cli` in which every run with seed 1 crashes mid-training."""
    folder = tmp_path / "crash"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(CRASH_SEED_1)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
