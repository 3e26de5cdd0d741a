"""A fair comparison in one command (``experiment=fair_comparison``): tune, confirm on fresh seeds, stop when
decided. The protocol is in :mod:`bench.protocol.run`, its settings in :mod:`bench.protocol.options`.

The names below are imported on first use: bench/config.py imports bench.protocol.options for its schema, and
composing a config must not pay for pandas, scipy and statsmodels.
"""

from bench.lazy import lazy_names

_HOMES = {
    "ProtocolConfig": "bench.protocol.options",
    "Launch": "bench.protocol.run",
    "Launched": "bench.protocol.run",
    "ProtocolRun": "bench.protocol.run",
    "Setting": "bench.protocol.run",
    "PROTOCOL_FILE": "bench.protocol.run",
    "decide_pairs": "bench.protocol.run",
    "planned_looks": "bench.protocol.run",
    "rank_trials": "bench.protocol.run",
    "sample_settings": "bench.protocol.run",
    "select_best": "bench.protocol.run",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_names(__name__, _HOMES)
