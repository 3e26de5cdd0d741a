"""Checks Hydra runs before it creates any directory, so bad input ends in one line, not a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def unwritable_reason(directory: Path) -> str | None:
    """Why ``directory`` could not be created and written, or None if it can."""
    ancestor = directory.expanduser().absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return None


def _exit_if_unwritable(directory: str, key: str) -> None:
    reason = unwritable_reason(Path(directory))
    if reason:
        print(f"flowerbench: error: cannot write the output directory {directory} ({reason}); set {key}=...",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)  # a SystemExit passes through Hydra's error reporting without a traceback


class OutputDirCheck(Callback):
    """Fails fast when the run or sweep directory cannot be written."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_if_unwritable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_if_unwritable(config.hydra.sweep.dir, "hydra.sweep.dir")
