"""Training throughput per group, over the steady epochs of every run (stats.timing_table, plots.py)."""

from __future__ import annotations

import pandas as pd

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.groups import Grouping
from bench.report.phrases import group_cells, group_header
from bench.report.plots import palette, plot_timing
from bench.report.render import Heading, Image, Paragraph, Table
from bench.report.stats import steady_epochs, timing_table
from bench.results import TIMING_CSV, TIMING_PNG

CAPTION = "Training images/s: bar = median over runs x epochs (epoch 1 left out), error bar = IQR."


def analyse(data: ReportInput) -> Output:
    timing = timing_table(data.frame, data.grouping.timing_columns)
    header = [*group_header(data.grouping), "runs", "epochs", "images/s median", "IQR", "min-max"]
    header += ["epoch time (s) median", "wall time (s) mean"]
    rows = [_timing_cells(row, data.grouping) for _, row in timing.iterrows()]
    text = (
        "Training throughput over the finished epochs of every run (any status), leaving out epoch 1, "
        "which includes warm-up and graph tracing, unless the run was planned with a single epoch. "
        f"IQR = 25th-75th percentile. Wall time is averaged over completed runs. File: `{TIMING_CSV}`."
    )
    output = Output([Heading("Timing"), Paragraph(text), Table(header, rows)], {TIMING_CSV: timing})
    steady = steady_epochs(data.frame).dropna(subset=["train_images_per_s"])
    if not steady.empty:
        colors = palette(data.frame["timing_arm"])
        output.figures[TIMING_PNG] = plot_timing(steady, colors, data.grouping.compare)
        output.blocks.append(Image(TIMING_PNG, CAPTION))
    return output


def _timing_cells(row: pd.Series, grouping: Grouping) -> list[str]:
    speed = {q: fmt(row[f"train_images_per_s_{q}"], digits=1) for q in ("median", "q25", "q75", "min", "max")}
    return [
        *group_cells(row, grouping, grouping.timing_label_columns),
        str(row["n_runs"]),
        str(row["n_epochs"]),
        speed["median"],
        f"{speed['q25']}-{speed['q75']}",
        f"{speed['min']}-{speed['max']}",
        fmt(row["epoch_time_s_median"], digits=1),
        fmt(row["wall_time_s_mean"], digits=1),
    ]
