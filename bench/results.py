"""The output contract (README "Output files"): metrics.jsonl per epoch, result.json at the end.

Every number a report shows comes from these two files, so they are written crash-safely: each epoch's line is
flushed and fsynced as the epoch ends, and result.json is written atomically.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.io import atomic_write_json

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
FINAL_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "ce_loss", "val_ce_loss")
FINISHED_STATUSES = ("completed", "diverged")  # a rerun of the sweep skips these (failed runs are retried)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class MetricsWriter:
    """Appends one JSON line per finished epoch. Opening it starts the file afresh: a restarted run never
    mixes its epochs with those of the interrupted attempt it replaces."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (kept open for the whole run)

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_result(run_dir: Path) -> dict | None:
    """result.json of a run directory, or None when there is none or it cannot be read."""
    try:
        return json.loads((run_dir / RESULT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def summarize(history: list[dict]) -> dict[str, Any]:
    """Final and best metrics, and the median training throughput, of the epochs that finished."""
    final = {key: history[-1][key] for key in FINAL_KEYS} if history else dict.fromkeys(FINAL_KEYS)
    finite = [row for row in history if math.isfinite(row["val_accuracy"]) and math.isfinite(row["val_loss"])]
    best: dict[str, Any] = dict.fromkeys(("val_accuracy", "val_accuracy_epoch", "val_loss", "val_loss_epoch"))
    if finite:
        top = max(finite, key=lambda row: row["val_accuracy"])
        low = min(finite, key=lambda row: row["val_loss"])
        best = {
            "val_accuracy": top["val_accuracy"],
            "val_accuracy_epoch": top["epoch"],
            "val_loss": low["val_loss"],
            "val_loss_epoch": low["epoch"],
        }
    speeds = [row["train_images_per_s"] for row in history]
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
    }


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    atomic_write_json(run_dir / RESULT_FILE, result)
