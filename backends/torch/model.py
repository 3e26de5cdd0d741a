"""The built-in models in PyTorch, built from the framework-neutral specs of :mod:`bench.architecture`: the
seed blog's CNN (:class:`~bench.architecture.CNNSpec`) and the BatchNorm ResNet
(:class:`~bench.architecture.ResNetSpec`, with :class:`KerasBatchNorm2d`, Keras' BatchNorm semantics).

Weights cross the interface in Keras' layout (conv HWIO, dense (in, out), Flatten in HWC order) and are
translated here, both ways, so that both frameworks compute the same function from the same numbers. The
Flatten reads the feature map in HWC order too, as Keras' does: on channels_last memory that is a free view,
and the dense kernel's rows need no permutation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.conv import Conv3x3
from backends.torch.fused import PoolReluDropout
from bench.architecture import BlockSpec, CNNSpec, ConvSpec, ModelSpec, ResNetSpec, UserModelSpec, is_kernel
from bench.backend import build_user_model


class FlattenHWC(nn.Module):
    """Flatten N x C x H x W to N x (H*W*C) in Keras' HWC order: a view of channels_last memory, where
    ``nn.Flatten``'s CHW order would copy the feature map forward and its gradient backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def build_model(spec: ModelSpec) -> nn.Module:
    """The network of ``spec``; its modules are named so that :func:`layer_modules` finds each neutral layer
    (a user's model: its own factory's ``nn.Module``, told ``input_shape=(channels, height, width)``)."""
    if isinstance(spec, UserModelSpec):
        shape = (spec.channels, spec.image_size, spec.image_size)
        return build_user_model(spec, "torch", shape, lambda module: _eval_logits(module, shape).shape)
    if isinstance(spec, ResNetSpec):
        return ResNet(spec)
    return build_cnn(spec)


@torch.no_grad()
def _eval_logits(module: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """The output of a freshly built module on two blank images, in evaluation mode (no BatchNorm update)."""
    module.eval()
    try:
        return module(torch.zeros(2, *shape))
    finally:
        module.train()


def build_cnn(spec: CNNSpec) -> nn.Sequential:
    """Conv blocks (conv, then max-pool, ReLU and dropout fused: :mod:`backends.torch.fused`), Flatten,
    Linear+ReLU, Linear logits, as in the seed blog.

    Module names match the neutral weight names (``conv0``, ..., ``dense``, ``logits``).
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = spec.channels
    for i, filters in enumerate(spec.filters):
        # 3x3: nn.Conv2d with C++ kernels where oneDNN's are slow (backends/torch/conv.py)
        layers[f"conv{i}"] = (
            Conv3x3(in_channels, filters)
            if spec.kernel_size == 3
            else nn.Conv2d(in_channels, filters, spec.kernel_size, padding="same")
        )
        layers[f"pool_relu_dropout{i}"] = PoolReluDropout(spec.dropout)
        in_channels = filters
    layers["flatten"] = FlattenHWC()
    layers["dense"] = nn.Linear(spec.flat_features, spec.dense_units)
    layers["relu_dense"] = nn.ReLU()
    layers["logits"] = nn.Linear(spec.dense_units, spec.num_classes)
    return nn.Sequential(layers)


class KerasBatchNorm2d(nn.Module):
    """BatchNorm with Keras' semantics, which ``nn.BatchNorm2d`` cannot be configured to have.

    Normalization is torch's own kernel (``torch.native_batch_norm``: the biased batch variance in training, the
    moving statistics in evaluation; the same function as Keras'). The moving statistics follow Keras' update,
    ``moving = moving * momentum + batch * (1 - momentum)`` with ``momentum`` 0.99 and the *biased* batch
    variance. ``nn.BatchNorm2d`` would blend with ``1 - momentum`` the *unbiased* variance (x n/(n-1)), which no
    choice of its arguments undoes, so the kernel is given no running buffers to update; the update uses the
    batch mean and the batch variance the kernel normalized with, recovered from its saved inverse standard
    deviation as ``invstd**-2 - eps`` (to float32 round-off of ``var + eps``: ~1e-7 relative). That costs nothing:
    a separate ``torch.var_mean`` over the activations took 7x the normalization's own time on channels-last
    CPU tensors. Parameter and buffer names are ``nn.BatchNorm2d``'s (``weight`` = gamma, ``bias`` = beta,
    ``running_mean``, ``running_var``).
    """

    def __init__(self, channels: int, momentum: float, epsilon: float):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                eps=self.epsilon,
            )
        out, mean, invstd = torch.native_batch_norm(
            x, self.weight, self.bias, None, None, True, 0.0, self.epsilon
        )
        with torch.no_grad():  # float32 statistics, also under bf16 (Keras upcasts BatchNorm's input)
            variance = invstd.double().pow(-2).sub(self.epsilon).clamp_min(0.0).float()
            self.running_mean.copy_(self.running_mean * self.momentum + mean.float() * (1.0 - self.momentum))
            self.running_var.copy_(self.running_var * self.momentum + variance * (1.0 - self.momentum))
        return out


class SameConv2d(nn.Conv2d):
    """A bias-free conv with TensorFlow's 'same' padding: symmetric where it is (a stride-1 3x3), else the
    extra row and column after (a stride-2 3x3 on an even size), by an explicit ``F.pad``."""

    def __init__(self, conv: ConvSpec):
        before, after = conv.padding
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            padding=before if before == after else 0, bias=False,
        )  # fmt: skip
        self.pad = None if before == after else (before, after, before, after)  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self.pad is None else F.pad(x, self.pad))


Norm = Callable[[int], nn.Module]


class BasicBlock(nn.Module):
    """conv1-bn1-ReLU-conv2-bn2, plus the shortcut (identity, or a strided 1x1 conv and BatchNorm), then ReLU."""

    def __init__(self, block: BlockSpec, norm: Norm):
        super().__init__()
        self.conv1, self.bn1 = SameConv2d(block.conv1), norm(block.conv1.out_channels)
        self.conv2, self.bn2 = SameConv2d(block.conv2), norm(block.conv2.out_channels)
        self.shortcut_conv = SameConv2d(block.shortcut) if block.shortcut else None
        self.shortcut_bn = norm(block.shortcut.out_channels) if block.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        shortcut = x if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(x))
        return F.relu(y + shortcut, inplace=True)


class ResNet(nn.Module):
    """The ResNet of a :class:`~bench.architecture.ResNetSpec`. Modules are named after the neutral layers
    (``stem_conv``, ``stage1_block1.conv1`` = ``stage1_block1_conv1``, ..., ``logits``).

    Args:
        norm: the BatchNorm to use; default :class:`KerasBatchNorm2d` (the suite's, at parity). The bare loop of
            ``bench.throughput`` passes stock ``nn.BatchNorm2d``.
    """

    def __init__(self, spec: ResNetSpec, norm: Norm | None = None):
        super().__init__()
        if norm is None:
            norm = lambda channels: KerasBatchNorm2d(channels, spec.bn_momentum, spec.bn_epsilon)  # noqa: E731
        self.stem_conv, self.stem_bn = SameConv2d(spec.stem), norm(spec.stem.out_channels)
        self.blocks = [block.name for block in spec.blocks()]
        for block in spec.blocks():
            self.add_module(block.name, BasicBlock(block, norm))
        self.logits = nn.Linear(spec.stage_filters[-1], spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem_conv(x)), inplace=True)
        for name in self.blocks:
            x = getattr(self, name)(x)
        return self.logits(x.mean((2, 3)))  # global average pooling


def layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Neutral layer name -> module: torch's dotted module paths with ``_`` for ``.``."""
    return {name.replace(".", "_"): module for name, module in model.named_modules() if name}


#: Neutral variable name -> the torch attribute that holds it (BatchNorm: nn.BatchNorm2d's names).
TORCH_NAMES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _to_torch_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras layout → torch layout for one kernel: conv HWIO → OIHW, dense (in, out) → (out, in)."""
    return kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T


def _to_keras_kernel(kernel: np.ndarray) -> np.ndarray:
    """Torch layout → Keras layout for one kernel: the inverse of :func:`_to_torch_kernel`."""
    return kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T


def _tensor(modules: dict[str, nn.Module], name: str) -> torch.Tensor:
    layer, variable = name.split("/")
    return getattr(modules[layer], TORCH_NAMES[variable])


@torch.no_grad()
def set_weights(model: nn.Module, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Load neutral (Keras-layout) weights into ``model``, BatchNorm's moving statistics included, keeping
    each tensor's device and layout."""
    modules = layer_modules(model)
    for name in spec.weight_shapes():
        value = _to_torch_kernel(weights[name]) if name.endswith("/kernel") else weights[name]
        _tensor(modules, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))


@torch.no_grad()
def get_weights(model: nn.Module, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The current weights in the neutral Keras layout (contiguous float32 numpy arrays: copies, never views of
    the live tensors, which the next step changes); a user's model's under its own state_dict names."""
    if isinstance(spec, UserModelSpec):
        return {
            name: value.detach().float().cpu().numpy().copy() for name, value in model.state_dict().items()
        }
    modules = layer_modules(model)
    weights = {}
    for name in spec.weight_shapes():
        value = _tensor(modules, name).detach().float().cpu().numpy()
        weights[name] = np.array(_to_keras_kernel(value) if name.endswith("/kernel") else value, order="C")
    return weights


def kernels(model: nn.Module, spec: ModelSpec) -> list[nn.Parameter]:
    """The parameters that carry the L2 penalty: conv and dense kernels (a user's model: every trainable
    parameter of two or more dimensions, :func:`bench.architecture.is_kernel`)."""
    if isinstance(spec, UserModelSpec):
        return [p for p in model.parameters() if p.requires_grad and is_kernel(tuple(p.shape))]
    modules = layer_modules(model)
    return [_tensor(modules, name) for name in spec.kernel_names()]


def others(model: nn.Module, spec: ModelSpec) -> list[nn.Parameter]:
    """The other trainable parameters (biases, BatchNorm's gamma and beta): no L2 penalty, as Keras'
    kernel_regularizer leaves them; decoupled decay (sgdw, adamw) still applies to them, as in Keras."""
    penalised = {id(p) for p in kernels(model, spec)}
    return [p for p in model.parameters() if id(p) not in penalised and p.requires_grad]
