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

from bench.checks import require


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
