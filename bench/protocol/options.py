"""The fair comparison's settings (``protocol.*``): cheap to import, for the run schema (bench/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.checks import require, require_seed
from bench.tuning import FIRST_FRESH_SEED


@dataclass
class ProtocolConfig:
    """``experiment=fair_comparison`` (bench/protocol/run.py): tune every optimizer on the same budget, then
    confirm the best settings on fresh seeds, in rounds, until every pair is decided. Read by the sweeper, never
    by a run (its section of the run schema is declared an option, like report.*)."""

    budget: int = 16  # random-search trials per optimizer, the same number for each
    tuning_seeds: list[int] = field(default_factory=lambda: [0])  # the seeds every trial runs on
    seeds_per_round: int = 3  # confirmation seeds added per round, the same for every optimizer (paired)
    max_seeds: int = 9  # confirmation seeds at most, per optimizer
    first_confirmation_seed: int = FIRST_FRESH_SEED  # fresh seeds: 1000, 1001, ... (never a tuning seed)
    sampler_seed: int = 0  # the random search's draws: the same for every optimizer, and on a rerun
    # optimizer -> field -> [low, high], sampled log-uniformly; each built-in optimizer's default is in its module
    # (bench/optimizers/), which conf/experiment/fair_comparison.yaml puts here
    spaces: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.budget >= 1, f"protocol.budget must be >= 1, got {self.budget}")
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
