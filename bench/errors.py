"""Errors users can act on. The CLI prints their message as one line and exits non-zero; no traceback."""

import errno


class BenchError(Exception):
    """Base class of the errors that mean "your input is wrong", not "flowerbench has a bug"."""

    exit_code = 2


class ConfigError(BenchError):
    """A config value of the wrong range or an inconsistent combination."""


class DataError(BenchError):
    """The photos cannot be found, read or downloaded."""


class BackendUnavailableError(BenchError):
    """The selected backend's framework is not installed or cannot start."""


class DiskFullError(BenchError):
    """No space left (or the quota reached) where a run writes its files."""

    exit_code = 1


#: The errno values that mean the disk (or the user's quota) is full.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS
