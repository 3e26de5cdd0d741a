"""Learning rate x regularization heatmaps, in the style of Loshchilov & Hutter (2019), Fig. 2.

When the runs vary the learning rate (``optimizer.lr``) and the regularization strength (``optimizer.l2`` of
sgd_l2, adam_l2 and a user's optimizer, ``optimizer.weight_decay`` of sgdw and adamw) over a full grid, the
report gets one heatmap per optimizer (and per backend, or any other setting that varies): final val_accuracy
averaged over the completed seeds of each cell, log-spaced axes, every cell annotated, the best cell framed.
As in the paper, panels are laid out by family (SGD row, Adam row) and regularization (L2 column, decoupled
column; ``bench.config.LOSHCHILOV_HUTTER_CELLS``), all on one colour scale.

Coupling is about the ridge: the best regularization for each learning rate. If it changes with the learning
rate, the two are coupled. :func:`coupling_sentence` measures the
ridge's slope (decades of regularization per decade of learning rate), says in how many columns the optimum
stands out from seed noise, and compares the L2 and decoupled variant of each family without claiming more
than that.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from bench.config import LOSHCHILOV_HUTTER_CELLS
from bench.report.groups import Grouping, iter_groups, label
from bench.results import RunStatus

LR_KEY = "optimizer.lr"
REG_KEYS = {"optimizer.l2": "L2 factor", "optimizer.weight_decay": "weight decay"}
#: The figure's columns: coupled L2 penalty, then decoupled weight decay (by the panel's regularization key).
COLUMNS = {"optimizer.l2": "L2", "optimizer.weight_decay": "decoupled"}
METRIC = "val_accuracy"
#: Ridge slopes (decades of regularization per decade of lr) that differ by this much count as different.
CLEAR_SLOPE_DIFFERENCE = 0.5
#: A column's optimum is resolved when it beats the runner-up by this many standard errors of the difference.
RESOLVED_SE = 2.0


@dataclass
class Panel:
    """One heatmap: rows are regularization values, columns learning rates, both ascending."""

    arm: str  # the optimizer (with any setting that comes with it), as the report labels arms
    stratum: str  # the other settings (e.g. the backend): ridges are compared within one stratum
    optimizer: str  # optimizer.name: places the panel in the figure's family rows
    reg_key: str
    lrs: list[float]
    regs: list[float]
    mean: np.ndarray  # mean final val_accuracy of the completed runs of each cell; NaN where there is none
    n: np.ndarray  # completed runs per cell
    n_diverged: np.ndarray
    sd: float  # pooled sd across seeds within cells; NaN when no cell has two completed seeds

    @property
    def family(self) -> str:
        """The figure's row: SGD or Adam for the built-in optimizers, the optimizer's own name otherwise."""
        return LOSHCHILOV_HUTTER_CELLS.get(self.optimizer, (self.optimizer, None))[0]

    @property
    def column(self) -> str:
        """The figure's column: L2 or decoupled, from the regularization the grid varies."""
        return COLUMNS[self.reg_key]

    @property
    def best(self) -> tuple[int, int] | None:
        """(row, column) of the highest mean, or None when no cell has a completed run."""
        if np.isnan(self.mean).all():
            return None
        return tuple(int(i) for i in np.unravel_index(np.nanargmax(self.mean), self.mean.shape))


@dataclass
class Ridge:
    """The best regularization of each learning-rate column that has a completed run."""

    lrs: list[float]
    best_regs: list[float]
    resolved: list[bool]  # the column's best beats its runner-up beyond seed noise
    slope: float  # least-squares slope of log10(best reg) on log10(lr); NaN with fewer than 2 columns

    @property
    def n_resolved(self) -> int:
        return sum(self.resolved)


def _pooled_sd(groups: list[pd.Series]) -> float:
    """sqrt of the within-cell variances averaged with n-1 weights: the seed noise of one run."""
    pairs = [(len(g) - 1, g.var(ddof=1)) for g in groups if len(g) > 1]
    dof = sum(d for d, _ in pairs)
    return math.sqrt(sum(d * v for d, v in pairs) / dof) if dof else math.nan


def _panel(runs: pd.DataFrame, reg_key: str, arm: str, stratum: str) -> Panel | None:
    """The panel of one optimizer's runs, or None unless they cover a full grid of >= 2 x 2 values."""
    runs = runs.dropna(subset=[LR_KEY, reg_key])
    lrs, regs = sorted(runs[LR_KEY].unique()), sorted(runs[reg_key].unique())
    cells = {key: group for key, group in runs.groupby([reg_key, LR_KEY])}
    if len(lrs) < 2 or len(regs) < 2 or len(cells) < len(lrs) * len(regs):
        return None  # an Optuna search samples scattered points: no grid to draw
    shape = (len(regs), len(lrs))
    mean, n, n_diverged = np.full(shape, np.nan), np.zeros(shape, int), np.zeros(shape, int)
    done_scores = []
    for (i, reg), (j, lr) in itertools.product(enumerate(regs), enumerate(lrs)):
        cell = cells[(reg, lr)]
        done = cell.loc[cell["status"] == RunStatus.COMPLETED, METRIC].astype(float)
        mean[i, j] = done.mean() if len(done) else np.nan
        n[i, j], n_diverged[i, j] = len(done), int((cell["status"] == RunStatus.DIVERGED).sum())
        done_scores.append(done)
    sd = _pooled_sd(done_scores)
    optimizer = str(runs["optimizer"].iloc[0])
    return Panel(arm, stratum, optimizer, reg_key, lrs, regs, mean, n, n_diverged, sd)


def find_panels(finals: pd.DataFrame, grouping: Grouping) -> list[Panel]:
    """One panel per optimizer x other varying setting whose runs form an lr x regularization grid."""
    reg_keys = [key for key in REG_KEYS if key in finals.columns]
    if LR_KEY not in finals.columns or not reg_keys:
        return []
    grid_keys = {LR_KEY, *REG_KEYS}
    columns = [c for c in grouping.columns if c not in grid_keys]
    strata = [c for c in grouping.stratum_label_columns if c not in grid_keys]
    arms = [c for c in grouping.arm_label_columns if c not in grid_keys]
    panels = []
    for _, runs in iter_groups(finals, columns):
        reg_key = next((key for key in reg_keys if runs[key].notna().any()), None)
        if reg_key is None:
            continue
        first = runs.iloc[0]
        panel = _panel(runs, reg_key, label(first, arms), label(first, strata))
        if panel is not None:
            panels.append(panel)
    return panels


def ridge(panel: Panel) -> Ridge:
    """Where the best regularization of each learning rate lies, and whether seed noise could move it."""
    lrs, best_regs, resolved = [], [], []
    for j, lr in enumerate(panel.lrs):
        column = panel.mean[:, j]
        if np.isnan(column).all():
            continue
        order = np.argsort(-np.nan_to_num(column, nan=-np.inf), kind="stable")  # best first, empty cells last
        best, runner_up = order[0], order[1]
        lrs.append(lr)
        best_regs.append(panel.regs[best])
        resolved.append(_beats(panel, (best, j), (runner_up, j)))
    slope = np.polyfit(np.log10(lrs), np.log10(best_regs), 1)[0] if len(lrs) >= 2 else math.nan
    return Ridge(lrs, best_regs, resolved, float(slope))


def _beats(panel: Panel, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Cell a's mean exceeds cell b's by more than RESOLVED_SE standard errors of their difference."""
    if np.isnan(panel.mean[b]):
        return bool(panel.n_diverged[b])  # the runner-up diverged: the best is the only candidate
    if math.isnan(panel.sd):
        return False  # one seed per cell: the noise is unknown, nothing stands out from it
    se = panel.sd * math.sqrt(1 / panel.n[a] + 1 / panel.n[b])
    return bool(panel.mean[a] - panel.mean[b] > RESOLVED_SE * se)


def tick(value: float) -> str:
    """Short labels for log-spaced axes: 1e-4, 3e-4, 0.01, 0.1, 1, 10."""
    if 1e-2 <= value < 1e3:
        return f"{value:g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _signed(slope: float) -> str:
    return f"{round(slope, 1) + 0.0:+.1f}"  # + 0.0 turns -0.0 into 0.0


def _ticks(values: list[float]) -> str:
    return ", ".join(tick(v) for v in values)


def describe_ridge(panel: Panel, line: Ridge) -> str:
    reg = REG_KEYS[panel.reg_key]
    slope = "no slope" if math.isnan(line.slope) else f"slope {_signed(line.slope)}"
    return (
        f"{panel.arm}: best {reg} {_ticks(line.best_regs)} at learning rate {_ticks(line.lrs)} ({slope}; "
        f"optimum resolved in {line.n_resolved} of {len(line.lrs)} columns)"
    )


def _family_verdict(family: str, coupled: tuple[Panel, Ridge], decoupled: tuple[Panel, Ridge]) -> str:
    """Whether the decoupled variant's optimum moves less with the learning rate than the L2 variant's."""
    (l2_panel, l2_line), (wd_panel, wd_line) = coupled, decoupled
    names = f"{l2_panel.arm} and {wd_panel.arm}"
    unresolved = [panel.arm for panel, line in (coupled, decoupled) if line.n_resolved < 2]
    if unresolved:
        reason = f"the optimum is resolved in fewer than 2 columns for {', '.join(unresolved)}"
        return f"{family}: no clear difference in coupling between {names} ({reason})."
    slopes = f"ridge slopes {l2_panel.arm} {_signed(l2_line.slope)}, {wd_panel.arm} {_signed(wd_line.slope)}"
    less = abs(l2_line.slope) - abs(wd_line.slope)
    if less >= CLEAR_SLOPE_DIFFERENCE:
        return f"{family}: the best regularization moves less with the learning rate for {wd_panel.arm} ({slopes})."
    if -less >= CLEAR_SLOPE_DIFFERENCE:
        return f"{family}: the best regularization moves more with the learning rate for {wd_panel.arm} ({slopes})."
    return f"{family}: no clear difference in coupling between {names} ({slopes})."


def _pairs(ridges: list[tuple[Panel, Ridge]]) -> list[tuple[str, tuple[Panel, Ridge], tuple[Panel, Ridge]]]:
    """(family, L2 panel, decoupled panel) for each family of the stratum that has exactly one of each."""
    pairs = []
    for family in dict.fromkeys(panel.family for panel, _ in ridges):
        members = {
            column: [r for r in ridges if r[0].family == family and r[0].column == column]
            for column in ("L2", "decoupled")
        }
        if len(members["L2"]) == 1 and len(members["decoupled"]) == 1:
            pairs.append((family, members["L2"][0], members["decoupled"][0]))
    return pairs


def coupling_sentence(panels: list[Panel]) -> str:
    """The ridge of each panel in words, then, per family with an L2 and a decoupled variant, a verdict."""
    sentences = []
    for stratum in dict.fromkeys(panel.stratum for panel in panels):
        ridges = [(panel, ridge(panel)) for panel in panels if panel.stratum == stratum]
        ridges = [(panel, line) for panel, line in ridges if line.lrs]  # a grid of diverged runs has none
        if not ridges:
            continue
        where = f"On {stratum}, the" if stratum else "The"
        described = "; ".join(describe_ridge(panel, line) for panel, line in ridges)
        sentences.append(f"{where} best regularization per learning rate (the ridge): {described}.")
        sentences += [_family_verdict(*pair) for pair in _pairs(ridges)]
    return " ".join(sentences) or "No run of the grid completed, so there is no ridge to describe."


EXPLANATION = (
    "Final val_accuracy (%) of completed runs, mean over seeds, on a grid of learning rate x regularization "
    "(log-spaced axes), in the style of Loshchilov & Hutter (2019), Fig. 2. Thick black frame: the best cell; "
    "white frames: the best regularization of each learning rate (the ridge); † some seeds diverged (left out "
    "of the mean); `div` all diverged; — none completed. If regularization and learning rate are coupled, the "
    "ridge moves with the learning rate: slope -1 (decades of regularization per decade of lr) means only "
    "their product matters, slope 0 that the best regularization does not depend on the learning rate. "
    "Keras' SGD(weight_decay) and AdamW (and flowerbench's torch sgdw and adamw) decay `w <- w - lr * wd * w`, "
    "so wd is tied to lr by construction, unlike the paper's SGDW and AdamW, whose decay follows only the "
    "schedule. A column's optimum counts as resolved when it beats the column's runner-up by more than "
    f"{RESOLVED_SE:g} standard errors of the difference (seed sd pooled over cells). Within a family (SGD, "
    "Adam) the L2 and the decoupled variant are compared only when each ridge is resolved in at least 2 "
    "columns; the decoupled one is less coupled when its slope is closer to 0 by "
    f"{CLEAR_SLOPE_DIFFERENCE:g} or more. File: `heatmap.csv`."
)


def _cell_text(panel: Panel, i: int, j: int) -> str:
    if panel.n[i, j] == 0:
        return "div" if panel.n_diverged[i, j] else "—"
    return f"{100 * panel.mean[i, j]:.1f}" + ("†" if panel.n_diverged[i, j] else "")


def _frame(ax: plt.Axes, i: int, j: int, color: str, width: float) -> None:
    ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor=color, linewidth=width))


def _draw_panel(ax: plt.Axes, panel: Panel, limits: tuple[float, float], title: str) -> AxesImage:
    """One heatmap: cells annotated, the ridge in white frames, the best cell in a thick black one."""
    image = ax.imshow(100 * panel.mean, origin="lower", cmap="viridis", vmin=limits[0], vmax=limits[1])
    middle = (limits[0] + limits[1]) / 2
    for i, j in itertools.product(range(len(panel.regs)), range(len(panel.lrs))):
        dark = np.isnan(panel.mean[i, j]) or 100 * panel.mean[i, j] < middle  # viridis is dark at the bottom
        ax.text(j, i, _cell_text(panel, i, j), ha="center", va="center", fontsize=8,
                color="white" if dark else "black")  # fmt: skip
    line = ridge(panel)
    for lr, reg in zip(line.lrs, line.best_regs, strict=True):
        _frame(ax, panel.regs.index(reg), panel.lrs.index(lr), "white", 1.2)
    if panel.best is not None:
        _frame(ax, *panel.best, "black", 2.8)
    ax.set_xticks(range(len(panel.lrs)), [tick(v) for v in panel.lrs])
    ax.set_yticks(range(len(panel.regs)), [tick(v) for v in panel.regs])
    ax.set(xlabel="learning rate (log scale)", ylabel=f"{REG_KEYS[panel.reg_key]} (log scale)")
    ax.set_title(title, fontsize=10)
    return image


def _seeds_text(panels: list[Panel]) -> str:
    counts = sorted({int(n) for panel in panels for n in panel.n.ravel() if n})
    if not counts:
        return "no completed run"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"mean of {span} seed{'s' if counts[-1] > 1 else ''} per cell"


def layout(panels: list[Panel]) -> tuple[list[tuple[str, str, int]], list[str], list[tuple[int, int]]]:
    """Where each panel goes, as in Loshchilov & Hutter's Fig. 2: rows (stratum, family, k) with SGD before
    Adam, columns L2 before decoupled (only those some panel uses), and each panel's (row, column). The k-th
    panel of one stratum, family and column (two arms of one optimizer) gets a row of its own."""
    families = list(dict.fromkeys(family for family, _ in LOSHCHILOV_HUTTER_CELLS.values()))
    strata = list(dict.fromkeys(panel.stratum for panel in panels))
    columns = [column for column in COLUMNS.values() if any(panel.column == column for panel in panels)]
    seen: dict[tuple[str, str, str], int] = {}
    keys = []
    for panel in panels:
        slot = (panel.stratum, panel.family, panel.column)
        seen[slot] = seen.get(slot, -1) + 1
        keys.append((panel.stratum, panel.family, seen[slot]))
    rows = sorted(
        dict.fromkeys(keys),
        key=lambda r: (strata.index(r[0]), families.index(r[1]) if r[1] in families else len(families), r[2]),
    )
    places = [(rows.index(key), columns.index(panel.column)) for key, panel in zip(keys, panels, strict=True)]
    return rows, columns, places


def plot_heatmaps(panels: list[Panel]) -> plt.Figure:
    """One panel per optimizer, SGD row over Adam row, L2 column beside decoupled column, on one colour scale
    so that cells compare across panels."""
    means = np.concatenate([100 * panel.mean.ravel() for panel in panels])
    limits = (np.nanmin(means), np.nanmax(means)) if not np.isnan(means).all() else (0.0, 100.0)
    rows, columns, places = layout(panels)
    size = (3.9 * len(columns) + 1.2, 3.5 * len(rows))
    fig, axes = plt.subplots(len(rows), len(columns), figsize=size, squeeze=False, layout="constrained")
    several_strata = len({panel.stratum for panel in panels}) > 1
    for panel, place in zip(panels, places, strict=True):
        title = f"{panel.stratum}, {panel.arm}" if several_strata else panel.arm
        image = _draw_panel(axes[place], panel, limits, title)
    for place, ax in np.ndenumerate(axes):
        if place not in places:
            ax.axis("off")
    fig.colorbar(image, ax=axes, label="final val_accuracy (%)", shrink=0.9)
    fig.suptitle(f"Final val_accuracy (%), {_seeds_text(panels)}", fontsize=11)
    return fig


def cells_table(panels: list[Panel]) -> pd.DataFrame:
    """heatmap.csv: one row per cell of every panel."""
    rows = []
    for panel in panels:
        line = ridge(panel)
        ridge_cells = set(zip(line.best_regs, line.lrs, strict=True))
        for (i, reg), (j, lr) in itertools.product(enumerate(panel.regs), enumerate(panel.lrs)):
            rows.append(
                {
                    "stratum": panel.stratum,
                    "arm": panel.arm,
                    "learning_rate": lr,
                    "regularization_key": panel.reg_key,
                    "regularization": reg,
                    "n_completed": int(panel.n[i, j]),
                    "n_diverged": int(panel.n_diverged[i, j]),
                    f"{METRIC}_mean": panel.mean[i, j],
                    "best_of_panel": panel.best == (i, j),
                    "best_of_learning_rate": (reg, lr) in ridge_cells,
                }
            )
    return pd.DataFrame(rows)
