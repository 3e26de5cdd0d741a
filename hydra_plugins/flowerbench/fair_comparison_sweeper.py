"""``hydra/sweeper=fair_comparison`` (set by ``experiment=fair_comparison``): the protocol of
:mod:`bench.protocol` as a Hydra sweeper.

The command line chooses the optimizers (``optimizer=sgd_l2,adamw``); every other override goes to every job.
Each phase's jobs go to the configured launcher (basic, ``parallel``, ``slurm``), and their result.json files,
found through each job's output directory, feed the next decision.

Several workloads (``workload=flowers_cnn,flowers_resnet``, or ``experiment=[suite,fair_comparison]``) are
tuned each on its own: one protocol per workload, in its own folder ``<sweep dir>/<workload>/`` (its jobs,
its protocol.json and its report, as a fair comparison of that workload alone), and the sweep's report tallies
their tuned verdicts across workloads (bench/report/workloads.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from bench import results
from bench.errors import ConfigError
from bench.protocol.options import ProtocolConfig
from bench.report.options import ReportConfig
from hydra_plugins.flowerbench.progress_sweeper import ProgressSweeper

if TYPE_CHECKING:
    from bench.protocol import Launched


PROTOCOL_KEYS = ("train.stop_epoch", "train.continue_from")  # set per job by the protocol's rungs


class FairComparisonSweeper(ProgressSweeper):
    """Args: max_batch_size: jobs handed to the launcher at once (null: a whole phase or round)."""

    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[dict[str, str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=None)
        self.job_index = 0
        # experiment=suite's workload sweep: the only key a fair comparison sweeps besides the optimizer.
        self.swept = {key: str(value) for key, value in (params or {}).items()}

    def sweep(self, arguments: list[str]) -> Any:
        # Imported here, not at the top: Hydra imports every plugin module at each start, and the protocol
        # brings in pandas, scipy and statsmodels, which a single run does not need.
        from bench.protocol import ProtocolRun
        from bench.runner import RunInterrupted, signals_interrupt_run

        assert self.config is not None and self.hydra_context is not None
        try:
            optimizers, workloads, common = self._split(arguments)
            protocol = OmegaConf.to_object(
                OmegaConf.merge(OmegaConf.structured(ProtocolConfig), self.config.protocol)
            )
            report = OmegaConf.to_object(
                OmegaConf.merge(OmegaConf.structured(ReportConfig), self.config.report)
            )
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            runs = []
            for out_dir, overrides in self._protocols(workloads, common, sweep_dir):
                # The length of the workload's own table row (or the command line's train.epochs).
                job = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                epochs = int(job.train.epochs)
                runs.append(
                    ProtocolRun(protocol, optimizers, self._launch, overrides, report.margin, out_dir, epochs)
                )
            # SIGTERM between jobs (a scheduler's, or kill) ends the protocol as Ctrl-C does: exit 130, as README
            # promises for an interrupted sweep; the jobs' own handlers cover the time they train.
            with signals_interrupt_run():
                return [run.run() for run in runs]
        except ConfigError as exc:  # one line, as every input error of flowerbench
            print(f"flowerbench: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (RunInterrupted, KeyboardInterrupt) as exc:
            print(f"\nflowerbench: fair comparison interrupted ({exc or 'SIGINT'}); finished runs are kept: "
                  "rerun the same command to go on where it stopped", file=sys.stderr)  # fmt: skip
            raise SystemExit(130) from None

    @staticmethod
    def _protocols(workloads: list[str], common: list[str], sweep_dir: Path) -> list[tuple[Path, list[str]]]:
        """Where each protocol writes, and its jobs' common overrides: one per workload, each in its own folder
        (its jobs put there by hydra.sweep.dir), or the one protocol of the sweep."""
        if len(workloads) <= 1:
            return [(sweep_dir, [*common, *(f"workload={w}" for w in workloads)])]
        return [
            (sweep_dir / name, [*common, f"workload={name}", f"hydra.sweep.dir={sweep_dir / name}"])
            for name in workloads
        ]

    def _split(self, arguments: list[str]) -> tuple[list[str], list[str], list[str]]:
        """The optimizers compared, the workloads (each tuned on its own), and the overrides every job gets."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        optimizers, workloads, common = [], [], []
        given = [
            *(f"{key}={value}" for key, value in self.swept.items()),
            *arguments,
        ]  # the command line wins
        for override, text in zip(parser.parse_overrides(given), given, strict=True):
            key = override.get_key_element()
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else None
            if key == "optimizer":
                optimizers = values or [override.get_value_element_as_str()]
            elif key == "workload":
                workloads = values or [override.get_value_element_as_str()]
            elif key.lstrip("+~") in PROTOCOL_KEYS:
                raise ConfigError(
                    f"{key} is the fair comparison's to set (its rungs stop and continue trials); remove it"
                )
            elif override.is_sweep_override():
                raise ConfigError(
                    f"the fair comparison sweeps the optimizer and the workload only (it picks settings and "
                    f"seeds itself); remove the sweep over {key}"
                )
            else:
                common.append(text)
        if not optimizers:
            raise ConfigError("choose the optimizers to compare, e.g. optimizer=sgd_l2,adamw")
        return optimizers, workloads, common

    def _launch(self, jobs: list[list[str]]) -> list[Launched]:
        """Run the jobs in batches on the configured launcher; each one's run directory and result.json."""
        launched: list[Launched] = []
        self.plan(len(jobs))
        size = self.max_batch_size or len(jobs)
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self.validate_batch_is_legal(batch)
            for job in self.launcher.launch(batch, initial_job_idx=self.job_index):
                _ = job.return_value  # re-raises what a job raised, as the basic sweeper does
                run_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
                launched.append((run_dir, results.read_result(run_dir)))
            self.job_index += len(batch)
        return launched
