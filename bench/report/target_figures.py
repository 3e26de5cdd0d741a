"""Figures of the time-to-target tables: Kaplan-Meier curves per stratum and the performance profile.

The functions return the figure and save nothing: the caller writes it with
:func:`bench.report.plots.save_figure`, which also closes it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report.plots import legend_columns, tight_layout
from bench.report.target import kaplan_meier

REACHED_MARKER = {"marker": "o", "s": 28, "zorder": 3}
GREY = "0.4"


def _title(stratum: str, summary: pd.DataFrame, times: pd.DataFrame) -> str:
    """``keras: target 57.0 % val_accuracy``; the target is the same for every arm of a stratum."""
    targets = pd.concat([summary["target"], times["target"]]).dropna()
    where = stratum or "all runs"
    if targets.empty:
        return f"{where}: no completed run"
    return f"{where}: target {100 * targets.iloc[0]:.1f} % val_accuracy"


def _draw_arm(ax: Axes, runs: pd.DataFrame, color: object, arm: str) -> None:
    """One arm's step curve of 1 - KM survival, its reaching runs as dots, censored runs as open dots."""
    fit = kaplan_meier(runs["train_s"], runs["reached"])
    if fit is None:
        return
    x = np.concatenate([[0.0], fit.sf.quantiles])  # no run is at target before training starts
    y = np.concatenate([[0.0], 1 - fit.sf.probabilities])
    ax.step(x, y, where="post", color=color, label=arm)
    runs = runs.dropna(subset=["train_s"])
    at = 1 - fit.sf.evaluate(runs["train_s"].to_numpy(dtype=float))
    hit = runs["reached"].to_numpy(dtype=bool)
    ax.scatter(runs["train_s"][hit], at[hit], color=color, **REACHED_MARKER)
    # Open: the run stopped here without reaching the target, so its time is only "more than this".
    ax.scatter(runs["train_s"][~hit], at[~hit], facecolors="none", edgecolors=color, **REACHED_MARKER)


def _marker_handles() -> list[Line2D]:
    """Legend entries that explain the two kinds of dots."""
    style = {"linestyle": "", "marker": "o", "color": GREY}
    return [
        Line2D([], [], label="run reached target", **style),
        Line2D([], [], label="run never reached (censored)", markerfacecolor="none", **style),
    ]


def plot_time_to_target(times: pd.DataFrame, summary: pd.DataFrame, colors: dict) -> Figure:
    """Fraction of runs at the target against training time: one panel per stratum, one curve per arm.

    Args:
        times: the output of :func:`bench.report.target.time_to_target`.
        summary: the output of :func:`bench.report.target.target_summary` (for the target in titles).
        colors: arm label → colour (see :func:`bench.report.plots.palette`).

    Returns:
        The figure, not saved.
    """
    strata = sorted(times["stratum"].unique()) or [""]
    columns = legend_columns(times["arm"].nunique() + len(_marker_handles()))
    width = 3.0 + 4.5 * len(strata) + 2.5 * (columns - 1)  # room for a legend wrapped into columns
    fig, axes = plt.subplots(1, len(strata), figsize=(width, 3.8), sharey=True, squeeze=False)
    for ax, stratum in zip(axes.flat, strata, strict=True):
        runs = times[times["stratum"] == stratum]
        for arm, arm_runs in runs.groupby("arm", sort=True):
            _draw_arm(ax, arm_runs, colors.get(arm), str(arm))
        ax.axhline(0.5, color=GREY, linewidth=0.8, linestyle=":")  # where the median is read off
        ax.set_title(_title(stratum, summary[summary["stratum"] == stratum], runs), fontsize=10)
        ax.set(xlabel="cumulative training time (s)", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes.flat[0].set_ylabel("fraction of runs at target\n(1 − Kaplan-Meier survival)")
    handles = axes.flat[-1].get_legend_handles_labels()[0] + _marker_handles()
    axes.flat[-1].legend(
        handles=handles,
        frameon=False,
        bbox_to_anchor=(1.01, 1),
        loc="upper left",
        ncol=legend_columns(len(handles)),
    )
    fig.suptitle("Time to target val_accuracy (dotted: half of the runs)", fontsize=11)
    tight_layout(fig)
    return fig


def plot_performance_profile(profile: pd.DataFrame, colors: dict) -> Figure:
    """Performance profile: rho(tau) per arm as a step curve on a log tau axis.

    Args:
        profile: the output of :func:`bench.report.target.performance_profile`.
        colors: arm label → colour.

    Returns:
        The figure, not saved; with an empty profile it holds a note instead of curves.
    """
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for arm, rows in profile.groupby("arm", sort=True):
        rows = rows.sort_values("tau")
        ax.step(rows["tau"], rows["rho"], where="post", color=colors.get(arm), label=str(arm))
    if profile.empty:  # fewer than two strata where some arm reached the target
        ax.text(0.5, 0.5, "needs two or more strata", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(1, 10)  # a log axis needs positive limits even without data
    ax.set_xscale("log")
    # Plain 1, 2, 5, 10 ticks: ratios span little more than a decade, where 2x10^0 reads badly.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(
        xlabel="τ: training time / best arm's, log scale",
        ylabel="fraction of strata within τ",
        ylim=(-0.03, 1.03),
    )
    ax.set_title("Performance profile of the median training time to target", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if not profile.empty:
        ax.legend(frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    tight_layout(fig)
    return fig
