"""A conv block's max-pool -> ReLU -> dropout as one CPU kernel (``kernels/pool_relu_dropout.cpp``).

Why: at 180 px, what follows the convolutions was a fifth (fp32) to a third (bf16) of a torch CPU training step
(124 ms of ~570 and 126 ms of ~350, forward and backward of both blocks): the max-pool's
int64 indices, its backward's zero-fill and scatter, a float32 uniform per element for the dropout mask
(torch's CPU generator is sequential), and a pass each for ReLU, the mask and their backwards, all over
tensors of 66 M elements. The kernel reads the conv output once, writes the block's output and a one-byte
"route" per output element (which window position won the max, or none when ReLU or dropout blocks the
gradient), and its backward writes the conv output's gradient once from those routes. README "Throughput"
has the step times before and after.

What stays the same (``tests/test_fused_kernel.py`` checks each against eager torch): the forward values and
the gradients are those of ``MaxPool2d(2)``, ``ReLU`` and a dropout mask, bit for bit in float32 and to
bfloat16's rounding under autocast; the max is the first maximal element of its window, as torch picks it;
with dropout 0 (the parity tests) nothing random happens at all. What differs is only *which* units are
dropped: the mask comes from counter-based random bits (SplitMix64 of a per-call seed drawn from torch's
generator, so ``torch.manual_seed`` still makes a run repeat exactly) instead of ``torch.rand``. Each unit is
kept with probability exactly ``1 - ceil(p * 2**24) / 2**24``, as ``torch.rand(...) >= p`` keeps it.

The kernel is compiled on first use with the machine's C++ compiler (``$CXX``, else ``c++``; about a second,
no torch headers) into ``$FLOWERBENCH_CACHE/kernels`` (default ``~/.cache/flowerbench/kernels``), keyed by the
source, the flags and the CPU, and loaded through ctypes. It is built with OpenMP, which makes it share
torch's own thread pool (it needs ``libgomp.so.1``, the library torch's CPU wheels have already loaded): with
threads of its own, it ran 70 % slower inside a training step, competing with torch's threads, which keep
spinning for a while after each op. Where it cannot be built (no compiler, a failed build: one warning in the
log) or the tensors are not on the CPU, :class:`PoolReluDropout` runs the same layers as torch ops; GPUs always
take that path, where those ops are cheap.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench import cpu

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels") / "pool_relu_dropout.cpp"
# -march=native: the library is built on, and cached for, the machine that runs it (the CPU is in the key); under
# FLOWERBENCH_CPU_ISA=avx2 (bench/cpu.py) -march=x86-64-v3, an AVX2 + FMA CPU's instructions and no more.
FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread"]


def flags() -> list[str]:
    """:data:`FLAGS` with the target that ``bench.cpu.march_flags`` names for this process."""
    return [flag for f in FLAGS for flag in (cpu.march_flags() if f == "-march=native" else [f])]


# OpenMP: the kernel then runs on torch's own thread pool (see parallel_for in the source); where the compiler
# has no OpenMP (Apple's clang), the kernel is built without it and starts its own threads.
OPENMP = ["-fopenmp"]
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
RANDOM_BITS = 24  # as many as a float32 uniform has
# The C signatures: dtype code, 3 pointers, then N, H, W, C, then each function's scalars.
_POINTERS_AND_SHAPE = [ctypes.c_int, *[ctypes.c_void_p] * 3, *[ctypes.c_int64] * 4]
FORWARD_ARGTYPES = [*_POINTERS_AND_SHAPE, ctypes.c_uint32, ctypes.c_float, ctypes.c_uint64, ctypes.c_int]
BACKWARD_ARGTYPES = [*_POINTERS_AND_SHAPE, ctypes.c_float, ctypes.c_int]


def _cpu_signature() -> str:
    """What -march=native compiles for: the architecture and, on Linux, the CPU's feature flags (under an
    emulated ISA, the flags that CPU would have, and the ISA's name)."""
    have = cpu.flags()  # read once per process (bench/cpu.py), as result.json's environment reads them
    emulated = cpu.emulated_isa()
    return f"{platform.system()}-{platform.machine()}-{' '.join(sorted(have or ()))}-emulated:{emulated}"


def _cache_dir() -> Path:
    return Path(os.environ.get("FLOWERBENCH_CACHE", "~/.cache/flowerbench")).expanduser() / "kernels"


def _compile(compiler: str, source: Path, target: Path, flag_sets: list[list[str]]) -> None:
    """Build the shared library into ``target`` with the first flag set that compiles, atomically (parallel
    sweep jobs may race to build it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        for i, flags in enumerate(flag_sets):
            try:
                command = [compiler, *flags, str(source), "-o", str(built)]
                subprocess.run(command, check=True, capture_output=True, text=True)
                break
            except subprocess.CalledProcessError:
                if i == len(flag_sets) - 1:
                    raise
        os.replace(built, target)


def build(source: Path, cache_dir: Path, openmp: bool = True, what: str = "kernel") -> ctypes.CDLL | None:
    """Build (unless cached) and load the C++ library in ``source``; None, with one log line naming ``what``
    falls back to torch ops, where that fails. ``openmp=False`` builds the plain-threads variant."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        log.warning("no C++ compiler found: %s run as torch ops (slower)", what)
        return None
    base = flags()
    flag_sets = [[*base, *OPENMP], base] if openmp else [base]
    key = hashlib.sha256(f"{source.read_text()}\n{compiler}\n{flag_sets}\n{_cpu_signature()}".encode())
    suffix = ".dylib" if platform.system() == "Darwin" else ".so"
    target = cache_dir / f"{source.stem}-{key.hexdigest()[:16]}{suffix}"
    try:
        if not target.exists():
            _compile(compiler, source, target, flag_sets)
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines()
        log.warning(
            "could not build the %s (%s); using torch ops (slower)",
            what,
            detail[0] if detail else type(exc).__name__,
        )
        return None


def load(source: Path, cache_dir: Path, openmp: bool = True) -> ctypes.CDLL | None:
    """Build (unless cached) and load the kernel in ``source``; None, with one log line, where that fails.
    ``openmp=False`` builds the plain-threads variant (tests compare the two)."""
    lib = build(source, cache_dir, openmp, what="fused pool/ReLU/dropout kernel")
    if lib is None:
        return None
    lib.pool_relu_dropout_forward.argtypes = FORWARD_ARGTYPES
    lib.pool_relu_dropout_backward.argtypes = BACKWARD_ARGTYPES
    return lib


@functools.cache
def library() -> ctypes.CDLL | None:
    """The kernel for this process: built on first use, then loaded from the cache."""
    return load(SOURCE, _cache_dir())


def keep_threshold(p: float) -> int:
    """Random 24-bit integers at or above this keep a unit: ``P(keep) = 1 - ceil(p * 2**24) / 2**24``."""
    return math.ceil(p * 2**RANDOM_BITS)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """``x`` (NCHW-shaped) with channels_last memory: a no-op for the model's own activations."""
    return x.contiguous(memory_format=torch.channels_last)


class _FusedPoolReluDropout(torch.autograd.Function):
    """Autograd wrapper of the C++ kernel; saves only the routes (one byte per output element)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
        x = _nhwc(x)
        n, c, h, w = x.shape
        out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
        # One route byte per output element, in the output's NHWC order; only when a gradient will flow back.
        route = torch.empty(out.numel(), dtype=torch.uint8) if x.requires_grad else None
        drop = training and p > 0
        # One 64-bit seed per call, from torch's generator: torch.manual_seed(run.seed) fixes every mask.
        seed = int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64)) % 2**64 if drop else 0
        scale = 1.0 / (1.0 - p) if drop else 1.0
        routes = None if route is None else route.data_ptr()
        library().pool_relu_dropout_forward(
            DTYPE_CODES[x.dtype], x.data_ptr(), out.data_ptr(), routes, n, h, w, c,
            keep_threshold(p) if drop else 0, scale, seed, torch.get_num_threads(),
        )  # fmt: skip
        if route is not None:
            ctx.save_for_backward(route)
        ctx.input_shape, ctx.scale = x.shape, scale
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (route,) = ctx.saved_tensors
        grad_out = _nhwc(grad_out)
        n, c, h, w = ctx.input_shape
        grad_in = torch.empty(ctx.input_shape, dtype=grad_out.dtype, memory_format=torch.channels_last)
        library().pool_relu_dropout_backward(
            DTYPE_CODES[grad_out.dtype], grad_out.data_ptr(), route.data_ptr(), grad_in.data_ptr(), n, h, w, c,
            ctx.scale, torch.get_num_threads(),
        )  # fmt: skip
        return grad_in, None, None


def eager_pool_relu_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The same layers as separate torch ops (GPUs, or CPUs where the kernel cannot be built)."""
    x = F.relu(F.max_pool2d(x, 2))  # floors odd sizes, like Keras' MaxPooling2D(2)
    if not training or p == 0:
        return x
    # A uniform mask, not bernoulli_ (~2.5x slower on CPU); float32 uniforms even under bf16 autocast, so the
    # keep probability is exactly 1 - p.
    keep = torch.rand_like(x, dtype=torch.float32) >= p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def uses_fused_kernel(device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether :class:`PoolReluDropout` runs the fused kernel for tensors of this device and dtype."""
    return device.type == "cpu" and dtype in DTYPE_CODES and library() is not None


class PoolReluDropout(nn.Module):
    """``MaxPool2d(2) -> ReLU -> Dropout(p)``: one fused kernel on the CPU, separate torch ops elsewhere."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if uses_fused_kernel(x.device, x.dtype):
            return _FusedPoolReluDropout.apply(x, self.p, self.training)
        return eager_pool_relu_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
