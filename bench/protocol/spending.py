"""The confirmation's group-sequential design: at which level each look decides (``protocol.spending``).

The confirmation looks at its data after every round of ``protocol.seeds_per_round`` seeds, up to
``protocol.max_seeds``: looks at n_1 < n_2 < ... < n_K = max_seeds seeds (:func:`looks`), planned before any run.
Stopping at the first look that decides would raise the error rates if every look used 5 %; a design says which
level each look uses so that the error over all looks, the stopping included, stays at 5 %:

- ``pocock`` (default): Lan & DeMets' (1983) alpha spending with the Pocock-like function
  ``alpha(t) = alpha ln(1 + (e - 1) t)`` of the information fraction ``t = n_k / max_seeds``: about the same
  level at every look, so early stops when the effect is large, and a lower last level. At looks of 3, 6, 9
  seeds its calibrated levels are at least Bonferroni's at every look, so it decides no later on any data.
- ``obrien_fleming``: the O'Brien-Fleming-like function ``alpha(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t))``: almost
  nothing is spent at the first looks, nearly the whole 5 % at the last, where most decisions are made: the
  most power at the last look, but at 3 seeds (a t-test on 2 degrees of freedom at p < 0.0007) it almost never
  stops, so it uses more seeds on average than Bonferroni at moderate effects (bench/protocol/simulate.py).
- ``bonferroni``: ``alpha / K`` at every look (what the protocol did before): safe, but wasteful, since the
  looks' statistics are strongly correlated.
- ``fixed``: no early look at all; only the last one decides, at ``alpha`` (the fixed-n design, for comparison).

**The t statistics.** Lan-DeMets boundaries (:func:`z_boundaries`) assume z statistics with a known variance;
the protocol decides with paired t-tests on 3, 6, 9 seeds, whose variance estimates are far from known, and
converting each z boundary to a t-test's nominal level (same tail probability, n - 1 degrees of freedom) lets
the error creep above 5 % (about 5.3 % for O'Brien-Fleming and 5.5 % for Pocock at looks 3, 6, 9), because t
statistics at successive looks are less correlated than z statistics. So the levels are **calibrated by
simulation** instead (:func:`calibrated_levels`): under no difference (normal per-seed differences; a t statistic's
null distribution does not depend on their spread), ``CALIBRATION_DRAWS`` seeded sequences of t statistics are
drawn, and look k's nominal level is the one at which the share of sequences that have crossed by look k equals
``alpha(t_k)``. The levels are the same on every machine and every rerun (a seeded generator), so a resumed
protocol decides as the first attempt did. bench/protocol/simulate.py checks the result with the decision code.

The difference test is two-sided, its level per look ``alpha``; each of the two one-sided tests of an equivalence
(TOST) is calibrated as a one-sided test at ``alpha``, ``tost_alpha`` per look (under a true difference at the
margin, the TOST's worst case, its statistic is a central t).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from bench.decide import ALPHA
from bench.protocol.options import SPENDINGS

CALIBRATION_DRAWS = 1_000_000  # a level's simulation error: about 0.0002 at the last look
_CHUNK = 100_000
CALIBRATION_SEED = (
    1983  # Lan & DeMets' year; not the simulation's default seed, so that it checks out of sample
)
_GRID = 2001  # points of the numerical integration of z_boundaries


def looks(max_seeds: int, seeds_per_round: int) -> list[int]:
    """Seeds per arm at each planned look: one look per round, the last at max_seeds.

    >>> looks(9, 3), looks(10, 3)
    ([3, 6, 9], [3, 6, 9, 10])
    """
    return [min(k * seeds_per_round, max_seeds) for k in range(1, math.ceil(max_seeds / seeds_per_round) + 1)]


def spent(spending: str, fraction: float, alpha: float = ALPHA) -> float:
    """The error spent by information fraction ``fraction`` (0 to 1): the spending function ``alpha(t)``."""
    if fraction <= 0:
        return 0.0
    fraction = min(fraction, 1.0)
    if spending == "obrien_fleming":
        return float(2 - 2 * stats.norm.cdf(stats.norm.isf(alpha / 2) / math.sqrt(fraction)))
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * fraction)
    raise ValueError(f"{spending!r} is not a spending function (obrien_fleming, pocock)")


def z_boundaries(
    spending: str, fractions: Sequence[float], alpha: float = ALPHA, sides: int = 2
) -> list[float]:
    """Lan-DeMets boundaries on the z scale at the given information fractions (the textbook design, for a
    known variance): |Z_k| >= c_k (``sides=2``) or Z_k >= c_k (``sides=1``) at look k, first crossing, with
    ``P(first crossing at look k) = alpha(t_k) - alpha(t_{k-1})`` under no effect. Computed by numerical
    integration of the Brownian motion's density over the continuation region (Armitage, McPherson & Rowe 1969).

    >>> [round(c, 4) for c in z_boundaries("obrien_fleming", [1 / 3, 2 / 3, 1], alpha=0.025, sides=1)]
    [3.7103, 2.5114, 1.993]
    """
    bounds: list[float] = []
    grid = density = None
    previous_fraction, previous_spent = 0.0, 0.0
    for t in fractions:
        target = spent(spending, t, alpha) - previous_spent
        if grid is None:
            c = float(stats.norm.isf(target / sides))
        else:
            step = math.sqrt(t - previous_fraction)

            def excess(c: float, grid=grid, density=density, step=step, t=t, target=target) -> float:
                b = c * math.sqrt(t)
                cross = stats.norm.sf((b - grid) / step)
                if sides == 2:
                    cross = cross + stats.norm.cdf((-b - grid) / step)
                return float(np.trapezoid(density * cross, grid)) - target

            c = float(optimize.brentq(excess, 0.0, 40.0))
        bounds.append(c)
        b = c * math.sqrt(t)
        if grid is None:
            low = -b if sides == 2 else -12 * math.sqrt(t)
            grid = np.linspace(low, b, _GRID)
            density = stats.norm.pdf(grid, scale=math.sqrt(t))
        else:
            low = -b if sides == 2 else grid[0] - 12 * step
            new = np.linspace(low, b, _GRID)
            kernel = stats.norm.pdf((new[:, None] - grid[None, :]) / step) / step
            density, grid = np.trapezoid(kernel * density[None, :], grid, axis=1), new
        previous_fraction, previous_spent = t, spent(spending, t, alpha)
    return bounds


def _null_p_values(seeds: tuple[int, ...], sides: int) -> np.ndarray:
    """p-values of the t-test at each look of ``CALIBRATION_DRAWS`` seeded null sequences (draws x looks),
    drawn in chunks so that memory stays small whatever max_seeds."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    chunks = []
    for _ in range(CALIBRATION_DRAWS // _CHUNK):
        x = rng.standard_normal((_CHUNK, seeds[-1]))
        total, squares = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
        columns = []
        for n in seeds:
            mean = total[:, n - 1] / n
            sd = np.sqrt(np.maximum(squares[:, n - 1] - n * mean * mean, 0.0) / (n - 1))
            t = mean / (sd / math.sqrt(n))
            columns.append(2 * stats.t.sf(np.abs(t), n - 1) if sides == 2 else stats.t.sf(t, n - 1))
        chunks.append(np.column_stack(columns))
    return np.concatenate(chunks)


@lru_cache(maxsize=64)
def calibrated_levels(
    spending: str, seeds: tuple[int, ...], alpha: float = ALPHA, sides: int = 2
) -> tuple[float, ...]:
    """Each look's nominal level for t-tests on ``seeds`` pairs (a p-value below it decides), calibrated by
    simulation so that the first-crossing probabilities follow the spending function (module docstring)."""
    if spending == "bonferroni":
        return tuple(alpha / len(seeds) for _ in seeds)
    if spending == "fixed":
        return tuple(0.0 for _ in seeds[:-1]) + (alpha,)
    p = _null_p_values(seeds, sides)
    alive = np.ones(len(p), bool)
    crossed, levels = 0, []
    for k, n in enumerate(seeds):
        goal = spent(spending, n / seeds[-1], alpha)
        if k == 0:
            level = goal  # one look alone: a t-test's p-value is uniform under no effect
        else:
            wanted = max(int(round(goal * len(p))) - crossed, 0)
            candidates = np.sort(p[alive, k])
            if wanted == 0:
                level = float(candidates[0]) / 2
            elif wanted >= len(candidates):
                level = 1.0
            else:  # halfway between the last p-value that crosses and the first that does not
                level = float(candidates[wanted - 1] + candidates[wanted]) / 2
        hit = alive & (p[:, k] < level)
        crossed += int(hit.sum())
        alive &= ~hit
        levels.append(float(level))
    return tuple(levels)


@dataclass(frozen=True)
class Design:
    """The levels of every planned look: ``alpha[k]`` for the (Holm-adjusted) paired test's p-value at look k,
    ``tost_alpha[k]`` for the equivalence test's."""

    spending: str
    seeds: tuple[int, ...]
    alpha: tuple[float, ...]
    tost_alpha: tuple[float, ...]

    def look(self, seeds_so_far: int) -> int:
        """The index of the planned look at this many seeds (the last one past the plan)."""
        for k, planned in enumerate(self.seeds):
            if seeds_so_far <= planned:
                return k
        return len(self.seeds) - 1

    def describe(self) -> list[dict[str, float]]:
        """protocol.json's ``levels``: one entry per planned look."""
        return [
            {"look": k + 1, "seeds": n, "alpha": a, "tost_alpha": b}
            for k, (n, a, b) in enumerate(zip(self.seeds, self.alpha, self.tost_alpha, strict=True))
        ]


def design(spending: str, max_seeds: int, seeds_per_round: int, alpha: float = ALPHA) -> Design:
    """The design of a protocol's confirmation (``protocol.spending``, ``max_seeds``, ``seeds_per_round``)."""
    if spending not in SPENDINGS:
        raise ValueError(f"protocol.spending must be one of {SPENDINGS}, got {spending!r}")
    seeds = tuple(looks(max_seeds, seeds_per_round))
    return Design(
        spending,
        seeds,
        calibrated_levels(spending, seeds, alpha, sides=2),
        calibrated_levels(spending, seeds, alpha, sides=1),
    )
