"""Hydra callbacks of flowerbench.

Registered in conf/config.yaml::

    hydra:
      callbacks:
        report:
          _target_: bench.callbacks.ReportCallback
          options: ${report}
        sweep_size:
          _target_: bench.callbacks.SweepSizeCallback
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bench.report.options import ReportConfig
from bench.results import REPORT_DIR, REPORT_MARKDOWN

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Build ``<sweep dir>/report/`` when a multirun ends; a failure is logged, never raised.

    Args:
        options: the ``report`` node of the config (conf/config.yaml passes all of it), the fields of
            :class:`bench.report.options.ReportConfig`: ``enabled: false`` skips the report, the others are
            those of ``python -m bench.report``. Missing ones take their defaults.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if isinstance(options, DictConfig):
            options = OmegaConf.to_container(options, resolve=True)
        # Checked here, when Hydra starts the sweep: a bad report.margin fails before any job runs.
        self.options = ReportConfig(**(options or {}))
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Read the sweep dir before any job runs, when the launcher creates it: a `${now:...}` in its name
        # is then fixed for this config object, whatever later code does with the config.
        try:
            self.sweep_dir = Path(str(config.hydra.sweep.dir))
        except Exception as error:  # a callback must not stop the sweep
            log.warning("report: cannot read hydra.sweep.dir (%s)", error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.options.enabled:
            return
        try:
            self._build(config)
        except Exception as error:  # the runs are done and saved; a report problem must not hide that
            log.warning("report: not built (%s: %s)", type(error).__name__, error)

    def _build(self, config: DictConfig) -> None:
        import matplotlib

        matplotlib.use("Agg")  # a sweep may run on a machine without a display
        from bench.report import build_report  # imported here so that composing the config stays fast
        from bench.report.build import build_workload_protocol_reports, workload_protocols
        from bench.report.console_verdict import verdict_text, workload_protocols_text

        sweep_dir = self.sweep_dir or Path(str(config.hydra.sweep.dir))
        chosen = {name: value for name, value in vars(self.options).items() if name != "enabled"}
        protocols = workload_protocols(sweep_dir)
        if protocols:  # a fair comparison of several workloads: one report each, and one across them
            out = build_workload_protocol_reports(sweep_dir, **chosen)
            answer = workload_protocols_text([folder / REPORT_DIR for folder in protocols], out)
        else:
            out = build_report([sweep_dir], **chosen)
            answer = verdict_text(out)
        log.info("report written to %s", out / REPORT_MARKDOWN)
        print(f"\n{answer}", flush=True)  # the answer, where the sweep's command was typed


class SweepSizeCallback(Callback):
    """Records how many jobs a sweep of Hydra's basic sweeper has, for the progress line each job logs
    (bench/progress.py): the product of the numbers of values of its swept keys. The project's own sweepers
    (hydra_plugins/flowerbench/, the Optuna search included) record their sizes themselves; other sweepers get
    no progress line."""

    BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            if config.hydra.sweeper.get("_target_") != self.BASIC:
                return
            from hydra.core.override_parser.overrides_parser import OverridesParser

            from bench.progress import record_planned_jobs

            params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
            sizes = {}  # a key given twice (params, then the command line): the later one counts, as in Hydra
            for override in OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task]):
                swept = override.is_sweep_override()
                sizes[override.get_key_element()] = (
                    len(list(override.sweep_string_iterator())) if swept else 1
                )
            record_planned_jobs(Path(str(config.hydra.sweep.dir)), math.prod(sizes.values()), time.time())
        except Exception as error:  # a callback must not stop the sweep; the jobs just log no progress line
            log.debug("sweep size not recorded: %s", error)
