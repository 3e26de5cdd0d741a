"""``python -m bench.report PATH [PATH ...]``: (re)build the report of one or more sweeps or runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from bench.report.build import build_report, build_workload_protocol_reports, workload_protocols
from bench.report.load import ReportError
from bench.report.options import add_arguments, cli_fields
from bench.results import REPORT_HTML, REPORT_MARKDOWN

DESCRIPTION = """\
Build the report (tables, figures, report.md and report.html) of the runs found under each PATH.
A PATH may be a sweep directory (outputs/sweeps/<date>/<time>), a single run (outputs/runs/<date>/<time>)
or any folder holding them; runs are found recursively and merged, so sweeps made by separate commands
(e.g. keras one day, torch the next) form one report. Runs that differ in a setting other than the seed
are never averaged together."""

EPILOG = """\
examples:
  python -m bench.report outputs/sweeps/2026-11-24/10-00-00
  python -m bench.report outputs/sweeps/keras_day outputs/sweeps/torch_day --out reports/both
  python -m bench.report outputs/sweeps/lr --metrics val_accuracy,ce_loss --group-by backend,optimizer.lr
  python -m bench.report outputs/sweeps/A --margin 0.02 --target 0.6

exit status: 0 report written, 2 bad arguments or no runs found."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="sweep or run directory, searched recursively"
    )
    parser.add_argument("--out", metavar="DIR", help="report directory (default: <first PATH>/report)")
    add_arguments(parser)  # the report's options, from their one definition (bench/report/options.py)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    matplotlib.use("Agg")  # files only, never a window
    try:
        options = {f.name: getattr(args, f.name) for f in cli_fields()}
        if len(args.paths) == 1 and args.out is None and workload_protocols(Path(args.paths[0])):
            # a fair comparison of several workloads: each workload's report, and the one across them
            out = build_workload_protocol_reports(Path(args.paths[0]), **options)
        else:
            out = build_report(args.paths, args.out, **options)
    except ReportError as error:
        print(f"python -m bench.report: error: {error}", file=sys.stderr)
        return 2
    print(f"report written to {out / REPORT_MARKDOWN} and {out / REPORT_HTML}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
