"""Continuing a run that stopped early: what the rungs of successive halving need (bench/protocol/halving.py).

A run with ``train.stop_epoch`` below ``train.epochs`` is the first part of the full-length run: its learning-rate
schedule spans ``train.epochs`` (a cosine decays over the whole length, an inverse-time decay counts steps from
the first), and it simply stops after ``stop_epoch``. When it completes it leaves ``checkpoint/`` in its run
directory: the backend's state (:meth:`bench.backend.Trainer.save_state`: weights, optimizer state and step
count, schedule position, the random generators' state) and ``checkpoint.json`` with the epoch, written last.

A run given ``train.continue_from=<that directory>`` (and a later stop epoch, or none) builds its trainer as
usual, loads that state, takes the earlier run's epochs as the first lines of its own metrics.jsonl and trains
the rest. The batches of epoch e depend on (seed, e) alone (bench/data.py) and the state holds everything else,
so the continued run is the run trained straight through, number for number (tests/test_checkpoint.py): where its
first epochs were trained is a location, not a setting, and its result.json records it (``continued_from``).

Refused before anything is written (ConfigError): a directory that is not a completed run, one of another
experiment (any experiment key but ``train.stop_epoch`` differs), or one that stopped at or after this run's last
epoch. A completed run whose checkpoint is gone (deleted to save disk) is no error: the run trains from epoch 1,
as it would have without the option, and logs that it does.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import results
from bench.config import EXPERIMENT_KEYS, RunConfig
from bench.errors import ConfigError
from bench.io import atomic_write_json

if TYPE_CHECKING:
    from bench.backend import Trainer

log = logging.getLogger(__name__)


def save(trainer: Trainer, run_dir: Path, epoch: int) -> None:
    """The trainer's state after ``epoch``, in ``<run_dir>/checkpoint/`` (replacing an older one)."""
    folder = run_dir / results.CHECKPOINT_DIR
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    trainer.save_state(folder)
    atomic_write_json(folder / results.CHECKPOINT_FILE, {"epoch": epoch})  # last: the checkpoint is whole


def discard(run_dir: Path) -> int:
    """Delete a run's checkpoint, if it has one; the bytes freed."""
    folder = run_dir / results.CHECKPOINT_DIR
    if not folder.is_dir():
        return 0
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    shutil.rmtree(folder)
    return size


@dataclass(frozen=True)
class Continuation:
    """Where a run starts from: the earlier run's directory, its last epoch and its epochs' records."""

    source: Path
    epoch: int
    history: tuple[results.EpochRecord, ...]

    def restore(self, trainer: Trainer) -> None:
        trainer.load_state(self.source / results.CHECKPOINT_DIR)

    def record(self) -> dict[str, Any]:
        """result.json's ``continued_from``."""
        return {"run_dir": str(self.source), "epoch": self.epoch}


def _without_stop(config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    config.setdefault("train", {})["stop_epoch"] = None
    return config


def find(run: RunConfig, resolved_config: dict[str, Any]) -> Continuation | None:
    """The checkpoint ``train.continue_from`` names, checked; None when there is none to continue from."""
    if not run.train.continue_from:
        return None
    source = Path(run.train.continue_from).resolve()
    previous = results.read_result(source)
    if not previous or previous.get("status") != results.COMPLETED:
        raise ConfigError(f"train.continue_from={source} is not a completed run (no result.json saying so)")
    if not EXPERIMENT_KEYS.same_experiment(
        _without_stop(previous.get("config", {})), _without_stop(resolved_config)
    ):
        raise ConfigError(
            f"train.continue_from={source} is another experiment: only train.stop_epoch may differ"
        )
    epoch = int(previous.get("epochs_completed") or 0)
    if epoch >= run.train.last_epoch:
        raise ConfigError(
            f"train.continue_from={source} already trained {epoch} epoch(s); this run stops after "
            f"{run.train.last_epoch}: nothing to continue"
        )
    folder = source / results.CHECKPOINT_DIR
    marker = folder / results.CHECKPOINT_FILE
    if not marker.is_file() or json.loads(marker.read_text(encoding="utf-8")).get("epoch") != epoch:
        log.warning("%s has no checkpoint after epoch %d: training from epoch 1", source, epoch)
        return None
    rows = [row for row in results.read_metrics(source) if row["epoch"] <= epoch]
    history = tuple(results.EpochRecord(**row) for row in rows)
    if [record.epoch for record in history] != list(range(1, epoch + 1)):
        raise ConfigError(f"train.continue_from={source}: its {results.METRICS_FILE} lacks epochs 1..{epoch}")
    return Continuation(source, epoch, history)
