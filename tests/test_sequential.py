"""The confirmation's group-sequential design (bench/protocol/spending.py) and its error rates, shown by the
simulation (bench/protocol/simulate.py) that runs the protocol's own decision code; successive halving's plan
(bench/protocol/halving.py); the near-tie rule (bench/tuning.py)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

from bench import tuning
from bench.protocol import decide_pairs, halving, simulate, spending

MARGIN, EFFECT, SD = 0.01, 0.05, 0.054  # the README 64 px command's: ~5 points, sd ~5.4 points per seed pair
REPS = 3000


def test_the_modules_examples_hold():
    for module in (spending, halving):
        assert doctest.testmod(module).failed == 0


def test_lan_demets_boundaries_are_the_published_ones():
    # gsDesign's sfLDOF, one-sided 2.5 %, equally spaced looks
    obf3 = spending.z_boundaries("obrien_fleming", [1 / 3, 2 / 3, 1], alpha=0.025, sides=1)
    assert obf3 == pytest.approx([3.7103, 2.5114, 1.9930], abs=2e-4)
    obf5 = spending.z_boundaries("obrien_fleming", [0.2, 0.4, 0.6, 0.8, 1.0], alpha=0.025, sides=1)
    assert obf5 == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-4)
    pocock = spending.z_boundaries("pocock", [1 / 3, 2 / 3, 1], alpha=0.05, sides=2)
    assert max(pocock) - min(pocock) < 0.03  # Pocock-like: about the same boundary at every look


def test_the_levels_are_calibrated_for_t_statistics():
    seeds = (3, 6, 9)
    for name in ("obrien_fleming", "pocock"):
        levels = spending.calibrated_levels(name, seeds)
        assert levels[0] == pytest.approx(spending.spent(name, 1 / 3))  # one look alone: exact
        # the z design's nominal levels, applied to t-tests, would spend more than 5 %: the calibrated ones are
        # lower at the last look (at the second, where little has been spent yet, about the same)
        z_nominal = [
            2 * (1 - 0.5 * (1 + math.erf(c / math.sqrt(2))))
            for c in spending.z_boundaries(name, [1 / 3, 2 / 3, 1])
        ]
        assert levels[1] <= 1.03 * z_nominal[1] and levels[2] < 0.95 * z_nominal[2]
    assert spending.calibrated_levels("bonferroni", seeds) == pytest.approx((0.05 / 3,) * 3)
    assert spending.calibrated_levels("fixed", seeds) == (0.0, 0.0, 0.05)
    obf = spending.design("obrien_fleming", 9, 3)
    assert obf.seeds == (3, 6, 9) and obf.alpha[0] < 0.001 and 0.035 < obf.alpha[2] < 0.05
    assert spending.design("obrien_fleming", 9, 3) == obf  # the same levels on every rerun


@pytest.fixture(scope="module")
def error_rates() -> pd.DataFrame:
    table = simulate.simulate(MARGIN, EFFECT, SD, max_seeds=9, seeds_per_round=3, reps=REPS)
    return simulate.summary(table).set_index("design")


def test_the_spending_design_keeps_its_error_rate_and_gains_power(error_rates):
    for name, row in error_rates.iterrows():
        # type I error with the stopping included: at most 5 % (up to the simulation's own error)
        assert row["wrong_better"] <= 0.05 + 3 * row["wrong_better_se"], name
    bonferroni, obf, pocock = (error_rates.loc[n] for n in ("bonferroni", "obrien_fleming", "pocock"))
    assert obf["power"] > bonferroni["power"] + 0.08  # most decisions are made at the last look: spent there
    # Pocock-like levels are at least Bonferroni's at every look: on the same draws it stops no later
    assert pocock["power"] >= bonferroni["power"] and pocock["expected_seeds"] <= bonferroni["expected_seeds"]
    # O'Brien-Fleming's price: it almost never stops at 3 seeds, so it uses more seeds on average here, but
    # fewer per decision reached
    assert obf["expected_seeds"] > bonferroni["expected_seeds"]
    assert obf["seeds_per_decision"] < bonferroni["seeds_per_decision"]
    fixed = error_rates.loc["fixed"]
    assert fixed["expected_seeds"] == 9 and fixed["power"] >= obf["power"] - 0.05


def test_a_wrong_equivalence_stays_rare_even_at_the_margin():
    """The equivalence test's worst case: the true difference on the margin itself, spread small enough that
    equivalence is often within reach; every design's rate of a wrong "equivalent" stays at 5 %."""
    designs = [spending.design(name, 9, 3) for name in simulate.DESIGNS]
    rng = np.random.default_rng(3)
    differences = MARGIN + 0.4 * MARGIN * rng.standard_normal((REPS, 9))
    outcomes = simulate._outcomes(designs, differences, MARGIN, np.full((REPS, 9), 0.5))
    for name, (labels, _) in outcomes.items():
        rate = np.mean([label == "equivalent" for label in labels])
        assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / REPS), name


def test_the_simulation_decides_as_the_protocol_does():
    """Replicate by replicate, the simulation's decision and stopping look are those of decide_pairs (slow:
    undecided looks estimate the seeds they would need)."""
    rng = np.random.default_rng(5)
    differences = 0.03 + 0.03 * rng.standard_normal((8, 9))  # some decided early, some at 9 seeds
    baseline = rng.normal(0.5, 0.05, (8, 9))
    plan = spending.design("obrien_fleming", 9, 3)
    labels, used = simulate._outcomes([plan], differences, MARGIN, baseline)["obrien_fleming"]
    stops: list[int] = []
    for r in range(8):
        for k, n in enumerate(plan.seeds):
            rows = [
                {"optimizer": arm, "seed": s, "status": "completed", "test_accuracy": value}
                for arm, values in (("a", baseline[r] + differences[r]), ("b", baseline[r]))
                for s, value in enumerate(values[:n])
            ]
            decision = decide_pairs(pd.DataFrame(rows), MARGIN, plan.alpha[k], plan.tost_alpha[k]).iloc[0]
            if decision["decision"] != "undecided" or k == len(plan.seeds) - 1:
                word = decision["decision"]
                stops.append(n)
                assert labels[r] == (f"better:{decision['better']}" if word == "better" else word)
                assert used[r] == n
                break
    assert (
        len(set(stops)) > 1 and "undecided" in labels and any(label.startswith("better") for label in labels)
    )


def test_successive_halving_spends_half_the_images_of_random_search_at_the_readme_size():
    assert halving.schedule(8, 3, 1, 3) == [(1, 8), (3, 2)]
    assert halving.planned_epochs(8, 3, 1, 3) * 2 <= 8 * 3
    assert halving.rungs(7, 1, 3) == [1, 3, 7] and halving.rungs(1, 1, 3) == [
        1
    ]  # 1 epoch: plain random search


def test_near_ties_rank_by_cross_entropy_and_the_rest_by_accuracy():
    accuracy = {"a": 0.48, "b": 0.48, "c": 0.4667, "d": 0.40, "e": math.nan}
    ce = {"a": 1.4, "b": 1.3, "c": 1.1, "d": 0.9, "e": 1.0}
    one_photo = tuning.near_tie_tolerance(1, 75)
    assert tuning.rank(accuracy, ce, one_photo) == ["c", "b", "a", "d"]  # e failed: left out
    assert tuning.rank(accuracy, ce, tuning.near_tie_tolerance(0, 75)) == ["b", "a", "c", "d"]
    assert tuning.rank({"x": 0.5, "y": 0.5}, {}, 0.0) == ["x", "y"]  # nothing else to go on: the order drawn
