"""Figures drawn from the report's tables with seaborn: learning curves, throughput, paired differences.

Every ``plot_*`` function takes a tidy frame that already has the label columns of
:func:`bench.report.groups.add_labels` (``arm``, ``stratum``, ``timing_arm``) or a table made from one, and
returns a matplotlib Figure; :func:`save_figure` writes it as a PNG and closes it, so no window ever opens.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from bench.io import atomic_write_bytes
from bench.report.stats import t_interval

DPI = 160
#: Axis labels with units, by metric family (the name without ``val_``).
AXIS_LABELS = {
    "loss": "loss incl. each arm's L2 penalty (nats; not comparable across penalties)",
    "ce_loss": "cross-entropy (nats)",
    "accuracy": "accuracy (fraction correct)",
    "lr": "learning rate",
    "epoch_time_s": "epoch time (s)",
    "train_images_per_s": "training throughput (images/s)",
}
SPLIT_DASHES = {"train": "", "validation": (4, 2)}  # train solid, validation dashed


def palette(labels: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour-blind-safe colour per label, the same in every figure of a report."""
    ordered = sorted(set(labels))
    colors = sns.color_palette("colorblind" if len(ordered) <= 10 else "husl", len(ordered))  # no repeats
    return dict(zip(ordered, colors, strict=True))


def family(metric: str) -> str:
    return metric.removeprefix("val_")


def _curve_data(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Long form: one row per run x epoch x metric, with ``split`` = train or validation."""
    long = frame.melt(
        id_vars=["run_dir", "epoch", "arm", "stratum"], value_vars=list(metrics), var_name="metric"
    )
    split = long["metric"].str.startswith("val_").map({True: "validation", False: "train"})
    return long.assign(split=split, value=long["value"].astype(float)).dropna(subset=["value"])


def _band_text(frame: pd.DataFrame) -> str:
    """``mean of 3 seeds, band: 95 % t-interval``, ``mean of 2-3 seeds, ...`` or ``1 seed, no band``."""
    counts = frame.groupby(["stratum", "arm"])["run_dir"].nunique()
    low, high = counts.min(), counts.max()
    if high == 1:
        return "1 seed, no band"
    return f"mean of {low if low == high else f'{low}-{high}'} seeds, band: 95 % t-interval"


def _facets(data: pd.DataFrame) -> dict[str, Any]:
    """One column of panels per stratum (backend), unless nothing splits the runs."""
    strata = data["stratum"].unique()
    if len(strata) == 1 and strata[0] == "":
        return {}
    return {"col": "stratum", "col_wrap": min(len(strata), 3)}


#: A legend taller than this many entries wraps into more columns, so that it fits beside the axes (a grid's
#: 64 arms in one column are taller than any figure, and tight_layout gives up).
LEGEND_ROWS = 20


def legend_columns(n_entries: int) -> int:
    return max(1, math.ceil(n_entries / LEGEND_ROWS))


def tight_layout(fig: plt.Figure) -> None:
    """``fig.tight_layout()``, quiet when a wide legend outside the axes leaves it no room: it then keeps the
    layout as it is, and ``save_figure``'s ``bbox_inches="tight"`` still puts the whole legend in the PNG."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Tight layout not applied", UserWarning)
        fig.tight_layout()


def plot_curves(frame: pd.DataFrame, metrics: Sequence[str], colors: dict, hue_title: str) -> plt.Figure:
    """Seed-averaged learning curves of one metric family, mean line and 95 % t-interval band.

    Args:
        frame: tidy rows of the runs to average (completed runs).
        metrics: the metrics to draw, e.g. ``["loss", "val_loss"]``; ``val_`` ones are dashed.
        colors: arm label → colour.
        hue_title: the legend title of the arms (the compared key, e.g. ``optimizer``).
    """
    data = _curve_data(frame, metrics)
    splits = [split for split in SPLIT_DASHES if split in set(data["split"])]
    grid = sns.relplot(
        data=data,
        kind="line",
        x="epoch",
        y="value",
        hue="arm",
        hue_order=sorted(data["arm"].unique()),
        palette=colors,
        style="split",
        style_order=splits,
        dashes=SPLIT_DASHES,
        markers=True,
        errorbar=t_interval,  # a t-interval, like the tables: a bootstrap misleads with 3 seeds
        height=3.6,
        aspect=1.25,
        **_facets(data),
    )
    name = family(metrics[0])
    grid.set_axis_labels("epoch", AXIS_LABELS.get(name, name))
    grid.set_titles("{col_name}")
    epochs = sorted(data["epoch"].unique())
    for ax in grid.axes.flat:
        if len(epochs) <= 15:
            ax.set_xticks(epochs)  # whole epochs only, even when there is just one
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for text in grid.legend.texts:  # seaborn titles the hue entries with the column name, "arm"
        text.set_text({"arm": hue_title}.get(text.get_text(), text.get_text()))
    if len(grid.legend.texts) > LEGEND_ROWS:
        sns.move_legend(
            grid, "upper left", bbox_to_anchor=(1.0, 1.0), ncol=legend_columns(len(grid.legend.texts))
        )
    grid.figure.suptitle(f"{name} per epoch ({_band_text(frame)})", y=1.03)
    grid.tight_layout()  # FacetGrid's own layout keeps room for the legend outside the axes
    return grid.figure


def plot_timing(frame: pd.DataFrame, colors: dict, hue_title: str) -> plt.Figure:
    """Median training throughput per group, error bars from the 25th to the 75th percentile.

    Args:
        frame: tidy rows of the steady epochs (see :func:`bench.report.stats.steady_epochs`).
        colors: timing-arm label → colour.
        hue_title: the legend title (the compared key).
    """
    data = frame.assign(stratum=frame["stratum"].replace("", "all runs"))
    n_bars = data["stratum"].nunique() * data["timing_arm"].nunique()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.7 * n_bars), 3.8))
    sns.barplot(
        data=data,
        x="stratum",
        y="train_images_per_s",
        hue="timing_arm",
        hue_order=sorted(data["timing_arm"].unique()),
        palette=colors,
        estimator="median",
        errorbar=("pi", 50),  # the 25th-75th percentile range, the IQR of timing.csv
        capsize=0.15,
        ax=ax,
    )
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.0f", label_type="center", fontsize=8, color="white")
    ax.set(xlabel="", ylabel=AXIS_LABELS["train_images_per_s"])
    title = "Training throughput\nmedian; error bars span the IQR over runs x epochs, epoch 1 excluded"
    ax.set_title(title, fontsize=10)
    n_entries = len(ax.get_legend_handles_labels()[0])
    ax.legend(
        title=hue_title,
        frameon=False,
        bbox_to_anchor=(1.01, 1),
        loc="upper left",
        ncol=legend_columns(n_entries),
    )
    ax.grid(axis="y", alpha=0.3)
    tight_layout(fig)
    return fig


def _in_unit(values: pd.Series | float, metric: str) -> pd.Series | float:
    """Accuracy differences in points, losses in nats: the unit of the report's tables."""
    return 100 * values if "accuracy" in metric else values


def plot_paired_differences(differences: pd.DataFrame, comparisons: pd.DataFrame, metric: str) -> plt.Figure:
    """Per-seed differences A - B (dots), the 95 % interval of their mean (bar) and the ±margin band.

    Args:
        differences: rows of :func:`bench.report.compare.seed_differences` (paired comparisons only).
        comparisons: rows of :func:`bench.report.compare.compare_arms`; unpaired (Welch) pairs show the
            interval without dots.
        metric: ``val_accuracy`` (drawn in points) or ``val_ce_loss`` (nats).
    """
    tests = comparisons[comparisons["metric"] == metric].assign(
        pair=lambda t: t["arm_a"] + " − " + t["arm_b"]
    )
    strata = list(dict.fromkeys(tests["stratum"]))
    n_pairs = tests.groupby("stratum").size().max()
    fig, axes = plt.subplots(
        1, len(strata), figsize=(1.5 + 4.5 * len(strata), 1.2 + 0.7 * n_pairs), squeeze=False, sharex=True
    )
    for ax, stratum in zip(axes.flat, strata, strict=True):
        _draw_pairs(ax, tests[tests["stratum"] == stratum], differences, metric)
        ax.set_title(stratum or "all runs", fontsize=10)
    unit = "points" if "accuracy" in metric else "nats"
    better = "right: A higher" if "accuracy" in metric else "left: A lower"
    fig.supxlabel(f"final {metric}, A − B ({unit}; {better})", fontsize=9)
    fig.suptitle(f"Paired differences per seed: {metric}", fontsize=10)
    tight_layout(fig)
    return fig


def _draw_pairs(ax: plt.Axes, tests: pd.DataFrame, differences: pd.DataFrame, metric: str) -> None:
    """One row per pair of arms: the margin band, zero, the seeds' dots and the interval of the mean."""
    margin = _in_unit(tests["margin"].iloc[0], metric)
    ax.axvspan(-margin, margin, color="0.85", label=f"±margin ({margin:g})")
    ax.axvline(0, color="0.3", lw=0.8)
    for y, (_, test) in enumerate(tests.iterrows()):
        dots = differences[
            (differences["stratum"] == test["stratum"])
            & (differences["metric"] == metric)
            & (differences["arm_a"] == test["arm_a"])
            & (differences["arm_b"] == test["arm_b"])
        ]
        ax.scatter(_in_unit(dots["diff"], metric), [y] * len(dots), s=18, color="C0", alpha=0.7, zorder=3)
        mean, low, high = (_in_unit(test[key], metric) for key in ("diff", "ci_low", "ci_high"))
        if pd.notna(low):
            ax.errorbar(mean, y + 0.22, xerr=[[mean - low], [high - mean]], fmt="o", color="black", capsize=3)
        ax.annotate(f"{test['test']}: {test['decision']}", (1.0, y - 0.25), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=7, color="0.3")  # fmt: skip
    ax.set_yticks(range(len(tests)), tests["pair"])
    ax.set_ylim(-0.6, len(tests) - 0.3)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Render to memory then write atomically, so a reader never sees half a PNG."""
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path
