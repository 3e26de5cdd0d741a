"""The analysis stage: turn sweep and run directories into a report folder.

Public API::

    from bench.report import build_report, load_runs
    frame = load_runs(["outputs/sweeps/2026-11-24/10-00-00"])   # tidy: one row per run x epoch
    build_report(["outputs/sweeps/2026-11-24/10-00-00"])         # writes <sweep>/report/

Command line: ``python -m bench.report PATH [PATH ...]`` (see ``--help``). The folder's files are named in
bench/results.py (report.md, report.html, runs.csv, summary.csv, ...); the analyses that make them are listed
in bench/report/analyses/__init__.py, the options in bench/report/options.py.

The names below are imported on first use: bench/config.py imports bench.report.options for its schema,
and composing a config must not pay for pandas and matplotlib.
"""

from bench.lazy import lazy_names

_HOMES = {
    "DEFAULT_METRICS": "bench.report.options",
    "ReportConfig": "bench.report.options",
    "build_report": "bench.report.build",
    "NoRunsFoundError": "bench.report.load",
    "ReportError": "bench.report.load",
    "load_run_table": "bench.report.load",
    "load_runs": "bench.report.load",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_names(__name__, _HOMES)
