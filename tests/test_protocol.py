"""The fair-comparison protocol (bench/protocol/run.py, ``experiment=fair_comparison``).

Its pieces on their own (the sampler, the budget curve against a hand computation, selection that never sees
the test split, the stopping rule), then the whole protocol as a user runs it: tiny photos, through the
sweeper and the launcher, a rerun after a kill mid-round, and the joblib launcher.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import ConfigError
from bench.protocol import PROTOCOL_FILE, ProtocolRun, Setting, sample_settings, select_best
from bench.protocol.options import ProtocolConfig
from bench.report.stats import expected_max
from tests.conftest import TINY, run_cli

SPACES = {
    "sgd_l2": {"lr": [1e-3, 1e-1], "l2": [1e-6, 1e-2]},
    "adamw": {"lr": [1e-5, 1e-2], "weight_decay": [1e-3, 10.0]},
}


def test_every_optimizer_gets_the_same_draws_on_its_own_ranges():
    sgd = sample_settings("sgd_l2", SPACES["sgd_l2"], 8, sampler_seed=0)
    adamw = sample_settings("adamw", SPACES["adamw"], 8, sampler_seed=0)
    assert sgd == sample_settings("sgd_l2", SPACES["sgd_l2"], 8, sampler_seed=0)  # a rerun asks the same
    for a, b in zip(sgd, adamw, strict=True):
        (_, lr_a), (_, reg_a) = a.values
        (_, lr_b), (_, reg_b) = b.values
        assert 1e-3 <= lr_a <= 1e-1 and 1e-5 <= lr_b <= 1e-2 and 1e-6 <= reg_a <= 1e-2
        # the same uniform draw: the same position on each log range (to the 3 significant digits kept)
        position = math.log(lr_a / 1e-3) / math.log(100)
        assert position == pytest.approx(math.log(lr_b / 1e-5) / math.log(1000), abs=2e-3)
    assert Setting("adamw", (("lr", 0.000412), ("weight_decay", 0.0231))).overrides(7) == [
        "optimizer=adamw", "optimizer.lr=0.000412", "optimizer.weight_decay=0.0231", "seed=7",
    ]  # fmt: skip


def test_expected_best_of_n_trials_matches_a_hand_computation():
    values = [0.4, 0.1, 0.2]
    assert expected_max(values, 1) == pytest.approx((0.7 / 3, math.sqrt(0.21 / 3 - (0.7 / 3) ** 2)))
    # n = 2: P(max = 0.1) = 1/9, P(0.2) = 4/9 - 1/9, P(0.4) = 1 - 4/9
    mean = 0.1 / 9 + 0.2 * 3 / 9 + 0.4 * 5 / 9
    second = 0.01 / 9 + 0.04 * 3 / 9 + 0.16 * 5 / 9
    assert expected_max(values, 2) == pytest.approx((mean, math.sqrt(second - mean**2)))
    assert expected_max(values, 200)[0] == pytest.approx(0.4)


def trial_frame(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for optimizer in ("sgd_l2", "adamw"):
        for trial in range(6):
            setting = Setting(optimizer, (("lr", 10.0**-trial),))
            for seed in (0, 1):
                rows.append({
                    "optimizer": optimizer, "trial": trial, "setting": setting, "seed": seed,
                    "score": 0.3 + 0.05 * ((trial + (optimizer == "adamw")) % 4) + 0.01 * seed,
                    "test_accuracy": rng.random(),
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_selection_uses_validation_only_never_the_test_split():
    frame = trial_frame(np.random.default_rng(0))
    best = select_best(frame)
    assert {name: entry["trial"] for name, entry in best.items()} == {"sgd_l2": 3, "adamw": 2}
    assert best["sgd_l2"]["val_accuracy_mean"] == pytest.approx(0.455)
    shuffled = frame.assign(
        test_accuracy=np.random.default_rng(1).permutation(frame["test_accuracy"].to_numpy())
    )
    assert {n: e["setting"] for n, e in select_best(shuffled).items()} == {
        n: e["setting"] for n, e in best.items()
    }


class FakeRuns:
    """Stands in for the launcher in the stopping tests: results whose test accuracy follows a known law."""

    def __init__(self, test_accuracy):
        self.test_accuracy, self.jobs = test_accuracy, []

    def __call__(self, jobs: list[list[str]]) -> list[tuple[Path, dict]]:
        self.jobs += jobs
        launched = []
        for job in jobs:
            values = dict(item.split("=", 1) for item in job)
            optimizer, seed = values["optimizer"], int(values["seed"])
            final = {"val_accuracy": 0.5, "test_accuracy": self.test_accuracy(optimizer, seed)}
            launched.append(
                (Path("/nonexistent"), {"status": "completed", "final": final, "wall_time_s": 1.0})
            )
        return launched


def run_protocol(tmp_path: Path, test_accuracy) -> tuple[dict, FakeRuns]:
    protocol = ProtocolConfig(budget=2, seeds_per_round=3, max_seeds=9, spaces=SPACES)
    fake = FakeRuns(test_accuracy)
    record = ProtocolRun(protocol, ["sgd_l2", "adamw"], fake, [], margin=0.01, out_dir=tmp_path).run()
    assert json.loads((tmp_path / PROTOCOL_FILE).read_text())["stopped"] == record["stopped"]
    return record, fake


def test_a_pair_decided_after_the_first_round_stops_there(tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.01, (2, 2000))
    record, fake = run_protocol(
        tmp_path, lambda opt, seed: (0.8 if opt == "adamw" else 0.5) + noise[int(opt == "adamw"), seed]
    )
    assert record["stopped"] == "decided" and record["seeds_used"] == 3 and len(record["rounds"]) == 1
    decision = record["rounds"][0]["decisions"][0]
    assert (decision["decision"], decision["better"]) == ("better", "adamw")
    assert len(fake.jobs) == 2 * 2 + 2 * 3  # tuning, then one round
    confirmation_seeds = {int(dict(i.split("=", 1) for i in job)["seed"]) for job in fake.jobs[4:]}
    assert confirmation_seeds == {1000, 1001, 1002}  # fresh, and the same for both optimizers (paired)


def test_an_undecided_pair_runs_to_max_seeds(tmp_path):
    noise = np.random.default_rng(1).normal(0, 0.1, (2, 2000))
    record, fake = run_protocol(tmp_path, lambda opt, seed: 0.6 + noise[int(opt == "adamw"), seed])
    assert record["stopped"] == "max_seeds" and record["seeds_used"] == 9 and len(record["rounds"]) == 3
    assert record["rounds"][-1]["decisions"][0]["decision"] == "undecided"
    assert record["alpha_per_look"] == pytest.approx(0.05 / 3)  # three looks planned: each at 5 % / 3


def test_an_optimizer_without_a_space_is_a_clear_error(tmp_path):
    protocol = ProtocolConfig(spaces=SPACES)
    with pytest.raises(ConfigError, match="no search space for nadam"):
        ProtocolRun(protocol, ["sgd_l2", "nadam"], FakeRuns(None), [], 0.01, tmp_path)


PROTOCOL = ["-m", "experiment=fair_comparison", "optimizer=sgd_l2,adamw", "protocol.budget=3",
            "protocol.seeds_per_round=2", "protocol.max_seeds=4", *TINY, "train.epochs=1"]  # fmt: skip


def run_fair_comparison(tiny_photos: Path, tmp_path: Path, sweep: Path, *extra: str):
    photos = [f"dataset.path={tiny_photos}", f"dataset.cache_dir={tmp_path / 'cache'}"]
    result = run_cli(*PROTOCOL, *photos, f"hydra.sweep.dir={sweep}", *extra, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    return result, json.loads((sweep / PROTOCOL_FILE).read_text())


def test_the_protocol_end_to_end_reports_a_tuned_verdict_and_resumes_after_a_kill(tiny_photos, tmp_path):
    sweep = tmp_path / "sweep"
    _, record = run_fair_comparison(tiny_photos, tmp_path, sweep)
    assert record["compute"]["tuning_runs"] == 2 * 3 and len(record["best"]) == 2
    confirmation = pd.DataFrame(record["confirmation"])
    assert len(confirmation) == 2 * record["seeds_used"] and confirmation["test_accuracy"].notna().all()
    assert set(confirmation["seed"]) >= {1000, 1001}
    verdict = (sweep / "report" / "report.md").read_text().split("## Verdict")[1].split("\n## ")[0]
    assert "**Tuned verdict.**" in verdict and "held-out test split" in verdict
    assert (sweep / "report" / "expected_best_vs_budget.png").stat().st_size > 0
    assert len(pd.read_csv(sweep / "report" / "protocol_budget_curves.csv")) == 2 * 3

    # a kill mid-round: the last round's runs of one optimizer never wrote result.json
    last_seeds = record["rounds"][-1]["seeds"]
    killed = [
        Path(r["run_dir"])
        for r in record["confirmation"]
        if r["seed"] in last_seeds and r["optimizer"] == "adamw"
    ]
    for run_dir in killed:
        (run_dir / "result.json").unlink()
    again, resumed = run_fair_comparison(tiny_photos, tmp_path, sweep)
    log = again.stdout + again.stderr
    assert log.count("epoch 1/1") == len(killed)  # only the killed runs train again
    assert resumed["best"] == record["best"] and resumed["rounds"] == record["rounds"]


def test_the_protocol_runs_on_the_joblib_launcher_with_the_same_answer(tiny_photos, tmp_path):
    _, basic = run_fair_comparison(tiny_photos, tmp_path, tmp_path / "basic", "report.enabled=false")
    _, parallel = run_fair_comparison(
        tiny_photos, tmp_path, tmp_path / "parallel", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
        "report.enabled=false",
    )  # fmt: skip
    assert parallel["best"] == basic["best"] and parallel["rounds"] == basic["rounds"]


def test_sweeping_anything_but_the_optimizer_is_refused(tiny_photos, tmp_path):
    result = run_cli(*PROTOCOL, "seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "flowerbench: error: the fair comparison sweeps the optimizer only" in result.stderr
    )
