"""The base of the project's sweepers: Hydra's basic sweeper, plus the record of how many jobs the sweep has,
so that each job can log the sweep's progress (bench/progress.py). For sweeps of Hydra's own basic sweeper,
bench.callbacks.SweepSizeCallback records the size instead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from bench.progress import record_planned_jobs


class ProgressSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[dict[str, str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.planned_jobs, self.started = 0, time.time()

    def plan(self, jobs: int) -> None:
        """Add ``jobs`` to the sweep's total and record it (a protocol plans phase by phase)."""
        self.planned_jobs += jobs
        record_planned_jobs(Path(self.config.hydra.sweep.dir), self.planned_jobs, self.started)
