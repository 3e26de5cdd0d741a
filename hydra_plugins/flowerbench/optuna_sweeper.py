"""``hydra/sweeper=lr_wd_search_<optimizer>``: flowerbench's Optuna search, on current Optuna (>= 4).

It replaces Hydra's hydra-optuna-sweeper (which holds Optuna at 2.x) and keeps its command lines: search
spaces in ``params`` or on the command line (``optimizer.lr='tag(log, interval(1e-4, 1e-1))'``,
``choice(...)``, ``range(...)``), ``n_trials``, ``n_jobs``, ``direction``, ``storage``, ``study_name``,
``max_failure_rate``, and a sampler in ``hydra/sweeper/sampler`` (tpe, random, qmc). Beyond it:

- The study is stored, by default in ``<sweep dir>/optuna.db`` (SQLite), and a rerun of the same command
  continues it: finished trials are kept, trials a killed sweep left running and failed trials are asked
  again (their job directories resume as any job does), and the search runs until the study holds
  ``n_trials`` trials. A larger ``hydra.sweeper.n_trials`` extends a finished search.
- Trials run on the configured launcher (basic, ``parallel``, ``slurm``, ``ray``), ``n_jobs`` at a time: a
  batch is asked together (TPE's constant liar keeps them apart), launched, and told.
- A pruner (``hydra/sweeper/pruner``: median, hyperband, none) stops bad trials early from their per-epoch
  val_accuracy, which each job reports to the study itself (bench/pruning.py): a pruned run keeps its epochs
  and ends as ``status: pruned``.

Each trial is an ordinary job directory (result.json decides its value, as :mod:`bench.tuning` scores it), so
``python -m bench.search <sweep dir>`` ranks a search like a grid, and the report is built as for any sweep.
Optuna's verdict also lands in ``<sweep dir>/optimization_results.yaml``.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from bench import pruning, results, tuning
from bench.errors import ConfigError
from bench.resolvers import launcher_jobs_at_once
from hydra_plugins.flowerbench.progress_sweeper import ProgressSweeper

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"  # the name hydra-optuna-sweeper gave it
#: The study's name in a storage of the sweep's own (the default SQLite file).
DEFAULT_STUDY_NAME = "flowerbench"


class Outcome(NamedTuple):  # not a dataclass: Hydra loads plugin modules outside sys.modules
    """What a job says about its trial: Optuna's state, the value for a completed trial, the run's epochs."""

    state: Any  # optuna.trial.TrialState
    value: float | None
    curve: dict[int, float]  # epoch -> val_accuracy, from metrics.jsonl


class OptunaSearchSweeper(ProgressSweeper):
    """Args (conf/hydra/sweeper/lr_wd_search.yaml):
    sampler, pruner: ``_target_`` configs of an Optuna sampler and pruner (conf/hydra/sweeper/{sampler,pruner}/).
    direction: ``maximize`` (what ``python -m bench`` returns, final val_accuracy) or ``minimize``.
    n_trials: the study's budget: trials it holds when the search ends (a rerun adds only the missing ones).
    n_jobs: trials per batch; null = as many as the launcher runs at once (:func:`launcher_jobs_at_once`).
    storage: the study's storage URL; null = ``sqlite:///<sweep dir>/optuna.db``.
    study_name: null = ``flowerbench`` in the default storage, the sweep directory in any other.
    max_failure_rate: failed trials per batch above which the search stops (1.0: never).
    params: the search space and fixed values, as overrides (the command line adds to or replaces them).
    """

    def __init__(
        self,
        sampler: DictConfig,
        pruner: Optional[DictConfig] = None,
        direction: str = "maximize",
        n_trials: int = 20,
        n_jobs: Optional[int] = None,
        storage: Optional[str] = None,
        study_name: Optional[str] = None,
        max_failure_rate: float = 1.0,
        params: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(max_batch_size=None, params=params)
        self.sampler_config, self.pruner_config = sampler, pruner
        self.direction, self.n_trials, self.n_jobs = str(direction), n_trials, n_jobs
        self.storage, self.study_name, self.max_failure_rate = storage, study_name, max_failure_rate
        self.job_index = 0

    def sweep(self, arguments: list[str]) -> Any:
        from bench.runner import RunInterrupted, signals_interrupt_run

        assert self.config is not None and self.hydra_context is not None
        try:
            self._check_options()
            space, fixed = self._search_space(
                [f"{k}={v}" for k, v in (self.params or {}).items()] + arguments
            )
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            with signals_interrupt_run():  # SIGTERM between batches ends the search as Ctrl-C does
                return self._search(space, fixed, sweep_dir)
        except ConfigError as exc:  # one line, as every input error of flowerbench
            print(f"flowerbench: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (RunInterrupted, KeyboardInterrupt) as exc:
            print(f"\nflowerbench: search interrupted ({exc or 'SIGINT'}); the study and finished runs are kept: "
                  "rerun the same command to continue it", file=sys.stderr)  # fmt: skip
            raise SystemExit(130) from None

    # -- the search space ------------------------------------------------------------------------------------

    def _check_options(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"hydra.sweeper.direction must be maximize or minimize, not {self.direction}")
        if self.n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials must be at least 1, not {self.n_trials}")
        if self.n_jobs is not None and self.n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs must be at least 1 or null, not {self.n_jobs}")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate must be in [0, 1], not {self.max_failure_rate}"
            )

    def _search_space(self, overrides: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
        """The swept keys as Optuna distributions, and the fixed overrides (key -> override) of every trial. A key
        given twice (params, then the command line) takes its later value."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        for override, text in zip(parser.parse_overrides(overrides), overrides, strict=True):
            key = override.get_key_element()
            space.pop(key, None)
            fixed.pop(key, None)
            if override.is_sweep_override():
                space[key] = distribution(override)
            else:
                fixed[key] = text
        if not space:
            raise ConfigError(
                "the search has nothing to search: give a key a range, e.g. "
                "optimizer.lr='tag(log, interval(1e-4, 1e-1))'"
            )
        return space, fixed

    # -- the study ---------------------------------------------------------------------------------------------

    def _open_study(self, sweep_dir: Path) -> tuple[Any, str]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs each trial itself
        own = self.storage is None
        url = pruning.default_storage(sweep_dir) if own else str(self.storage)
        name = self.study_name or (DEFAULT_STUDY_NAME if own else str(sweep_dir.resolve()))
        storage = pruning.open_storage(url)
        # A continued study gets a sampler seeded past the trials it holds: a seeded random or TPE sampler
        # would otherwise draw its first trials again. QMC's sequence continues from the study itself.
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
        held = next((s.n_trials for s in summaries if s.study_name == name), 0)
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            sampler=self._sampler(held),
            pruner=self._pruner(),
            direction=self.direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != self.direction:
            raise ConfigError(f"the study {name} in {url} was made to {study.direction.name.lower()}")
        return study, url

    def _sampler(self, trials_held: int) -> Any:
        from hydra.utils import instantiate

        config = OmegaConf.to_container(self.sampler_config, resolve=True)
        is_qmc = str(config.get("_target_", "")).endswith("QMCSampler")
        if trials_held and config.get("seed") is not None and not is_qmc:
            config["seed"] = int(config["seed"]) + trials_held
        with warnings.catch_warnings():  # multivariate TPE and constant liar are "experimental" in Optuna
            warnings.simplefilter("ignore")
            return instantiate(config)

    def _pruner(self) -> Any:
        import optuna
        from hydra.utils import instantiate

        if not self.pruner_config:
            return optuna.pruners.NopPruner()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return instantiate(OmegaConf.to_container(self.pruner_config, resolve=True))

    def _continue(self, study: Any) -> int:
        """Prepare a rerun: a trial left running by a killed sweep is failed, and each failed trial not yet
        asked again is queued to be. Returns the trials that count against ``n_trials``."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
        for trial in trials:
            if trial.state == TrialState.RUNNING:  # its sweeper is gone (one sweeper per study)
                study.tell(trial.number, state=TrialState.FAIL)
        counted = 0
        for trial in study.get_trials(deepcopy=False):
            if trial.number in retried or trial.state == TrialState.WAITING:
                continue
            if trial.state == TrialState.FAIL:
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
                log.info("trial %d failed or was cut short: asking it again", trial.number)
            else:
                counted += 1
        return counted

    # -- the search --------------------------------------------------------------------------------------------

    def _search(self, space: dict[str, Any], fixed: dict[str, str], sweep_dir: Path) -> Any:
        study, url = self._open_study(sweep_dir)
        held = self._continue(study)
        remaining = max(0, self.n_trials - held)
        batch = self.n_jobs or launcher_jobs_at_once(self.config.hydra.launcher)
        log.info(
            "Optuna study %s in %s: %d of %d trials held, %d to run, %d at a time (%s, %s)",
            study.study_name, url, held, self.n_trials, remaining, batch,
            type(study.sampler).__name__, type(study.pruner).__name__,
        )  # fmt: skip
        self.plan(remaining)
        link_pruner = OmegaConf.to_container(self.pruner_config, resolve=True) if self.pruner_config else None
        while remaining > 0:
            size = min(batch, remaining)
            trials = [study.ask(space) for _ in range(size)]
            jobs = [self._job(trial, fixed, url, study.study_name, link_pruner) for trial in trials]
            self.validate_batch_is_legal(jobs)
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_index)
            self.job_index += len(jobs)
            failed = 0
            for trial, job in zip(trials, returns, strict=True):
                outcome = self._outcome(job)
                failed += outcome.state.name == "FAIL"
                self._tell(study, trial, outcome)
            remaining -= size
            if failed / size > self.max_failure_rate:
                log.error("%d of %d trials of the last batch failed (max_failure_rate=%s): search stopped",
                          failed, size, self.max_failure_rate)  # fmt: skip
                break
        return self._write_results(study, sweep_dir, url)

    def _job(
        self, trial: Any, fixed: dict[str, str], url: str, study_name: str, pruner: dict | None
    ) -> list[str]:
        """A trial's overrides: its sampled values, the fixed ones, and the link through which the job reports."""
        sampled = [f"{key}={value}" for key, value in trial.params.items()]
        link = pruning.trial_link(url, study_name, trial._trial_id, pruner)
        return [*sampled, *fixed.values(), f"hydra.job.env_set.{pruning.TRIAL_ENV}='{link}'"]

    def _outcome(self, job: JobReturn) -> Outcome:
        from optuna.trial import TrialState

        _ = job.return_value  # re-raises what a job raised, as Hydra's basic sweeper does
        run_dir = Path(str(job.hydra_cfg.hydra.runtime.output_dir)) if job.hydra_cfg else None
        result = results.read_result(run_dir) if run_dir else None
        curve = {}
        if run_dir is not None:
            rows = results.read_metrics(run_dir)
            curve = {int(r["epoch"]): float(r[pruning.PRUNING_METRIC]) for r in rows if _finite(r)}
        status = (result or {}).get("status")
        if status == results.PRUNED:
            return Outcome(TrialState.PRUNED, None, curve)
        score = tuning.score(result) if result else None
        if score is None:
            return Outcome(TrialState.FAIL, None, curve)
        return Outcome(TrialState.COMPLETE, score, curve)

    def _tell(self, study: Any, trial: Any, outcome: Outcome) -> None:
        """Tell the study a trial's end; epochs the job could not report (a skipped finished run, a launcher
        whose workers do not reach the storage) are copied from its metrics.jsonl first."""
        from optuna.trial import TrialState

        reported = study._storage.get_trial(trial._trial_id).intermediate_values
        for epoch, value in sorted(outcome.curve.items()):
            if epoch not in reported:
                study._storage.set_trial_intermediate_value(trial._trial_id, epoch, value)
        if outcome.state == TrialState.COMPLETE:
            study.tell(trial, outcome.value)
        else:
            study.tell(trial, state=outcome.state)
        values = " ".join(f"{key}={_short(value)}" for key, value in trial.params.items())
        shown = f"{outcome.value:.4f}" if outcome.value is not None else outcome.state.name.lower()
        log.info("trial %d: %s %s  %s", trial.number, pruning.PRUNING_METRIC, shown, values)

    def _write_results(self, study: Any, sweep_dir: Path, url: str) -> dict[str, Any]:
        """optimization_results.yaml, as hydra-optuna-sweeper wrote it, with the study's place and tally."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        tally = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
        verdict: dict[str, Any] = {"name": "optuna", "best_params": None, "best_value": None}
        if tally["complete"]:
            best = study.best_trial
            verdict |= {"best_params": dict(best.params), "best_value": best.value, "best_trial": best.number}
            log.info("Best of %d trials: %s %.4f with %s", len(trials), pruning.PRUNING_METRIC, best.value,
                     best.params)  # fmt: skip
        verdict |= {"study_name": study.study_name, "storage": url, "trials": tally}
        OmegaConf.save(OmegaConf.create(verdict), sweep_dir / RESULTS_FILE)
        log.info("rank the trials and get the commands that re-evaluate the best: python -m bench.search %s",
                 sweep_dir)  # fmt: skip
        return verdict


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _finite(row: dict[str, Any]) -> bool:
    value = row.get(pruning.PRUNING_METRIC)
    return isinstance(value, (int, float)) and math.isfinite(value) and "epoch" in row


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override, as hydra-optuna-sweeper read them: ``choice(...)`` is
    categorical, ``range(start, stop, step)`` a stepped int or float, ``interval(low, high)`` a uniform float,
    log-uniform with ``tag(log, ...)``, an int with ``tag(int, ...)``."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if not all(isinstance(c, (str, int, float, bool, type(None))) for c in choices):
            raise ConfigError(f"{key}: a choice takes plain values (str, int, float, bool, null)")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        last = start + (math.ceil((stop - start) / step) - 1) * step  # as range(): stop is left out
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(last), step=float(step))
        return IntDistribution(int(start), int(last), step=int(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if "int" in value.tags:  # Hydra reads an interval's bounds as floats
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(f"{key}: the Optuna search takes choice(), range() and interval() sweeps, not {value}")
