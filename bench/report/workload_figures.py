"""The figure across workloads: per pair of arms, each workload's difference with its interval and decision,
and the pooled aggregate in the panel's title (bench/report/workloads.py). Returns the figure, saves nothing."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.decide import Decision, fmt
from bench.report.load import WORKLOAD
from bench.report.plots import tight_layout

#: Decision -> colour (colour-blind-safe: blue, orange, grey) and marker.
STYLE = {
    "better": {"color": "#0072B2", "marker": "o"},
    Decision.EQUIVALENT: {"color": "#E69F00", "marker": "D"},
    Decision.UNDECIDED: {"color": "0.45", "marker": "o"},
}


def plot_across_workloads(panels: Sequence[tuple[pd.Series, pd.DataFrame]]) -> Figure:
    """One panel per group x pair (a row of ``across_workloads`` and its per-workload tests, oriented A − B:
    ``workloads.pair_tests``): a row per workload with A − B in points, its 95 % interval and the equivalence
    band, coloured by the workload's decision; the title tallies them and gives the pooled P(A beats B)."""
    rows = max(len(tests) for _, tests in panels)
    height = 1.6 + (0.5 * rows + 1.4) * len(panels)  # the workloads' rows, the pooled row, the title
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.0, height), squeeze=False)
    for ax, (pair, tests) in zip(axes[:, 0], panels, strict=True):
        _draw_pair(ax, tests, pair)
    handles = [
        Line2D([], [], linestyle="", label=name, markersize=6, **STYLE[decision])
        for name, decision in (("one arm better", "better"), ("equivalent", Decision.EQUIVALENT),
                               ("undecided", Decision.UNDECIDED))
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8)
    tight_layout(fig)
    fig.subplots_adjust(bottom=0.9 / fig.get_figheight())
    return fig


def _draw_pair(ax: plt.Axes, tests: pd.DataFrame, pair: pd.Series) -> None:
    scale = 100.0  # accuracy fractions as points
    names = tests[WORKLOAD]
    margin = float(tests["margin"].iloc[0]) * scale if len(tests) else 0.0
    ax.axvspan(-margin, margin, color="#E69F00", alpha=0.12, lw=0)
    ax.axvline(0, color="0.3", lw=0.8)
    for y, (_, test) in enumerate(tests.iterrows()):
        style = STYLE["better"] if test["decision"] == Decision.BETTER else STYLE.get(test["decision"])
        style = style or STYLE[Decision.UNDECIDED]
        if pd.notna(test["ci_low"]):
            ax.plot([test["ci_low"] * scale, test["ci_high"] * scale], [y, y], color=style["color"], lw=2)
        ax.plot(test["diff"] * scale, y, linestyle="", markersize=7, **style)
    # The pooled mean difference below the workloads, as a forest plot's summary row: black, a diamond.
    pooled_y = -1.2
    if pd.notna(pair["mean_diff_ci_low"]):
        ax.plot(
            [pair["mean_diff_ci_low"] * scale, pair["mean_diff_ci_high"] * scale],
            [pooled_y] * 2,
            color="k",
            lw=2,
        )
    ax.plot(pair["mean_diff"] * scale, pooled_y, linestyle="", marker="D", color="k", markersize=8)
    ax.axhline(-0.6, color="0.75", lw=0.6)
    ax.set_yticks([pooled_y, *range(len(tests))], ["pooled (mean)", *names])
    ax.set_ylim(pooled_y - 0.6, len(tests) - 0.4)
    ax.set_xlabel(
        f"{pair['arm_a']} − {pair['arm_b']}, final {pair['metric']} (points), 95 % CI; band: ±margin"
    )
    ax.set_title(_title(pair), fontsize=9, loc="left")


def _title(pair: pd.Series) -> str:
    a, b = pair["arm_a"], pair["arm_b"]
    where = f"{pair['group']}: " if pair["group"] else ""
    tally = (
        f"{a} better {pair['wins_a']}, {b} better {pair['wins_b']}, equivalent {pair['equivalent']}, "
        f"undecided {pair['undecided']} of {pair['workloads']} workloads"
    )
    interval = (
        f" [{pair['p_a_better_ci_low']:.2f}, {pair['p_a_better_ci_high']:.2f}]"
        if pd.notna(pair["p_a_better_ci_low"])
        else ""
    )
    mean = fmt(pair["mean_diff"], "accuracy")
    if pd.notna(pair["mean_diff_ci_low"]):
        mean += (
            f" [{fmt(pair['mean_diff_ci_low'], 'accuracy')}, {fmt(pair['mean_diff_ci_high'], 'accuracy')}]"
        )
    pooled = f"pooled: P({a} beats {b}) = {pair['p_a_better']:.2f}{interval}; mean {mean} points"
    return f"{where}{tally}\n{pooled}"
