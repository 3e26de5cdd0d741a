"""The output contract (README "Output files"): the one owner of a run directory's files, their records, writers
and readers.

A run directory (a Hydra job directory) holds ``metrics.jsonl`` (one :class:`EpochRecord` per finished epoch),
``result.json`` (one :class:`RunResult`, when the run ends) and Hydra's ``.hydra/config.yaml``. Every number a
report shows comes from these files, so they are written crash-safely: each epoch's line is flushed and fsynced
as the epoch ends, and result.json is written atomically. Readers return the JSON as written (plain dicts), so
that files from older versions, and killed runs, still read.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import cpu
from bench.io import atomic_write_json, read_jsonl

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
CONFIG_FILE = Path(".hydra") / "config.yaml"  # written by Hydra before the run starts: the job's config
# A run stopped early (train.stop_epoch) leaves its trainer's state here for a longer run to continue
# (bench/checkpoint.py): the backend's file(s) and CHECKPOINT_FILE, written last, with the epoch.
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.json"


class RunStatus(str, enum.Enum):
    """How a run stands: result.json's ``status`` (the first four), and the states the report, the trackers,
    the progress line and the protocol name beside them. A ``str``, so that files and frames hold the plain
    word and compare equal to it."""

    COMPLETED = "completed"
    DIVERGED = "diverged"  # a non-finite loss stopped it: a real outcome of its settings
    FAILED = "failed"  # it crashed (retried by a rerun of the sweep)
    PRUNED = "pruned"  # a search's pruner stopped it after an epoch (bench/pruning.py); a rerun trains it
    INCOMPLETE = "incomplete"  # no result.json: killed, or still running
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM (what a tracker is told; result.json is not written)
    SKIPPED = "skipped"  # a rerun found it finished as the same experiment
    MISSING = "missing"  # a launched job left no result.json

    __str__ = str.__str__  # the word itself, in f-strings too
    __format__ = str.__format__


COMPLETED, DIVERGED, FAILED = RunStatus.COMPLETED, RunStatus.DIVERGED, RunStatus.FAILED
PRUNED = RunStatus.PRUNED
FINISHED_STATUSES = (COMPLETED, DIVERGED)  # a rerun of the sweep skips these (failed runs are retried)
#: The metrics of an epoch that result.json's ``final`` repeats for the last epoch.
FINAL_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "ce_loss", "val_ce_loss")
#: The held-out test split's metrics (dataset.test_fraction > 0 only): evaluated once, after the last epoch,
#: on that epoch's metrics.jsonl line and in result.json's ``final``; absent without a test split.
TEST_METRICS = ("test_loss", "test_accuracy", "test_ce_loss")
#: result.json's ``best``: the best val_accuracy and the lowest val_loss, each with its epoch.
BEST_KEYS = ("val_accuracy", "val_accuracy_epoch", "val_loss", "val_loss_epoch")

# The files of a sweep directory beyond its runs (README "Reading the results" says what each holds). Every
# module that writes or reads one takes its name from here: the report (bench/report/), its console verdict,
# the protocol, and users' scripts.
PROTOCOL_FILE = "protocol.json"  # a fair comparison's record, in the sweep directory (bench/protocol.py)
REPORT_DIR = "report"  # the report's default folder, <sweep dir>/report
REPORT_MARKDOWN, REPORT_HTML = "report.md", "report.html"
# The report's tables, one CSV each.
RUNS_CSV = "runs.csv"
SUMMARY_CSV = "summary.csv"
COMPARISONS_CSV = "comparisons.csv"
SEED_DIFFERENCES_CSV = "seed_differences.csv"
FLAGS_CSV = "flags.csv"
TIMING_CSV = "timing.csv"
TIME_TO_TARGET_CSV = "time_to_target.csv"
TARGET_SUMMARY_CSV = "target_summary.csv"
PERFORMANCE_PROFILE_CSV = "performance_profile.csv"
ACROSS_WORKLOADS_CSV = "across_workloads.csv"
HEATMAP_CSV = "heatmap.csv"
PARITY_CSV = "parity.csv"
PROTOCOL_TRIALS_CSV = "protocol_trials.csv"
PROTOCOL_CONFIRMATION_CSV = "protocol_confirmation.csv"
PROTOCOL_DECISIONS_CSV = "protocol_decisions.csv"
PROTOCOL_BUDGET_CURVES_CSV = "protocol_budget_curves.csv"
PROTOCOL_ERROR_RATES_CSV = "protocol_error_rates.csv"
# The report's figures.
TIMING_PNG = "timing.png"
TIME_TO_TARGET_PNG = "time_to_target.png"
PERFORMANCE_PROFILE_PNG = "performance_profile.png"
ACROSS_WORKLOADS_PNG = "across_workloads.png"
HEATMAP_PNG = "heatmap_val_accuracy.png"
BUDGET_CURVES_PNG = "expected_best_vs_budget.png"


def curves_png(family: str) -> str:
    """The learning-curve figure of a metric family (``accuracy`` draws accuracy and val_accuracy)."""
    return f"curves_{family}.png"


def differences_png(metric: str) -> str:
    """The paired-differences figure of a compared metric."""
    return f"differences_{metric}.png"


@dataclass
class EpochRecord:
    """One line of metrics.jsonl: one finished epoch (README "Output files" says what each field means)."""

    epoch: int  # 1-based
    loss: float  # training-epoch mean, L2 penalty included
    accuracy: float
    val_loss: float  # on the validation split after the epoch, penalty included
    val_accuracy: float
    ce_loss: float  # the cross-entropy alone
    val_ce_loss: float
    lr: float  # learning rate the next step would use
    epoch_time_s: float
    train_time_s: float
    eval_time_s: float
    train_images_per_s: float
    step_images_per_s_median: float
    train_images: int
    steps: int
    test_loss: float | None = None  # TEST_METRICS: the last epoch of a run with a test split only
    test_accuracy: float | None = None
    test_ce_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The metrics.jsonl line: the test metrics only where they were measured."""
        row = dataclasses.asdict(self)
        return {key: value for key, value in row.items() if key not in TEST_METRICS or value is not None}

    def diverged(self) -> bool:
        """A non-finite training or validation loss: the run stops here."""
        return not (math.isfinite(self.loss) and math.isfinite(self.val_loss))


@dataclass
class DataInfo:
    """result.json's ``data``: which photos a run trained and validated on."""

    source: str  # folder or tfds
    train_images: int
    val_images: int
    num_classes: int  # the report's chance level is 1 / num_classes
    skipped_files: int  # photos that could not be decoded (README, "The photos")
    test_images: int = 0  # the held-out test split (dataset.test_fraction > 0)


@dataclass
class RunResult:
    """result.json: how a run ended, its final and best metrics, and what it ran on."""

    status: RunStatus  # completed, diverged or failed
    backend: str
    optimizer: str
    seed: int
    epochs_planned: int
    # The problem, <dataset.name>/<model.name> (bench/workload.py); None in result.json files written before.
    workload: str | None = None
    # Whether the optimizer's updates are the same on both backends (the built-in ones, docs/design.md
    # "Parity"); False for a user's optimizer, each backend running its own class.
    backend_parity: bool = True
    epochs_completed: int = 0
    diverged_epoch: int | None = None
    error: str | None = None  # "ExceptionType: message" of a failed run
    final: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(FINAL_METRICS))
    best: dict[str, float | int | None] = field(default_factory=lambda: dict.fromkeys(BEST_KEYS))
    wall_time_s: float | None = None
    train_images_per_s_median: float | None = None
    data: DataInfo | None = None  # None when the run failed before its photos were loaded
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config
    overrides: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    # A run that continued an earlier one's checkpoint (train.continue_from, bench/checkpoint.py): that run's
    # directory and last epoch, whose epochs open this run's metrics.jsonl; null when it trained from epoch 1.
    continued_from: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def summarize(history: list[EpochRecord]) -> dict[str, Any]:
    """The :class:`RunResult` fields that follow from the finished epochs: their number, the final and best
    metrics, and the median training throughput."""
    final = {key: getattr(history[-1], key) if history else None for key in FINAL_METRICS}
    if history and history[-1].test_accuracy is not None:
        final |= {key: getattr(history[-1], key) for key in TEST_METRICS}
    finite = [row for row in history if math.isfinite(row.val_accuracy) and math.isfinite(row.val_loss)]
    best: dict[str, Any] = dict.fromkeys(BEST_KEYS)
    if finite:
        top = max(finite, key=lambda row: row.val_accuracy)
        low = min(finite, key=lambda row: row.val_loss)
        best = {
            "val_accuracy": top.val_accuracy,
            "val_accuracy_epoch": top.epoch,
            "val_loss": low.val_loss,
            "val_loss_epoch": low.epoch,
        }
    speeds = [row.train_images_per_s for row in history]
    return {
        "epochs_completed": len(history),
        "final": final,
        "best": best,
        "train_images_per_s_median": statistics.median(speeds) if speeds else None,
    }


def git_commit() -> str | None:
    """The commit of the flowerbench checkout, if it is one (dirty trees are marked)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5
        )
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(framework: dict[str, Any]) -> dict[str, Any]:
    """The machine and software a run used; ``framework`` comes from the backend's Trainer."""
    return {
        **framework,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "git_commit": git_commit(),
        **cpu.description(),  # the model and instruction sets: numbers and round-off depend on them
    }


# ------------------------------------------------------------------------------------------------ writers


class MetricsWriter:
    """Appends one JSON line per finished epoch. Opening it starts the file afresh: a restarted run never
    mixes its epochs with those of the interrupted attempt it replaces."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (kept open for the whole run)

    def append(self, record: EpochRecord) -> None:
        self._file.write(json.dumps(record.to_dict()) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_result(run_dir: Path, result: RunResult) -> None:
    atomic_write_json(run_dir / RESULT_FILE, result.to_dict())


# ------------------------------------------------------------------------------------------------ readers


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds any file of a run: a killed run has no result.json, a starting one only its config."""
    return any((path / name).is_file() for name in (RESULT_FILE, METRICS_FILE, CONFIG_FILE))


def result_files(root: Path) -> list[Path]:
    """Every result.json at or below ``root``, sorted."""
    return sorted(root.rglob(RESULT_FILE))


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """result.json of a run directory, or None when there is none or it cannot be read (it is written
    atomically, so a file that does not parse was not written by a run)."""
    try:
        result = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl, [] when there is none; a line torn by a killed writer is left out."""
    path = run_dir / METRICS_FILE
    return read_jsonl(path) if path.is_file() else []
