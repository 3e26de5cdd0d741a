"""Tuning's rules (bench/tuning.py), shared by the fair comparison and ``python -m bench.search``."""

from __future__ import annotations

import math

import pandas as pd

from bench import search, tuning
from bench.protocol import Setting, select_best


def result(status: str, val_accuracy: float | None) -> dict:
    return {"status": status, "final": {"val_accuracy": val_accuracy}}


def test_a_failed_run_is_no_evidence_and_a_diverged_one_scores_zero():
    assert tuning.score(result("completed", 0.6)) == 0.6
    assert tuning.score(result("diverged", 0.9)) == 0.0  # its last accuracy is not its outcome
    assert tuning.score(result("completed", math.nan)) == 0.0
    assert tuning.score(result("failed", 0.6)) is None
    assert tuning.score(None) is None
    assert tuning.mean_score([0.4, None, 0.6]) == 0.5  # the failed run is left out, not counted as 0
    assert math.isnan(tuning.mean_score([None]))


def test_the_best_is_the_highest_mean_and_the_first_among_ties():
    assert tuning.best({"a": [0.5, 0.7], "b": [0.6, 0.6], "c": [0.9, None]}) == "c"
    assert tuning.best({"a": [0.6], "b": [0.6]}) == "a"
    assert tuning.best({"a": [None]}) is None


def test_fresh_seeds_skip_the_used_ones_from_the_first_fresh_seed():
    assert tuning.fresh_seeds([0, 1], 3) == [1000, 1001, 1002]
    assert tuning.fresh_seeds([1000, 1002], 3) == [1001, 1003, 1004]
    assert tuning.fresh_seeds([0], 2, first=0) == [1, 2]


def test_the_protocol_and_the_search_pick_the_same_setting():
    """A failed run costs a setting nothing in either tool (it was a crash, not the hyperparameters)."""
    scores = {0: [0.50, 0.52], 1: [0.55, None], 2: [0.55, 0.40]}
    rows = [
        {
            "optimizer": "adamw",
            "trial": trial,
            "setting": Setting("adamw", (("lr", 10.0**-trial),)),
            "score": s,
        }
        for trial, values in scores.items()
        for s in values
    ]
    protocol_choice = select_best(pd.DataFrame(rows))["adamw"]
    points = [
        search.SearchPoint({"optimizer.lr": str(t)}, [s for s in v if s is not None], [])
        for t, v in scores.items()
    ]
    search_choice = points[tuning.best(dict(enumerate(p.scores for p in points)))]
    assert protocol_choice["trial"] == 1 == int(search_choice.overrides["optimizer.lr"])
    assert protocol_choice["val_accuracy_mean"] == 0.55
