"""One training step per backend x optimizer, timed by pytest-benchmark (skipped by the default test command).

Run, save and compare (settings: environment variables, see tests/benchmarks/conftest.py)::

    python -m pytest tests/benchmarks --benchmark-only --benchmark-autosave
    python -m pytest tests/benchmarks --benchmark-only --benchmark-compare   # against the last saved run

A step is ``Trainer.train_epoch`` over one batch: the suite's step as the runner calls it, plus the epoch's
metric reset and read-back (one device-to-host copy of three numbers).
"""

from __future__ import annotations

import pytest

BACKENDS = ("keras", "torch")
OPTIMIZERS = ("sgd_l2", "adam_l2", "adamw")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_step(benchmark, make_trainer, bench_settings, backend: str, optimizer: str):
    trainer, batch = make_trainer(backend, optimizer)
    size, images, precision = (bench_settings[k] for k in ("image_size", "batch_size", "precision"))
    benchmark.group = f"train step, {size} px, batch {images}, {precision}"
    benchmark.extra_info.update(bench_settings, backend=backend, optimizer=optimizer)
    metrics = benchmark.pedantic(
        trainer.train_epoch,
        args=([batch],),
        rounds=bench_settings["rounds"],
        warmup_rounds=bench_settings["warmup_rounds"],
        iterations=1,
    )
    assert metrics.images == images
    benchmark.extra_info["images_per_s"] = images / benchmark.stats.stats.median
