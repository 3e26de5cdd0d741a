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
TIE_BREAK_METRIC = "val_ce_loss"  # what decides between settings whose accuracies are a near-tie (lower wins)
#: Accuracies within this many validation photos of the best count as a near-tie (``protocol.near_tie_photos``).
NEAR_TIE_PHOTOS = 1.0
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


def near_tie_tolerance(photos: float, val_images: int | None) -> float:
    """The accuracy difference that ``photos`` validation photos make, plus float round-off: scores closer than
    this are a near-tie. 0 photos (or an unknown split) still ties equal scores."""
    return (photos / val_images if photos and val_images else 0.0) + 1e-9


def rank(accuracy: Mapping[Key, float], cross_entropy: Mapping[Key, float], tolerance: float) -> list[Key]:
    """The candidates best first, by mean validation accuracy, near-ties broken by cross-entropy.

    Validation accuracy on a few dozen photos moves in steps of one photo, so settings often tie or differ by a
    photo that float round-off of another machine can flip. Those within ``tolerance`` of the best accuracy form
    a near-tie, ordered by lower mean validation cross-entropy (a continuous criterion; no cross-entropy, as for
    a diverged run, comes last), then by accuracy, then in the order drawn; the rest are ranked the same way.
    Candidates without an accuracy (every run failed) are left out.

    Args:
        accuracy: candidate (in the order drawn) -> mean score (:func:`mean_score`; NaN: no run scored).
        cross_entropy: candidate -> mean validation cross-entropy (NaN when unknown).
        tolerance: :func:`near_tie_tolerance`.
    """
    left = [key for key, value in accuracy.items() if not math.isnan(value)]
    ranked: list[Key] = []
    while left:
        top = max(accuracy[key] for key in left)
        tied = [key for key in left if accuracy[key] >= top - tolerance]
        ranked += _by_cross_entropy(tied, accuracy, cross_entropy)
        left = [key for key in left if key not in tied]
    return ranked


def rank_by_cross_entropy(accuracy: Mapping[Key, float], cross_entropy: Mapping[Key, float]) -> list[Key]:
    """The candidates best first by lower mean validation cross-entropy (successive halving's promotions,
    ``protocol.halving.promote_by=val_ce_loss``): those without one (a diverged run) after the rest, by
    accuracy; then in the order drawn. Candidates without an accuracy (every run failed) are left out."""
    scored = [key for key, value in accuracy.items() if not math.isnan(value)]
    return _by_cross_entropy(scored, accuracy, cross_entropy)


def _by_cross_entropy(
    keys: Sequence[Key], accuracy: Mapping[Key, float], cross_entropy: Mapping[Key, float]
) -> list[Key]:
    """``keys`` by lower cross-entropy (none known: last), then higher accuracy, then in the order drawn."""
    order = {key: i for i, key in enumerate(accuracy)}

    def order_key(key: Key) -> tuple[bool, float, float, int]:
        ce = cross_entropy.get(key, math.nan)
        return (math.isnan(ce), 0.0 if math.isnan(ce) else ce, -accuracy[key], order[key])

    return sorted(keys, key=order_key)


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
