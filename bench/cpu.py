"""What the CPU is and which instruction sets its kernels can use: recorded beside every number a run or a
benchmark publishes (the same command gives other round-off, and other speed, on another CPU), and asked
before a run trains in bf16 on the CPU.

Read from ``/proc/cpuinfo`` (Linux); elsewhere the model is ``platform.processor()`` and the flags are unknown.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from bench.errors import ConfigError

#: /proc/cpuinfo flag -> the instruction set it stands for, as README's tables name them.
ISA_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_bf16": "AMX BF16",
    "amx_int8": "AMX INT8",
    "asimd": "NEON",
    "sve": "SVE",
    "bf16": "BF16",  # aarch64's BFloat16 dot products
}
#: Flags that mean bf16 matrix products run natively (else they are emulated, some hundred times slower).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def _cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's ``key: value`` lines, or {} where there is no such file."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def model_name() -> str:
    """The CPU's model name (``AMD EPYC 9R14 96-Core Processor``), else what the platform says."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def flags() -> frozenset[str] | None:
    """The CPU's feature flags, or None where they cannot be read."""
    info = _cpuinfo()
    raw = info.get("flags") or info.get("Features")  # x86 / aarch64
    return frozenset(raw.split()) if raw is not None else None


def instruction_sets() -> list[str] | None:
    """The vector and matrix instruction sets of :data:`ISA_FLAGS` the CPU has, or None where unknown."""
    have = flags()
    return None if have is None else [name for flag, name in ISA_FLAGS.items() if flag in have]


def has_native_bf16() -> bool | None:
    """Whether bf16 matrix products run natively on this CPU; None where the flags cannot be read."""
    have = flags()
    return None if have is None else bool(have & NATIVE_BF16_FLAGS)


def description() -> dict[str, object]:
    """What result.json's and throughput.json's ``environment`` record of the CPU."""
    return {
        "cpu": model_name(),
        "cpu_instruction_sets": instruction_sets(),
        "cpu_native_bf16": has_native_bf16(),
    }


def check_bf16(precision: str, on_cpu: bool, allow_emulated: bool) -> None:
    """Refuse bf16 on a CPU without native bf16 instructions, where it would be emulated: measured on an AVX2
    machine (AMD Zen 3), bf16 matmuls ran at 0.36 GFLOP/s against fp32's 141, ~400x slower.

    Raises:
        ConfigError: bf16 was asked for on such a CPU and ``train.allow_emulated_bf16`` is false.
    """
    if precision != "bf16" or not on_cpu or allow_emulated or has_native_bf16() is not False:
        return
    isa = ", ".join(instruction_sets() or []) or "none known"
    raise ConfigError(
        f"train.precision=bf16 on this CPU ({model_name()}; {isa}) would be emulated, some hundred times slower "
        "than fp32: it has no native bf16 instructions (AVX-512 BF16, AMX or Arm BF16). Use train.precision=fp32, "
        "a GPU, or train.allow_emulated_bf16=true to run it anyway"
    )
