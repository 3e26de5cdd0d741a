"""Settings: what varies between the runs and what the report does with each, what each arm is, and what
every run shares."""

from __future__ import annotations

import pandas as pd

from bench.config import EXPERIMENT_KEYS
from bench.report.analysis import Output, ReportInput
from bench.report.groups import Grouping, format_value
from bench.report.render import Block, Heading, Paragraph, Table


def _role(key: str, grouping: Grouping) -> str:
    if key == "seed":
        return "averaged over"
    if EXPERIMENT_KEYS.is_ignored(key):
        return "ignored (a location, or a report option)"
    if EXPERIMENT_KEYS.is_timing_only(key):
        return "grouped in timing only"
    return "compared" if key in grouping.arms else "grouped"


def arms_table(data: ReportInput) -> list[Block]:
    """What each compared arm is: its label and every setting that comes with it (unset ones left out)."""
    columns = [c for c in data.grouping.arms if c != data.grouping.compare]
    if not columns:
        return []
    rows = []
    for _, row in data.finals.drop_duplicates("arm").sort_values("arm").iterrows():
        settings = [f"{column}={format_value(row[column])}" for column in columns if not pd.isna(row[column])]
        rows.append([row["arm"], ", ".join(settings)])
    text = f"What each compared {data.grouping.compare} is (the settings that go with it):"
    return [Paragraph(text), Table([data.grouping.compare, "settings"], rows)]


def analyse(data: ReportInput) -> Output:
    runs = data.table.frame.drop_duplicates("run_dir")
    varying = [name for name in ("backend", "optimizer") if runs[name].nunique() > 1] + data.table.settings
    rows = [
        [key, ", ".join(sorted({format_value(v) for v in runs[key]})), _role(key, data.grouping)]
        for key in varying
    ]
    blocks: list[Block] = [Heading("Settings")]
    if rows:
        blocks += [Paragraph("Settings that differ between runs, and what the report does with them:")]
        blocks += [Table(["setting", "values", "role"], rows)]
    else:
        blocks += [Paragraph("All runs share every setting.")]
    blocks += arms_table(data)
    shared = [[key, format_value(value)] for key, value in data.table.constants.items()]
    if shared:
        blocks += [Paragraph("Settings shared by every run:"), Table(["setting", "value"], shared)]
    return Output(blocks)
