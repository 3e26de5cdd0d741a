"""Tuning's rules, one definition for every tool that tunes: how a run scores, which setting wins, which seeds
are fresh. ``experiment=fair_comparison`` (bench/protocol.py) tunes and confirms with them, a Hydra sweeper
gets a run's score from ``python -m bench`` (bench/__main__.py), and ``python -m bench.search`` ranks a search
or grid and proposes its re-evaluation with them, so a search read by hand and a protocol agree.

Plain Python, cheap to import: every training job imports it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from bench.results import RunStatus

SELECTION_METRIC = "val_accuracy"  # what tuning selects on: never the test split
#: The first seed a confirmation uses (``protocol.first_confirmation_seed``): far above any tuning seed.
FIRST_FRESH_SEED = 1000

Key = TypeVar("Key")


def score(result: Mapping[str, Any] | None, metric: str = SELECTION_METRIC) -> float | None:
    """A run's score for selection: its final ``metric``; 0.0 when it diverged; None when it failed, was pruned
    (stopped early by a search: a partial run says little about its final score) or left no result.

    A diverged run is a real outcome of its hyperparameters (the learning rate was too high), so it scores
    below any trained model. A failed run (a crash, a full disk) says nothing about them: None leaves it out of
    every mean, and a Hydra sweeper records the trial as failed. NaN is never returned (Optuna raises on it).
    """
    if not result or result.get("status") not in (RunStatus.COMPLETED, RunStatus.DIVERGED):
        return None
    value = (result.get("final") or {}).get(metric)
    if result["status"] != RunStatus.COMPLETED or value is None or not math.isfinite(value):
        return 0.0
    return float(value)


def mean_score(scores: Iterable[float | None]) -> float:
    """The mean of the scores that exist (failed runs left out); NaN when none does."""
    known = [s for s in scores if s is not None and not math.isnan(s)]
    return statistics.fmean(known) if known else math.nan


def best(candidates: Mapping[Key, Sequence[float | None]]) -> Key | None:
    """The candidate with the highest :func:`mean_score`, the first one among ties (candidates in the order
    they were drawn); None when no candidate has a score."""
    means = {key: mean_score(scores) for key, scores in candidates.items()}
    scored = [key for key, mean in means.items() if not math.isnan(mean)]
    return max(scored, key=lambda key: means[key]) if scored else None  # max keeps the first of equals


def fresh_seeds(used: Iterable[int], n: int, first: int = FIRST_FRESH_SEED) -> list[int]:
    """The ``n`` smallest seeds from ``first`` up that no tuning run used: a confirmation's seeds."""
    taken = set(used)
    seeds: list[int] = []
    candidate = first
    while len(seeds) < n:
        if candidate not in taken:
            seeds.append(candidate)
        candidate += 1
    return seeds
