"""The built-in models described once, without a framework: layer shapes, initial weights and FLOPs.

Two models: the seed blog's CNN (:class:`CNNSpec`, ``model=flowers_cnn``) and a BatchNorm ResNet
(:class:`ResNetSpec`, ``model=resnet``); a user's own model is a :class:`UserModelSpec`, which each backend
builds from its own factory. :func:`model_spec` makes the spec of a run's model config. Both backends
build the same layers from a spec and load the same initial weights, made here in numpy with Keras' defaults
(glorot_uniform kernels, zero biases; BatchNorm gamma 1, beta 0, moving mean 0, moving variance 1). Weights use
Keras' layout and names (``<layer>/<variable>``, each layer's variables in Keras' ``get_weights`` order): conv
kernels HWIO, dense kernels (in, out), and the Flatten before the CNN's first dense layer reads the feature map
in HWC order. The BatchNorm moving statistics are part of the weights (not trainable, but part of the state a
run evolves, so parity compares them). Each backend translates that layout on load (docs/design.md, "Parity").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.registry import BACKEND_NAMES

#: Variables of a layer that are state, not trainable: BatchNorm's moving statistics.
STATE_VARIABLES = ("moving_mean", "moving_variance")


def _layer_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, list[str]]:
    """Layer name -> its variables' full names, in the order of ``shapes`` (Keras' get_weights order)."""
    layers: dict[str, list[str]] = {}
    for name in shapes:
        layers.setdefault(name.split("/")[0], []).append(name)
    return layers


@dataclass(frozen=True)
class CNNSpec:
    """Everything a backend needs to build the network."""

    name: ClassVar[str] = "flowers_cnn"

    image_size: int
    channels: int
    num_classes: int
    filters: tuple[int, ...]
    kernel_size: int
    dense_units: int
    dropout: float

    @staticmethod
    def min_image_size(model: Any) -> tuple[int, str]:
        """The smallest input side of a bench.config.CNNConfig (not imported: bench.config asks this module, never
        the other way round), and why: each conv block halves it (flooring)."""
        return 2 ** len(model.filters), f"{len(model.filters)} conv blocks (each halves it)"

    @classmethod
    def from_config(cls, model: Any, image_size: int, num_classes: int, channels: int = 3) -> CNNSpec:
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
        return list(self.layer_weights())

    def layer_weights(self) -> dict[str, list[str]]:
        """Layer name -> its variables' full names, in Keras' get_weights order."""
        return _layer_weights(self.weight_shapes())

    def kernel_names(self) -> list[str]:
        """The weights that carry the L2 penalty (kernels, never biases), as Keras' kernel_regularizer does."""
        return [name for name in self.weight_shapes() if name.endswith("/kernel")]

    def state_names(self) -> list[str]:
        """The variables that are not trainable: none in the CNN."""
        return [name for name in self.weight_shapes() if name.split("/")[1] in STATE_VARIABLES]

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


@dataclass(frozen=True)
class ConvSpec:
    """One convolution without bias (BatchNorm follows it), 'same' padding as Keras and TensorFlow define it."""

    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    in_size: int

    @property
    def out_size(self) -> int:
        return -(-self.in_size // self.stride)  # 'same': ceil(in / stride)

    @property
    def padding(self) -> tuple[int, int]:
        """(before, after) zero rows (and columns) of TensorFlow's 'same' padding: asymmetric, one more after,
        where a stride-2 conv meets an even size (torch's symmetric padding would shift every window)."""
        total = max((self.out_size - 1) * self.stride + self.kernel_size - self.in_size, 0)
        return total // 2, total - total // 2

    def flops(self) -> int:
        return 2 * self.out_size**2 * self.kernel_size**2 * self.in_channels * self.out_channels


@dataclass(frozen=True)
class BlockSpec:
    """One basic block: conv1 (stride), bn1, ReLU, conv2, bn2, plus the shortcut (identity, or a strided 1x1
    conv and BatchNorm where the size or width changes), then ReLU."""

    name: str
    conv1: ConvSpec
    conv2: ConvSpec
    shortcut: ConvSpec | None

    def convs(self) -> list[ConvSpec]:
        return [self.conv1, self.conv2, *([self.shortcut] if self.shortcut else [])]


@dataclass(frozen=True)
class ResNetSpec:
    """A post-activation BatchNorm ResNet (He et al. 2016's CIFAR family; ResNet-20 at the defaults): a 3x3 stem
    conv, stages of basic blocks (stage 2 on halves the size in its first block), global average pooling and a
    dense logits layer. Convs have no bias (the BatchNorm after each has beta); BatchNorm has Keras' defaults.

    Layer names: ``stem_conv``, ``stem_bn``, ``stage<s>_block<b>_{conv1,bn1,conv2,bn2}``,
    ``stage<s>_block1_shortcut_{conv,bn}`` (1-based), ``logits``.
    """

    name: ClassVar[str] = "resnet"

    image_size: int
    channels: int
    num_classes: int
    stage_filters: tuple[int, ...]
    blocks_per_stage: int
    bn_momentum: float = 0.99  # Keras' BatchNormalization defaults (torch: momentum 0.1 = 1 - 0.9, eps 1e-5)
    bn_epsilon: float = 1e-3

    @staticmethod
    def min_image_size(model: Any) -> tuple[int, str]:
        """The smallest input side of a bench.config.ResNetConfig, and why: each stage after the first halves it
        (rounding up)."""
        downsamplings = len(model.stage_filters) - 1
        return 2**downsamplings, f"{len(model.stage_filters)} ResNet stages ({downsamplings} halve it)"

    @classmethod
    def from_config(cls, model: Any, image_size: int, num_classes: int, channels: int = 3) -> ResNetSpec:
        return cls(
            image_size=image_size,
            channels=channels,
            num_classes=num_classes,
            stage_filters=tuple(model.stage_filters),
            blocks_per_stage=model.blocks_per_stage,
            bn_momentum=model.bn_momentum,
            bn_epsilon=model.bn_epsilon,
        )

    @property
    def stem(self) -> ConvSpec:
        return ConvSpec("stem_conv", self.channels, self.stage_filters[0], 3, 1, self.image_size)

    def blocks(self) -> list[BlockSpec]:
        blocks = []
        size, in_channels = self.image_size, self.stage_filters[0]
        for s, filters in enumerate(self.stage_filters, start=1):
            for b in range(1, self.blocks_per_stage + 1):
                stride = 2 if s > 1 and b == 1 else 1
                name = f"stage{s}_block{b}"
                conv1 = ConvSpec(f"{name}_conv1", in_channels, filters, 3, stride, size)
                conv2 = ConvSpec(f"{name}_conv2", filters, filters, 3, 1, conv1.out_size)
                shortcut = (
                    ConvSpec(f"{name}_shortcut_conv", in_channels, filters, 1, stride, size)
                    if stride != 1 or in_channels != filters
                    else None
                )
                blocks.append(BlockSpec(name, conv1, conv2, shortcut))
                size, in_channels = conv1.out_size, filters
        return blocks

    @property
    def feature_size(self) -> int:
        """Side of the last stage's feature map, before global average pooling."""
        return self.blocks()[-1].conv2.out_size

    def convs(self) -> list[ConvSpec]:
        return [self.stem] + [conv for block in self.blocks() for conv in block.convs()]

    @staticmethod
    def bn_of(conv: ConvSpec) -> str:
        """The BatchNorm layer after a conv: ``..._conv1`` -> ``..._bn1``, ``stem_conv`` -> ``stem_bn``."""
        head, _, tail = conv.name.rpartition("_")
        return f"{head}_{tail.replace('conv', 'bn')}"

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Variable names and Keras-layout shapes: each conv's kernel, then its BatchNorm's gamma, beta,
        moving_mean and moving_variance (Keras' get_weights order); last ``logits/kernel``, ``logits/bias``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for conv in self.convs():
            k = conv.kernel_size
            shapes[f"{conv.name}/kernel"] = (k, k, conv.in_channels, conv.out_channels)
            for variable in ("gamma", "beta", *STATE_VARIABLES):
                shapes[f"{self.bn_of(conv)}/{variable}"] = (conv.out_channels,)
        shapes["logits/kernel"] = (self.stage_filters[-1], self.num_classes)
        shapes["logits/bias"] = (self.num_classes,)
        return shapes

    def layer_names(self) -> list[str]:
        return list(self.layer_weights())

    def layer_weights(self) -> dict[str, list[str]]:
        """Layer name -> its variables' full names, in Keras' get_weights order."""
        return _layer_weights(self.weight_shapes())

    def kernel_names(self) -> list[str]:
        """The weights that carry the L2 penalty: conv and dense kernels (never biases, gamma or beta), as a
        Keras kernel_regularizer on each Conv2D and Dense does."""
        return [name for name in self.weight_shapes() if name.endswith("/kernel")]

    def state_names(self) -> list[str]:
        """BatchNorm's moving statistics: updated by training steps, not by the optimizer (never decayed)."""
        return [name for name in self.weight_shapes() if name.split("/")[1] in STATE_VARIABLES]

    def parameter_count(self) -> int:
        """Trainable parameters (the moving statistics left out)."""
        state = set(self.state_names())
        return sum(int(np.prod(shape)) for name, shape in self.weight_shapes().items() if name not in state)

    def forward_flops_per_image(self) -> int:
        """Multiply-adds x 2 of the convolutions and the dense layer for one image (BatchNorm, ReLU, the
        residual additions and the pooling are elementwise: under 1 % here, left out as in the CNN's count)."""
        return sum(conv.flops() for conv in self.convs()) + 2 * self.stage_filters[-1] * self.num_classes

    def train_flops_per_image(self) -> int:
        """Forward + backward, the usual 3x forward."""
        return 3 * self.forward_flops_per_image()


@dataclass(frozen=True)
class UserModelSpec:
    """A user's own model (bench.config.UserModelConfig): each backend builds it from its own factory, so there
    is no neutral description, no shared initial weights and no parity between backends. The one rule the
    suite adds is which weights carry the L2 penalty: every trainable weight with two or more dimensions (conv
    and dense kernels, embeddings), never a 1-D one (biases, normalization scales and shifts), as on the
    built-in models (:func:`is_kernel`)."""

    name: str
    image_size: int
    channels: int
    num_classes: int
    factories: dict[str, dict[str, Any]]  # backend name -> its factory's _target_ and keyword arguments

    @staticmethod
    def min_image_size(model: Any) -> tuple[int, str]:
        return 1, "any model"  # the factory is given the size and must cope with it

    @classmethod
    def from_config(cls, model: Any, image_size: int, num_classes: int, channels: int = 3) -> UserModelSpec:
        entries = {name: model.entry(name) for name in BACKEND_NAMES}
        factories = {name: dict(entry) for name, entry in entries.items() if entry is not None}
        return cls(model.name, image_size, channels, num_classes, factories)


def is_kernel(shape: tuple[int, ...]) -> bool:
    """Whether a trainable weight of this shape carries the L2 penalty: two or more dimensions."""
    return len(shape) >= 2


ModelSpec = CNNSpec | ResNetSpec | UserModelSpec
#: Each built-in model's spec, by ``model.name`` (the options of bench.config.MODEL_SCHEMAS).
SPECS: dict[str, type[CNNSpec] | type[ResNetSpec]] = {CNNSpec.name: CNNSpec, ResNetSpec.name: ResNetSpec}


def spec_class(model: Any) -> type[CNNSpec] | type[ResNetSpec] | type[UserModelSpec]:
    """The spec class of a model config (a bench.config.ModelConfig): a built-in one's by its name, else a
    user's (validated configs hold no other)."""
    return SPECS.get(model.name, UserModelSpec)


def model_spec(model: Any, image_size: int, num_classes: int, channels: int = 3) -> ModelSpec:
    """The network a run trains: its model config at the data's image size and number of classes."""
    return spec_class(model).from_config(model, image_size, num_classes, channels)


def has_neutral_weights(spec: ModelSpec) -> bool:
    """Whether both backends start ``spec`` from the same numbers (:func:`initial_weights`): the built-in
    models; a user's model starts from its framework's own initialization under the run's seed."""
    return not isinstance(spec, UserModelSpec)


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Keras' glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)), receptive field included."""
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


#: Keras' initializers of the variables that are not kernels (glorot_uniform) or zeros (biases, beta, mean).
ONES = ("gamma", "moving_variance")


def initial_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """The run's starting point, identical for every backend given the same seed. Kernels draw from the seed's
    stream in :meth:`weight_shapes` order (the CNN's draws are those it always had)."""
    rng = np.random.default_rng([seed, 0])  # stream 0 of the seed: weights (stream 1+epoch: batch order)
    weights = {}
    for name, shape in spec.weight_shapes().items():
        variable = name.split("/")[1]
        if variable == "kernel":
            weights[name] = _glorot_uniform(rng, shape)
        else:
            weights[name] = (np.ones if variable in ONES else np.zeros)(shape, np.float32)
    return weights
