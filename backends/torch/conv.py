"""The CNN's 3x3 convolutions, with C++ kernels (``kernels/conv3x3.cpp``) where oneDNN's are slow.

Why: on an AVX2 CPU (emulated on Emerald Rapids, README "Throughput"), the two convolutions were ~85 % of a torch
fp32 training step, and oneDNN's kernels ran far below the sgemm peak in two places:

- conv0's weight gradient (3 -> 64 channels): oneDNN blocks the *input* channels by the vector width, so with 3
  of them most lanes of each FMA idle. The kernel vectorizes along the 64 output channels instead: a
  register-blocked sum over each image row, per-thread partial sums added in thread order. (A forward kernel
  of the same design lost to oneDNN's, 164 against 134 ms with AVX2 and 85 against 70 with AVX-512, one thread:
  the forward is bound by writing its 265 MB output, not by its FMAs, so it stays oneDNN's.)
- conv1's weight gradient (64 -> 64): oneDNN's backward-weights ran at ~40 % of the peak; the kernel is a GEMM
  over the pixels (6 output x 16 input channels in registers with AVX2, 12 x 32 with AVX-512).

The forwards and conv1's input gradient stay oneDNN's (near the peak). The photos need no input gradient;
where one is asked for (conv0's input requires grad), it is torch's.

What stays the same (``tests/test_conv_kernel.py``): the function and its gradients, to float32 round-off (the
kernels sum in another order than oneDNN: ~1e-7 relative); deterministic for a thread count. The library is
built as the fused pool kernel is (:func:`backends.torch.fused.build`: cached, keyed by source, flags and CPU,
``-march=native`` or the emulated ISA's target, OpenMP on torch's pool). Without a compiler, on a CPU without
AVX2 + FMA, on GPUs, in bf16 autocast, or for other shapes, :class:`Conv3x3` is plain ``nn.Conv2d``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from backends.torch import fused

SOURCE = Path(__file__).with_name("kernels") / "conv3x3.cpp"
# x or xp, weight or dy, out, out2, then N, H, W, C, Cout, then threads.
ARGTYPES = [*[ctypes.c_void_p] * 4, *[ctypes.c_int64] * 5, ctypes.c_int]
# A process-wide switch: FLOWERBENCH_CONV_KERNELS=0 turns the kernels off (README's "before" rows), and
# kernels_enabled() for A/B timings in one process (backends/torch/profile.py) and tests.
ENV = "FLOWERBENCH_CONV_KERNELS"
_enabled = os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The kernels for this process (None where they cannot be built, or the CPU has no AVX2 + FMA)."""
    lib = fused.build(SOURCE, fused._cache_dir(), what="3x3 convolution kernels")
    if lib is None:
        return None
    for name in ("conv3x3_small_cin_weight_grad", "conv3x3_weight_grad"):
        getattr(lib, name).argtypes = ARGTYPES
    return lib if lib.conv3x3_small_cin_vector_width() > 0 else None


def vector_width() -> int:
    """Floats per vector of the built kernels (8: AVX2, 16: AVX-512), 0 where there are none."""
    lib = library()
    return lib.conv3x3_small_cin_vector_width() if lib is not None else 0


@contextlib.contextmanager
def kernels_enabled(enabled: bool) -> Iterator[None]:
    """Run :class:`Conv3x3` with (True) or without (False: torch's conv) the kernels, then restore."""
    global _enabled
    before, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = before


def _pad_nhwc(x: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x (H+2) x (W+2) x C, contiguous, a zero border of one pixel."""
    n, c, h, w = x.shape
    xp = x.new_empty((n, h + 2, w + 2, c))
    xp[:, 0].zero_(), xp[:, -1].zero_(), xp[:, :, 0].zero_(), xp[:, :, -1].zero_()
    xp[:, 1:-1, 1:-1].copy_(x.permute(0, 2, 3, 1))
    return xp


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check(code: int) -> None:
    if code != 0:  # the Python side checks the shapes first; this is a bug, not a user's error
        raise RuntimeError("conv3x3 kernel refused its arguments")


class _SmallCinConv(torch.autograd.Function):
    """3x3 'same' conv with 1-4 input channels: torch's forward, the kernel's weight/bias gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=1)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight = ctx.saved_tensors
        ctx.input_shape = x.shape
        n, c, h, w = x.shape
        xp = _pad_nhwc(x) if ctx.needs_input_grad[1] or ctx.needs_input_grad[2] else None
        dy = dy.contiguous(memory_format=torch.channels_last)
        o = dy.shape[1]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(ctx.input_shape, weight, dy, padding=1)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            packed = dy.new_empty((3, 3, c, o))
            gb = dy.new_empty(o) if ctx.has_bias and ctx.needs_input_grad[2] else None
            _check(library().conv3x3_small_cin_weight_grad(
                xp.data_ptr(), dy.data_ptr(), packed.data_ptr(), _ptr(gb), n, h, w, c, o, torch.get_num_threads()
            ))  # fmt: skip
            gw = packed.permute(3, 2, 0, 1).contiguous() if ctx.needs_input_grad[1] else None
        return gx, gw, gb


class _WeightGradConv(torch.autograd.Function):
    """3x3 'same' conv: torch's forward and input gradient, the kernel's weight and bias gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, padding=1)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        dy = dy.contiguous(memory_format=torch.channels_last)
        o = dy.shape[1]
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                dy, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            packed = dy.new_empty((3, 3, o, c))
            gb = dy.new_empty(o) if ctx.has_bias and ctx.needs_input_grad[2] else None
            _check(library().conv3x3_weight_grad(
                x.data_ptr(), dy.data_ptr(), packed.data_ptr(), _ptr(gb), n, h, w, c, o, torch.get_num_threads()
            ))  # fmt: skip
            gw = packed.permute(2, 3, 0, 1).contiguous() if ctx.needs_input_grad[1] else None
        return gx, gw, gb


class Conv3x3(nn.Conv2d):
    """``nn.Conv2d(in, out, 3, padding="same")`` (same parameters, same function) that runs the C++ kernels on
    the CPU in float32 where they apply: :meth:`path` says which."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding="same")

    def path(self, x: torch.Tensor) -> str:
        """``small_cin`` or ``weight_grad`` (torch's forward, one kernel's weight gradient) or ``torch``, for an
        input like ``x``."""
        if not (
            _enabled
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.dim() == 4
            and not torch.is_autocast_enabled("cpu")
            and self.padding_mode == "zeros"
        ):
            return "torch"
        width = vector_width()
        if not width:
            return "torch"
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return "torch"  # the kernels are weight gradients: nothing to do without one
        if self.in_channels <= 4 and self.out_channels % 32 == 0:
            return "small_cin"
        if self.in_channels % (2 * width) == 0:
            return "weight_grad"
        return "torch"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.path(x)
        if path == "small_cin":
            return _SmallCinConv.apply(x, self.weight, self.bias)
        if path == "weight_grad":
            return _WeightGradConv.apply(x, self.weight, self.bias)
        return super().forward(x)


def description() -> str:
    """What result.json's environment says of the CNN's convolutions."""
    width = vector_width() if _enabled else 0
    isa = {8: "AVX2", 16: "AVX-512"}.get(width)
    return f"conv3x3 kernels ({isa}) + oneDNN" if isa else "torch (oneDNN)"
