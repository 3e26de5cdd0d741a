"""The range checks every schema's ``__post_init__`` makes, with one wording for their messages."""

from __future__ import annotations

import math

from bench.errors import ConfigError


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def require_at_least(key: str, value: float, low: float, *, strict: bool) -> None:
    """``value > low`` (``strict``) or ``value >= low``, and finite: ``inf`` and ``nan`` are refused too."""
    op = ">" if strict else ">="
    require(math.isfinite(value), f"{key} must be finite and {op} {low:g}, got {value}")
    require(value > low if strict else value >= low, f"{key} must be {op} {low:g}, got {value}")


#: The largest seed every framework takes: Keras' set_random_seed seeds numpy's legacy generator (32 bits).
MAX_SEED = 2**32 - 1


def require_seed(key: str, value: int) -> None:
    """A seed every framework accepts: ``0 <= value <= 2**32 - 1``."""
    require(0 <= value <= MAX_SEED, f"{key} must be in [0, 2**32 - 1] = [0, {MAX_SEED}], got {value}")


def require_fraction(key: str, value: float) -> None:
    """``0 <= value < 1``: a momentum, a beta."""
    require(0 <= value < 1, f"{key} must be in [0, 1), got {value}")
