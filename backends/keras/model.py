"""The flowers CNN in Keras, built from the framework-neutral :class:`~bench.architecture.CNNSpec`."""

from __future__ import annotations

import keras
import numpy as np

from bench.architecture import CNNSpec


def build_model(spec: CNNSpec, l2: float) -> keras.Model:
    """Conv blocks (conv, max-pool, ReLU, dropout), Flatten, Dense+ReLU, Dense logits, as in the seed blog.

    ``l2 > 0`` puts ``keras.regularizers.L2(l2)`` on every kernel (never on biases), which adds
    ``l2 * sum(kernel**2)`` to the loss: the blog's "L2 regularization".
    """
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
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


def set_weights(model: keras.Model, spec: CNNSpec, weights: dict[str, np.ndarray]) -> None:
    """Load neutral weights; Keras' layout is the neutral layout, so this is a plain copy."""
    for layer in spec.layer_names():
        model.get_layer(layer).set_weights([weights[f"{layer}/kernel"], weights[f"{layer}/bias"]])


def get_weights(model: keras.Model, spec: CNNSpec) -> dict[str, np.ndarray]:
    weights = {}
    for layer in spec.layer_names():
        kernel, bias = model.get_layer(layer).get_weights()
        weights[f"{layer}/kernel"], weights[f"{layer}/bias"] = kernel, bias
    return weights
