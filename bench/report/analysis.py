"""What an analysis of the report is, and what it is given.

An analysis is a module of bench/report/analyses/ with one function, ``analyse(data: ReportInput) -> Output``:
from the runs (the tidy frame, one row per run x epoch, and the tables that follow from it) it computes its
tables, its figures (matplotlib Figures, functions of a DataFrame) and its part of the page (render blocks).
The report is the list of them, bench/report/analyses/__init__.py; bench/report/build.py runs each in turn,
saves what it made, and renders the blocks in that order as report.md and report.html.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from bench.report.compare import compare_arms
from bench.report.flags import arm_flags
from bench.report.groups import Grouping, add_labels
from bench.report.load import RunTable
from bench.report.options import ReportConfig
from bench.report.render import Block
from bench.report.stats import final_epochs, summarize
from bench.results import PROTOCOL_FILE


@dataclass
class Output:
    """What one analysis adds to the report folder: its blocks of the page, and the files they refer to."""

    blocks: list[Block] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # file name (bench/results.py) -> CSV
    figures: dict[str, Figure] = field(default_factory=dict)  # file name -> PNG, shown by an Image block


@dataclass
class ReportInput:
    """Everything an analysis may read: the runs, how they are grouped, and the options.

    The tables below are computed on first use and shared, because several analyses show them (the verdict
    and the pairwise comparisons both read ``comparisons``); a table one analysis alone needs is its own.
    """

    paths: list[Path]  # the folders the runs were read from
    out_dir: Path  # the report folder
    options: ReportConfig
    table: RunTable
    grouping: Grouping
    families: dict[str, list[str]]  # figure name -> its metrics (build.metric_families)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The tidy frame, one row per run x epoch, with the ``arm``/``stratum`` labels of the grouping."""
        return add_labels(self.table.frame, self.grouping)

    @cached_property
    def finals(self) -> pd.DataFrame:
        """One row per run: its last epoch, with its best epoch (``stats.final_epochs``)."""
        return final_epochs(self.frame)

    @cached_property
    def summary(self) -> pd.DataFrame:
        return summarize(self.finals, self.grouping.columns)

    @cached_property
    def comparisons(self) -> pd.DataFrame:
        """Every pair of arms within a stratum, tested and decided (``compare.compare_arms``)."""
        margins = {"val_accuracy": self.options.margin, "val_ce_loss": self.options.loss_margin}
        return compare_arms(self.finals, self.grouping.strata, margins)

    @cached_property
    def flags(self) -> pd.DataFrame:
        return arm_flags(self.frame, self.finals, self.options.margin)

    @cached_property
    def protocol(self) -> dict[str, Any] | None:
        """protocol.json of the first input folder that has one: the runs are a fair comparison."""
        for path in self.paths:
            file = Path(path) / PROTOCOL_FILE
            if file.is_file():
                return json.loads(file.read_text(encoding="utf-8"))
        return None
