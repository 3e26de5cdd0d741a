"""The flowers CNN described once, without a framework: layer shapes, initial weights and FLOPs.

Both backends build the same layers from :class:`CNNSpec` and load the same initial weights, made here in numpy
with Keras' defaults (glorot_uniform kernels, zero biases). Weights use Keras' layout: conv kernels HWIO, dense
kernels (in, out), and the Flatten before the first dense layer reads the feature map in HWC order. Each
backend translates that layout on load (docs/design.md, "Parity").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.config import ModelConfig


@dataclass(frozen=True)
class CNNSpec:
    """Everything a backend needs to build the network."""

    image_size: int
    channels: int
    num_classes: int
    filters: tuple[int, ...]
    kernel_size: int
    dense_units: int
    dropout: float

    @classmethod
    def from_config(cls, model: ModelConfig, image_size: int, num_classes: int, channels: int = 3) -> CNNSpec:
        return cls(
            image_size=image_size,
            channels=channels,
            num_classes=num_classes,
            filters=tuple(model.filters),
            kernel_size=model.kernel_size,
            dense_units=model.dense_units,
            dropout=model.dropout,
        )

    @property
    def feature_size(self) -> int:
        """Side of the feature map after the conv blocks (each halves it, flooring, like MaxPool2D(2))."""
        size = self.image_size
        for _ in self.filters:
            size //= 2
        return size

    @property
    def flat_features(self) -> int:
        return self.feature_size**2 * self.filters[-1]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names (``conv0/kernel``, ..., ``dense/kernel``, ``logits/bias``) and Keras-layout shapes."""
        shapes: dict[str, tuple[int, ...]] = {}
        in_channels = self.channels
        for i, out_channels in enumerate(self.filters):
            shapes[f"conv{i}/kernel"] = (self.kernel_size, self.kernel_size, in_channels, out_channels)
            shapes[f"conv{i}/bias"] = (out_channels,)
            in_channels = out_channels
        shapes["dense/kernel"] = (self.flat_features, self.dense_units)
        shapes["dense/bias"] = (self.dense_units,)
        shapes["logits/kernel"] = (self.dense_units, self.num_classes)
        shapes["logits/bias"] = (self.num_classes,)
        return shapes

    def layer_names(self) -> list[str]:
        """The layers that carry weights (``conv0``, ..., ``dense``, ``logits``), in order."""
        return [name.split("/")[0] for name in self.weight_shapes() if name.endswith("/kernel")]

    def kernel_names(self) -> list[str]:
        """The weights that carry the L2 penalty (kernels, never biases), as Keras' kernel_regularizer does."""
        return [name for name in self.weight_shapes() if name.endswith("/kernel")]

    def forward_flops_per_image(self) -> int:
        """Multiply-adds x 2 of convolutions and dense layers for one image (pooling and ReLU are negligible)."""
        flops = 0
        size, in_channels = self.image_size, self.channels
        for out_channels in self.filters:
            flops += 2 * size * size * self.kernel_size**2 * in_channels * out_channels  # 'same' padding
            size, in_channels = size // 2, out_channels
        flops += 2 * self.flat_features * self.dense_units + 2 * self.dense_units * self.num_classes
        return flops

    def train_flops_per_image(self) -> int:
        """Forward + backward, the usual 3x forward (backward computes gradients of inputs and of weights)."""
        return 3 * self.forward_flops_per_image()


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Keras' glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)), receptive field included."""
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_weights(spec: CNNSpec, seed: int) -> dict[str, np.ndarray]:
    """The run's starting point, identical for every backend given the same seed."""
    rng = np.random.default_rng([seed, 0])  # stream 0 of the seed: weights (stream 1+epoch: batch order)
    weights = {}
    for name, shape in spec.weight_shapes().items():
        weights[name] = (
            _glorot_uniform(rng, shape) if name.endswith("/kernel") else np.zeros(shape, np.float32)
        )
    return weights
