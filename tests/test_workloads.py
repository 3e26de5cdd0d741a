"""Workloads: the presets, their sizes, and the report across them (bench/workload.py,
bench/report/workloads.py)."""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats

from bench import results
from bench.config import ConfigError, register_configs
from bench.report import build_report
from bench.report.console_verdict import verdict_text
from bench.report.workloads import MIN_SEEDS, pooled, pooled_difference
from bench.runner import is_finished
from tests.conftest import CONF_DIR, compose_run, run_cli
from tests.test_report import epoch_record, make_result


def test_a_workload_chooses_its_dataset_model_and_length_and_names_itself():
    cnn = compose_run()
    assert (cnn.workload.name, cnn.workload.size) == ("tf_flowers/flowers_cnn", "full")
    assert (cnn.dataset.image_size, cnn.train.epochs, cnn.train.batch_size) == (180, 7, 32)  # the seed blog's
    resnet = compose_run("workload=flowers_resnet", "workload.size=reduced")
    assert resnet.model.name == "resnet" and resnet.workload.name == "tf_flowers/resnet"
    assert (resnet.dataset.image_size, resnet.dataset.max_per_class, resnet.train.epochs) == (64, 200, 5)
    assert resnet.model.bn_momentum == 0.9  # the reduced row's: 125 steps are too few for 0.99
    # A key set on the command line wins over the workload's table, and the label follows what ran.
    assert compose_run("workload=flowers_resnet", "dataset.image_size=32").dataset.image_size == 32
    assert compose_run("model=resnet").workload.name == "tf_flowers/resnet"


def test_an_unknown_size_is_one_line():
    with pytest.raises(
        ConfigError, match=r"workload.size='tiny': this workload defines the sizes \['full', 'reduced'\]"
    ):
        compose_run("workload.size=tiny")


def test_the_suite_sweeps_every_builtin_workload_at_its_reduced_size():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=suite"], return_hydra_config=True)
        grid = compose(
            config_name="config", overrides=["experiment=[suite,lr_wd_grid]"], return_hydra_config=True
        )
    workloads = sorted(path.stem for path in (CONF_DIR / "workload").glob("*.yaml"))
    assert sorted(cfg.hydra.sweeper.params.workload.split(",")) == workloads
    assert cfg.workload.size == "reduced"
    assert grid.hydra.sweeper.params.workload == cfg.hydra.sweeper.params.workload  # combines with the grid
    assert grid.hydra.sweeper._target_.endswith("LrWdGridSweeper")


def test_runs_recorded_before_workloads_resume_as_the_default_workloads_full_size():
    run_config = OmegaConf.to_container(OmegaConf.structured(compose_run()), resolve=True)
    before = copy.deepcopy(run_config)
    del before["workload"]
    for key in ("tfds_name", "splits"):
        del before["dataset"][key]
    assert is_finished(
        {"status": "completed", "config": before, "data": {"source": "tfds"}}, run_config, "tfds"
    )
    reduced = copy.deepcopy(run_config)
    reduced["workload"]["size"] = "reduced"
    assert not is_finished(
        {"status": "completed", "config": before, "data": {"source": "tfds"}}, reduced, "tfds"
    )


# ------------------------------------------------------------------------------------------ the aggregate


def test_the_pooled_difference_of_one_workload_is_its_paired_t_interval():
    a, b = np.array([0.61, 0.55, 0.70, 0.64]), np.array([0.50, 0.52, 0.58, 0.60])
    pooled_one = pooled_difference([(a, b, True)])
    interval = stats.ttest_rel(a, b).confidence_interval()
    assert pooled_one["mean_diff"] == pytest.approx(np.mean(a - b))
    assert (pooled_one["mean_diff_ci_low"], pooled_one["mean_diff_ci_high"]) == pytest.approx(
        (interval.low, interval.high)
    )
    # The same workload twice: the variance of the mean halves, the degrees of freedom double.
    twice = pooled_difference([(a, b, True), (a, b, True)])
    half = stats.t.ppf(0.975, 6) * np.std(a - b, ddof=1) / np.sqrt(4) / np.sqrt(2)
    assert twice["mean_diff_ci_high"] - twice["mean_diff"] == pytest.approx(half)


def test_the_probability_of_improvement_is_averaged_over_workloads_with_a_stratified_bootstrap():
    seeds = range(MIN_SEEDS)
    always = (pd.Series([0.9] * MIN_SEEDS, index=seeds), pd.Series([0.1] * MIN_SEEDS, index=seeds))
    coin = (pd.Series([0.5] * MIN_SEEDS, index=seeds), pd.Series([0.5] * MIN_SEEDS, index=seeds))
    result = pooled([always, coin])
    assert result["p_a_better"] == pytest.approx(0.75)  # 1 in the first workload, 1/2 (ties) in the second
    # No seed-to-seed spread: every resample gives the same, so the interval is the point.
    assert (result["p_a_better_ci_low"], result["p_a_better_ci_high"]) == pytest.approx((0.75, 0.75))
    few = pooled([(always[0][:3], always[1][:3])])
    assert few["min_seeds"] == 3 and math.isnan(few["p_a_better_ci_low"])  # too few seeds for an interval
    assert pooled([always, coin], higher_better=False)["p_a_better"] == pytest.approx(0.25)  # a loss


# ---------------------------------------------------------------------------------------- the report


@functools.cache
def _composed(workload: str, optimizer: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"workload={workload}", f"optimizer={optimizer}"])
    return OmegaConf.to_container(cfg, resolve=True)


def write_workload_run(root: Path, workload: str, optimizer: str, seed: int, final: float) -> None:
    config = copy.deepcopy(_composed(workload, optimizer)) | {"seed": seed}
    config["train"]["epochs"] = 2
    overrides = [f"workload={workload}", f"optimizer={optimizer}", f"seed={seed}"]
    run_dir = root / ",".join(overrides)
    (run_dir / results.CONFIG_FILE).parent.mkdir(parents=True)
    (run_dir / results.CONFIG_FILE).write_text(yaml.safe_dump(config))
    records = [epoch_record(1, final - 0.05, 30.0), epoch_record(2, final, 30.0)]
    with results.MetricsWriter(run_dir) as writer:
        for record in records:
            writer.append(record)
    results.write_result(run_dir, make_result(config, results.COMPLETED, records, None, overrides))


def gain_mean() -> float:
    return float(np.random.default_rng(0).normal(0, 0.01, (2, 6))[1].mean() / 2)


@pytest.fixture(scope="module")
def suite_report(tmp_path_factory) -> Path:
    """Two workloads: adamw clearly ahead on the CNN, the two within 0.2 points of each other on the ResNet."""
    root = tmp_path_factory.mktemp("suite")
    noise, gain = np.random.default_rng(0).normal(0, 0.01, (2, 6))
    for seed in range(6):
        base = 0.5 + noise[seed]
        write_workload_run(root, "flowers_cnn", "adamw", seed, base + 0.10 + gain[seed])
        write_workload_run(root, "flowers_cnn", "sgd_l2", seed, base)
        write_workload_run(root, "flowers_resnet", "adamw", seed, base + 0.001 * (-1) ** seed)
        write_workload_run(root, "flowers_resnet", "sgd_l2", seed, base)
    return build_report([root])


def test_the_report_tallies_each_pair_across_workloads_and_pools_them(suite_report):
    runs = pd.read_csv(suite_report / results.RUNS_CSV)
    assert sorted(runs["workload.name"].unique()) == ["tf_flowers/flowers_cnn", "tf_flowers/resnet"]
    comparisons = pd.read_csv(suite_report / results.COMPARISONS_CSV)
    verdicts = comparisons[comparisons["metric"] == "val_accuracy"].set_index("workload.name")["decision"]
    assert verdicts.to_dict() == {"tf_flowers/flowers_cnn": "better", "tf_flowers/resnet": "equivalent"}
    across = pd.read_csv(suite_report / results.ACROSS_WORKLOADS_CSV).iloc[0]
    better = "adamw" if across["arm_a"] == "adamw" else "sgd_l2"
    assert across["workloads"] == 2 and across["equivalent"] == 1 and across["undecided"] == 0
    assert (across["wins_a"], across["wins_b"]) == ((1, 0) if better == "adamw" else (0, 1))
    sign = 1 if across["arm_a"] == "adamw" else -1
    assert sign * across["mean_diff"] == pytest.approx(0.05 + gain_mean(), abs=1e-3)  # (10 points + 0) / 2
    assert across["p_a_better_ci_low"] <= across["p_a_better"] <= across["p_a_better_ci_high"]
    page = (suite_report / results.REPORT_MARKDOWN).read_text()
    assert "## Across workloads" in page and (suite_report / results.ACROSS_WORKLOADS_PNG).stat().st_size > 0
    assert "**tf_flowers/resnet, keras.** adamw and sgd_l2 are equivalent" in page  # each workload's verdict
    console = verdict_text(suite_report)
    assert "Across workloads:" in console and "adamw vs sgd_l2" in console.split("Across workloads:")[1]


def test_a_single_workload_has_no_across_section(tmp_path):
    for seed in range(3):
        write_workload_run(tmp_path, "flowers_cnn", "adamw", seed, 0.6)
        write_workload_run(tmp_path, "flowers_cnn", "sgd_l2", seed, 0.5 + 0.01 * seed)
    report = build_report([tmp_path])
    assert not (report / results.ACROSS_WORKLOADS_CSV).exists()
    assert "Across workloads" not in (report / results.REPORT_MARKDOWN).read_text()
    assert "Across workloads" not in verdict_text(report)
    assert (
        json.loads(next(tmp_path.glob("*/result.json")).read_text())["config"]["workload"]["size"] == "full"
    )


def test_a_fair_comparison_of_the_suite_tunes_each_workload_on_its_own(tiny_photos, tmp_path):
    """experiment=[suite,fair_comparison]: one protocol per workload in its own folder, each with its report,
    and the sweep's report across them; a rerun of the same command trains nothing again."""
    out = tmp_path / "sweep"
    command = [
        "-m", "experiment=[suite,fair_comparison]", "optimizer=sgd_l2,adamw", "backend=torch", "backend.threads=1",
        "protocol.tuner=random", "protocol.budget=2", "protocol.seeds_per_round=2", "protocol.max_seeds=2",
        f"dataset.path={tiny_photos}", f"dataset.cache_dir={tmp_path / 'cache'}", "dataset.image_size=16",
        "dataset.max_per_class=null", "train.epochs=1", f"hydra.sweep.dir={out}",
    ]  # fmt: skip
    first = run_cli(*command, cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    for workload in ("flowers_cnn", "flowers_resnet"):
        record = json.loads((out / workload / results.PROTOCOL_FILE).read_text())
        assert record["optimizers"] == ["sgd_l2", "adamw"] or sorted(record["optimizers"]) == [
            "adamw",
            "sgd_l2",
        ]
        jobs = [path for path in (out / workload).iterdir() if (path / results.RESULT_FILE).is_file()]
        assert len(jobs) == 2 * (2 + 2)  # per optimizer: 2 tuning trials, 2 confirmation seeds
        assert all(f"workload={workload}" in path.name for path in jobs)  # its jobs, in its folder
        assert (out / workload / results.REPORT_DIR / results.PROTOCOL_DECISIONS_CSV).is_file()
    across = pd.read_csv(out / results.REPORT_DIR / results.ACROSS_WORKLOADS_CSV)
    assert across[["workloads", "metric"]].values.tolist() == [[2, "test_accuracy"]]
    assert "Across workloads:" in first.stdout and "flowers_resnet: Tuned verdict" in first.stdout
    again = run_cli(*command, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "skipping" in log and "epoch 1/1" not in log  # every run found finished
