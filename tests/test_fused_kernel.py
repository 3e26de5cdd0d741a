"""The torch backend's fused max-pool -> ReLU -> dropout kernel (backends/torch/fused.py) against eager torch.

Without dropout it must be the same function with the same gradient, bit for bit in float32 and bfloat16 (the
parity tests rely on that); with dropout, only which units are dropped may differ from torch's own mask.
"""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from backends.torch import fused  # noqa: E402

pytestmark = pytest.mark.skipif(fused.library() is None, reason="no C++ compiler: the kernel cannot be built")


def conv_output(shape: tuple[int, ...], dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """A channels_last N x C x H x W tensor like a conv output: both signs, no ties."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).to(dtype)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_()


def eager_and_fused(x: torch.Tensor, p: float, training: bool, grad_seed: int = 1):
    """(output, input gradient) of the eager layers and of the fused kernel, for the same upstream gradient."""
    results = []
    for layer in (
        lambda t: fused.eager_pool_relu_dropout(t, p, training),
        fused.PoolReluDropout(p).train(training),
    ):
        out = layer(x)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed)).to(out.dtype)
        (grad_in,) = torch.autograd.grad(out, x, grad_out)
        results.append((out.detach(), grad_in))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 8, 6, 6), (3, 5, 7, 9), (1, 64, 10, 4)])  # odd sizes drop a row/column
def test_without_dropout_it_is_maxpool_relu_bit_for_bit(shape, dtype):
    (eager_out, eager_grad), (fused_out, fused_grad) = eager_and_fused(conv_output(shape, dtype), 0.0, True)
    assert fused_out.dtype == dtype and fused_out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fused_out, eager_out)
    assert torch.equal(fused_grad, eager_grad)
    assert fused_grad.is_contiguous(memory_format=torch.channels_last)


def test_ties_route_the_gradient_to_the_first_maximum_as_torch_does():
    x = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[-1.0, 2.0], [2.0, 0.5]]]]).requires_grad_()
    (eager_out, eager_grad), (fused_out, fused_grad) = eager_and_fused(x, 0.0, True)
    assert torch.equal(fused_out, eager_out)
    assert torch.equal(fused_grad, eager_grad)
    assert fused_grad[0, 0].flatten().tolist() == [eager_grad[0, 0, 0, 0].item(), 0.0, 0.0, 0.0]


def test_nan_wins_the_max_as_in_torch():
    x = torch.tensor([[[[1.0, float("nan")], [3.0, 2.0]]]])
    assert fused.PoolReluDropout(0.0)(x).isnan().all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_each_unit_with_probability_1_minus_p_and_scales_it(dtype):
    p = 0.3
    x = conv_output((8, 32, 40, 40), dtype).abs()  # positive: ReLU passes everything, only dropout drops
    layer = fused.PoolReluDropout(p).train()
    out = layer(x)
    pooled = torch.nn.functional.max_pool2d(x.detach(), 2)
    kept = out != 0
    n = kept.numel()
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sd
    # A kept unit is the pooled value times 1/(1-p), rounded as torch rounds a multiplication in this dtype.
    assert torch.equal(out[kept], (pooled[kept].float() * (1 / (1 - p))).to(dtype))
    # The gradient flows, scaled, exactly through the kept units' maxima.
    grad_out = torch.ones_like(out)
    (grad_in,) = torch.autograd.grad(out, x, grad_out)
    assert grad_in.nonzero().shape[0] == kept.sum().item()
    assert torch.allclose(grad_in.float().sum(), torch.tensor(kept.sum().item() / (1 - p)), rtol=1e-2)


def test_masks_repeat_under_manual_seed_and_change_from_step_to_step():
    x = conv_output((4, 16, 20, 20)).abs()
    layer = fused.PoolReluDropout(0.5).train()
    torch.manual_seed(7)
    first, second = layer(x) != 0, layer(x) != 0
    torch.manual_seed(7)
    assert torch.equal(layer(x) != 0, first)
    agreement = (first == second).float().mean().item()
    assert 0.45 < agreement < 0.55  # independent masks with p = 0.5 agree on half the units


def test_evaluation_drops_nothing_and_saves_no_routes():
    x = conv_output((2, 8, 6, 6))
    layer = fused.PoolReluDropout(0.5).eval()
    expected = torch.relu(torch.nn.functional.max_pool2d(x.detach(), 2))
    with torch.inference_mode():
        assert torch.equal(layer(x.detach()), expected)
    assert torch.equal(layer(x).detach(), expected)


def test_without_the_kernel_the_layer_runs_torch_ops(monkeypatch):
    monkeypatch.setattr(fused, "library", lambda: None)
    x = conv_output((2, 8, 6, 6))
    assert not fused.uses_fused_kernel(x.device, x.dtype)
    out = fused.PoolReluDropout(0.0)(x)
    assert out.grad_fn is not None and "Fused" not in type(out.grad_fn).__name__
    assert torch.equal(out, torch.relu(torch.nn.functional.max_pool2d(x, 2)))


def test_a_kernel_that_does_not_compile_falls_back_with_one_warning(tmp_path, caplog):
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    with caplog.at_level(logging.WARNING, logger=fused.__name__):
        assert fused.load(broken, tmp_path / "kernels") is None
    assert "could not build the fused pool/ReLU/dropout kernel" in caplog.text
    assert not list((tmp_path / "kernels").glob("*.so"))


def test_the_kernel_is_built_once_per_source_and_cpu(tmp_path):
    assert fused.load(fused.SOURCE, tmp_path) is not None
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith("pool_relu_dropout-")
    modified = built[0].stat().st_mtime_ns
    assert fused.load(fused.SOURCE, tmp_path) is not None
    assert built[0].stat().st_mtime_ns == modified


def test_results_do_not_depend_on_threads_or_on_openmp(tmp_path, monkeypatch):
    """Counter-based random bits: the same seed drops the same units whatever splits the work."""
    x = conv_output((4, 16, 22, 18), torch.bfloat16)

    def masks_and_grads():
        torch.manual_seed(3)
        out = fused.PoolReluDropout(0.4).train()(x)
        (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
        return out, grad

    reference = masks_and_grads()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert all(map(torch.equal, masks_and_grads(), reference))
    finally:
        torch.set_num_threads(threads)
    plain_threads = fused.load(fused.SOURCE, tmp_path, openmp=False)
    assert plain_threads is not None
    monkeypatch.setattr(fused, "library", lambda: plain_threads)
    assert all(map(torch.equal, masks_and_grads(), reference))
