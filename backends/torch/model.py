"""The flowers CNN in PyTorch, built from the framework-neutral :class:`~bench.architecture.CNNSpec`.

Weights cross the interface in Keras' layout (conv HWIO, dense (in, out), Flatten in HWC order) and are
translated here, both ways, so that both frameworks compute the same function from the same numbers. The
Flatten reads the feature map in HWC order too, as Keras' does: on channels_last memory that is a free view,
and the dense kernel's rows need no permutation.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from backends.torch.fused import PoolReluDropout
from bench.architecture import CNNSpec


class FlattenHWC(nn.Module):
    """Flatten N x C x H x W to N x (H*W*C) in Keras' HWC order: a view of channels_last memory, where
    ``nn.Flatten``'s CHW order would copy the feature map forward and its gradient backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def build_model(spec: CNNSpec) -> nn.Sequential:
    """Conv blocks (conv, then max-pool, ReLU and dropout fused: :mod:`backends.torch.fused`), Flatten,
    Linear+ReLU, Linear logits, as in the seed blog.

    Module names match the neutral weight names (``conv0``, ..., ``dense``, ``logits``).
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = spec.channels
    for i, filters in enumerate(spec.filters):
        layers[f"conv{i}"] = nn.Conv2d(in_channels, filters, spec.kernel_size, padding="same")
        layers[f"pool_relu_dropout{i}"] = PoolReluDropout(spec.dropout)
        in_channels = filters
    layers["flatten"] = FlattenHWC()
    layers["dense"] = nn.Linear(spec.flat_features, spec.dense_units)
    layers["relu_dense"] = nn.ReLU()
    layers["logits"] = nn.Linear(spec.dense_units, spec.num_classes)
    return nn.Sequential(layers)


def _to_torch_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras layout → torch layout for one kernel: conv HWIO → OIHW, dense (in, out) → (out, in)."""
    return kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T


def _to_keras_kernel(kernel: np.ndarray) -> np.ndarray:
    """Torch layout → Keras layout for one kernel: the inverse of :func:`_to_torch_kernel`."""
    return kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T


@torch.no_grad()
def set_weights(model: nn.Sequential, spec: CNNSpec, weights: dict[str, np.ndarray]) -> None:
    """Load neutral (Keras-layout) weights into ``model``, keeping each parameter's device and layout."""
    for layer in spec.layer_names():
        module = getattr(model, layer)
        kernel = _to_torch_kernel(weights[f"{layer}/kernel"])
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
        module.bias.copy_(torch.from_numpy(weights[f"{layer}/bias"]))


@torch.no_grad()
def get_weights(model: nn.Sequential, spec: CNNSpec) -> dict[str, np.ndarray]:
    """The current weights in the neutral Keras layout (contiguous float32 numpy arrays)."""
    weights = {}
    for layer in spec.layer_names():
        module = getattr(model, layer)
        kernel = module.weight.detach().float().cpu().numpy()
        weights[f"{layer}/kernel"] = np.ascontiguousarray(_to_keras_kernel(kernel))
        weights[f"{layer}/bias"] = module.bias.detach().float().cpu().numpy().copy()
    return weights


def kernels(model: nn.Sequential, spec: CNNSpec) -> list[nn.Parameter]:
    """The parameters that carry the L2 penalty: conv and dense kernels."""
    return [getattr(model, layer).weight for layer in spec.layer_names()]


def biases(model: nn.Sequential, spec: CNNSpec) -> list[nn.Parameter]:
    """The parameters without an L2 penalty, as Keras' kernel_regularizer leaves them."""
    return [getattr(model, layer).bias for layer in spec.layer_names()]
