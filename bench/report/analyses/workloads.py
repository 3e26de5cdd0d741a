"""Across workloads (a sweep of two or more): per pair of arms, how many workloads each wins, ties or leaves
undecided, and the pooled P(A beats B) with a stratified-bootstrap interval (bench/report/workloads.py), in a
table and one figure. The per-workload verdicts are the verdict section's; the time-to-target section's
performance profile is over the same workloads."""

from __future__ import annotations

from bench.decide import fmt
from bench.report.analysis import Output, ReportInput
from bench.report.render import Heading, Image, Paragraph, Table
from bench.report.workload_figures import plot_across_workloads
from bench.report.workloads import MIN_SEEDS, across_workloads, has_workloads, pair_tests
from bench.results import ACROSS_WORKLOADS_CSV, ACROSS_WORKLOADS_PNG

CAPTION = (
    "Each workload's A − B in final val_accuracy (points) with its 95 % interval, coloured by that workload's "
    "decision; the shaded band is the equivalence margin. Title: the tally over workloads and the pooled "
    "probability that a run of A beats a run of B, with its stratified-bootstrap 95 % interval."
)


def analyse(data: ReportInput) -> Output:
    if data.protocol or not has_workloads(data.finals) or data.comparisons.empty:
        return Output()
    across = across_workloads(data.finals, data.comparisons, data.grouping.strata)
    output = Output(tables={ACROSS_WORKLOADS_CSV: across})
    if across.empty:
        return output
    rows = [
        [
            row["group"] or "all runs", f"{row['arm_a']} vs {row['arm_b']}", str(row["workloads"]),
            str(row["wins_a"]), str(row["wins_b"]), str(row["equivalent"]), str(row["undecided"]),
            interval_cell(row["p_a_better"], row["p_a_better_ci_low"], row["p_a_better_ci_high"], "{:.2f}"),
            interval_cell(row["mean_diff"], row["mean_diff_ci_low"], row["mean_diff_ci_high"], None),
        ]
        for _, row in across.iterrows()
    ]  # fmt: skip
    header = ["group", "A vs B", "workloads", "A better", "B better", "equivalent", "undecided"]
    header += ["P(A beats B) [95 % CI]", "mean A − B, points [95 % CI]"]
    text = (
        "A verdict on one workload is an anecdote: rankings of optimizers change from task to task. Per pair, "
        "the tally counts the workloads where each arm is better, the two are equivalent or the pair is "
        "undecided, by each workload's own verdict above (runs of different workloads are never averaged). "
        "The aggregate is the probability that a run of A beats a run of B (ties half), averaged over the "
        "workloads (rliable's computation, Agarwal et al. 2021), with a 95 % interval from a bootstrap "
        "stratified by workload (it redraws the seeds within each workload, jointly where both arms share them, "
        f"and keeps the workloads; given from {MIN_SEEDS} seeds an arm in every workload, as with fewer it is "
        "far too narrow); and the mean difference in points averaged the same way, with a t-interval "
        "(Welch-Satterthwaite over the workloads). Both intervals measure seed-to-seed noise on these "
        f"workloads, not what other workloads would show. File: `{ACROSS_WORKLOADS_CSV}`."
    )
    panels = [
        (pair, pair_tests(data.finals, data.comparisons, data.grouping.strata, pair))
        for _, pair in across.iterrows()
    ]
    output.figures[ACROSS_WORKLOADS_PNG] = plot_across_workloads(panels)
    output.blocks = [
        Heading("Across workloads"), Paragraph(text), Table(header, rows), Image(ACROSS_WORKLOADS_PNG, CAPTION)
    ]  # fmt: skip
    return output


def interval_cell(point: float, low: float, high: float, pattern: str | None) -> str:
    """``0.78 [0.61, 0.92]`` (pattern) or accuracy points ``4.3 [1.2, 7.5]``; no interval where there is none."""

    def show(value: float) -> str:
        return pattern.format(value) if pattern else fmt(value, "accuracy")

    return show(point) + (f" [{show(low)}, {show(high)}]" if low == low else "")  # NaN != NaN
