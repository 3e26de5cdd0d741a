"""Time to target, as AlgoPerf scores optimizers: per run the training it took to reach a val_accuracy,
per arm Kaplan-Meier medians, across strata a performance profile (target.py, target_figures.py)."""

from __future__ import annotations

import pandas as pd

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.plots import palette
from bench.report.render import Heading, Image, Paragraph, Table
from bench.report.target import performance_profile, target_summary, time_to_target
from bench.report.target_figures import plot_performance_profile, plot_time_to_target
from bench.results import (
    PERFORMANCE_PROFILE_CSV,
    PERFORMANCE_PROFILE_PNG,
    TARGET_SUMMARY_CSV,
    TIME_TO_TARGET_CSV,
    TIME_TO_TARGET_PNG,
)

TIME_CAPTION = (
    "Fraction of each arm's runs that reached the target val_accuracy, against cumulative training time "
    "(Kaplan-Meier, so runs that never reached it count as censored, open dots)."
)
PROFILE_CAPTION = (
    "Performance profile (Dolan & Moré, as AlgoPerf): for each arm, the fraction of strata where its "
    "median training time to the target is within τ times the fastest arm's."
)


def analyse(data: ReportInput) -> Output:
    times = time_to_target(data.frame, data.options.target)
    targets = target_summary(times)
    profile = performance_profile(targets)
    output = Output(tables={TIME_TO_TARGET_CSV: times, TARGET_SUMMARY_CSV: targets})
    if not profile.empty:
        output.tables[PERFORMANCE_PROFILE_CSV] = profile
    if targets.empty:
        return output
    rows = [
        [
            row["stratum"] or "all runs",
            row["arm"],
            fmt(row["target"], "accuracy"),
            f"{row['n_reached']} / {row['n_runs']}",
            _median_cell(row, "epoch", 0),
            "—" if pd.isna(row["images_median"]) else f"{row['images_median']:,.0f}",
            _median_cell(row, "train_s", 1),
        ]
        for _, row in targets.iterrows()
    ]
    header = ["stratum", "arm", "target val_accuracy (%)", "reached", "epochs: median [95 % CI]"]
    header += ["images seen (median)", "training s: median [95 % CI]"]
    text = (
        "How much training each arm needs to reach a validation accuracy, as AlgoPerf scores optimizers. "
        "Target: `report.target` if set, else the workload's `workload.target`, else 95 % of the best arm's "
        "mean final val_accuracy in the stratum. "
        "Per run: the first epoch at or above it, the images trained on and the training seconds until then "
        "(evaluation excluded); a run that never gets there is censored at its last epoch. Medians and "
        "intervals are Kaplan-Meier estimates (`scipy.stats.ecdf`, log-log band; ∞ = no upper bound with so "
        f"few runs). Files: `{TIME_TO_TARGET_CSV}`, `{TARGET_SUMMARY_CSV}`."
    )
    output.blocks = [Heading("Time to target"), Paragraph(text), Table(header, rows)]
    if times.empty:
        return output
    colors = palette(data.frame["arm"])
    output.figures[TIME_TO_TARGET_PNG] = plot_time_to_target(times, targets, colors)
    output.blocks.append(Image(TIME_TO_TARGET_PNG, TIME_CAPTION))
    if not profile.empty:
        output.figures[PERFORMANCE_PROFILE_PNG] = plot_performance_profile(profile, colors)
        output.blocks.append(Image(PERFORMANCE_PROFILE_PNG, PROFILE_CAPTION))
    return output


def _median_cell(row: pd.Series, name: str, digits: int) -> str:
    """``3 [2, 4]``; a missing median is "not reached" (fewer than half got there), a missing bound "∞"."""
    median, low, high = (row[f"{name}_{part}"] for part in ("median", "ci_low", "ci_high"))
    if pd.isna(median):
        return "not reached"
    low_text = "—" if pd.isna(low) else f"{low:.{digits}f}"
    high_text = "∞" if pd.isna(high) else f"{high:.{digits}f}"
    return f"{median:.{digits}f} [{low_text}, {high_text}]"
