"""Yardsticks for the torch backend's speed: a plain PyTorch training loop and the machine's matmul peak.

This module is the backend's :class:`bench.backend.Reference` (``BareLoop`` and ``matmul_gflops``, loaded by
:func:`bench.backend.load_reference`): ``python -m bench.throughput`` compares the suite's
:class:`~backends.torch.trainer.Trainer` with them.
The bare loop is the textbook one: an ``nn.Sequential`` of the same layers in channels_last memory format, and
per batch ``zero_grad`` / forward / ``cross_entropy`` / ``backward`` / ``step``, under ``torch.autocast`` for
bf16. The layer sizes (:class:`CNNSpec`), the starting weights and the optimizer's step come from the suite: the
step is the one :data:`~backends.torch.optim.BUILDERS` makes (stock fused ``torch.optim`` classes, plus Keras'
corrections, a few scalar writes per step), so that the two loops differ in everything but the update.
The ResNet's bare loop (:class:`ResNetSpec`) is the suite's module structure with stock ``nn.BatchNorm2d``
(``momentum=1 - bn_momentum, eps=bn_epsilon``: what a user would write to mimic Keras; its moving variance is
the unbiased one) in place of the suite's :class:`~backends.torch.model.KerasBatchNorm2d`, so the ratio shows
what the suite's own BatchNorm costs. Threads and deterministic algorithms are process-wide: the bare loop runs
with whatever ``Trainer.setup`` set.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch import model as model_lib
from backends.torch.optim import make_optimizer
from bench.architecture import CNNSpec, ModelSpec, ResNetSpec
from bench.config import ConstantScheduleConfig
from bench.optimizers import OptimizerConfig
from bench.timing import Stopwatch, time_calls

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _build_model(spec: ModelSpec) -> nn.Module:
    if isinstance(spec, ResNetSpec):
        return model_lib.ResNet(
            spec,
            norm=lambda channels: nn.BatchNorm2d(
                channels, eps=spec.bn_epsilon, momentum=1 - spec.bn_momentum
            ),
        )
    return _build_cnn(spec)


def _build_cnn(spec: CNNSpec) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = spec.channels
    for filters in spec.filters:
        layers += [
            nn.Conv2d(in_channels, filters, spec.kernel_size, padding="same"),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Dropout(spec.dropout),
        ]
        in_channels = filters
    layers += [
        nn.Flatten(),
        nn.Linear(spec.flat_features, spec.dense_units),
        nn.ReLU(),
        nn.Linear(spec.dense_units, spec.num_classes),
    ]
    return nn.Sequential(*layers)


@torch.no_grad()
def _load_weights(model: nn.Sequential, weights: dict[str, np.ndarray]) -> None:
    """Copy the neutral (Keras-layout) weights in, in layer order. The dense rows stay in Keras' HWC order:
    the function differs from the suite's, its cost does not."""
    kernels = [w for name, w in weights.items() if name.endswith("/kernel")]
    biases = [w for name, w in weights.items() if name.endswith("/bias")]
    weighted = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    for module, kernel, bias in zip(weighted, kernels, biases, strict=True):
        kernel = (
            kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
        )  # HWIO → OIHW, (in, out) → (out, in)
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
        module.bias.copy_(torch.from_numpy(bias))


class BareLoop:
    """The model and a stock optimizer; :meth:`train` may be called again and again."""

    def __init__(
        self,
        spec: ModelSpec,
        weights: dict[str, np.ndarray],
        optimizer: OptimizerConfig,
        batch_size: int,
        precision: str = "fp32",
    ):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = _build_model(spec).to(self.device, memory_format=torch.channels_last)
        if isinstance(spec, ResNetSpec):  # the suite's module names, so the suite's loader fits
            model_lib.set_weights(self.model, spec, weights)
            kernels, biases = model_lib.kernels(self.model, spec), model_lib.others(self.model, spec)
        else:
            _load_weights(self.model, weights)
            weighted = [m for m in self.model if isinstance(m, (nn.Conv2d, nn.Linear))]
            kernels, biases = [m.weight for m in weighted], [m.bias for m in weighted]
        self.optimizer = make_optimizer(
            optimizer, ConstantScheduleConfig(name="constant"), 1, kernels, biases
        )
        self.batch_size, self.bf16 = batch_size, precision == "bf16"

    def _step(self, images: np.ndarray, labels: np.ndarray) -> None:
        # NHWC uint8 → an NCHW view whose memory is already channels_last; scaled on the device.
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(labels.astype(np.int64)).to(self.device)
        self.optimizer.optimizer.zero_grad()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.model(x).float(), y)
        loss.backward()
        self.optimizer.step()
        if self.device.type == "cuda":
            loss.item()  # wait for the step, as a loop that logs its loss does; CPU steps are synchronous

    def train(self, images: np.ndarray, labels: np.ndarray) -> list[float]:
        """One pass over the uint8 NHWC ``images`` in whole batches; seconds of each step.

        The first call's first steps include one-off costs (oneDNN kernel selection, first-touch allocations):
        the caller discards them as warm-up.
        """
        self.model.train()
        step_times = []
        for start in range(0, len(images) // self.batch_size * self.batch_size, self.batch_size):
            with Stopwatch() as watch:
                self._step(images[start : start + self.batch_size], labels[start : start + self.batch_size])
            step_times.append(watch.seconds)
        return step_times


def matmul_gflops(size: int, dtype: str = "fp32", repeats: int = 5) -> float | None:
    """The best GFLOP/s of ``size`` x ``size`` matmuls over ``repeats`` (after one warm-up), or None when
    torch has no ``dtype`` matmul on this device. Best, not median: a peak is what the machine can do, and a
    neighbour's process only ever slows a repeat down."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator(device).manual_seed(0)
    try:
        a, b = (
            torch.rand(size, size, generator=generator, device=device, dtype=TORCH_DTYPES[dtype])
            for _ in "ab"
        )
        sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        seconds = time_calls(lambda: (torch.mm(a, b), sync()), repeats)
    except RuntimeError:  # "not implemented for 'BFloat16'" on old CPUs or builds
        return None
    return 2 * size**3 / min(seconds) / 1e9
