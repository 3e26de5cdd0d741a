"""The experiment, backend-neutral: load photos, build the backend's trainer, train epoch by epoch, record.

Reads top to bottom like the seed blog's notebook; everything framework-specific is behind
:class:`bench.backend.Trainer`.
"""

from __future__ import annotations

import logging
import math
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench import data as data_lib
from bench import results
from bench.architecture import CNNSpec, initial_weights
from bench.backend import Trainer, load_backend
from bench.config import RunConfig
from bench.errors import BenchError
from bench.timing import StepTimer, images_per_second

log = logging.getLogger(__name__)


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no ``except Exception`` swallows it."""


@contextmanager
def signals_interrupt_run() -> Iterator[None]:
    """Turn SIGTERM (what schedulers send) into :class:`RunInterrupted`, like Ctrl-C is turned into one."""

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(signal.Signals(signum).name)

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (some launchers): keep the default behaviour
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _epoch(trainer: Trainer, data: data_lib.FlowerData, run: RunConfig, epoch: int, progress: tqdm) -> dict:
    """Train one epoch on this seed's batch order, then evaluate: one metrics.jsonl row."""
    order = data_lib.epoch_order(run.seed, epoch, len(data.train_labels))
    batches = data_lib.iterate_batches(data.train_images, data.train_labels, run.train.batch_size, order)
    steps = StepTimer()  # the same step timing as python -m bench.throughput and the benchmarks

    def on_step(n_images: int) -> None:
        steps(n_images)
        progress.update(n_images)

    started = time.perf_counter()
    train = trainer.train_epoch(batches, on_step=on_step)
    train_time = time.perf_counter() - started
    val = trainer.evaluate(data_lib.iterate_batches(data.val_images, data.val_labels, run.train.batch_size))
    epoch_time = time.perf_counter() - started
    return {
        "epoch": epoch,
        "loss": train.loss,
        "accuracy": train.accuracy,
        "val_loss": val.loss,
        "val_accuracy": val.accuracy,
        "ce_loss": train.ce_loss,
        "val_ce_loss": val.ce_loss,
        "lr": trainer.learning_rate(),
        "epoch_time_s": epoch_time,
        "train_time_s": train_time,
        "eval_time_s": epoch_time - train_time,
        "train_images_per_s": images_per_second(train.images, train_time),
        "step_images_per_s_median": steps.stats().images_per_s,
        "train_images": train.images,
        "steps": data_lib.steps_per_epoch(train.images, run.train.batch_size),
    }


def _train(run: RunConfig, run_dir: Path, history: list[dict], result: dict) -> str:
    """Every epoch of one run; returns the status. Errors in the input surface before any file is written."""
    data = data_lib.load_flowers(run.dataset)
    spec = CNNSpec.from_config(run.model, data.image_size, len(data.class_names))
    trainer_class = load_backend(run.backend.name)
    steps = data_lib.steps_per_epoch(len(data.train_labels), run.train.batch_size)
    trainer = trainer_class(run, spec, initial_weights(spec, run.seed), steps)
    result["environment"] = results.environment(trainer.environment())
    result["data"] = {
        "source": data.source,
        "train_images": len(data.train_labels),
        "val_images": len(data.val_labels),
        "num_classes": len(data.class_names),  # the report's chance level is 1 / num_classes
        "skipped_files": data.skipped_files,  # photos that could not be decoded (README, "The photos")
    }
    label = f"{run.backend.name} {run.optimizer.name} seed={run.seed}"
    writer = results.MetricsWriter(run_dir)
    total = run.train.epochs * len(data.train_labels)
    with tqdm(total=total, desc=label, unit="img", disable=None, dynamic_ncols=True) as progress:
        try:
            for epoch in range(1, run.train.epochs + 1):
                row = _epoch(trainer, data, run, epoch, progress)
                writer.append(row)
                history.append(row)
                progress.set_postfix(loss=f"{row['loss']:.3f}", val_acc=f"{row['val_accuracy']:.3f}")
                log.info(
                    "%s epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f (%.1f img/s)",
                    label, epoch, run.train.epochs, row["loss"], row["accuracy"], row["val_loss"],
                    row["val_accuracy"], row["train_images_per_s"],
                )  # fmt: skip
                if not (math.isfinite(row["loss"]) and math.isfinite(row["val_loss"])):
                    result["diverged_epoch"] = epoch
                    log.warning("%s diverged at epoch %d (non-finite loss); stopping this run", label, epoch)
                    return "diverged"
        finally:
            writer.close()
    return "completed"


# Config sections that do not change what a run computes: a resumed sweep ignores them when it compares.
NOT_EXPERIMENT_KEYS = ("force", "report", "throughput")


# Keys inside a section that change how fast a run goes or where its files live, not what it computes.
NOT_EXPERIMENT_FIELDS = {"dataset": ("cache_dir",), "backend": ("threads",)}


def _experiment_settings(config: dict) -> dict:
    settings = {key: value for key, value in config.items() if key not in NOT_EXPERIMENT_KEYS}
    for section, fields in NOT_EXPERIMENT_FIELDS.items():
        settings[section] = {k: v for k, v in settings.get(section, {}).items() if k not in fields}
    return settings


def is_finished(previous: dict | None, resolved_config: dict) -> bool:
    """A rerun of a sweep skips runs that already completed (or diverged) with the very same settings."""
    if not previous or previous.get("status") not in results.FINISHED_STATUSES:
        return False
    return _experiment_settings(previous.get("config", {})) == _experiment_settings(resolved_config)


def run_experiment(run: RunConfig, run_dir: Path, resolved_config: dict, overrides: list[str]) -> dict:
    """Train one configuration and write its output files (README "Output files"); returns result.json's dict.

    Input errors (:class:`BenchError`) propagate before anything is written; interrupts propagate after the
    finished epochs are on disk; any other error is recorded as ``status: failed`` so a sweep goes on.
    """
    previous = results.read_result(run_dir)
    if not run.force and is_finished(previous, resolved_config):
        log.info("skipping %s: already %s (force=true reruns it)", run_dir, previous["status"])
        return previous
    result: dict[str, Any] = {
        "status": "failed",
        "backend": run.backend.name,
        "optimizer": run.optimizer.name,
    }
    result |= {"seed": run.seed, "epochs_planned": run.train.epochs, "diverged_epoch": None, "error": None}
    result |= {"started_at": results.now_iso(), "config": resolved_config, "overrides": overrides}
    history: list[dict] = []
    started = time.perf_counter()
    try:
        with signals_interrupt_run():
            result["status"] = _train(run, run_dir, history, result)
    except (BenchError, RunInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # a crash of one run must not cost the rest of the sweep
        result["error"] = f"{type(exc).__name__}: {exc}"
        log.error("run %s failed: %s\n%s", run_dir, result["error"], traceback.format_exc())
    result |= results.summarize(history)
    result |= {"wall_time_s": time.perf_counter() - started, "finished_at": results.now_iso()}
    result.setdefault("environment", results.environment({}))
    results.write_result(run_dir, result)
    return result
