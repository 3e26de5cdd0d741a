"""A sweep's progress across all its jobs, whichever process runs them: ``sweep: 7/12 jobs (5 completed,
1 failed, 1 skipped); ETA 1m20s``, logged as each job ends.

The project's sweepers (hydra_plugins/flowerbench/) record how many jobs the sweep has and when it started in
``<sweep dir>/.flowerbench_sweep.json``; the jobs' result.json files say the rest. A result.json older than the
sweep's start belongs to a job this sweep skipped (it had finished before). The ETA divides the time since the
start by the jobs finished in it, so it holds for parallel launchers too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench import results
from bench.io import atomic_write_json
from bench.results import RunStatus

PROGRESS_FILE = ".flowerbench_sweep.json"


def record_planned_jobs(sweep_dir: Path, jobs: int, started: float) -> None:
    """Written by the sweeper before it launches (again for each phase of a protocol, with the new total)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(sweep_dir / PROGRESS_FILE, {"jobs": jobs, "started": started})


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def sweep_progress(sweep_dir: Path, now: float | None = None) -> str | None:
    """The progress line, or None when the sweep was not started by one of the project's sweepers."""
    try:
        plan = json.loads((sweep_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    statuses = (
        RunStatus.COMPLETED,
        RunStatus.DIVERGED,
        RunStatus.PRUNED,
        RunStatus.FAILED,
        RunStatus.SKIPPED,
    )
    counts = dict.fromkeys(statuses, 0)
    for file in results.result_files(sweep_dir):
        result = results.read_result(file.parent)
        if result is None:
            continue
        if file.stat().st_mtime < plan["started"]:
            counts[RunStatus.SKIPPED] += 1
        elif result.get("status") in counts:
            counts[result["status"]] += 1
    done = sum(counts.values())
    ran = done - counts[RunStatus.SKIPPED]
    parts = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status is RunStatus.COMPLETED)
    line = f"sweep: {done}/{plan['jobs']} jobs ({parts})"
    remaining = plan["jobs"] - done
    if remaining > 0 and ran > 0:
        elapsed = (now or time.time()) - plan["started"]
        line += f"; ETA {_duration(elapsed / ran * remaining)}"
    return line
