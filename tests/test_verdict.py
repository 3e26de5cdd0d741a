"""The verdict's statistics on hand-made final metrics with known answers (bench.decide, report.compare, .flags)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from bench.decide import MAX_SEEDS, MIN_SEEDS_BOOTSTRAP, seeds_needed, tost_power
from bench.report.compare import compare_arms, seed_differences
from bench.report.console_verdict import verdict_text
from bench.report.flags import arm_flags
from bench.results import COMPARISONS_CSV

MARGINS = {"val_accuracy": 0.01, "val_ce_loss": 0.02}
#: Seed effects shared by every arm (a seed fixes initial weights and batch order): large next to the
#: optimizer's effect, which is exactly where pairing pays.
SEED_EFFECT = np.array([0.40, 0.55, 0.70, 0.50, 0.62])


def finals_of(
    arms: dict[str, dict[int, float]], ce: dict[str, dict[int, float]] | None = None
) -> pd.DataFrame:
    """One completed run per arm x seed with the given final val_accuracy (and val_ce_loss, default 1.0)."""
    rows = [
        {
            "run_dir": f"{arm}/{seed}",
            "status": "completed",
            "arm": arm,
            "stratum": "",
            "seed": seed,
            "val_accuracy": value,
            "val_ce_loss": (ce or {}).get(arm, {}).get(seed, 1.0 + 0.01 * seed),
        }
        for arm, values in arms.items()
        for seed, value in values.items()
    ]
    return pd.DataFrame(rows)


def by_seed(values) -> dict[int, float]:
    return dict(enumerate(float(v) for v in values))


def accuracy_row(finals: pd.DataFrame, a: str, b: str) -> pd.Series:
    table = compare_arms(finals, [], MARGINS)
    return table[(table["metric"] == "val_accuracy") & (table["arm_a"] == a) & (table["arm_b"] == b)].iloc[0]


def test_pairing_decides_where_welch_cannot() -> None:
    noise = np.array([0.001, -0.002, 0.0, 0.002, -0.001])
    a, b = SEED_EFFECT + 0.03 + noise, SEED_EFFECT
    row = accuracy_row(finals_of({"adamw": by_seed(a), "sgd_l2": by_seed(b)}), "adamw", "sgd_l2")
    assert stats.ttest_ind(a, b, equal_var=False).pvalue > 0.5  # unpaired: lost in the seed-to-seed spread
    assert row["test"] == "paired t" and row["n_pairs"] == 5
    assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["p_value"] < 1e-4
    assert (row["decision"], row["better"]) == ("better", "adamw")
    assert row["corr"] == pytest.approx(stats.pearsonr(a, b).statistic) and row["corr"] > 0.99
    assert row["wins_a"] == 5


def test_equivalence_within_the_margin_by_tost() -> None:
    a = SEED_EFFECT + np.array([0.001, -0.001, 0.002, -0.002, 0.0])
    row = accuracy_row(finals_of({"adamw": by_seed(a), "sgd_l2": by_seed(SEED_EFFECT)}), "adamw", "sgd_l2")
    assert row["tost_p"] == pytest.approx(ttost_paired(a, SEED_EFFECT, -0.01, 0.01)[0])
    assert row["tost_p"] < 0.05
    assert (row["decision"], row["better"]) == ("equivalent", "")
    assert "within ±1.0" in row["reason"]


def test_undecided_estimates_seeds_needed_from_the_paired_spread() -> None:
    diffs = np.array(
        [0.05, -0.01, 0.02]
    )  # mean 0.02 (2 points, past the margin), sd 0.03: 3 seeds say little
    row = accuracy_row(
        finals_of({"adamw": by_seed(SEED_EFFECT[:3] + diffs), "sgd_l2": by_seed(SEED_EFFECT[:3])}),
        "adamw",
        "sgd_l2",
    )
    assert row["decision"] == "undecided"
    sd = diffs.std(ddof=1)
    assert row["sd_diff"] == pytest.approx(sd)
    n = int(row["seeds_needed"])
    assert n == math.ceil(TTestPower().solve_power(effect_size=0.02 / sd, alpha=0.05, power=0.8))

    def power(seeds: int) -> float:  # the two-sided paired t-test's power, from the non-central t
        df, shift = seeds - 1, 0.02 / sd * math.sqrt(seeds)
        critical = stats.t.ppf(0.975, df)
        return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)

    assert power(n) >= 0.8 > power(n - 1)
    assert 18 <= n <= 22  # the normal approximation ((1.96 + 0.84) * sd / 0.02)^2 gives 17.6


def test_seeds_needed_for_an_equivalence_uses_tost_power() -> None:
    n = seeds_needed(diff=0.002, sd=0.01, margin=0.01)
    assert tost_power(int(n), 0.002, 0.01, 0.01) >= 0.8 > tost_power(int(n) - 1, 0.002, 0.01, 0.01)
    assert seeds_needed(0.0, 0.5, 0.01) == math.inf  # a huge spread: no practical number of seeds decides
    assert math.isnan(seeds_needed(0.02, 0.0, 0.01))  # no spread to go on


def test_the_penalised_loss_is_never_compared() -> None:
    # sgd_l2's reported val_loss = cross-entropy + ~0.33 of L2 penalty; AdamW's has none. On cross-entropy
    # sgd_l2 is lower: comparing val_loss would have named the wrong winner.
    finals = finals_of(
        {"adamw": by_seed([0.58, 0.60, 0.57]), "sgd_l2": by_seed([0.57, 0.59, 0.56])},
        ce={"adamw": by_seed([1.11, 1.13, 1.10]), "sgd_l2": by_seed([1.06, 1.09, 1.05])},
    )
    finals["val_loss"] = finals["val_ce_loss"] + np.where(finals["arm"] == "sgd_l2", 0.333, 0.0)
    table = compare_arms(finals, [], MARGINS)
    assert set(table["metric"]) == {"val_accuracy", "val_ce_loss"}
    loss = table[table["metric"] == "val_ce_loss"].iloc[0]
    assert loss["diff"] == pytest.approx(0.0467, abs=1e-4)  # adamw - sgd_l2 on cross-entropy: adamw higher
    assert loss["better"] in ("sgd_l2", "")  # never adamw, which the penalised loss would favour


def test_holm_across_three_arms_can_undo_a_raw_significance() -> None:
    base = SEED_EFFECT[:4]
    finals = finals_of(
        {
            "adam_l2": by_seed(base + np.array([0.030, 0.020, 0.035, 0.005])),
            "adamw": by_seed(base + np.array([0.06, -0.01, 0.05, 0.02])),
            "sgd_l2": by_seed(base),
        }
    )
    table = compare_arms(finals, [], MARGINS)
    accuracy = table[table["metric"] == "val_accuracy"].set_index(["arm_a", "arm_b"])
    assert accuracy["p_holm"].to_numpy() == pytest.approx(
        multipletests(accuracy["p_value"], method="holm")[1]
    )
    marginal = accuracy.loc[("adam_l2", "sgd_l2")]  # the smallest of three p-values: times 3
    assert marginal["p_value"] < 0.05 <= marginal["p_holm"] == pytest.approx(3 * marginal["p_value"])
    assert marginal["decision"] == "undecided"  # significant alone, not among three pairs
    assert "Holm" not in accuracy.loc[("adam_l2", "adamw"), "reason"]  # the largest p-value stays as it is


def test_single_seed_gets_no_test_but_a_probability() -> None:
    row = accuracy_row(finals_of({"adamw": {0: 0.6}, "sgd_l2": {0: 0.5}}), "adamw", "sgd_l2")
    assert (row["test"], row["decision"]) == ("none", "undecided")
    assert math.isnan(row["p_value"]) and math.isnan(row["seeds_needed"])
    assert row["p_a_better"] == 1.0 and row["diff"] == pytest.approx(0.1)


def test_mixed_seeds_pair_the_shared_ones_and_count_the_rest() -> None:
    a = {0: 0.60, 1: 0.65, 2: 0.70, 3: 0.62}
    b = {0: 0.55, 1: 0.61, 2: 0.64, 7: 0.90}
    row = accuracy_row(finals_of({"adamw": a, "sgd_l2": b}), "adamw", "sgd_l2")
    assert (row["test"], row["n_pairs"], row["seeds_left_out"]) == ("paired t", 3, 2)
    assert row["diff"] == pytest.approx(np.mean([0.05, 0.04, 0.06]))
    assert row["n_a"] == 4 and row["n_b"] == 4
    differences = seed_differences(finals_of({"adamw": a, "sgd_l2": b}), [])
    assert sorted(differences[differences["metric"] == "val_accuracy"]["seed"]) == [0, 1, 2]


def test_disjoint_seeds_fall_back_to_welch() -> None:
    a, b = {0: 0.60, 1: 0.66, 2: 0.63}, {5: 0.50, 6: 0.55, 7: 0.52}
    row = accuracy_row(finals_of({"adamw": a, "sgd_l2": b}), "adamw", "sgd_l2")
    expected = stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    assert row["test"] == "Welch t" and row["n_pairs"] == 0
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert math.isnan(row["corr"])


def test_probability_of_improvement_is_rliables() -> None:
    a, b = [0.60, 0.50, 0.70], [0.55, 0.50, 0.40]
    row = accuracy_row(finals_of({"adamw": by_seed(a), "sgd_l2": by_seed(b)}), "adamw", "sgd_l2")
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert row["p_a_better"] == pytest.approx(wins / 9)
    assert math.isnan(row["p_a_better_ci_low"])  # 3 seeds: no bootstrap interval


def test_bootstrap_intervals_from_ten_seeds_on() -> None:
    rng = np.random.default_rng(1)
    effect = rng.normal(0.6, 0.05, MIN_SEEDS_BOOTSTRAP)
    a = effect + 0.02 + rng.normal(0, 0.01, MIN_SEEDS_BOOTSTRAP)
    row = accuracy_row(finals_of({"adamw": by_seed(a), "sgd_l2": by_seed(effect)}), "adamw", "sgd_l2")
    assert row["boot_ci_low"] < row["diff"] < row["boot_ci_high"]
    assert 0 <= row["p_a_better_ci_low"] <= row["p_a_better"] <= row["p_a_better_ci_high"] <= 1
    fewer = accuracy_row(
        finals_of({"adamw": by_seed(a[:-1]), "sgd_l2": by_seed(effect[:-1])}), "adamw", "sgd_l2"
    )
    assert math.isnan(fewer["boot_ci_low"])


def _curves(arm: str, finals: list[float], slope: float, num_classes: int = 5) -> list[dict]:
    """Per-epoch rows of one arm's runs: val_accuracy rises by ``slope`` an epoch to its final value."""
    return [
        {
            "run_dir": f"{arm}/{seed}",
            "status": "completed",
            "arm": arm,
            "stratum": "keras",
            "seed": seed,
            "epoch": epoch,
            "val_accuracy": final - slope * (3 - epoch),
            "num_classes": num_classes,
        }
        for seed, final in enumerate(finals)
        for epoch in (1, 2, 3)
    ]


def test_flags_near_chance_still_climbing_and_left_out() -> None:
    frame = pd.DataFrame(
        _curves("sgd_l2", [0.33, 0.26, 0.26], 0.0) + _curves("adamw", [0.6, 0.62, 0.58], 0.05)
    )
    finals = frame[frame["epoch"] == 3].copy()
    failed = finals[finals["arm"] == "adamw"].iloc[[0]].assign(run_dir="adamw/9", seed=9, status="diverged")
    flags = arm_flags(frame, pd.concat([finals, failed]), margin=0.01).set_index(["arm", "flag"])
    assert "within 5 points of chance (20 %, 5 classes)" in flags.loc[("sgd_l2", "near chance"), "detail"]
    assert "5.0 points/epoch" in flags.loc[("adamw", "still climbing"), "detail"]
    assert flags.loc[("adamw", "seeds left out"), "detail"] == "1 of 4 seeds left out (1 diverged)"
    assert ("adamw", "near chance") not in flags.index and ("sgd_l2", "still climbing") not in flags.index


@pytest.mark.parametrize("winner", ["adamw", "sgd_l2"])
def test_a_verdict_sentence_gives_the_interval_of_the_difference_it_states(winner) -> None:
    """ "sgd_l2 beats adamw by 25 points ... CI [...]": the interval is of sgd_l2 − adamw, positive, whichever
    arm comes first in the pair; the same for cross-entropy's "lower than" (loser − winner)."""
    from bench.report.phrases import pair_sentence

    loser = "sgd_l2" if winner == "adamw" else "adamw"
    finals = finals_of(
        {winner: by_seed([0.70, 0.72, 0.75, 0.71]), loser: by_seed([0.45, 0.48, 0.49, 0.47])},
        ce={winner: by_seed([0.80, 0.82, 0.79, 0.81]), loser: by_seed([1.10, 1.15, 1.12, 1.13])},
    )
    table = compare_arms(finals, [], MARGINS)
    for metric in ("val_accuracy", "val_ce_loss"):
        row = table[table["metric"] == metric].iloc[0]
        assert (row["arm_a"], row["arm_b"]) == ("adamw", "sgd_l2") and row["better"] == winner
        sentence = pair_sentence(row)
        low, high = (float(x) for x in sentence.split("95 % CI [")[1].split("]")[0].split(", "))
        assert 0 < low < high, sentence  # the stated difference is positive, and so is all of its interval
        stated = float(sentence.split(" by ")[1].split(" ")[0])
        assert low <= stated <= high, sentence


def test_the_console_verdict_says_when_no_number_of_seeds_would_likely_decide(tmp_path):
    """seeds_needed is inf past MAX_SEEDS (a difference far inside its spread): printed, not a crash."""
    row = {"stratum": "tf_flowers/resnet", "metric": "val_accuracy", "arm_a": "adamw", "arm_b": "sgd_l2",
           "test": "paired t", "n_a": 2, "n_b": 2, "n_pairs": 2, "diff": -0.005, "ci_low": -0.8, "ci_high": 0.8,
           "decision": "undecided", "better": None, "seeds_needed": float("inf")}  # fmt: skip
    pd.DataFrame([row]).to_csv(tmp_path / COMPARISONS_CSV, index=False)
    assert f"undecided (>{MAX_SEEDS} seeds/arm)" in verdict_text(tmp_path)
