"""``experiment=lr_wd_grid``: each optimizer over its own lr x regularization grid, in one Hydra multirun.

The expansion (bench/grid.py) is checked on its own; then a small real sweep on tiny photos goes through the
sweeper plugin, the launcher, the runs and the report, and a rerun of it trains nothing again.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.grid import as_values, grid_jobs
from tests.conftest import TINY, run_cli

GRIDS = {
    "sgd_l2": {"lr": ["0.01", "0.1"], "l2": ["1e-4", "1e-2"]},
    "adamw": {"lr": ["1e-3"], "weight_decay": ["0.1", "1"]},
}


def test_each_optimizer_gets_its_own_grid_times_the_other_swept_keys():
    jobs = grid_jobs(GRIDS, {"seed": ["0", "1"]})
    assert len(jobs) == 2 * 2 * 2 + 1 * 2 * 2
    assert ["optimizer=sgd_l2", "optimizer.lr=0.01", "optimizer.l2=1e-4", "seed=0"] in jobs
    assert ["optimizer=adamw", "optimizer.lr=1e-3", "optimizer.weight_decay=1", "seed=1"] in jobs
    assert not any("optimizer.l2" in " ".join(job) for job in jobs if job[0] == "optimizer=adamw")


def test_command_line_values_narrow_the_grids():
    only_adamw = grid_jobs(GRIDS, {"optimizer": ["adamw"], "seed": ["0"]})
    assert [job[0] for job in only_adamw] == ["optimizer=adamw"] * 2
    one_lr = grid_jobs(GRIDS, {"optimizer.lr": ["0.003"], "seed": ["0"]})
    assert {job[-2] for job in one_lr} == {"optimizer.lr=0.003"} and len(one_lr) == 4


def test_an_optimizer_without_a_grid_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"no grid for optimizer nadam .*hydra.sweeper.grids.nadam"):
        grid_jobs(GRIDS, {"optimizer": ["adamw", "nadam"]})


def test_axes_are_lists_or_comma_separated():
    assert as_values("1e-3, 3e-3") == ["1e-3", "3e-3"] and as_values([0.001, 1]) == ["0.001", "1"]


def test_a_small_grid_runs_reports_four_panels_and_resumes(tiny_photos, tmp_path):
    sweep = tmp_path / "sweep"
    small = [
        f"hydra.sweeper.grids.{name}.{field}=[{values}]"
        for name, field, values in [
            ("sgd_l2", "lr", "0.01,0.1"), ("sgd_l2", "l2", "1e-4,1e-2"),
            ("sgdw", "lr", "0.01,0.1"), ("sgdw", "weight_decay", "1e-3,1e-1"),
            ("adam_l2", "lr", "1e-3,1e-2"), ("adam_l2", "l2", "1e-4,1e-2"),
            ("adamw", "lr", "1e-3,1e-2"), ("adamw", "weight_decay", "0.1,10"),
        ]
    ]  # fmt: skip
    args = ["-m", "experiment=lr_wd_grid", "seed=0", *small, f"dataset.path={tiny_photos}",
            f"dataset.cache_dir={tmp_path / 'cache'}", *TINY, "train.epochs=1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    first = run_cli(*args, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    results = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    assert len(results) == 4 * 2 * 2
    assert {r["optimizer"] for r in results} == {"sgd_l2", "sgdw", "adam_l2", "adamw"}
    # job directories are named by the values (sorted keys), so a rerun finds them
    assert len(list(sweep.glob("*optimizer.lr=0.1,optimizer.weight_decay=0.1,optimizer=sgdw,seed=0*"))) == 1
    cells = pd.read_csv(sweep / "report" / "heatmap.csv")
    assert sorted(cells["arm"].unique()) == ["adam_l2", "adamw", "sgd_l2", "sgdw"] and len(cells) == 16
    assert "the best regularization" in (sweep / "report" / "report.md").read_text()

    again = run_cli(*args, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    log = again.stdout + again.stderr
    assert log.count("skipping") == 16 and "epoch 1/1" not in log
