"""Fixtures of the step benchmarks: a real Trainer, built from the real config, and one synthetic batch.

The benchmarks' settings come from environment variables, so the pytest command line stays the same across
commits (and a saved run says what it timed in each benchmark's ``extra_info``):

- ``FLOWERBENCH_BENCH_IMAGE_SIZE``: image side in pixels (default 64; 180 is the seed blog's size)
- ``FLOWERBENCH_BENCH_BATCH``: images per step (default 32)
- ``FLOWERBENCH_BENCH_PRECISION``: ``fp32`` (default) or ``bf16``
- ``FLOWERBENCH_BENCH_THREADS``: intra-op threads (default: all cores, as ``backend.threads=null``)
- ``FLOWERBENCH_BENCH_ROUNDS``: timed steps per benchmark (default 10), after 2 warm-up steps
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_dir

from bench.backend import Batch, Trainer, build_trainer
from bench.config import CONFIG_DIR, register_configs, validate
from bench.errors import BackendUnavailableError
from bench.throughput import synthetic_images, synthetic_spec

IMAGE_SIZE = int(os.environ.get("FLOWERBENCH_BENCH_IMAGE_SIZE", "64"))
BATCH = int(os.environ.get("FLOWERBENCH_BENCH_BATCH", "32"))
PRECISION = os.environ.get("FLOWERBENCH_BENCH_PRECISION", "fp32")
THREADS = os.environ.get("FLOWERBENCH_BENCH_THREADS", "null")
ROUNDS = int(os.environ.get("FLOWERBENCH_BENCH_ROUNDS", "10"))
WARMUP_ROUNDS = 2  # graph tracing, oneDNN kernel selection and first-touch allocations happen here


@pytest.fixture
def bench_settings() -> dict[str, int | str]:
    """What every benchmark times (saved in its ``extra_info``), and how many steps it times."""
    return {
        "image_size": IMAGE_SIZE, "batch_size": BATCH, "precision": PRECISION, "threads": THREADS,
        "rounds": ROUNDS, "warmup_rounds": WARMUP_ROUNDS,
    }  # fmt: skip


@pytest.fixture
def make_trainer() -> Callable[[str, str], tuple[Trainer, Batch]]:
    """``make_trainer(backend, optimizer)``: that backend's Trainer on the composed config, and one batch.

    Skips the test when the backend's framework is not installed.
    """

    def _make(backend: str, optimizer: str) -> tuple[Trainer, Batch]:
        overrides = [f"backend={backend}", f"optimizer={optimizer}", f"dataset.image_size={IMAGE_SIZE}"]
        overrides += [
            f"train.batch_size={BATCH}",
            f"train.precision={PRECISION}",
            f"backend.threads={THREADS}",
        ]
        register_configs()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            run = validate(compose(config_name="config", overrides=overrides))
        spec = synthetic_spec(run)  # as python -m bench.throughput builds it: the dataset's classes
        try:
            trainer = build_trainer(run, spec, steps_per_epoch=1)
        except BackendUnavailableError as exc:
            pytest.skip(str(exc))
        return trainer, synthetic_images(BATCH, spec, run.seed)

    return _make
