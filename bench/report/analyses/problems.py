"""Runs not averaged: diverged, failed, pruned and incomplete runs, with how far they got and why they stopped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.analysis import Output, ReportInput
from bench.report.groups import format_value
from bench.report.render import Heading, Paragraph, Table
from bench.results import RunStatus


def _short_dirs(run_dirs: pd.Series) -> pd.Series:
    """Run directories relative to their common parent: the Hydra override names, mostly."""
    absolute = run_dirs.map(lambda d: str(Path(d).resolve()))
    base = os.path.commonpath(list(absolute))
    return absolute.map(lambda d: Path(d).name if d == base else os.path.relpath(d, base))


def _last_line(error: Any) -> str:
    """The exception line of a traceback, cut to 200 characters."""
    return error.strip().splitlines()[-1][:200] if isinstance(error, str) and error.strip() else "—"


def analyse(data: ReportInput) -> Output:
    names = _short_dirs(data.finals["run_dir"])
    bad = data.finals[data.finals["status"] != RunStatus.COMPLETED]
    if bad.empty:
        return Output([Heading("Runs not averaged"), Paragraph("None: every run completed.")])
    header = [
        "run",
        "status",
        "backend",
        "optimizer",
        "seed",
        "epochs done / planned",
        "diverged at",
        "error",
    ]
    rows = [
        [
            names[index],
            row["status"],
            row["backend"],
            row["optimizer"],
            format_value(row["seed"]),
            f"{0 if pd.isna(row['epoch']) else int(row['epoch'])} / {format_value(row['epochs_planned'])}",
            format_value(row["diverged_epoch"]),
            _last_line(row["error"]),
        ]
        for index, row in bad.iterrows()
    ]
    text = (
        "Diverged, failed, pruned (stopped early by a search) and incomplete (killed or still running) runs, "
        "never part of a mean."
    )
    return Output([Heading("Runs not averaged"), Paragraph(text), Table(header, rows)])
