"""The torch backend's 3x3 convolution kernels (backends/torch/conv.py) against torch's own convolution.

The same function and gradients to float32 round-off (the kernels add in another order than oneDNN), checked
against float64 references; for odd sizes and batch 1; in this machine's build and, on an x86 CPU with AVX-512,
in the AVX2 build (FLOWERBENCH_CPU_ISA=avx2, in a subprocess) too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from backends.torch import conv  # noqa: E402
from bench import cpu  # noqa: E402

pytestmark = pytest.mark.skipif(conv.library() is None, reason="no C++ compiler or no AVX2 + FMA: no kernels")
ROOT = Path(__file__).resolve().parents[1]
# Relative to the largest magnitude of the float64 result: float32 round-off of sums of a few hundred to a
# few hundred thousand products, in any order.
RTOL = 2e-6


def inputs(n: int, c: int, o: int, h: int, w: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=generator).contiguous(memory_format=torch.channels_last)
    layer = conv.Conv3x3(c, o)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator))
    grad = torch.randn(n, o, h, w, generator=generator).contiguous(memory_format=torch.channels_last)
    return x, layer, grad


def reference(x, layer, grad, input_grad: bool):
    """Output and gradients of torch's convolution in float64."""
    x64 = x.double().requires_grad_(input_grad)
    w64 = layer.weight.detach().double().requires_grad_()
    b64 = layer.bias.detach().double().requires_grad_()
    out = torch.nn.functional.conv2d(x64, w64, b64, padding=1)
    out.backward(grad.double())
    return out.detach(), (x64.grad if input_grad else None), w64.grad, b64.grad


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    scale = expected.abs().max().item() or 1.0
    error = (actual.double() - expected).abs().max().item() / scale
    assert error < RTOL, f"max error {error:.2e} of the largest magnitude"


def check(n, c, o, h, w, input_grad=False, expected_path=None):
    x, layer, grad = inputs(n, c, o, h, w)
    x = x.requires_grad_(input_grad)
    if expected_path:
        assert layer.path(x) == expected_path
    out = layer(x)
    out.backward(grad)
    ref_out, ref_gx, ref_gw, ref_gb = reference(x.detach(), layer, grad, input_grad)
    assert_close(out.detach(), ref_out)
    assert_close(layer.weight.grad, ref_gw)
    assert_close(layer.bias.grad, ref_gb)
    if input_grad:
        assert_close(x.grad, ref_gx)
    return out


@pytest.mark.parametrize(
    "n, c, o, h, w", [(2, 3, 64, 7, 9), (1, 3, 64, 5, 5), (3, 1, 32, 4, 11), (1, 4, 96, 6, 3)]
)
@pytest.mark.parametrize("input_grad", [False, True])
def test_small_cin_kernel_is_torchs_convolution(n, c, o, h, w, input_grad):
    check(n, c, o, h, w, input_grad, expected_path="small_cin")


@pytest.mark.parametrize(
    "n, c, o, h, w", [(2, 64, 64, 7, 9), (1, 64, 64, 1, 1), (3, 32, 7, 4, 11), (1, 64, 33, 6, 3)]
)
@pytest.mark.parametrize("input_grad", [False, True])
def test_weight_grad_kernel_is_torchs_convolution(n, c, o, h, w, input_grad):
    if c % (2 * conv.vector_width()):
        pytest.skip(f"{c} input channels are not a multiple of 2 vectors of {conv.vector_width()}")
    check(n, c, o, h, w, input_grad, expected_path="weight_grad")


def test_the_kernels_are_deterministic_for_a_thread_count():
    results = []
    for _ in range(2):
        for c in (3, 64):
            x, layer, grad = inputs(2, c, 64, 12, 10, seed=3)
            layer(x).backward(grad)
            results.append((layer.weight.grad.clone(), layer.bias.grad.clone()))
    for first, second in zip(results[:2], results[2:], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_other_cases_are_torchs_own_convolution():
    x, layer, _ = inputs(1, 3, 64, 5, 5)
    assert layer.path(x.to(torch.bfloat16)) == "torch"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.path(x) == "torch"
    with conv.kernels_enabled(False):
        assert layer.path(x) == "torch"
    assert conv.Conv3x3(12, 64).path(torch.zeros(1, 12, 4, 4)) == "torch"  # neither kernel's shape
    for c in (3, 64):
        x, layer, _ = inputs(1, c, 64, 5, 5)
        with torch.no_grad():  # the kernels are weight gradients: nothing to do without one
            assert layer.path(x) == "torch"


def test_the_cnn_uses_the_kernels_and_says_so():
    from backends.torch.model import build_cnn
    from bench.architecture import CNNSpec

    spec = CNNSpec(
        image_size=32, channels=3, num_classes=5, filters=(64, 64), kernel_size=3, dense_units=8, dropout=0.2
    )
    model = build_cnn(spec)
    assert isinstance(model.conv0, conv.Conv3x3) and isinstance(model.conv0, torch.nn.Conv2d)
    assert "conv3x3 kernels" in conv.description()


def test_the_build_target_follows_the_emulated_isa(monkeypatch):
    monkeypatch.setenv(cpu.ISA_ENV, "avx2")
    assert cpu.march_flags() == ["-march=x86-64-v3"]
    have = cpu.flags()
    assert have is None or not any(flag.startswith("avx512") or flag.startswith("amx") for flag in have)
    assert cpu.description()["cpu_isa_emulated"] == "avx2"
    monkeypatch.setenv(cpu.ISA_ENV, "native")
    assert cpu.march_flags() == ["-march=native"] and cpu.emulated_isa() is None


AVX2_CHECK = """
import json, sys, torch
import bench  # sets the ISA caps first
from backends.torch import conv, fused
from tests.test_conv_kernel import check, pool_outputs
check(2, 3, 64, 7, 9, input_grad=True, expected_path="small_cin")
check(1, 64, 64, 6, 5, expected_path="weight_grad")
torch.save(pool_outputs(), sys.argv[1])
print(json.dumps({"width": conv.vector_width(), "aten": torch.backends.cpu.get_cpu_capability(),
                  "flags": fused.flags()}))
"""


def pool_outputs() -> list[torch.Tensor]:
    """The fused pool/ReLU/dropout kernel's outputs and gradients, with dropout, for channel counts with and
    without a tail of fewer than 8: the AVX2 build (hand-vectorized) must give the AVX-512 build's bits."""
    from backends.torch import fused

    results = []
    for shape in [(2, 64, 9, 8), (1, 13, 6, 7), (3, 24, 4, 4)]:
        torch.manual_seed(5)
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        x[0, 0, 0, 0] = float("nan")
        x.requires_grad_()
        out = fused.PoolReluDropout(0.3).train()(x)
        (grad,) = torch.autograd.grad(out, x, torch.randn(out.shape))
        results += [out.detach(), grad]
    return results


@pytest.mark.skipif(
    "avx512f" not in (cpu.flags() or ()) or "avx2" not in (cpu.flags() or ()),
    reason="needs an x86 CPU with AVX-512 to run the AVX2 build beside its own",
)
def test_the_avx2_builds_compute_what_the_native_ones_do(tmp_path):
    env = {
        **os.environ,
        cpu.ISA_ENV: "avx2",
        "FLOWERBENCH_CACHE": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for name in cpu.EMULATIONS["avx2"]:
        env.pop(name, None)
    saved = tmp_path / "pool.pt"
    done = subprocess.run(
        [sys.executable, "-c", AVX2_CHECK, str(saved)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["width"] == 8 and result["aten"] == "AVX2"
    assert "-march=x86-64-v3" in result["flags"] and "-march=native" not in result["flags"]
    # A cache shared by both kinds of build keeps them apart: the key holds the flags and the emulated ISA.
    from backends.torch import fused

    avx2_builds = {p.name for p in (tmp_path / "kernels").glob("*.so")}
    assert fused.build(conv.SOURCE, tmp_path / "kernels") is not None
    native_builds = {p.name for p in (tmp_path / "kernels").glob("*.so")} - avx2_builds
    assert len(avx2_builds) == 2 and len(native_builds) == 1
    for avx2, native in zip(torch.load(saved), pool_outputs(), strict=True):
        assert torch.equal(avx2.isnan(), native.isnan())
        assert torch.equal(avx2.nan_to_num(), native.nan_to_num())
