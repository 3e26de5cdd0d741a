"""The title, and how many runs were read and how they ended; the tidy data as runs.csv."""

from __future__ import annotations

from bench.report.analysis import Output, ReportInput
from bench.report.render import Heading, Paragraph
from bench.report.stats import STATUSES_NOT_AVERAGED
from bench.results import RUNS_CSV, RunStatus


def analyse(data: ReportInput) -> Output:
    counts = data.finals["status"].value_counts()
    tally = ", ".join(f"{counts.get(s, 0)} {s}" for s in (RunStatus.COMPLETED, *STATUSES_NOT_AVERAGED))
    where = ", ".join(f"`{p}`" for p in data.paths)
    runs = f"{len(data.finals)} run{'s' if len(data.finals) != 1 else ''}"
    text = (
        f"**{runs}** read from {where}: {tally}. Means, intervals and tests use the final epoch of "
        "completed runs only; runs differing in any setting but the seed are never averaged."
    )
    blocks = [Heading("flowerbench report", 1), Paragraph(text)]
    return Output(blocks, {RUNS_CSV: data.table.frame})
