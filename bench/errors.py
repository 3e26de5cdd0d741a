"""Errors users can act on. The CLI prints their message as one line and exits non-zero; no traceback."""


class BenchError(Exception):
    """Base class of the errors that mean "your input is wrong", not "flowerbench has a bug"."""

    exit_code = 2


class ConfigError(BenchError):
    """A config value of the wrong range or an inconsistent combination."""


class DataError(BenchError):
    """The photos cannot be found, read or downloaded."""


class BackendUnavailableError(BenchError):
    """The selected backend's framework is not installed or cannot start."""
