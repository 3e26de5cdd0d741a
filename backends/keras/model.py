"""The built-in models in Keras, built from the framework-neutral specs of :mod:`bench.architecture`."""

from __future__ import annotations

import keras
import numpy as np

from bench.architecture import CNNSpec, ModelSpec, ResNetSpec, UserModelSpec, is_kernel
from bench.backend import build_user_model, check_l2_has_kernels
from bench.errors import ConfigError


def build_model(spec: ModelSpec, l2: float) -> keras.Model:
    """The network of ``spec``. ``l2 > 0`` puts ``keras.regularizers.L2(l2)`` on every conv and dense kernel
    (never on biases or BatchNorm's gamma and beta), which adds ``l2 * sum(kernel**2)`` to the loss: the blog's
    "L2 regularization". A user's model is its factory's, told ``input_shape=(height, width, channels)``."""
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    if isinstance(spec, UserModelSpec):
        return _build_user_model(spec, regularizer)
    if isinstance(spec, ResNetSpec):
        return _build_resnet(spec, regularizer)
    return _build_cnn(spec, regularizer)


def _build_cnn(spec: CNNSpec, regularizer: keras.regularizers.Regularizer | None) -> keras.Model:
    """Conv blocks (conv, max-pool, ReLU, dropout), Flatten, Dense+ReLU, Dense logits, as in the seed blog."""
    inputs = keras.Input((spec.image_size, spec.image_size, spec.channels), name="images")
    x = inputs
    for i, filters in enumerate(spec.filters):
        x = keras.layers.Conv2D(
            filters, spec.kernel_size, padding="same", kernel_regularizer=regularizer, name=f"conv{i}"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.Dropout(spec.dropout, name=f"dropout{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(spec.dense_units, activation="relu", kernel_regularizer=regularizer, name="dense")(
        x
    )
    # Logits stay float32 under mixed precision so the softmax cross-entropy is computed at full precision.
    logits = keras.layers.Dense(
        spec.num_classes, kernel_regularizer=regularizer, dtype="float32", name="logits"
    )(x)
    return keras.Model(inputs, logits, name="flowers_cnn")


def _build_resnet(spec: ResNetSpec, regularizer: keras.regularizers.Regularizer | None) -> keras.Model:
    """Stem conv-BN-ReLU, basic blocks (conv-BN-ReLU-conv-BN + shortcut, ReLU), global average pooling, Dense
    logits: stock Keras layers, BatchNormalization at its defaults (momentum 0.99, epsilon 1e-3)."""

    def conv_bn(x, conv):
        x = keras.layers.Conv2D(
            conv.out_channels, conv.kernel_size, strides=conv.stride, padding="same", use_bias=False,
            kernel_regularizer=regularizer, name=conv.name,
        )(x)  # fmt: skip
        return keras.layers.BatchNormalization(
            momentum=spec.bn_momentum, epsilon=spec.bn_epsilon, name=spec.bn_of(conv)
        )(x)

    inputs = keras.Input((spec.image_size, spec.image_size, spec.channels), name="images")
    x = keras.layers.ReLU(name="stem_relu")(conv_bn(inputs, spec.stem))
    for block in spec.blocks():
        y = keras.layers.ReLU(name=f"{block.name}_relu1")(conv_bn(x, block.conv1))
        y = conv_bn(y, block.conv2)
        shortcut = conv_bn(x, block.shortcut) if block.shortcut else x
        x = keras.layers.ReLU(name=f"{block.name}_relu2")(
            keras.layers.Add(name=f"{block.name}_add")([y, shortcut])
        )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(
        spec.num_classes, kernel_regularizer=regularizer, dtype="float32", name="logits"
    )(x)
    return keras.Model(inputs, logits, name="resnet")


def _build_user_model(spec: UserModelSpec, regularizer: keras.regularizers.Regularizer | None) -> keras.Model:
    """The user's factory's model, with ``regularizer`` on every trainable variable of two or more dimensions
    (:func:`bench.architecture.is_kernel`), as on the built-in models.

    Raises:
        ConfigError: the factory or its model fails (:func:`bench.backend.build_user_model`), or L2 is asked of
            a model that has kernels with regularizers of its own (the penalty would count twice).
    """
    shape = (spec.image_size, spec.image_size, spec.channels)
    model = build_user_model(spec, "keras", shape, lambda net: net(np.zeros((2, *shape), np.float32)).shape)
    kernels = [v for v in model.trainable_variables if is_kernel(tuple(v.shape))]
    if regularizer is None:
        return model
    check_l2_has_kernels(spec, len(kernels), regularizer.l2)
    own = [v.path for v in kernels if v.regularizer is not None]
    if own:
        raise ConfigError(
            f"model {spec.name!r} regularizes {own[0]} itself, and optimizer.l2={regularizer.l2:g} would add the "
            "suite's L2 on top: set optimizer.l2=0, or build the model without its kernel_regularizer"
        )
    for variable in kernels:  # what kernel_regularizer=L2(l2) does, set after the layers were built
        variable.regularizer = regularizer
    return model


def set_weights(model: keras.Model, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Load neutral weights; Keras' layout is the neutral layout, so this is a plain copy per layer (BatchNorm:
    gamma, beta, moving mean, moving variance)."""
    for layer, names in spec.layer_weights().items():
        model.get_layer(layer).set_weights([weights[name] for name in names])


def get_weights(model: keras.Model, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Every variable in the neutral layout, BatchNorm's moving statistics included (a user's model: under the
    variables' own paths)."""
    if isinstance(spec, UserModelSpec):
        return {variable.path: np.array(variable.numpy()) for variable in model.weights}
    weights = {}
    for layer, names in spec.layer_weights().items():
        weights.update(zip(names, model.get_layer(layer).get_weights(), strict=True))
    return weights
