"""What the CPU is and which instruction sets its kernels can use: recorded beside every number a run or a
benchmark publishes (the same command gives other round-off, and other speed, on another CPU), and asked
before a run trains in bf16 on the CPU.

Read from ``/proc/cpuinfo`` (Linux); elsewhere the model is ``platform.processor()`` and the flags are unknown.

An AVX2-only CPU can be emulated on a newer x86 one: ``FLOWERBENCH_CPU_ISA=avx2`` (read when ``bench`` is
imported, before any framework is) sets the switches that cap each library's kernels at AVX2 (torch's ATen
``ATEN_CPU_CAPABILITY``, oneDNN's ``ONEDNN_MAX_CPU_ISA``, which TensorFlow's oneDNN ops read too, and MKL's
``MKL_ENABLE_INSTRUCTIONS``), builds the suite's C++ kernels with ``-march=x86-64-v3`` (AVX2 + FMA) instead of
``-march=native``, and reports the flags such a CPU has (no AVX-512, no AMX), so that bf16 is refused as on
such a machine and result.json says ``cpu_isa_emulated: avx2``. README "Throughput" measures it.
"""

from __future__ import annotations

import functools
import os
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


#: The environment variable that names an instruction set to emulate, and what each one sets.
ISA_ENV = "FLOWERBENCH_CPU_ISA"
EMULATIONS = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
}
#: The compiler target of each emulated instruction set (x86-64-v3: AVX2, FMA, BMI1/2, F16C, MOVBE).
MARCH = {"avx2": "x86-64-v3"}
#: /proc/cpuinfo flags an AVX2 CPU does not have (AVX-512's, AMX's, AVX-VNNI, AVX10).
BEYOND_AVX2 = ("avx512", "amx", "avx_vnni", "avx10")


def emulated_isa() -> str | None:
    """The instruction set ``FLOWERBENCH_CPU_ISA`` asks to emulate (``avx2``), or None for the CPU's own.

    Raises:
        ConfigError: it names one that cannot be emulated.
    """
    value = os.environ.get(ISA_ENV, "").strip().lower()
    if value in ("", "native"):
        return None
    if value not in EMULATIONS:
        raise ConfigError(f"{ISA_ENV}={value!r}: can emulate {', '.join(EMULATIONS)} (or native), not that")
    return value


def apply_emulation() -> None:
    """Set each library's ISA cap for ``FLOWERBENCH_CPU_ISA`` (a variable already set wins): call before torch,
    TensorFlow or MKL run a kernel (``bench/__init__.py`` does)."""
    isa = emulated_isa()
    for name, value in EMULATIONS.get(isa or "", {}).items():
        os.environ.setdefault(name, value)


def march_flags() -> list[str]:
    """The compiler's target for the suite's C++ kernels: this CPU's, or the emulated instruction set's."""
    isa = emulated_isa()
    return [f"-march={MARCH[isa]}"] if isa else ["-march=native"]


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
    """The CPU's feature flags, or None where they cannot be read; under an emulated ISA, those of such a CPU."""
    info = _cpuinfo()
    raw = info.get("flags") or info.get("Features")  # x86 / aarch64
    if raw is None:
        return None
    have = frozenset(raw.split())
    if emulated_isa() == "avx2":
        have = frozenset(flag for flag in have if not flag.startswith(BEYOND_AVX2))
    return have


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
        "cpu_isa_emulated": emulated_isa(),
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
