"""The experiment, backend-neutral: load photos, build the backend's trainer, train epoch by epoch, record.

Reads top to bottom like the seed blog's notebook; everything framework-specific is behind
:class:`bench.backend.Trainer`.
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from bench import checkpoint, results, tracking
from bench import data as data_lib
from bench.architecture import model_spec
from bench.backend import Trainer, build_trainer
from bench.config import EXPERIMENT_KEYS, RunConfig, at_parity
from bench.errors import BenchError, DiskFullError, is_disk_full
from bench.experiment import flatten
from bench.pruning import EpochHook
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


def _epoch(
    trainer: Trainer, data: data_lib.ImageData, run: RunConfig, epoch: int, progress: tqdm
) -> results.EpochRecord:
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
    test = {}
    if data.test_labels is not None and epoch == run.train.epochs:  # held out: evaluated once, at the end
        metrics = trainer.evaluate(
            data_lib.iterate_batches(data.test_images, data.test_labels, run.train.batch_size)
        )
        test = {"test_loss": metrics.loss, "test_accuracy": metrics.accuracy, "test_ce_loss": metrics.ce_loss}
    return results.EpochRecord(
        epoch=epoch,
        loss=train.loss,
        accuracy=train.accuracy,
        val_loss=val.loss,
        val_accuracy=val.accuracy,
        ce_loss=train.ce_loss,
        val_ce_loss=val.ce_loss,
        lr=trainer.learning_rate(),
        epoch_time_s=epoch_time,
        train_time_s=train_time,
        eval_time_s=epoch_time - train_time,
        train_images_per_s=images_per_second(train.images, train_time),
        step_images_per_s_median=steps.stats().images_per_s,
        train_images=train.images,
        steps=data_lib.steps_per_epoch(train.images, run.train.batch_size),
        **test,
    )


def _label(run: RunConfig) -> str:
    return f"{run.backend.name} {run.optimizer.name} seed={run.seed}"


def _trainer(run: RunConfig, data: data_lib.ImageData) -> Trainer:
    """The backend's trainer of this run, its process-wide setup done, starting from the seed's weights."""
    spec = model_spec(run.model, data.image_size, len(data.class_names))
    return build_trainer(run, spec, data_lib.steps_per_epoch(len(data.train_labels), run.train.batch_size))


def _epochs(
    trainer: Trainer,
    data: data_lib.ImageData,
    run: RunConfig,
    run_dir: Path,
    earlier: list[results.EpochRecord],
) -> Iterator[results.EpochRecord]:
    """Train epoch after epoch, each written to metrics.jsonl (and logged) before it is yielded; a run that
    continues another (``earlier``: its epochs) writes those first and trains the rest, to train.stop_epoch."""
    label = _label(run)
    first = len(earlier) + 1
    total = (run.train.last_epoch - first + 1) * len(data.train_labels)
    with (
        results.MetricsWriter(run_dir) as writer,
        tqdm(total=total, desc=label, unit="img", disable=None, dynamic_ncols=True) as progress,
        logging_redirect_tqdm(),  # log lines go above the bar (tqdm.write), not over it
    ):
        for record in earlier:
            writer.append(record)
        for epoch in range(first, run.train.last_epoch + 1):
            record = _epoch(trainer, data, run, epoch, progress)
            writer.append(record)
            progress.set_postfix(loss=f"{record.loss:.3f}", val_acc=f"{record.val_accuracy:.3f}")
            log.info(
                "%s epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f (%.1f img/s)",
                label, epoch, run.train.epochs, record.loss, record.accuracy, record.val_loss,
                record.val_accuracy, record.train_images_per_s,
            )  # fmt: skip
            yield record


@dataclass
class TrainOutcome:
    """How a run's training ended: what result.json records besides the run's settings."""

    status: results.RunStatus  # completed, diverged or failed
    history: list[results.EpochRecord]  # the finished epochs, as in metrics.jsonl
    data: results.DataInfo | None  # None when the run failed before its photos were loaded
    environment: dict[str, Any] | None  # None when it failed before its trainer was built
    diverged_epoch: int | None = None
    error: str | None = None


def _train(
    run: RunConfig,
    run_dir: Path,
    trackers: tracking.Trackers,
    start: checkpoint.Continuation | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainOutcome:
    """Every epoch of one run (from ``start``'s checkpoint, if given), and how it ended (``on_epoch``: see
    :func:`run_experiment`).

    Errors in the input (:class:`BenchError`) surface before any file is written, and interrupts propagate;
    any other error ends the run as failed, with the epochs it finished, so that a sweep goes on.
    """
    history: list[results.EpochRecord] = []
    data_info: results.DataInfo | None = None
    environment: dict[str, Any] | None = None
    try:
        data = data_lib.load_dataset(run.dataset)
        data_info = results.DataInfo(
            source=data.source,
            train_images=len(data.train_labels),
            val_images=len(data.val_labels),
            num_classes=len(data.class_names),
            skipped_files=data.skipped_files,
            test_images=0 if data.test_labels is None else len(data.test_labels),
        )
        trainer = _trainer(run, data)
        environment = results.environment(trainer.environment())
        if start is not None:
            start.restore(trainer)
            history = list(start.history)
            for record in history:
                trackers.log_epoch(record.epoch, record.to_dict())
        with closing(_epochs(trainer, data, run, run_dir, list(history))) as epochs:
            for record in epochs:
                history.append(record)
                trackers.log_epoch(record.epoch, record.to_dict())
                if record.diverged():
                    log.warning(
                        "%s diverged at epoch %d (non-finite loss); stopping this run",
                        _label(run),
                        record.epoch,
                    )
                    return TrainOutcome(
                        results.DIVERGED, history, data_info, environment, diverged_epoch=record.epoch
                    )
                if on_epoch is not None and on_epoch(record):
                    log.info("%s pruned by the search after epoch %d", _label(run), record.epoch)
                    return TrainOutcome(results.PRUNED, history, data_info, environment)
        if run.train.last_epoch < run.train.epochs:  # stopped early: a longer run may continue it
            checkpoint.save(trainer, run_dir, run.train.last_epoch)
    except (BenchError, RunInterrupted, KeyboardInterrupt):
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(
                f"no space left under {run_dir} ({exc.strerror}) after {len(history)} finished epoch(s), which "
                f"are in {results.METRICS_FILE}; free some space and rerun the same command"
            ) from exc
        return _failed(exc, run_dir, history, data_info, environment)
    except Exception as exc:  # a crash of one run must not cost the rest of the sweep
        return _failed(exc, run_dir, history, data_info, environment)
    return TrainOutcome(results.COMPLETED, history, data_info, environment)


def _failed(
    exc: Exception,
    run_dir: Path,
    history: list[results.EpochRecord],
    data_info: results.DataInfo | None,
    environment: dict[str, Any] | None,
) -> TrainOutcome:
    error = f"{type(exc).__name__}: {exc}"
    log.error("run %s failed: %s\n%s", run_dir, error, traceback.format_exc())
    return TrainOutcome(results.FAILED, history, data_info, environment, error=error)


def is_finished(previous: dict | None, resolved_config: dict, source: str) -> bool:
    """A rerun of a sweep skips runs that already completed (or diverged) as the same experiment.

    The same experiment: the same value of every key bench/experiment.py counts as part of it (so moving the
    photos or the cache reruns nothing), and the same ``source`` of the photos (a folder or tfds, as
    :func:`bench.data.resolve_source` says): with ``dataset.source=auto`` that follows from whether a path is
    set, and it decides the validation split.
    """
    if not previous or previous.get("status") not in results.FINISHED_STATUSES:
        return False
    same_source = (previous.get("data") or {}).get("source") == source
    return same_source and EXPERIMENT_KEYS.same_experiment(previous.get("config", {}), resolved_config)


def _run_info(
    run: RunConfig, run_dir: Path, resolved_config: dict, sweep_dir: Path | None
) -> tracking.RunInfo:
    tags = {"backend": run.backend.name, "optimizer": run.optimizer.name, "seed": str(run.seed)}
    params = flatten(resolved_config)
    settings = EXPERIMENT_KEYS.experiment_settings(resolved_config)
    return tracking.RunInfo(run_dir, run_dir.name, params, settings, tags, sweep_dir)


def run_experiment(
    run: RunConfig,
    run_dir: Path,
    resolved_config: dict,
    overrides: list[str],
    sweep_dir: Path | None = None,
    on_epoch: EpochHook | None = None,
) -> dict:
    """Train one configuration and write its output files (README "Output files"); returns result.json's dict.

    Input errors (:class:`BenchError`) propagate before anything is written; interrupts propagate after the
    finished epochs are on disk; any other error is recorded as ``status: failed`` so a sweep goes on. The
    trackers of ``run.logger`` get a copy of everything, after the files are written (``sweep_dir``: the
    sweep the run belongs to, if any, which names its MLflow experiment). ``on_epoch`` is called with each
    finished epoch that did not diverge, after it is written; True stops the run as ``status: pruned`` (a
    search's pruner: bench/pruning.py).
    """
    previous = results.read_result(run_dir)
    if not run.force and is_finished(previous, resolved_config, data_lib.resolve_source(run.dataset)):
        log.info("skipping %s: already %s (force=true reruns it)", run_dir, previous["status"])
        return previous
    start = checkpoint.find(run, resolved_config)  # train.continue_from: checked before anything is written
    started_at, started = results.now_iso(), time.perf_counter()
    trackers = tracking.open_trackers(run.logger)
    trackers.start(_run_info(run, run_dir, resolved_config, sweep_dir))
    try:
        with signals_interrupt_run():
            outcome = _train(run, run_dir, trackers, start, on_epoch)
    except BenchError:  # bad input found once the run had started (e.g. the photos): the run failed
        trackers.finish(results.FAILED)
        raise
    except (RunInterrupted, KeyboardInterrupt):
        trackers.finish(results.RunStatus.INTERRUPTED)
        raise
    result = results.RunResult(
        status=outcome.status,
        backend=run.backend.name,
        optimizer=run.optimizer.name,
        seed=run.seed,
        epochs_planned=run.train.epochs,
        workload=run.workload.name,
        backend_parity=at_parity(run),
        diverged_epoch=outcome.diverged_epoch,
        error=outcome.error,
        **results.summarize(outcome.history),
        wall_time_s=time.perf_counter() - started,
        data=outcome.data,
        config=resolved_config,
        overrides=overrides,
        environment=results.environment({}) if outcome.environment is None else outcome.environment,
        started_at=started_at,
        finished_at=results.now_iso(),
        continued_from=None if start is None else start.record(),
    )
    try:
        results.write_result(run_dir, result)  # atomic: result.json is whole or absent
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        trackers.finish(results.FAILED)
        raise DiskFullError(
            f"no space left under {run_dir} ({exc.strerror}) to write {results.RESULT_FILE}; its "
            f"{len(outcome.history)} finished epoch(s) are in {results.METRICS_FILE}: free some space and rerun"
        ) from exc
    trackers.finish(outcome.status, run_dir / results.RESULT_FILE)
    return result.to_dict()
