"""A fair comparison in one command: tune every optimizer on the same budget, confirm on fresh seeds, stop when
decided (``experiment=fair_comparison``; README "A fair comparison").

1. **Tuning.** Each optimizer gets ``protocol.budget`` random draws from its own search space
   (``protocol.spaces``: learning rate and regularization, log-uniform), on the tuning seeds. Every optimizer
   gets the same sampler: the same uniform draws, mapped onto its own ranges. ``protocol.tuner`` says how long
   each draw trains:

   - ``successive_halving`` (default; bench/protocol/halving.py): every draw starts with
     ``protocol.halving.min_epochs`` epochs, and after each rung the best ``1 / eta`` are promoted to a rung
     ``eta`` times longer, up to ``train.epochs``; a promoted trial continues its previous rung's checkpoint
     (bench/checkpoint.py), the lr schedule being that of the full length. Every optimizer gets the same rungs,
     so the same number of training images.
   - ``random``: every draw trains all ``train.epochs`` (plain random search).
2. **Selection.** Each optimizer's best setting among the trials of its last rung, by mean *validation* accuracy
   over the tuning seeds (a run that diverged scores 0, a failed one is left out: :func:`bench.tuning.score`),
   accuracies within ``protocol.near_tie_photos`` validation photos of the best counting as a near-tie broken by
   validation cross-entropy (:func:`bench.tuning.rank`; promotions between rungs use the same rule). The record
   says how far the chosen setting was ahead of the next one. The test split plays no part in it.
3. **Confirmation.** The best settings rerun on fresh seeds, the same seeds for every optimizer (paired), in
   rounds of ``protocol.seeds_per_round``, until every pair is decided on the held-out *test* accuracy
   (better, or equivalent within ``report.margin``) or ``protocol.max_seeds`` is reached.

The decisions are the report's (:mod:`bench.decide`: paired t-test on the seeds both ran, Holm across
pairs, two one-sided tests for equivalence), each look at the level of a group-sequential design
(``protocol.spending``, bench/protocol/spending.py: Lan-DeMets alpha spending, Pocock-like by default,
its levels calibrated for t statistics), so that stopping when decided keeps the error rates at 5 %. When it
ends, the protocol simulates its design's error rates at the effect and spread it measured
(bench/protocol/simulate.py), for the report.

The loop (:class:`ProtocolRun`) only asks a ``launch`` function to run lists of job overrides and hand back
their result.json: the sweeper (hydra_plugins/flowerbench/fair_comparison_sweeper.py) gives it the configured
launcher, so the protocol runs on the basic, ``parallel`` or ``slurm`` launcher alike, and a rerun of the same
command skips every run that finished, whichever process ran it (a rung's jobs and its promotions are
deterministic functions of the finished runs). The record of what happened goes to ``protocol.json`` in the
sweep directory; the report's protocol section reads it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import checkpoint, results, tuning
from bench.decide import ALPHA, DECIDED, PAIR_COLUMNS, adjust_and_decide, arm_values, test_pair
from bench.errors import ConfigError
from bench.io import atomic_write_json
from bench.protocol import halving, simulate
from bench.protocol.options import SPENDING_NAMES, ProtocolConfig
from bench.protocol.spending import design
from bench.results import PROTOCOL_FILE
from bench.tuning import NEAR_TIE_PHOTOS, SELECTION_METRIC, TIE_BREAK_METRIC

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


def _trial_means(rows: pd.DataFrame) -> tuple[dict[int, float], dict[int, float], int | None]:
    """Per trial (in the order drawn): the mean score over the tuning seeds, the mean validation cross-entropy
    of its completed runs, and the validation photos (None when unknown)."""
    accuracy, cross_entropy = {}, {}
    for trial, group in rows.sort_values("trial", kind="stable").groupby("trial", sort=True):
        accuracy[int(trial)] = tuning.mean_score(None if pd.isna(v) else v for v in group["score"])
        completed = group[group["status"] == results.COMPLETED] if "status" in group else group
        ce = (
            completed[TIE_BREAK_METRIC].astype(float) if TIE_BREAK_METRIC in group else pd.Series(dtype=float)
        )
        cross_entropy[int(trial)] = float(ce.mean()) if ce.notna().any() else math.nan
    photos = rows["val_images"].dropna() if "val_images" in rows else pd.Series(dtype=float)
    return accuracy, cross_entropy, int(photos.max()) if len(photos) else None


def rank_trials(
    rows: pd.DataFrame, near_tie_photos: float = NEAR_TIE_PHOTOS, by: str = SELECTION_METRIC
) -> list[int]:
    """One optimizer's trials of one rung, best first: by validation accuracy, near-ties by cross-entropy
    (:func:`bench.tuning.rank`), or, ``by="val_ce_loss"``, by the lower mean validation cross-entropy
    (:func:`bench.tuning.rank_by_cross_entropy`)."""
    accuracy, cross_entropy, photos = _trial_means(rows)
    if by == TIE_BREAK_METRIC:
        return tuning.rank_by_cross_entropy(accuracy, cross_entropy)
    return tuning.rank(accuracy, cross_entropy, tuning.near_tie_tolerance(near_tie_photos, photos))


def rung_separation(rows: pd.DataFrame) -> dict[str, Any]:
    """Could one optimizer's rung tell its trials apart? The chi-square p-value that their mean validation
    accuracies are equal (:func:`bench.protocol.halving.accuracies_alike_p`; several tuning seeds: as many times
    the photos), and the ranges of accuracy and cross-entropy the promotion chose from."""
    accuracy, cross_entropy, photos = _trial_means(rows)
    seeds = int(rows.groupby("trial").size().max()) if len(rows) else 1
    scored = [a for a in accuracy.values() if not math.isnan(a)]
    known_ce = [c for c in cross_entropy.values() if not math.isnan(c)]
    return {
        "alike_p": halving.accuracies_alike_p(scored, (photos or 0) * seeds) if photos else None,
        "accuracy_range": [min(scored), max(scored)] if scored else None,
        "ce_range": [min(known_ce), max(known_ce)] if known_ce else None,
    }


def select_best(trials: pd.DataFrame, near_tie_photos: float = NEAR_TIE_PHOTOS) -> dict[str, dict[str, Any]]:
    """Each optimizer's best setting among the trials of its last rung (all of them for a random search), by
    mean validation accuracy over the tuning seeds, near-ties broken by validation cross-entropy.

    Args:
        trials: one row per tuning run with ``optimizer``, ``trial`` (its index in the draws), ``setting``
            (a :class:`Setting`) and ``score`` (:func:`bench.tuning.score` of val_accuracy); optionally
            ``rung``, ``epochs``, ``status``, ``val_ce_loss`` and ``val_images``. Other columns, the test
            metrics among them, are ignored: selection never sees the test split.
        near_tie_photos: ``protocol.near_tie_photos``.

    Returns:
        optimizer -> {"setting", "trial", "val_accuracy_mean", "val_ce_loss_mean", "epochs", "val_images",
        "runner_up" (the next setting: its trial, setting, accuracy and cross-entropy, or None), "ahead"
        (accuracy over the runner-up), "ahead_photos", "near_tie" (whether the runner-up's accuracy is within
        the near-tie tolerance, so that cross-entropy, not accuracy, made the choice)}.
    """
    chosen = {}
    for optimizer, rows in trials.groupby("optimizer", sort=True):
        if "rung" in rows:
            rows = rows[rows["rung"] == rows["rung"].max()]
        accuracy, cross_entropy, photos = _trial_means(rows)
        tolerance = tuning.near_tie_tolerance(near_tie_photos, photos)
        ranked = tuning.rank(accuracy, cross_entropy, tolerance)
        if not ranked:
            raise ConfigError(
                f"every tuning run of {optimizer} failed: nothing to select (see their result.json)"
            )
        top, runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        setting_of = {int(t): g["setting"].iloc[0] for t, g in rows.groupby("trial")}
        ahead = accuracy[top] - accuracy[runner] if runner is not None else math.nan
        chosen[optimizer] = {
            "setting": setting_of[top],
            "trial": int(top),
            "val_accuracy_mean": float(accuracy[top]),
            "val_ce_loss_mean": cross_entropy[top],
            "epochs": int(rows["epochs"].max()) if "epochs" in rows else None,
            "val_images": photos,
            "runner_up": None
            if runner is None
            else {
                "trial": int(runner),
                "setting": setting_of[runner].as_dict(),
                "val_accuracy_mean": float(accuracy[runner]),
                "val_ce_loss_mean": cross_entropy[runner],
            },
            "ahead": ahead,
            "ahead_photos": ahead * photos if photos else math.nan,
            "near_tie": runner is not None and accuracy[runner] >= accuracy[top] - tolerance,
        }
    return chosen


def decide_pairs(
    confirmation: pd.DataFrame, margin: float, alpha: float, tost_alpha: float | None = None
) -> pd.DataFrame:
    """The report's decision for every pair of optimizers on the confirmation runs' test accuracy.

    Args:
        confirmation: one row per confirmation run: ``optimizer``, ``seed``, ``status``, ``test_accuracy``.
        margin: the accuracy difference that matters (``report.margin``).
        alpha: the difference test's level at this look; ``tost_alpha`` the equivalence test's (default alpha).
    """
    done = confirmation[confirmation["status"] == results.COMPLETED]
    rows = []
    for a, b in itertools.combinations(sorted(confirmation["optimizer"].unique()), 2):
        values_a = arm_values(done[done["optimizer"] == a], METRIC)
        values_b = arm_values(done[done["optimizer"] == b], METRIC)
        rows.append({"stratum": "", "arm_a": a, "arm_b": b} | test_pair(values_a, values_b, METRIC, margin))
    tested = pd.DataFrame(rows).reindex(columns=["stratum", *PAIR_COLUMNS])  # as compare_arms lays them out
    return adjust_and_decide(tested, alpha, tost_alpha)


def planned_looks(protocol: ProtocolConfig) -> int:
    """How many times the confirmation may look at its data: once per round."""
    return math.ceil(protocol.max_seeds / protocol.seeds_per_round)


def _quoted(path: Path) -> str:
    """A path as a Hydra override value: quoted, since job directory names hold ``=`` and ``,``."""
    return "'" + str(path).replace("'", "\\'") + "'"


class ProtocolRun:
    """The three phases, given a way to launch jobs (see the module docstring).

    Args:
        protocol: the protocol's settings.
        optimizers: the optimizers compared (each needs a space in ``protocol.spaces``).
        launch: runs a list of jobs (each a list of overrides) and returns their run directories and results.
        common: overrides every job gets (e.g. ``experiment=fair_comparison dataset.image_size=64``).
        margin: the accuracy margin of the decisions (``report.margin``).
        out_dir: where ``protocol.json`` goes (the sweep directory).
        epochs: ``train.epochs`` of the jobs: the full length, the last rung's.
    """

    def __init__(
        self,
        protocol: ProtocolConfig,
        optimizers: Sequence[str],
        launch: Launch,
        common: Sequence[str],
        margin: float,
        out_dir: Path,
        epochs: int,
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
        self.common, self.margin, self.out_dir, self.epochs = list(common), margin, out_dir, epochs
        self.design = design(protocol.spending, protocol.max_seeds, protocol.seeds_per_round, ALPHA)

    def rungs(self) -> list[tuple[int, int]]:
        """(epochs, trials per optimizer) of each rung: one full-length rung for a random search."""
        if self.protocol.tuner == "random":
            return [(self.epochs, self.protocol.budget)]
        h = self.protocol.halving
        return halving.schedule(self.protocol.budget, self.epochs, h.min_epochs, h.eta)

    def _run(self, jobs: list[tuple[dict[str, Any], list[str]]]) -> list[dict[str, Any]]:
        """Launch the jobs; one row per job: its labels, run directory, status, metrics and cost (the images
        and epoch seconds it trained itself: a continued run's earlier epochs were paid for by its rung)."""
        launched = self.launch([overrides + self.common for _, overrides in jobs])
        rows = []
        for (labels, _), (run_dir, result) in zip(jobs, launched, strict=True):
            final = (result or {}).get("final") or {}
            start = ((result or {}).get("continued_from") or {}).get("epoch", 0)
            own = [r for r in results.read_metrics(run_dir) if r["epoch"] > start]
            rows.append(
                labels
                | {
                    "run_dir": str(run_dir),
                    "status": (result or {}).get("status", results.RunStatus.MISSING),
                    "score": tuning.score(result, SELECTION_METRIC),
                    SELECTION_METRIC: final.get(SELECTION_METRIC),
                    TIE_BREAK_METRIC: final.get(TIE_BREAK_METRIC),
                    METRIC: final.get(METRIC),
                    "val_images": ((result or {}).get("data") or {}).get("val_images"),
                    "images_per_epoch": ((result or {}).get("data") or {}).get("train_images"),
                    "continued_from_epoch": start,
                    "train_images": sum(r["train_images"] for r in own),
                    "epoch_time_s": sum(r["epoch_time_s"] for r in own),
                    # epochs after the run's first own one: no warm-up or graph tracing in them
                    "steady_epochs": max(len(own) - 1, 0),
                    "steady_epoch_time_s": sum(r["epoch_time_s"] for r in own[1:]),
                    "wall_time_s": (result or {}).get("wall_time_s"),
                }
            )
        return rows

    def tune(self) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Every rung's runs (one frame) and what each rung ran."""
        draws = {
            name: sample_settings(
                name, self.protocol.spaces[name], self.protocol.budget, self.protocol.sampler_seed
            )
            for name in self.optimizers
        }
        plan = self.rungs()
        alive = {name: list(range(self.protocol.budget)) for name in self.optimizers}
        previous: dict[tuple[str, int, int], str] = {}  # (optimizer, trial, seed) -> the last rung's run
        frames, rungs = [], []
        for rung, (epochs, _) in enumerate(plan):
            jobs = []
            for name in self.optimizers:
                for trial, seed in itertools.product(alive[name], self.protocol.tuning_seeds):
                    overrides = draws[name][trial].overrides(seed)
                    if epochs < self.epochs:
                        overrides.append(f"train.stop_epoch={epochs}")
                    if (name, trial, seed) in previous:
                        overrides.append(f"train.continue_from={_quoted(Path(previous[name, trial, seed]))}")
                    labels = {"optimizer": name, "trial": trial, "setting": draws[name][trial], "seed": seed}
                    jobs.append((labels | {"rung": rung, "epochs": epochs}, overrides))
            rows = pd.DataFrame(self._run(jobs))
            frames.append(rows)
            rungs.append({
                "rung": rung, "epochs": epochs, "trials": {name: len(alive[name]) for name in self.optimizers},
                "runs": len(rows), "train_images": int(rows["train_images"].sum()),
                "run_wall_time_s": float(rows["wall_time_s"].fillna(0).sum()),
                "separation": {name: rung_separation(rows[rows["optimizer"] == name]) for name in self.optimizers},
            })  # fmt: skip
            if rung + 1 < len(plan):
                alive = {
                    name: self._promote(rows[rows["optimizer"] == name], plan[rung + 1][1]) for name in alive
                }
                previous = {
                    (r["optimizer"], r["trial"], r["seed"]): r["run_dir"]
                    for r in rows.to_dict("records")
                    if r["status"] == results.COMPLETED
                }
        trials = pd.concat(frames, ignore_index=True)
        if not self.protocol.halving.keep_checkpoints:
            for run_dir in trials.loc[trials["epochs"] < self.epochs, "run_dir"]:
                checkpoint.discard(Path(run_dir))  # every promotion has continued its checkpoint
        return trials, rungs

    def _promote(self, rows: pd.DataFrame, keep: int) -> list[int]:
        """The best ``keep`` trials of one optimizer's rung (the order drawn kept among them). A trial is
        promoted only if all its runs completed: a diverged run has nothing to continue (it scores 0)."""
        completed = rows.groupby("trial")["status"].agg(lambda s: bool((s == results.COMPLETED).all()))
        by = self.protocol.halving.promote_by
        ranked = [t for t in rank_trials(rows, self.protocol.near_tie_photos, by) if completed.get(t, False)]
        return sorted(ranked[:keep])

    def confirm(self, best: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Rounds of fresh seeds until every pair is decided or max_seeds is reached, each look at its level."""
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
            look = len(rounds)
            alpha, tost_alpha = self.design.alpha[look], self.design.tost_alpha[look]
            decisions = decide_pairs(pd.DataFrame(runs), self.margin, alpha, tost_alpha)
            rounds.append({
                "round": look + 1, "seeds": seeds, "alpha": alpha, "tost_alpha": tost_alpha,
                "decisions": _records(decisions),
            })  # fmt: skip
            if decisions["decision"].isin(DECIDED).all():
                break
        return pd.DataFrame(runs), rounds

    def error_rates(self, decisions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The designs' simulated error rates at each pair's measured effect and spread (the last look's)."""
        if not self.protocol.simulation_reps:
            return []
        rates = []
        for d in decisions:
            effect, sd = abs(d.get("diff") or math.nan), d.get("sd_diff") or math.nan
            if not (math.isfinite(effect) and math.isfinite(sd) and sd > 0):
                continue
            table = simulate.simulate(
                self.margin, effect, sd, self.protocol.max_seeds, self.protocol.seeds_per_round,
                self.protocol.simulation_reps,
            )  # fmt: skip
            rates.append({
                "pair": f"{d['arm_a']} vs {d['arm_b']}", "effect": effect, "sd": sd,
                "reps": self.protocol.simulation_reps, "designs": _records(simulate.summary(table)),
            })  # fmt: skip
        return rates

    def _compute(
        self, trials: pd.DataFrame, confirmation: pd.DataFrame, tuning_s: float, confirmation_s: float
    ) -> dict[str, Any]:
        """protocol.json's ``compute``: each phase in runs, images and time, and what a full-length random
        search of the same draws would have cost (measured when it was the tuner, else estimated:
        :meth:`_full_length_time`)."""
        every = pd.concat([trials, confirmation], ignore_index=True)
        full_runs = self.protocol.budget * len(self.protocol.tuning_seeds) * len(self.optimizers)
        per_epoch = trials["images_per_epoch"].dropna()
        full_images = int(full_runs * self.epochs * per_epoch.max()) if len(per_epoch) else None
        tuning_time = float(trials["wall_time_s"].fillna(0).sum())
        if self.protocol.tuner == "random":
            full_time, estimated = tuning_time, False
        else:
            full_time, estimated = self._full_length_time(trials), True
        return {
            "runs": len(every),
            "tuning_runs": len(trials),
            "confirmation_runs": len(confirmation),
            "train_images": int(every["train_images"].sum()),
            "tuning_images": int(trials["train_images"].sum()),
            "confirmation_images": int(confirmation["train_images"].sum()),
            "run_wall_time_s": float(every["wall_time_s"].fillna(0).sum()),
            "tuning_run_wall_time_s": tuning_time,
            "confirmation_run_wall_time_s": float(confirmation["wall_time_s"].fillna(0).sum()),
            "elapsed_s": tuning_s + confirmation_s,
            "tuning_elapsed_s": tuning_s,
            "confirmation_elapsed_s": confirmation_s,
            "full_random_search": {
                "runs": full_runs,
                "train_images": full_images,
                "run_wall_time_s": full_time,
                "estimated": estimated,
            },  # fmt: skip
        }

    def _full_length_time(self, trials: pd.DataFrame) -> float:
        """The run time a full-length random search of the same draws would have taken, estimated per
        optimizer: a first-rung run's median wall time (start-up, its first epoch with warm-up, its other
        epochs) plus the epochs it lacks at the mean time of a steady epoch (one after a run's first)."""
        total, first = 0.0, trials[(trials["rung"] == 0) & trials["wall_time_s"].notna()]
        for name in self.optimizers:
            rows, mine = first[first["optimizer"] == name], trials[trials["optimizer"] == name]
            if rows.empty:
                continue
            steady = mine["steady_epochs"].sum()
            per_epoch = mine["steady_epoch_time_s"].sum() / steady if steady else rows["epoch_time_s"].mean()
            run = (
                statistics.median(rows["wall_time_s"])
                + (self.epochs - int(rows["epochs"].iloc[0])) * per_epoch
            )
            total += run * self.protocol.budget * len(self.protocol.tuning_seeds)
        return total

    def run(self) -> dict[str, Any]:
        """Tune, select, confirm; write and return the record (``protocol.json``)."""
        started_at, started = results.now_iso(), time.perf_counter()
        trials, rungs = self.tune()
        tuned = time.perf_counter()
        best = select_best(trials, self.protocol.near_tie_photos)
        confirmation, rounds = self.confirm(best)
        confirmed = time.perf_counter()
        final = rounds[-1]["decisions"]
        h = self.protocol.halving
        record = {
            "optimizers": self.optimizers,
            "budget": self.protocol.budget,
            "tuner": self.protocol.tuner,
            "epochs": self.epochs,
            "halving": {"eta": h.eta, "min_epochs": h.min_epochs, "promote_by": h.promote_by}
            if self.protocol.tuner != "random"
            else None,
            "rungs": rungs,
            "tuning_seeds": list(self.protocol.tuning_seeds),
            "spaces": {name: dict(self.protocol.spaces[name]) for name in self.optimizers},
            "sampler_seed": self.protocol.sampler_seed,
            "selection_metric": SELECTION_METRIC,
            "tie_break_metric": TIE_BREAK_METRIC,
            "near_tie_photos": self.protocol.near_tie_photos,
            "metric": METRIC,
            "margin": self.margin,
            "spending": self.protocol.spending,
            "spending_name": SPENDING_NAMES[self.protocol.spending],
            "looks_planned": planned_looks(self.protocol),
            "levels": self.design.describe(),
            "trials": _records(trials.assign(setting=trials["setting"].map(Setting.as_dict))),
            "best": {name: {**entry, "setting": entry["setting"].as_dict()} for name, entry in best.items()},
            "rounds": rounds,
            "confirmation": _records(confirmation),
            "seeds_used": sum(len(r["seeds"]) for r in rounds),
            "stopped": "decided" if all(d["decision"] in DECIDED for d in final) else "max_seeds",
            "compute": self._compute(trials, confirmation, tuned - started, confirmed - tuned),
            "error_rates": self.error_rates(final),
            "started_at": started_at,
            "finished_at": results.now_iso(),
        }
        record = _plain_tree(record)
        atomic_write_json(self.out_dir / PROTOCOL_FILE, record)
        return record


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _plain_tree(value: Any) -> Any:
    """:func:`_plain` all the way down dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_tree(item) for item in value]
    return _plain(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]
