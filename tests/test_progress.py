"""The sweep's progress line (bench/progress.py), from the jobs' result.json files alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.progress import record_planned_jobs, sweep_progress
from tests.test_report import write_run


def test_the_line_counts_statuses_and_skipped_jobs_and_estimates_the_rest(tmp_path: Path) -> None:
    started = time.time()
    before = write_run(tmp_path, optimizer="adamw", seed=0)  # finished by an earlier sweep: skipped
    os.utime(before / "result.json", (started - 600, started - 600))
    write_run(tmp_path, optimizer="adamw", seed=1)
    write_run(tmp_path, optimizer="adamw", seed=2, status="failed", finished=1)
    record_planned_jobs(tmp_path, jobs=8, started=started)
    line = sweep_progress(tmp_path, now=started + 60)  # 2 jobs ran in 60 s: 5 to go at 30 s each
    assert line == "sweep: 3/8 jobs (1 completed, 1 failed, 1 skipped); ETA 2m30s"


def test_no_line_without_a_recorded_sweep_size(tmp_path: Path) -> None:
    write_run(tmp_path, optimizer="adamw", seed=0)
    assert sweep_progress(tmp_path) is None
