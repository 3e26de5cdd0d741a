"""Warnings before a ranking is trusted, per arm: near chance, still climbing, seeds left out (flags.py)."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.flags import CHANCE_MARGIN, CLIMB_EPOCHS
from bench.report.render import Heading, Paragraph, Table
from bench.results import FLAGS_CSV


def analyse(data: ReportInput) -> Output:
    tables = {FLAGS_CSV: data.flags}
    if data.flags.empty:
        return Output(tables=tables)
    rows = [[row.stratum or "all runs", row.arm, row.flag, row.detail] for row in data.flags.itertuples()]
    text = (
        f"`near chance`: the 95 % CI of the arm's mean final val_accuracy reaches within {100 * CHANCE_MARGIN:.0f} "
        "points of chance (1 / number of classes). `still climbing`: the seed-mean val_accuracy still rises by "
        f"at least the accuracy margin per epoch over the last {CLIMB_EPOCHS} epochs. `seeds left out`: "
        f"diverged, failed or unfinished runs, in no mean or test. File: `{FLAGS_CSV}`."
    )
    blocks = [Heading("Warnings"), Paragraph(text), Table(["stratum", "arm", "warning", "detail"], rows)]
    return Output(blocks, tables)
