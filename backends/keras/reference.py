"""Yardsticks for the Keras backend's speed: a plain Keras training loop and the machine's matmul peak.

This module is the backend's :class:`bench.backend.Reference` (``BareLoop`` and ``matmul_gflops``, loaded by
:func:`bench.backend.load_reference`): ``python -m bench.throughput`` compares the suite's
:class:`~backends.keras.trainer.Trainer` with them.
The bare loop is what a Keras user writes from the seed blog, and nothing of flowerbench's machinery: a
``keras.Sequential`` of the same layers (a ``Rescaling(1/255)`` layer in front, since it eats uint8 images),
``compile`` with the optimizer and ``model.fit`` on the in-memory arrays, timed per batch by a callback. Only
the layer sizes (:class:`CNNSpec`), the starting weights and the optimizer (the stock Keras class the suite's
:data:`~backends.keras.optim.BUILDERS` makes, with the L2 penalty as kernel regularizers) come from the suite,
so both train the same network with the same update. The ResNet (:class:`ResNetSpec`) is stock Keras layers in
the suite too: its bare loop wraps the suite's functional model (``backends/keras/model.py``) behind the same
``Rescaling`` layer.
Threads and op determinism are process-wide: the bare loop runs with whatever ``Trainer.setup`` set.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from backends.keras import model as model_lib
from backends.keras.optim import make_optimizer
from bench.architecture import ModelSpec, ResNetSpec
from bench.config import kernel_l2
from bench.optimizers import OptimizerConfig
from bench.timing import StepTimer, time_calls

TF_DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16}


def _build_model(spec: ModelSpec, l2: float) -> keras.Model:
    regularizer = keras.regularizers.L2(l2) if l2 else None  # none for decoupled decay, in the optimizer
    layers: list = [
        keras.Input((spec.image_size, spec.image_size, spec.channels)),
        keras.layers.Rescaling(1 / 255),
    ]
    if isinstance(spec, ResNetSpec):
        return keras.Sequential([*layers, model_lib.build_model(spec, l2)])
    for i, filters in enumerate(spec.filters):
        conv = keras.layers.Conv2D(
            filters, spec.kernel_size, padding="same", kernel_regularizer=regularizer, name=f"conv{i}"
        )
        layers += [
            conv,
            keras.layers.MaxPooling2D(2),
            keras.layers.ReLU(),
            keras.layers.Dropout(spec.dropout),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(spec.dense_units, "relu", kernel_regularizer=regularizer, name="dense"),
        # float32 logits under mixed precision, as Keras' mixed-precision guide recommends.
        keras.layers.Dense(spec.num_classes, kernel_regularizer=regularizer, dtype="float32", name="logits"),
    ]
    return keras.Sequential(layers)


def _load_weights(model: keras.Model, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """The neutral layout is Keras' own: each named layer takes its kernel and bias as they are."""
    if isinstance(spec, ResNetSpec):
        model_lib.set_weights(model.get_layer("resnet"), spec, weights)
        return
    for name in weights:
        if name.endswith("/kernel"):
            layer = name.split("/")[0]
            model.get_layer(layer).set_weights([weights[f"{layer}/kernel"], weights[f"{layer}/bias"]])


class _BatchTimer(keras.callbacks.Callback):
    """Feeds a :class:`StepTimer` from ``fit``'s hooks. Overriding ``on_train_batch_end`` also keeps Keras from
    dispatching batch callbacks asynchronously, so each time is taken once its step is done."""

    def __init__(self, timer: StepTimer, batch_size: int):
        super().__init__()
        self.timer, self.batch_size = timer, batch_size

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.timer.start()  # the first step then includes making the epoch's data iterator, as fit does

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.timer(self.batch_size)


class BareLoop:
    """The model compiled for ``model.fit``; :meth:`train` may be called again and again, since ``fit``
    keeps its traced step between calls.

    Layers read the mixed-precision policy when they are made: ``precision`` applies to this model only.
    """

    def __init__(
        self,
        spec: ModelSpec,
        weights: dict[str, np.ndarray],
        optimizer: OptimizerConfig,
        batch_size: int,
        precision: str = "fp32",
    ):
        previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
        try:
            self.model = _build_model(spec, kernel_l2(optimizer))
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        _load_weights(self.model, spec, weights)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # jit_compile=False: the suite's step is not XLA-compiled either ("auto" means no XLA on CPU anyway).
        step = make_optimizer(optimizer, optimizer.lr)
        self.model.compile(step, loss, metrics=["accuracy"], jit_compile=False)
        self.batch_size = batch_size

    def train(self, images: np.ndarray, labels: np.ndarray) -> list[float]:
        """One ``fit`` epoch over the uint8 ``images`` in whole batches; seconds of each step.

        The first call's first steps include graph tracing: the caller discards them as warm-up.
        """
        n = len(images) // self.batch_size * self.batch_size
        timer = StepTimer()
        callbacks = [_BatchTimer(timer, self.batch_size)]
        self.model.fit(
            images[:n], labels[:n], batch_size=self.batch_size, epochs=1, verbose=0, callbacks=callbacks
        )
        return timer.step_times


def matmul_gflops(size: int, dtype: str = "fp32", repeats: int = 5) -> float | None:
    """The best GFLOP/s of ``size`` x ``size`` matmuls over ``repeats`` (after one warm-up), or None when
    TensorFlow has no ``dtype`` matmul on this device. Best, not median: a peak is what the machine can do,
    and a neighbour's process only ever slows a repeat down."""
    a = tf.random.uniform((size, size), seed=1)
    b = tf.random.uniform((size, size), seed=2)
    try:
        a, b = tf.cast(a, TF_DTYPES[dtype]), tf.cast(b, TF_DTYPES[dtype])
        # Reading one element waits for the product: on a GPU, ops only queue the work.
        seconds = time_calls(lambda: tf.matmul(a, b)[0, 0].numpy(), repeats)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return None
    return 2 * size**3 / min(seconds) / 1e9
