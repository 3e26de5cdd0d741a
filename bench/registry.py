"""The one list of backends: each name's package and the frameworks it needs. Plain data at the bottom of the
imports, so that the config schema can check ``backend.name`` and :mod:`bench.backend` can load a backend
without either importing the other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: its package and the frameworks it needs (named in the error if missing)."""

    name: str
    package: str
    requires: str


REGISTRY: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("keras", "backends.keras", "tensorflow and keras"),
        BackendEntry("torch", "backends.torch", "torch"),
    )
}
BACKEND_NAMES: tuple[str, ...] = tuple(REGISTRY)
