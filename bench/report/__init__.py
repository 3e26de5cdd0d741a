"""The analysis stage: turn sweep and run directories into a report folder.

Public API::

    from bench.report import build_report, load_runs
    frame = load_runs(["outputs/sweeps/2026-11-24/10-00-00"])   # tidy: one row per run x epoch
    build_report(["outputs/sweeps/2026-11-24/10-00-00"])         # writes <sweep>/report/

Command line: ``python -m bench.report PATH [PATH ...]`` (see ``--help``). The folder holds runs.csv,
summary.csv, comparisons.csv, timing.csv, curves_<metric>.png, timing.png, report.md and report.html.
"""

from bench.report.build import DEFAULT_METRICS, build_report
from bench.report.load import NoRunsFoundError, ReportError, load_run_table, load_runs

__all__ = [
    "DEFAULT_METRICS",
    "NoRunsFoundError",
    "ReportError",
    "build_report",
    "load_run_table",
    "load_runs",
]
