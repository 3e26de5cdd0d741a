"""The report's pairs: every pair of arms within a stratum, on each comparable metric, tested and decided by
:mod:`bench.decide` (which says which function computes each number), Holm-corrected across the pairs of a
stratum.

Only quantities that mean the same thing in both arms are compared: validation accuracy, and cross-entropy
(``val_ce_loss``). The reported ``val_loss`` of an L2 arm includes the penalty ``l·Σ‖kernel‖²`` and an AdamW
arm's does not, so it is never compared across arms.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from bench.decide import PAIR_COLUMNS, adjust_and_decide, arm_values, design, test_pair
from bench.report.groups import iter_groups
from bench.results import RunStatus

#: Comparable across arms with different penalties; the penalised ``val_loss`` is not.
COMPARISON_METRICS = ("val_accuracy", "val_ce_loss")


#: A stratum with more arms is not compared pair by pair: 7 arms are already 21 pairs, and across the 120
#: pairs of a 16-cell lr x regularization grid Holm's correction leaves nothing decided. A grid's answer is
#: its heatmap; a tuned comparison reruns each optimizer's best setting on fresh seeds.
MAX_ARMS_COMPARED = 6


def crowded_strata(finals: pd.DataFrame, strata: Sequence[str]) -> dict[str, int]:
    """Stratum label → number of arms, for the strata whose completed runs have too many arms to compare."""
    done = finals[finals["status"] == RunStatus.COMPLETED]
    counts = {
        stratum["stratum"].iloc[0]: stratum["arm"].nunique() for _, stratum in iter_groups(done, strata)
    }
    return {label: n for label, n in counts.items() if n > MAX_ARMS_COMPARED}


def iter_pairs(
    finals: pd.DataFrame, strata: Sequence[str]
) -> Iterator[tuple[dict[str, Any], str, pd.Series, pd.Series]]:
    """Every pair of arms within a stratum, for each comparable metric: (labels, metric, values A, values B).

    Only completed runs count; ``labels`` holds the stratum's label and columns and the two arms' names.
    Strata with more than ``MAX_ARMS_COMPARED`` arms are left out (:func:`crowded_strata` names them).
    """
    done = finals[finals["status"] == RunStatus.COMPLETED]
    for key, stratum in iter_groups(done, strata):
        arms = dict(list(stratum.groupby("arm")))
        if len(arms) > MAX_ARMS_COMPARED:
            continue
        for metric in (m for m in COMPARISON_METRICS if m in stratum):
            for a, b in itertools.combinations(sorted(arms), 2):
                labels = {"stratum": stratum["stratum"].iloc[0]} | key | {"arm_a": a, "arm_b": b}
                yield labels, metric, arm_values(arms[a], metric), arm_values(arms[b], metric)


def compare_arms(finals: pd.DataFrame, strata: Sequence[str], margins: Mapping[str, float]) -> pd.DataFrame:
    """Test every pair of arms within each stratum on each comparable metric, then decide.

    Args:
        finals: one row per run (its final epoch) with the ``arm`` and ``stratum`` labels.
        strata: the columns whose values define a stratum (arms are compared only within one).
        margins: metric → the difference that matters (``val_accuracy`` → 0.01).

    Returns:
        One row per stratum x pair x metric with the columns ``PAIR_COLUMNS`` (see the module docstring).
    """
    columns = ["stratum", *strata, *PAIR_COLUMNS]
    tested = [
        labels | test_pair(a, b, metric, margins[metric])
        for labels, metric, a, b in iter_pairs(finals, strata)
    ]
    if not tested:
        return pd.DataFrame(columns=columns)  # the header even with no pair
    tested_frame = pd.DataFrame(tested).reindex(columns=columns)
    families = tested_frame.groupby(["stratum", "metric"], sort=False, group_keys=False)
    return pd.concat([adjust_and_decide(family) for _, family in families]).reindex(columns=columns)


def seed_differences(finals: pd.DataFrame, strata: Sequence[str]) -> pd.DataFrame:
    """Per-seed differences A - B of the paired comparisons: the dots of the paired-differences figure."""
    rows = []
    for labels, metric, a, b in iter_pairs(finals, strata):
        if design(a, b) == "paired":
            for seed in a.index.intersection(b.index):
                rows.append(labels | {"metric": metric, "seed": seed, "value_a": a[seed], "value_b": b[seed]})
    columns = ["stratum", *strata, "arm_a", "arm_b", "metric", "seed", "value_a", "value_b"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(diff=frame["value_a"] - frame["value_b"])
