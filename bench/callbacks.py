"""Hydra callbacks of flowerbench.

Registered in conf/config.yaml::

    hydra:
      callbacks:
        report:
          _target_: bench.callbacks.ReportCallback
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    """Build ``<sweep dir>/report/`` when a multirun ends; a failure is logged, never raised.

    Args:
        enabled: set False (``report.enabled=false``) to skip the report.
        metrics: metric families to plot (default: accuracy and ce_loss), as for ``--metrics``.
        margin, loss_margin, target: the verdict's margins and the time-to-target level, as for ``--margin``,
            ``--loss-margin`` and ``--target`` (``report.*`` in the config; defaults in ``ReportConfig``).
    """

    def __init__(
        self,
        enabled: bool = True,
        metrics: list[str] | None = None,
        margin: float | None = None,
        loss_margin: float | None = None,
        target: float | None = None,
    ) -> None:
        self.enabled = enabled
        self.metrics = list(metrics) if metrics else None
        self.options = {"margin": margin, "loss_margin": loss_margin, "target": target}
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Read the sweep dir before any job runs, when the launcher creates it: a `${now:...}` in its name
        # is then fixed for this config object, whatever later code does with the config.
        try:
            self.sweep_dir = Path(str(config.hydra.sweep.dir))
        except Exception as error:  # a callback must not stop the sweep
            log.warning("report: cannot read hydra.sweep.dir (%s)", error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        try:
            self._build(config)
        except Exception as error:  # the runs are done and saved; a report problem must not hide that
            log.warning("report: not built (%s: %s)", type(error).__name__, error)

    def _build(self, config: DictConfig) -> None:
        import matplotlib

        matplotlib.use("Agg")  # a sweep may run on a machine without a display
        from bench.report import build_report  # imported here so that composing the config stays fast

        sweep_dir = self.sweep_dir or Path(str(config.hydra.sweep.dir))
        out = build_report([sweep_dir], metrics=self.metrics, **self.options)
        log.info("report written to %s", out / "report.md")
