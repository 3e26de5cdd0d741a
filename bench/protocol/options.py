"""The fair comparison's settings (``protocol.*``): cheap to import, for the run schema (bench/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.checks import require, require_at_least, require_seed
from bench.tuning import FIRST_FRESH_SEED, NEAR_TIE_PHOTOS

TUNERS = ("successive_halving", "random")
# What a rung of successive halving promotes by (bench/protocol/halving.py): the lower validation cross-entropy,
# or the higher validation accuracy (near-ties by cross-entropy, as the final selection ranks).
PROMOTE_BY = ("val_ce_loss", "val_accuracy")
# The confirmation's designs (bench/protocol/spending.py; named here, where no scipy is imported).
SPENDINGS = ("obrien_fleming", "pocock", "bonferroni", "fixed")
SPENDING_NAMES = {
    "obrien_fleming": "Lan-DeMets alpha spending, O'Brien-Fleming-like",
    "pocock": "Lan-DeMets alpha spending, Pocock-like",
    "bonferroni": "Bonferroni over the looks (5 % / looks at each)",
    "fixed": "fixed n (only the last look decides)",
}


@dataclass
class HalvingConfig:
    """``protocol.tuner=successive_halving`` (bench/protocol/halving.py): rungs of min_epochs x eta**k epochs,
    up to train.epochs, each promoting the best 1 / eta of its trials."""

    eta: int = 3  # a rung keeps trials // eta of its trials (at least one) for the next, eta times longer
    min_epochs: int = 1  # the first rung's length
    # What a rung's trials are ranked by for promotion: val_ce_loss (lower first) or val_accuracy (higher first,
    # near-ties by cross-entropy). A first rung's accuracy on a few dozen photos is often near chance and moves
    # in steps of one photo; its cross-entropy uses every photo's confidence and separates trials earlier. The
    # final selection among the last rung's trials is by accuracy either way (what the verdict is about).
    promote_by: str = "val_ce_loss"
    # A rung's checkpoints are deleted once tuning is over (a promotion continued them already); true keeps them.
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        require(self.eta >= 2, f"protocol.halving.eta must be >= 2, got {self.eta}")
        require(self.min_epochs >= 1, f"protocol.halving.min_epochs must be >= 1, got {self.min_epochs}")
        require(
            self.promote_by in PROMOTE_BY,
            f"protocol.halving.promote_by must be one of {PROMOTE_BY}, got {self.promote_by!r}",
        )


@dataclass
class ProtocolConfig:
    """``experiment=fair_comparison`` (bench/protocol/run.py): tune every optimizer on the same budget, then
    confirm the best settings on fresh seeds, in rounds, until every pair is decided. Read by the sweeper, never
    by a run (its section of the run schema is declared an option, like report.*)."""

    budget: int = 16  # random draws per optimizer, the same number for each
    # successive_halving: every draw starts short and the best are promoted to train.epochs (protocol.halving);
    # random: every draw trains the full train.epochs (plain random search)
    tuner: str = "successive_halving"
    halving: HalvingConfig = field(default_factory=HalvingConfig)
    # Validation accuracies within this many photos of the best are a near-tie, broken by validation
    # cross-entropy (bench/tuning.py, rank); 0: only exact ties are.
    near_tie_photos: float = NEAR_TIE_PHOTOS
    tuning_seeds: list[int] = field(default_factory=lambda: [0])  # the seeds every trial runs on
    seeds_per_round: int = 3  # confirmation seeds added per round, the same for every optimizer (paired)
    max_seeds: int = 9  # confirmation seeds at most, per optimizer
    first_confirmation_seed: int = FIRST_FRESH_SEED  # fresh seeds: 1000, 1001, ... (never a tuning seed)
    sampler_seed: int = 0  # the random search's draws: the same for every optimizer, and on a rerun
    # The level of each look (bench/protocol/spending.py): pocock or obrien_fleming (Lan-DeMets alpha spending),
    # bonferroni (5 % / looks at each), fixed (only the last look decides). Pocock by default: at looks of 3, 6
    # and 9 seeds it decides no later than Bonferroni on any data and has more power; O'Brien-Fleming has much
    # more power at the last look but almost never stops at the first (a t-test on 2 degrees of freedom at
    # p < 0.0007), so it needs more seeds on average (README "The fair comparison", the simulation table).
    spending: str = "pocock"
    # Replicates of the error-rate simulation run at the measured effect when the protocol ends, for its report
    # (bench/protocol/simulate.py); 0: none.
    simulation_reps: int = 2000
    # optimizer -> field -> [low, high], sampled log-uniformly; each built-in optimizer's default is in its module
    # (bench/optimizers/), which conf/experiment/fair_comparison.yaml puts here
    spaces: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.budget >= 1, f"protocol.budget must be >= 1, got {self.budget}")
        require(self.tuner in TUNERS, f"protocol.tuner must be one of {TUNERS}, got {self.tuner!r}")
        require(
            self.spending in SPENDINGS, f"protocol.spending must be one of {SPENDINGS}, got {self.spending!r}"
        )
        require_at_least("protocol.near_tie_photos", self.near_tie_photos, 0, strict=False)
        require(
            self.simulation_reps >= 0, f"protocol.simulation_reps must be >= 0, got {self.simulation_reps}"
        )
        require(len(self.tuning_seeds) >= 1, "protocol.tuning_seeds must list at least one seed")
        for seed in self.tuning_seeds:
            require_seed("protocol.tuning_seeds", seed)
        require_seed("protocol.sampler_seed", self.sampler_seed)
        require_seed("the last confirmation seed (first_confirmation_seed + max_seeds - 1)",
                     self.first_confirmation_seed + self.max_seeds - 1)  # fmt: skip
        require(
            self.seeds_per_round >= 2, f"protocol.seeds_per_round must be >= 2, got {self.seeds_per_round}"
        )
        require(
            self.max_seeds >= self.seeds_per_round,
            f"protocol.max_seeds must be >= seeds_per_round ({self.seeds_per_round}), got {self.max_seeds}",
        )
        require(
            self.first_confirmation_seed > max(self.tuning_seeds),
            "protocol.first_confirmation_seed must be above every tuning seed (confirmation seeds are fresh)",
        )
        for name, space in self.spaces.items():
            for key, bounds in space.items():
                require(
                    len(bounds) == 2 and 0 < bounds[0] <= bounds[1],
                    f"protocol.spaces.{name}.{key} must be [low, high] with 0 < low <= high, got {bounds}",
                )
