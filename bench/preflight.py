"""Bad input ends in one line, not a traceback, and leaves nothing behind: checks Hydra runs before it creates
any directory, and the handling of flowerbench's own input errors that every Hydra app of the suite shares."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.errors import BenchError


def remove_if_untouched(run_dir: Path) -> None:
    """Take back the job directory Hydra made, if it holds nothing but Hydra's own files."""
    if run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def one_line_errors(run_dir: Path) -> Iterator[None]:
    """Turn a :class:`BenchError` into ``flowerbench: error: ...`` on stderr and its exit code, after removing
    the job directory if nothing was written to it (``python -m bench`` and ``python -m bench.throughput``)."""
    try:
        yield
    except BenchError as exc:
        remove_if_untouched(run_dir)
        print(f"flowerbench: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


#: Less free space than this where the outputs go is refused before Hydra writes its config files: a run needs
#: a few hundred KB (configs, metrics, result.json, logs) and the photo cache (its own check) more.
MIN_FREE_BYTES = 8 * 1024**2


def unwritable_reason(directory: Path) -> str | None:
    """Why ``directory`` could not be created and written, or None if it can."""
    ancestor = directory.expanduser().absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    if shutil.disk_usage(ancestor).free < MIN_FREE_BYTES:
        return f"no space left under {ancestor}: {shutil.disk_usage(ancestor).free // 1024} KiB free"
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
