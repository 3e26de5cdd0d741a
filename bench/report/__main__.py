"""``python -m bench.report PATH [PATH ...]``: (re)build the report of one or more sweeps or runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import matplotlib

from bench.report import ReportError, build_report

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


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


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
    parser.add_argument(
        "--metrics",
        type=_names,
        metavar="M1,M2",
        help="metrics to plot, one figure per family: 'loss' draws loss and val_loss, 'val_loss' only that "
        "(default: loss,accuracy)",
    )
    parser.add_argument(
        "--group-by",
        type=_names,
        metavar="K1,K2",
        help="columns to group by first, e.g. backend,optimizer.lr; every other setting that varies is "
        "added automatically (default: backend,optimizer)",
    )
    parser.add_argument(
        "--compare",
        metavar="KEY",
        help="the setting whose values are compared pairwise within each group (default: optimizer)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        help="validation-accuracy difference that matters, as a fraction: within it two arms can be shown "
        "equivalent (default: 0.01, one point)",
    )
    parser.add_argument(
        "--loss-margin", type=float, help="the same for validation cross-entropy, in nats (default: 0.02)"
    )
    parser.add_argument(
        "--target",
        type=float,
        help="val_accuracy of time-to-target (default: 95 %% of the best arm's mean final val_accuracy)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    matplotlib.use("Agg")  # files only, never a window
    try:
        out = build_report(
            args.paths,
            args.out,
            metrics=args.metrics,
            group_by=args.group_by,
            compare=args.compare,
            margin=args.margin,
            loss_margin=args.loss_margin,
            target=args.target,
        )
    except ReportError as error:
        print(f"python -m bench.report: error: {error}", file=sys.stderr)
        return 2
    print(f"report written to {out / 'report.md'} and {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
