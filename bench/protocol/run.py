"""A fair comparison in one command: tune every optimizer on the same budget, confirm on fresh seeds, stop when
decided (``experiment=fair_comparison``; README "A fair comparison").

1. **Tuning.** Each optimizer gets ``protocol.budget`` random-search trials over its own search space
   (``protocol.spaces``: learning rate and regularization, log-uniform), on the tuning seeds. Every optimizer
   gets the same sampler: the same uniform draws, mapped onto its own ranges.
2. **Selection.** Each optimizer's best setting by mean *validation* accuracy over the tuning seeds (a run that
   diverged scores 0, a failed one is left out: :func:`bench.tuning.score`). The test split plays no part in it.
3. **Confirmation.** The best settings rerun on fresh seeds, the same seeds for every optimizer (paired), in
   rounds of ``protocol.seeds_per_round``, until every pair is decided on the held-out *test* accuracy
   (better, or equivalent within ``report.margin``) or ``protocol.max_seeds`` is reached.

The decisions are the report's (:mod:`bench.decide`: paired t-test on the seeds both ran, Holm across
pairs, two one-sided tests for equivalence). Looking after every round and stopping once decided would raise
the error rates if each look used 5 %; each look uses ``ALPHA / looks planned`` instead (Bonferroni over the
looks), which keeps them at 5 % whatever the stopping, at some cost in seeds.

The loop (:class:`ProtocolRun`) only asks a ``launch`` function to run lists of job overrides and hand back
their result.json: the sweeper (hydra_plugins/flowerbench/fair_comparison_sweeper.py) gives it the configured
launcher, so the protocol runs on the basic, ``parallel`` or ``slurm`` launcher alike, and a rerun of the same
command skips every run that finished, whichever process ran it. The record of what happened goes to
``protocol.json`` in the sweep directory; the report's protocol section reads it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import results, tuning
from bench.decide import ALPHA, DECIDED, PAIR_COLUMNS, adjust_and_decide, arm_values, test_pair
from bench.errors import ConfigError
from bench.io import atomic_write_json
from bench.protocol.options import ProtocolConfig
from bench.results import PROTOCOL_FILE
from bench.tuning import SELECTION_METRIC

METRIC = "test_accuracy"  # what the confirmation decides on

#: One launched job: its run directory and its result.json (None when the job left none).
Launched = tuple[Path, dict[str, Any] | None]
Launch = Callable[[list[list[str]]], list[Launched]]


@dataclass(frozen=True)
class Setting:
    """One optimizer's hyperparameters: fields of its config group and their values."""

    optimizer: str
    values: tuple[tuple[str, float], ...]

    def overrides(self, seed: int) -> list[str]:
        """The job's overrides: values as Python writes them, so job directory names are stable."""
        settings = [f"optimizer.{key}={value!r}" for key, value in self.values]
        return [f"optimizer={self.optimizer}", *settings, f"seed={seed}"]

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    @property
    def label(self) -> str:
        return " ".join([self.optimizer, *(f"{key}={value:g}" for key, value in self.values)])


def sample_settings(
    optimizer: str, space: Mapping[str, Sequence[float]], budget: int, sampler_seed: int
) -> list[Setting]:
    """``budget`` log-uniform draws from ``space`` (field -> [low, high]), to 3 significant digits.

    The uniform draws depend only on ``sampler_seed`` and the number of fields, so optimizers with spaces of
    the same shape get the same points, each mapped onto its own ranges.
    """
    draws = np.random.default_rng(sampler_seed).random((budget, len(space)))
    settings = []
    for row in draws:
        values = []
        for (key, (low, high)), u in zip(space.items(), row, strict=True):
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
            values.append((key, float(f"{value:.3g}")))
        settings.append(Setting(optimizer, tuple(values)))
    return settings


def select_best(trials: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each optimizer's setting with the highest mean validation accuracy over the tuning seeds
    (:func:`bench.tuning.best`: ties go to the earlier trial).

    Args:
        trials: one row per tuning run with ``optimizer``, ``trial`` (its index in the draws), ``setting``
            (a :class:`Setting`) and ``score`` (:func:`bench.tuning.score` of val_accuracy). Other columns,
            the test metrics among them, are ignored: selection never sees the test split.

    Returns:
        optimizer -> {"setting": Setting, "trial": int, "val_accuracy_mean": float}.
    """
    chosen = {}
    for optimizer, rows in trials.sort_values("trial", kind="stable").groupby("optimizer", sort=True):
        by_trial = rows.groupby("trial", sort=True)
        scores = {trial: [None if pd.isna(v) else v for v in group["score"]] for trial, group in by_trial}
        top = tuning.best(scores)
        if top is None:
            raise ConfigError(
                f"every tuning run of {optimizer} failed: nothing to select (see their result.json)"
            )
        chosen[optimizer] = {
            "setting": by_trial.get_group(top)["setting"].iloc[0],
            "trial": int(top),
            "val_accuracy_mean": float(tuning.mean_score(scores[top])),
        }
    return chosen


def decide_pairs(confirmation: pd.DataFrame, margin: float, alpha: float) -> pd.DataFrame:
    """The report's decision for every pair of optimizers on the confirmation runs' test accuracy.

    Args:
        confirmation: one row per confirmation run: ``optimizer``, ``seed``, ``status``, ``test_accuracy``.
        margin: the accuracy difference that matters (``report.margin``).
        alpha: the level of this look.
    """
    done = confirmation[confirmation["status"] == results.COMPLETED]
    rows = []
    for a, b in itertools.combinations(sorted(confirmation["optimizer"].unique()), 2):
        values_a = arm_values(done[done["optimizer"] == a], METRIC)
        values_b = arm_values(done[done["optimizer"] == b], METRIC)
        rows.append({"stratum": "", "arm_a": a, "arm_b": b} | test_pair(values_a, values_b, METRIC, margin))
    tested = pd.DataFrame(rows).reindex(columns=["stratum", *PAIR_COLUMNS])  # as compare_arms lays them out
    return adjust_and_decide(tested, alpha)


def planned_looks(protocol: ProtocolConfig) -> int:
    """How many times the confirmation may look at its data: once per round."""
    return math.ceil(protocol.max_seeds / protocol.seeds_per_round)


class ProtocolRun:
    """The three phases, given a way to launch jobs (see the module docstring).

    Args:
        protocol: the protocol's settings.
        optimizers: the optimizers compared (each needs a space in ``protocol.spaces``).
        launch: runs a list of jobs (each a list of overrides) and returns their run directories and results.
        common: overrides every job gets (e.g. ``experiment=fair_comparison dataset.image_size=64``).
        margin: the accuracy margin of the decisions (``report.margin``).
        out_dir: where ``protocol.json`` goes (the sweep directory).
    """

    def __init__(
        self,
        protocol: ProtocolConfig,
        optimizers: Sequence[str],
        launch: Launch,
        common: Sequence[str],
        margin: float,
        out_dir: Path,
    ):
        missing = [name for name in optimizers if name not in protocol.spaces]
        if missing:
            raise ConfigError(
                f"protocol.spaces has no search space for {', '.join(missing)} (it has "
                f"{', '.join(protocol.spaces)}); add protocol.spaces.{missing[0]}: {{lr: [low, high], ...}}"
            )
        if len(optimizers) < 2:
            raise ConfigError(f"a comparison needs two optimizers or more, got {list(optimizers)}")
        self.protocol, self.optimizers, self.launch = protocol, list(optimizers), launch
        self.common, self.margin, self.out_dir = list(common), margin, out_dir
        self.alpha = ALPHA / planned_looks(protocol)

    def _run(self, jobs: list[tuple[dict[str, Any], list[str]]]) -> list[dict[str, Any]]:
        """Launch the jobs; one row per job: its labels, run directory, status and metrics."""
        launched = self.launch([overrides + self.common for _, overrides in jobs])
        rows = []
        for (labels, _), (run_dir, result) in zip(jobs, launched, strict=True):
            final = (result or {}).get("final") or {}
            rows.append(
                labels
                | {
                    "run_dir": str(run_dir),
                    "status": (result or {}).get("status", results.RunStatus.MISSING),
                    "score": tuning.score(result, SELECTION_METRIC),
                    SELECTION_METRIC: final.get(SELECTION_METRIC),
                    METRIC: final.get(METRIC),
                    "train_images": sum(r["train_images"] for r in results.read_metrics(run_dir)),
                    "wall_time_s": (result or {}).get("wall_time_s"),
                }
            )
        return rows

    def tune(self) -> pd.DataFrame:
        jobs = []
        for optimizer in self.optimizers:
            space = self.protocol.spaces[optimizer]
            settings = sample_settings(optimizer, space, self.protocol.budget, self.protocol.sampler_seed)
            for (trial, setting), seed in itertools.product(enumerate(settings), self.protocol.tuning_seeds):
                labels = {"optimizer": optimizer, "trial": trial, "setting": setting, "seed": seed}
                jobs.append((labels, setting.overrides(seed)))
        return pd.DataFrame(self._run(jobs))

    def confirm(self, best: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Rounds of fresh seeds until every pair is decided or max_seeds is reached."""
        runs: list[dict[str, Any]] = []
        rounds: list[dict[str, Any]] = []
        fresh = tuning.fresh_seeds(
            self.protocol.tuning_seeds, self.protocol.max_seeds, self.protocol.first_confirmation_seed
        )
        per_round, used = self.protocol.seeds_per_round, 0
        while used < self.protocol.max_seeds:
            seeds = fresh[used : used + per_round]
            used += len(seeds)
            jobs = [
                ({"optimizer": name, "seed": seed}, best[name]["setting"].overrides(seed))
                for name in self.optimizers
                for seed in seeds
            ]
            runs += self._run(jobs)
            decisions = decide_pairs(pd.DataFrame(runs), self.margin, self.alpha)
            rounds.append({"round": len(rounds) + 1, "seeds": seeds, "decisions": _records(decisions)})
            if decisions["decision"].isin(DECIDED).all():
                break
        return pd.DataFrame(runs), rounds

    def run(self) -> dict[str, Any]:
        """Tune, select, confirm; write and return the record (``protocol.json``)."""
        started_at, started = results.now_iso(), time.perf_counter()
        trials = self.tune()
        best = select_best(trials)
        confirmation, rounds = self.confirm(best)
        final = rounds[-1]["decisions"]
        every = pd.concat([trials, confirmation], ignore_index=True)
        record = {
            "optimizers": self.optimizers,
            "budget": self.protocol.budget,
            "tuning_seeds": list(self.protocol.tuning_seeds),
            "spaces": {name: dict(self.protocol.spaces[name]) for name in self.optimizers},
            "sampler_seed": self.protocol.sampler_seed,
            "selection_metric": SELECTION_METRIC,
            "metric": METRIC,
            "margin": self.margin,
            "looks_planned": planned_looks(self.protocol),
            "alpha_per_look": self.alpha,
            "trials": _records(trials.assign(setting=trials["setting"].map(Setting.as_dict))),
            "best": {name: {**entry, "setting": entry["setting"].as_dict()} for name, entry in best.items()},
            "rounds": rounds,
            "confirmation": _records(confirmation),
            "seeds_used": sum(len(r["seeds"]) for r in rounds),
            "stopped": "decided" if all(d["decision"] in DECIDED for d in final) else "max_seeds",
            "compute": {
                "runs": len(every),
                "tuning_runs": len(trials),
                "confirmation_runs": len(confirmation),
                "train_images": int(every["train_images"].sum()),
                "run_wall_time_s": float(every["wall_time_s"].fillna(0).sum()),
                "elapsed_s": time.perf_counter() - started,
            },
            "started_at": started_at,
            "finished_at": results.now_iso(),
        }
        atomic_write_json(self.out_dir / PROTOCOL_FILE, record)
        return record


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]
