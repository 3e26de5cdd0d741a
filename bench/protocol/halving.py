"""Successive halving (Jamieson & Talwalkar 2016; the inner loop of Li et al.'s Hyperband): the tuner of
``protocol.tuner=successive_halving``.

Every draw of the random search starts with a few epochs; after each rung the best ``1 / eta`` of the trials (by
validation accuracy, near-ties by validation cross-entropy: :func:`bench.tuning.rank`) are promoted to the next
rung's length, up to ``train.epochs``. Every optimizer gets the same rungs and promotes the same number of trials,
so each is tuned on the same number of training images.

A promoted trial trains only the epochs it has not trained: its next rung continues the previous rung's
checkpoint (bench/checkpoint.py). Each rung is the first part of the full-length run, not a shorter run of its
own: the lr schedule is the one of ``train.epochs`` (a cosine decays over the whole length and a rung simply
stops early), so the last rung's runs are exactly the full-length trials a random search would have run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.checks import require

#: A promoting rung whose trials' validation accuracies are this alike or more (chi-square p >= this) could not
#: tell them apart by accuracy: the report says its promotions rest on cross-entropy alone.
ALIKE_P = 0.05


def rungs(epochs: int, min_epochs: int, eta: int) -> list[int]:
    """The epochs each rung stops after: ``min_epochs * eta**k`` below ``epochs``, then ``epochs`` itself.

    >>> rungs(3, 1, 3), rungs(7, 1, 3), rungs(27, 1, 3), rungs(2, 5, 3)
    ([1, 3], [1, 3, 7], [1, 3, 9, 27], [2])
    """
    require(eta >= 2, f"protocol.halving.eta must be >= 2, got {eta}")
    require(min_epochs >= 1, f"protocol.halving.min_epochs must be >= 1, got {min_epochs}")
    stops, length = [], min_epochs
    while length < epochs:
        stops.append(length)
        length *= eta
    return [*stops, epochs]


def survivors(trials: int, eta: int) -> int:
    """How many of ``trials`` a rung promotes: ``trials // eta``, at least one."""
    return max(1, trials // eta)


def schedule(budget: int, epochs: int, min_epochs: int, eta: int) -> list[tuple[int, int]]:
    """(epochs, trials) of every rung, for ``budget`` draws: the plan every optimizer follows.

    >>> schedule(8, 3, 1, 3), schedule(16, 7, 1, 3)
    ([(1, 8), (3, 2)], [(1, 16), (3, 5), (7, 1)])
    """
    plan, trials = [], budget
    for length in rungs(epochs, min_epochs, eta):
        plan.append((length, trials))
        trials = survivors(trials, eta)
    return plan


def planned_epochs(budget: int, epochs: int, min_epochs: int, eta: int) -> int:
    """Epochs trained per optimizer and tuning seed when every promotion continues its checkpoint.

    >>> planned_epochs(8, 3, 1, 3), 8 * 3  # successive halving against a full-length random search
    (12, 24)
    """
    total, previous = 0, 0
    for length, trials in schedule(budget, epochs, min_epochs, eta):
        total += trials * (length - previous)
        previous = length
    return total


def accuracies_alike_p(accuracies: Sequence[float], photos: int) -> float:
    """How alike one rung's validation accuracies are: the p-value of the chi-square test that every trial has
    the same accuracy (a trials x {right, wrong} table of ``round(accuracy * photos)`` counts). Near 1: no more
    different than chance makes equal accuracies on ``photos`` photos, so accuracy cannot rank the trials.

    >>> accuracies_alike_p([0.2, 0.2, 0.2], 75), accuracies_alike_p([0.2, 0.6], 75) < 1e-6
    (1.0, True)
    """
    from scipy import stats  # the rung's jobs do not need scipy; only the protocol's process does

    right = [round(a * photos) for a in accuracies if not math.isnan(a)]
    wrong = [photos - r for r in right]
    if len(right) < 2 or sum(right) == 0 or sum(wrong) == 0 or len(set(right)) == 1:
        return 1.0
    return float(stats.chi2_contingency([right, wrong], correction=False).pvalue)
