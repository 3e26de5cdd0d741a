"""Hyperparameter search: the objective a sweeper maximizes, and ``python -m bench.search`` to read a search.

The objective is the final val_accuracy of one run on one seed, so the best of many trials is an optimistic
estimate: it was selected on the very validation photos that scored it. ``python -m bench.search SWEEP_DIR``
ranks the settings of a finished (or interrupted) search or grid from the jobs' result.json files and prints
the commands that re-evaluate the best one on fresh seeds next to the defaults, so the report can say whether
tuning helped beyond seed noise. Scores, the choice of the best and the fresh seeds follow the same rules as
``experiment=fair_comparison``'s tuning and confirmation (:mod:`bench.tuning`).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench import tuning
from bench.config import CONFIG_DIR, EXPERIMENT_KEYS, register_configs
from bench.experiment import Role
from bench.results import RunStatus, read_result, result_files


def objective(result: dict[str, Any]) -> float | None:
    """What ``python -m bench`` returns to a sweeper: :func:`bench.tuning.score` (final val_accuracy, 0.0 if
    diverged, None if failed or pruned: Optuna's sampler then learns nothing from the final value)."""
    return tuning.score(result)


@dataclass
class SearchPoint:
    """One point of a search or grid: the runs that share every override but the seed."""

    overrides: dict[str, str]  # key -> value as typed on the command line, without seed
    scores: list[float]  # objective of each run that did not fail and was not pruned
    seeds: list[int]
    n_failed: int = 0
    n_pruned: int = 0  # stopped early by the search's pruner (results.PRUNED): no final score

    @property
    def mean(self) -> float:
        return tuning.mean_score(self.scores)


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


def load_settings(sweep_dir: Path) -> list[SearchPoint]:
    """Every job below ``sweep_dir`` with a result.json, grouped by its experiment overrides without the seed.

    Overrides that are not part of a run (``force``, ``report.*``: bench/experiment.py) are dropped; locations
    and thread counts are kept for the commands to repeat, but never tell two settings apart.
    """
    settings: dict[tuple, SearchPoint] = {}
    for path in result_files(sweep_dir):
        result = read_result(path.parent)
        if result is None:  # not written by a run: result.json is written atomically
            continue
        pairs = (_split(override) for override in result.get("overrides", []))
        overrides = {k: v for k, v in pairs if k != "seed" and EXPERIMENT_KEYS.role(k) is not Role.OPTION}
        identity = tuple(sorted((k, v) for k, v in overrides.items() if EXPERIMENT_KEYS.is_experiment(k)))
        setting = settings.setdefault(identity, SearchPoint(overrides, [], []))
        setting.seeds.append(result["seed"])
        score = objective(result)
        if result.get("status") == RunStatus.PRUNED:
            setting.n_pruned += 1
        elif score is None:
            setting.n_failed += 1
        else:
            setting.scores.append(score)
    return list(settings.values())


def tuned_keys(settings: list[SearchPoint]) -> list[str]:
    """The experiment override keys whose value differs between settings: what the search or grid varied."""
    keys = sorted({key for s in settings for key in s.overrides if EXPERIMENT_KEYS.is_experiment(key)})
    return [key for key in keys if len({s.overrides.get(key) for s in settings}) > 1]


def command(overrides: dict[str, str], seeds: list[int], sweep_dir: Path) -> str:
    words = ["python", "-m", "bench", "-m", *(f"{k}={v}" for k, v in overrides.items())]
    words += [f"seed={','.join(map(str, seeds))}", f"hydra.sweep.dir={sweep_dir}"]
    return shlex.join(words)


def ranking(settings: list[SearchPoint], keys: list[str], top: int) -> str:
    """The ``top`` settings by mean objective, one line each."""
    ranked = sorted((s for s in settings if s.scores), key=lambda s: s.mean, reverse=True)[:top]
    lines = []
    for rank, s in enumerate(ranked, 1):
        values = " ".join(f"{k}={s.overrides.get(k, 'default')}" for k in keys)
        lines.append(f"  {rank:2d}. val_accuracy {s.mean:.4f} (n={len(s.scores)})  {values}")
    return "\n".join(lines)


def default_values(overrides: dict[str, str], keys: list[str]) -> dict[str, str] | None:
    """The values ``keys`` take in the config composed from the other ``overrides``: the defaults the search
    started from (None if one of them is not a single value, e.g. a config group)."""
    register_configs()
    rest = [f"{key}={value}" for key, value in overrides.items() if key not in keys]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = compose(config_name="config", overrides=rest)
    values = {key: OmegaConf.select(config, key) for key in keys}
    if any(OmegaConf.is_config(value) or value is None for value in values.values()):
        return None
    return {key: str(value) for key, value in values.items()}


def _same(a: str, b: str) -> bool:
    """Equal as numbers where both are numbers (3e-4 and 0.0003), else as text."""
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def reevaluation(best: SearchPoint, keys: list[str], seeds: list[int], target: Path) -> list[str]:
    """Commands that rerun the best setting and the defaults on ``seeds`` into one sweep, then compare them.

    The tuned keys are given explicitly in both runs: on the command line they replace any grid an
    experiment preset puts in hydra.sweeper.params, so only the seeds are swept.
    """
    best_run = "  " + command(best.overrides, seeds, target)
    defaults = default_values(best.overrides, keys) if keys else None
    if defaults is None:  # nothing was tuned, or a config group was (the optimizer): no single default
        return [f"Re-run the best setting on {len(seeds)} seeds the search did not use:", best_run]
    intro = (
        f"Re-run the best setting and the defaults on {len(seeds)} seeds the search did not use (one report):"
    )
    lines = [intro, best_run, "  " + command(best.overrides | defaults, seeds, target)]
    differing = [key for key in keys if not _same(defaults[key], best.overrides[key])]
    if differing:  # the report compares optimizers by default; these arms differ in the tuned values
        lines.append(
            "  " + shlex.join(["python", "-m", "bench.report", str(target), "--compare", differing[0]])
        )
    return lines


def summary(sweep_dir: Path, n_seeds: int = 5, top: int = 5) -> str:
    """The text ``python -m bench.search`` prints: the ranking, then the re-evaluation commands.

    Raises:
        ValueError: no run under ``sweep_dir`` finished with a score.
    """
    settings = load_settings(sweep_dir)
    scored = [s for s in settings if s.scores]
    if not scored:
        n_pruned, n_failed = sum(s.n_pruned for s in settings), sum(s.n_failed for s in settings)
        raise ValueError(
            f"no finished run with a score under {sweep_dir} ({n_pruned} pruned, {n_failed} failed)"
        )
    keys = tuned_keys(settings)
    best = scored[tuning.best(dict(enumerate(s.scores for s in scored))) or 0]
    n_runs = sum(len(s.seeds) for s in settings)
    n_failed = sum(s.n_failed for s in settings)
    n_pruned = sum(s.n_pruned for s in settings)
    pruned = f", {n_pruned} pruned" if n_pruned else ""
    lines = [
        f"{len(settings)} settings, {n_runs} runs ({n_failed} failed{pruned}) under {sweep_dir}",
        f"varied: {', '.join(keys) or 'nothing'}; best first (val_accuracy: mean over seeds, 0 = diverged):",
        ranking(settings, keys, top),
        "",
        "The best score is optimistic: it was picked on the validation photos that measured it.",
    ]
    target = sweep_dir.with_name(sweep_dir.name + "-reevaluation")
    seeds = tuning.fresh_seeds((seed for s in settings for seed in s.seeds), n_seeds)
    return "\n".join(lines + reevaluation(best, keys, seeds, target))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search", description="Rank the settings of a search or grid sweep."
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep directory (hydra.sweep.dir) of the search")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the re-evaluation (default 5)")
    parser.add_argument("--top", type=int, default=5, help="settings to list (default 5)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"no such directory: {args.sweep_dir}")
    try:
        print(summary(args.sweep_dir, args.seeds, args.top))
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
