"""What a person reads on the console: the frameworks' start-up chatter filtered out, a sweep's progress, and
the verdict at the end.

TensorFlow's C++ side writes its start-up notices straight to the process's stderr (file descriptor 2), before
and outside Python's logging: an absl preamble, oneDNN and CPU-feature notices, and, on a machine without an
NVIDIA driver, an ``E0000 ... failed call to cuInit`` line that looks like an error and is none.
:func:`framework_noise_filtered` captures fd 2 while a framework starts (imports, device set-up), then writes
back every line except those known ones, so a real error still shows. The cuInit line is dropped only where
there is no NVIDIA driver at all; with a driver, a failing cuInit is a real problem and is shown.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Start-up lines of TensorFlow's C++ runtime that say nothing about the run.
KNOWN_NOISE = [
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+ +\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "),
    re.compile(
        r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
    ),
]
#: Only noise where no NVIDIA driver is installed: then no GPU can be used, and cuInit must fail.
NO_DRIVER_NOISE = re.compile(r"^E\d{4} [\d:.]+ +\d+ cuda_(platform|driver|diagnostics)\.cc:\d+\] ")


def nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def is_noise(line: str, driver: bool) -> bool:
    line = line.rstrip("\n")
    return any(p.search(line) for p in KNOWN_NOISE) or (not driver and bool(NO_DRIVER_NOISE.search(line)))


@contextmanager
def framework_noise_filtered() -> Iterator[None]:
    """Capture fd 2 for the duration, then write back all but the known start-up noise.

    A no-op where fd 2 cannot be redirected (no real file descriptor, as under some notebook kernels).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            driver = nvidia_driver_present()
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_noise(line, driver))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
