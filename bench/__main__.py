"""``python -m bench``: the Hydra app. One call trains one configuration; ``-m`` sweeps many.

Examples:
    python -m bench                                        # the seed blog: Keras, SGD+L2, 7 epochs at 180 px
    python -m bench -m optimizer=sgd_l2,adamw seed=0,1,2   # a sweep; the report is built when it ends
    python -m bench --help                                 # config groups and options
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from bench import failures, pruning
from bench.config import CONFIG_DIR, register_configs, validate
from bench.preflight import one_line_errors
from bench.progress import sweep_progress
from bench.results import RunStatus
from bench.runner import RunInterrupted, run_experiment
from bench.search import objective

log = logging.getLogger("bench")
register_configs()


def _resume_hint(run_dir: Path) -> str:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return f"rerun the same command with hydra.sweep.dir={hydra_cfg.sweep.dir} to finish the sweep"
    return f"rerun with hydra.run.dir={run_dir} to start this run again"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> float | None:
    """Validate, train, record. Returns the objective for hyperparameter sweepers (:func:`bench.search.objective`:
    final val_accuracy, 0 if the run diverged, None if it failed)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with one_line_errors(run_dir):
            run = validate(cfg)
            resolved = OmegaConf.to_container(cfg, resolve=True)
            multirun = HydraConfig.get().mode == RunMode.MULTIRUN
            sweep_dir = Path(HydraConfig.get().sweep.dir) if multirun else None
            overrides = list(HydraConfig.get().overrides.task)
            # a trial of the Optuna search reports its epochs to the study, whose pruner may stop it
            on_epoch = pruning.epoch_hook() if multirun else None
            result = run_experiment(run, run_dir, resolved, overrides, sweep_dir, on_epoch)
            progress = sweep_progress(sweep_dir) if sweep_dir else None
            if progress:
                log.info(progress)
    except (RunInterrupted, KeyboardInterrupt) as exc:
        print(f"\nflowerbench: interrupted ({exc or 'SIGINT'}); finished epochs are in {run_dir}; "
              f"{_resume_hint(run_dir)}", file=sys.stderr)  # fmt: skip
        raise SystemExit(130) from None
    # In a multirun a failed job returns normally, so the sweep goes on and its end-of-sweep callbacks run;
    # bench.failures.FailedRunsCheck then finds it in the result.json files, whichever process ran it.
    if result["status"] == RunStatus.FAILED and HydraConfig.get().mode != RunMode.MULTIRUN:
        print(f"flowerbench: error: run failed: {result['error']} (see {run_dir})", file=sys.stderr)
        raise SystemExit(1)
    return objective(result)


def main() -> None:
    app()
    if failures.FAILED_RUNS:
        failed = failures.FAILED_RUNS
        print(f"flowerbench: {len(failed)} run(s) failed: " + ", ".join(failed), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
