"""The learning rate x regularization heatmap of the report, on hand-made grids with a known optimum.

Accuracy falls quadratically (in decades) away from a known best cell. For the L2 variants (sgd_l2, adam_l2)
the best L2 factor falls tenfold per tenfold learning rate (a coupled ridge, slope -1); for the decoupled ones
(sgdw, adamw) the best weight decay does not move (slope 0). The tests check that the report finds every
optimum, lays the four panels out as Loshchilov & Hutter's Fig. 2 (SGD row, Adam row; L2 column, decoupled
column), says per family that the decoupled ridge moves less, and claims nothing when seed noise could explain
the pattern.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import build_report
from bench.report.heatmap import Panel, layout, tick
from bench.results import HEATMAP_PNG as FIGURE
from tests.test_report import write_run

LRS = (1e-4, 1e-3, 1e-2)
L2S, DECAYS = ("l2", (1e-5, 1e-4, 1e-3)), ("weight_decay", (1e-3, 1e-2, 1e-1))
REGS = {"sgd_l2": L2S, "sgdw": DECAYS, "adam_l2": L2S, "adamw": DECAYS}
# (lr, regularization) of the highest accuracy
BEST = {"sgd_l2": (1e-3, 1e-4), "sgdw": (1e-3, 1e-2), "adam_l2": (1e-3, 1e-4), "adamw": (1e-3, 1e-2)}


ADAM = ("adam_l2", "adamw")  # the report fixture's two optimizers


def best_reg(optimizer: str, lr: float) -> float:
    """The ridge: an L2 variant's best factor is 1e-7 / lr; a decoupled one's best decay is 1e-2 at any lr."""
    return 1e-7 / lr if optimizer.endswith("_l2") else 1e-2


def accuracy(optimizer: str, lr: float, reg: float) -> float:
    decades_lr = math.log10(lr / BEST[optimizer][0])
    decades_reg = math.log10(reg / best_reg(optimizer, lr))
    return 0.8 - 0.05 * decades_lr**2 - 0.05 * decades_reg**2


def write_grid(root: Path, seeds: dict[int, float], optimizers=("adam_l2", "adamw")) -> Path:
    """Every cell of each optimizer's grid, once per seed; ``seeds`` maps each seed to the noise added to its
    accuracy."""
    for optimizer in optimizers:
        key, regs = REGS[optimizer]
        for lr in LRS:
            for reg in regs:
                for seed, noise in seeds.items():
                    value = accuracy(optimizer, lr, reg) + noise
                    write_run(
                        root, optimizer=optimizer, seed=seed, final_val_accuracy=value, lr=lr, **{key: reg}
                    )
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds whose accuracies differ by 0.004: far less than one grid step changes them (0.05)."""
    return build_report([write_grid(tmp_path_factory.mktemp("grid"), {0: -0.002, 1: 0.002})])


def test_the_heatmap_is_drawn_and_its_cells_are_written(report: Path) -> None:
    assert (report / FIGURE).stat().st_size > 10_000
    cells = pd.read_csv(report / "heatmap.csv")
    assert len(cells) == 2 * 3 * 3 and set(cells["n_completed"]) == {2}
    best = cells[cells["best_of_panel"]].set_index("arm")
    for optimizer in ADAM:
        lr, reg = BEST[optimizer]
        assert (best.loc[optimizer, "learning_rate"], best.loc[optimizer, "regularization"]) == (lr, reg)
        assert best.loc[optimizer, "val_accuracy_mean"] == pytest.approx(0.8)


def test_the_ridge_is_the_best_regularization_of_each_learning_rate(report: Path) -> None:
    cells = pd.read_csv(report / "heatmap.csv")
    ridge = cells[cells["best_of_learning_rate"]]
    for optimizer in ADAM:
        found = ridge[ridge["arm"] == optimizer].set_index("learning_rate")["regularization"]
        assert found.to_dict() == pytest.approx({lr: best_reg(optimizer, lr) for lr in LRS})


def test_the_report_says_the_ridges_differ(report: Path) -> None:
    text = (report / "report.md").read_text()
    assert "## Learning rate x regularization" in text and f"]({FIGURE})" in text
    assert "adam_l2: best L2 factor 1e-3, 1e-4, 1e-5 at learning rate 1e-4, 1e-3, 0.01" in text
    assert "(slope -1.0; optimum resolved in 3 of 3 columns)" in text
    assert "adamw: best weight decay 0.01, 0.01, 0.01" in text and "(slope +0.0;" in text
    assert (
        "Adam: the best regularization moves less with the learning rate for adamw "
        "(ridge slopes adam_l2 -1.0, adamw +0.0)" in text
    )


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four optimizers of Loshchilov & Hutter's 2 x 2, two seeds each."""
    root = tmp_path_factory.mktemp("grid4")
    return build_report([write_grid(root, {0: -0.002, 1: 0.002}, optimizers=tuple(REGS))])


def test_the_four_panels_share_one_figure_and_each_family_gets_a_verdict(full_report: Path) -> None:
    cells = pd.read_csv(full_report / "heatmap.csv")
    assert sorted(cells["arm"].unique()) == sorted(REGS) and len(cells) == 4 * 9
    best = cells[cells["best_of_panel"]].set_index("arm")
    for optimizer, (lr, reg) in BEST.items():
        assert (best.loc[optimizer, "learning_rate"], best.loc[optimizer, "regularization"]) == (lr, reg)
    text = (full_report / "report.md").read_text()
    assert text.count(f"]({FIGURE})") == 1  # one figure, four panels
    # 36 cells are 36 arms: no verdict pair by pair (630 pairs), the heatmap answers instead
    assert "Not compared pair by pair: keras (36 arms)" in text
    assert pd.read_csv(full_report / "comparisons.csv").empty
    for family, decoupled, coupled in (("SGD", "sgdw", "sgd_l2"), ("Adam", "adamw", "adam_l2")):
        assert (
            f"{family}: the best regularization moves less with the learning rate for {decoupled} "
            f"(ridge slopes {coupled} -1.0, {decoupled} +0.0)" in text
        )


def _panel(optimizer: str, stratum: str = "") -> Panel:
    decoupled = optimizer in ("sgdw", "adamw")
    key = "optimizer.weight_decay" if decoupled else "optimizer.l2"  # a user's optimizer: its optimizer.l2
    grid = np.full((2, 2), 0.5)
    return Panel(
        optimizer, stratum, optimizer, key, [1e-3, 1e-2], [1e-4, 1e-3], grid, grid * 0 + 2, grid * 0, 0.01
    )


def test_panels_are_laid_out_as_in_the_paper() -> None:
    """SGD row above Adam row, L2 column left of decoupled, whatever order the panels come in; a user's
    optimizer gets a row of its own; a grid of decoupled optimizers alone has one column."""
    panels = [_panel(name) for name in ("adamw", "sgdw", "adam_l2", "sgd_l2", "nadam")]
    rows, columns, places = layout(panels)
    assert columns == ["L2", "decoupled"]
    assert [family for _, family, _ in rows] == ["SGD", "Adam", "nadam"]
    assert dict(zip(("adamw", "sgdw", "adam_l2", "sgd_l2", "nadam"), places, strict=True)) == {
        "sgd_l2": (0, 0), "sgdw": (0, 1), "adam_l2": (1, 0), "adamw": (1, 1), "nadam": (2, 0),
    }  # fmt: skip
    assert layout([_panel("adamw"), _panel("sgdw")])[1:] == (["decoupled"], [(1, 0), (0, 0)])
    on_two_backends = [_panel("sgd_l2", "keras"), _panel("sgd_l2", "torch"), _panel("sgdw", "keras")]
    assert layout(on_two_backends)[2] == [(0, 0), (1, 0), (0, 1)]


def test_one_seed_claims_no_difference(tmp_path: Path) -> None:
    """Without a second seed the noise is unknown, so no column's optimum counts as resolved."""
    report = build_report([write_grid(tmp_path, {0: 0.0})])
    text = (report / "report.md").read_text()
    assert "Adam: no clear difference in coupling between adam_l2 and adamw" in text
    assert "resolved in fewer than 2 columns for adam_l2, adamw" in text


def test_noise_as_large_as_the_pattern_claims_no_difference(tmp_path: Path) -> None:
    report = build_report([write_grid(tmp_path, {0: -0.2, 1: 0.2, 2: 0.0})])
    assert "no clear difference in coupling" in (report / "report.md").read_text()


def test_diverged_cells_are_marked_and_left_out(tmp_path: Path) -> None:
    write_grid(tmp_path, {0: -0.002, 1: 0.002}, optimizers=("adamw",))
    for seed in (0, 1):  # a fourth, too high learning rate: every run of the column diverges
        for reg in REGS["adamw"][1]:
            write_run(tmp_path, optimizer="adamw", seed=seed, status="diverged", lr=1.0, weight_decay=reg)
    report = build_report([tmp_path])
    cells = pd.read_csv(report / "heatmap.csv").set_index(["learning_rate", "regularization"])
    assert cells.loc[(1.0, 1e-2), "n_diverged"] == 2 and math.isnan(
        cells.loc[(1.0, 1e-2), "val_accuracy_mean"]
    )
    assert cells["best_of_panel"].sum() == 1 and cells.loc[(1e-3, 1e-2), "best_of_panel"]
    assert (
        "best weight decay 0.01, 0.01, 0.01 at learning rate 1e-4, 1e-3, 0.01 "
        in (report / "report.md").read_text()
    )


def test_scattered_search_points_get_no_heatmap(tmp_path: Path) -> None:
    """An Optuna search samples lr and weight decay anywhere: no full grid, no heatmap."""
    for seed, (lr, wd) in enumerate([(1e-4, 0.3), (2e-4, 0.01), (7e-4, 0.05), (3e-3, 0.002)]):
        write_run(tmp_path, optimizer="adamw", seed=seed, lr=lr, weight_decay=wd)
    report = build_report([tmp_path])
    assert not (report / FIGURE).exists() and not (report / "heatmap.csv").exists()
    assert "Learning rate x regularization" not in (report / "report.md").read_text()


def test_tick_labels_are_short() -> None:
    assert [tick(v) for v in (3e-5, 1e-4, 1e-2, 0.1, 1.0, 10.0)] == ["3e-5", "1e-4", "0.01", "0.1", "1", "10"]
