"""The torch backend's max-pool -> ReLU -> dropout after each conv: fused kernel vs torch's own layers.

Forward and backward of one block on a conv output of the benchmark settings' size (64 filters; see
conftest.py), e.g. at the seed blog's size::

    FLOWERBENCH_BENCH_IMAGE_SIZE=180 python -m pytest tests/benchmarks/test_pool_relu_dropout.py --benchmark-only
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backends.torch import fused  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
LAYERS = {
    "fused kernel": lambda x: fused.PoolReluDropout(0.2).train()(x),
    "torch ops": lambda x: fused.eager_pool_relu_dropout(x, 0.2, training=True),
}


@pytest.mark.parametrize("layers", LAYERS)
def test_pool_relu_dropout_forward_backward(benchmark, bench_settings, make_trainer, layers: str):
    if layers == "fused kernel" and fused.library() is None:
        pytest.skip("no C++ compiler: the kernel cannot be built")
    make_trainer("torch", "sgd_l2")  # the process set-up of a torch run: threads, allocator
    size, batch, precision = (bench_settings[k] for k in ("image_size", "batch_size", "precision"))
    shape = (batch, 64, size, size)
    conv_output = torch.randn(shape).to(DTYPES[precision]).contiguous(memory_format=torch.channels_last)
    conv_output.requires_grad_()
    grad = torch.ones((batch, 64, size // 2, size // 2), dtype=conv_output.dtype)
    grad = grad.contiguous(memory_format=torch.channels_last)  # as the next conv's backward hands it over
    benchmark.group = f"max-pool -> ReLU -> dropout, {shape}, {precision}"
    benchmark.extra_info.update(bench_settings, layers=layers)

    def forward_backward():
        return torch.autograd.grad(LAYERS[layers](conv_output), conv_output, grad)

    (grad_in,) = benchmark.pedantic(
        forward_backward,
        rounds=bench_settings["rounds"],
        warmup_rounds=bench_settings["warmup_rounds"],
        iterations=1,
    )
    assert grad_in.shape == shape
