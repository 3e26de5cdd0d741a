"""The flowers CNN in PyTorch, built from the framework-neutral :class:`~bench.architecture.CNNSpec`.

Weights cross the interface in Keras' layout (conv HWIO, dense (in, out), Flatten in HWC order) and are
translated here, both ways, so that both frameworks compute the same function from the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from bench.architecture import CNNSpec


class Dropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn as ``rand >= p`` instead of by ``bernoulli_``.

    Same distribution (each unit kept with probability 1 - p, kept units scaled by 1 / (1 - p)), but torch's
    CPU ``bernoulli_`` is ~2.5x slower than ``uniform_``: this makes a training step at 180 px ~10 % faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # Uniforms in float32 even under bf16 autocast, so the keep probability is exactly 1 - p.
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def build_model(spec: CNNSpec) -> nn.Sequential:
    """Conv blocks (conv, max-pool, ReLU, dropout), Flatten, Linear+ReLU, Linear logits, as in the seed blog.

    Module names match the neutral weight names (``conv0``, ..., ``dense``, ``logits``).
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = spec.channels
    for i, filters in enumerate(spec.filters):
        layers[f"conv{i}"] = nn.Conv2d(in_channels, filters, spec.kernel_size, padding="same")
        layers[f"pool{i}"] = nn.MaxPool2d(2)  # floors odd sizes, like Keras' MaxPooling2D(2)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"dropout{i}"] = Dropout(spec.dropout)
        in_channels = filters
    layers["flatten"] = nn.Flatten()
    layers["dense"] = nn.Linear(spec.flat_features, spec.dense_units)
    layers["relu_dense"] = nn.ReLU()
    layers["logits"] = nn.Linear(spec.dense_units, spec.num_classes)
    return nn.Sequential(layers)


def _to_torch_kernel(name: str, kernel: np.ndarray, spec: CNNSpec) -> np.ndarray:
    """Keras layout → torch layout for one kernel."""
    if kernel.ndim == 4:  # conv: HWIO → OIHW
        return kernel.transpose(3, 2, 0, 1)
    if name == "dense":
        # Keras' Flatten reads the feature map in HWC order, torch's (NCHW, logically) in CHW order.
        size, channels = spec.feature_size, spec.filters[-1]
        kernel = kernel.reshape(size, size, channels, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
    return kernel.T  # dense: (in, out) → (out, in)


def _to_keras_kernel(name: str, kernel: np.ndarray, spec: CNNSpec) -> np.ndarray:
    """Torch layout → Keras layout for one kernel: the inverse of :func:`_to_torch_kernel`."""
    if kernel.ndim == 4:  # conv: OIHW → HWIO
        return kernel.transpose(2, 3, 1, 0)
    kernel = kernel.T
    if name == "dense":
        size, channels = spec.feature_size, spec.filters[-1]
        kernel = kernel.reshape(channels, size, size, -1).transpose(1, 2, 0, 3).reshape(kernel.shape)
    return kernel


@torch.no_grad()
def set_weights(model: nn.Sequential, spec: CNNSpec, weights: dict[str, np.ndarray]) -> None:
    """Load neutral (Keras-layout) weights into ``model``, keeping each parameter's device and layout."""
    for layer in spec.layer_names():
        module = getattr(model, layer)
        kernel = _to_torch_kernel(layer, weights[f"{layer}/kernel"], spec)
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
        module.bias.copy_(torch.from_numpy(weights[f"{layer}/bias"]))


@torch.no_grad()
def get_weights(model: nn.Sequential, spec: CNNSpec) -> dict[str, np.ndarray]:
    """The current weights in the neutral Keras layout (contiguous float32 numpy arrays)."""
    weights = {}
    for layer in spec.layer_names():
        module = getattr(model, layer)
        kernel = module.weight.detach().float().cpu().numpy()
        weights[f"{layer}/kernel"] = np.ascontiguousarray(_to_keras_kernel(layer, kernel, spec))
        weights[f"{layer}/bias"] = module.bias.detach().float().cpu().numpy().copy()
    return weights


def kernels(model: nn.Sequential, spec: CNNSpec) -> list[nn.Parameter]:
    """The parameters that carry the L2 penalty: conv and dense kernels."""
    return [getattr(model, layer).weight for layer in spec.layer_names()]


def biases(model: nn.Sequential, spec: CNNSpec) -> list[nn.Parameter]:
    """The parameters without an L2 penalty, as Keras' kernel_regularizer leaves them."""
    return [getattr(model, layer).bias for layer in spec.layer_names()]
