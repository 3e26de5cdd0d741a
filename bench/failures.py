"""Which jobs of a multirun failed, whatever launcher ran them.

A failed job does not stop a sweep (its ``result.json`` says ``status: failed``), but the command must still
exit non-zero. Jobs may run in other processes or on other machines (joblib, submitit), so the launching
process learns about failures the only way that works for all of them: from the files the jobs wrote.

Registered in conf/config.yaml as the Hydra callback ``failed_runs``; ``bench.__main__.main`` reads
:data:`FAILED_RUNS` once the sweep has ended.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.results import FAILED, read_result, result_files

# File systems store modification times coarsely (down to 1-2 s); a job that failed in the same second the
# sweep started must still count.
CLOCK_SLACK_S = 2.0

#: Job directories of the last multirun in this process whose result.json says ``failed``.
FAILED_RUNS: list[str] = []


def failed_runs(sweep_dir: Path, since: float = 0.0) -> list[str]:
    """Job directories below ``sweep_dir`` whose result.json, written at or after ``since``, says ``failed``.

    ``since`` (a ``time.time()``) leaves out failures of earlier commands in the same sweep directory that
    this command did not retry (e.g. a rerun with fewer seeds).
    """
    failed = []
    for path in result_files(sweep_dir):
        try:
            if path.stat().st_mtime < since - CLOCK_SLACK_S:
                continue
        except OSError:
            continue
        result = read_result(path.parent)  # None when unreadable: written atomically, so not one of ours
        if result and result.get("status") == FAILED:
            failed.append(str(path.parent))
    return failed


class FailedRunsCheck(Callback):
    """Collect the failed jobs of a multirun into :data:`FAILED_RUNS` when it ends (in the launching process)."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        self.sweep_dir = Path(str(config.hydra.sweep.dir))  # fixed now, before any `${now:...}` can move

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.sweep_dir is None or not self.sweep_dir.is_dir():
            return
        FAILED_RUNS[:] = failed_runs(self.sweep_dir, since=self.started)
