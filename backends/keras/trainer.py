"""Keras (TensorFlow) implementation of :class:`bench.backend.Trainer` (its framework part; the base class
owns the epoch loop).

One compiled ``tf.function`` step serves every optimizer. Loss and accuracy sums stay in a TF variable during
a pass and are read once at its end, like Keras' own metrics, so there is no per-step host round trip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from backends.keras import model as model_lib
from backends.keras import optim
from bench import backend, cpu
from bench.architecture import ModelSpec
from bench.config import RunConfig, kernel_l2
from bench.errors import ConfigError

STATE_FILE = "keras_state.npz"  # in the run's checkpoint folder (bench/checkpoint.py)

log = logging.getLogger(__name__)


class _NoRetracingWarning(logging.Filter):
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning. Each job of a
    sweep run in one process builds its own Trainer with its own compiled step, on purpose (a new model per
    job); TensorFlow counts those as retraces of one function and warns, about nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_NoRetracingWarning())


def _configure_process(run: RunConfig) -> None:
    """Threads, device visibility, seeds, determinism and precision policy: process-wide, for one run."""
    threads = run.backend.threads or len(os.sched_getaffinity(0))
    try:  # TF fixes its thread pools at first use; later jobs of a sweep in this process keep them.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        if run.backend.device == "cpu":
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() not in (0, threads):
            log.warning("TensorFlow already started with other thread settings; keeping them")
    if run.backend.device == "gpu" and not tf.config.get_visible_devices("GPU"):
        raise ConfigError("backend.device=gpu, but TensorFlow sees no GPU; use backend.device=auto or cpu")
    on_cpu = not tf.config.get_visible_devices("GPU")
    cpu.check_bf16(run.train.precision, on_cpu, run.train.allow_emulated_bf16)
    keras.backend.clear_session()  # free the previous job's model when a sweep runs jobs in one process
    keras.utils.set_random_seed(run.seed)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if run.train.precision == "bf16" else "float32")


def _device_name() -> str:
    """The device TensorFlow trains on: "cpu" or the first visible GPU's name."""
    gpus = tf.config.get_visible_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu") if gpus else "cpu"


class Trainer(backend.Trainer):
    @classmethod
    def setup(cls, run: RunConfig) -> None:
        _configure_process(run)

    def __init__(
        self,
        run: RunConfig,
        spec: ModelSpec,
        initial_weights: dict[str, np.ndarray] | None,
        steps_per_epoch: int,
    ):
        self.run, self.spec = run, spec
        self.device = _device_name()
        # Layers read the mixed-precision policy that setup() set when they are made.
        self.model = model_lib.build_model(spec, l2=kernel_l2(run.optimizer))
        if initial_weights is not None:  # None: a user's model, as its framework initialized it
            model_lib.set_weights(self.model, spec, initial_weights)
        schedule = optim.make_schedule(run.schedule, run.optimizer.lr, steps_per_epoch * run.train.epochs)
        self.optimizer = optim.make_optimizer(run.optimizer, schedule)
        self.optimizer.build(self.model.trainable_variables)
        self.cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        # loss*n, ce*n, correct: summed in the graph, read at the end of a pass.
        self.sums = tf.Variable(tf.zeros(3, tf.float64), trainable=False)
        image_spec = tf.TensorSpec([None, spec.image_size, spec.image_size, spec.channels], tf.uint8)
        signature = [image_spec, tf.TensorSpec([None], tf.int32)]
        self._train_graph = tf.function(self._train_step_eager, input_signature=signature, jit_compile=False)
        self._eval_graph = tf.function(self._eval_step_eager, input_signature=signature, jit_compile=False)

    def _penalty(self) -> tf.Tensor:
        """The kernel regularizers' l2 * sum(kernel**2), as Keras adds it to the reported loss."""
        return (
            tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses])
            if self.model.losses
            else tf.constant(0.0)
        )

    def _accumulate(
        self, ce_sum: tf.Tensor, penalty: tf.Tensor, logits: tf.Tensor, labels: tf.Tensor
    ) -> None:
        n = tf.cast(tf.shape(labels)[0], tf.float64)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float64)
        )
        ce_sum, penalty = tf.cast(ce_sum, tf.float64), tf.cast(penalty, tf.float64)
        self.sums.assign_add(tf.stack([ce_sum + penalty * n, ce_sum, correct]))

    def _train_step_eager(self, images: tf.Tensor, labels: tf.Tensor) -> None:
        x = tf.cast(images, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            ce_sum = self.cross_entropy(labels, logits)
            penalty = self._penalty()
            loss = ce_sum / tf.cast(tf.shape(labels)[0], tf.float32) + penalty
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        self._accumulate(ce_sum, penalty, logits, labels)

    def _eval_step_eager(self, images: tf.Tensor, labels: tf.Tensor) -> None:
        logits = self.model(tf.cast(images, tf.float32) / 255.0, training=False)
        self._accumulate(self.cross_entropy(labels, logits), self._penalty(), logits, labels)

    def begin_pass(self, training: bool) -> None:
        self.sums.assign(tf.zeros(3, tf.float64))  # training mode is an argument of each compiled step

    def train_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        self._train_graph(images, labels.astype(np.int32, copy=False))

    def eval_step(self, images: np.ndarray, labels: np.ndarray) -> None:
        self._eval_graph(images, labels.astype(np.int32, copy=False))

    def read_sums(self) -> tuple[float, float, float]:
        loss_sum, ce_sum, correct = self.sums.numpy().tolist()
        return loss_sum, ce_sum, correct

    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        return self.model(tf.cast(images, tf.float32) / 255.0, training=False).numpy()

    def learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def get_weights(self) -> dict[str, np.ndarray]:
        return model_lib.get_weights(self.model, self.spec)

    def _state_variables(self) -> list[Any]:
        """Every variable the next step reads: the model's (weights, BatchNorm's moving statistics and each
        dropout layer's seed-generator state, which Keras counts among a layer's variables) and the optimizer's
        (its iterations, which the schedule reads, its learning rate, momentum or moments)."""
        return [*self.model.variables, *self.optimizer.variables]

    def save_state(self, folder: Path) -> None:
        variables = self._state_variables()
        values = {f"v{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(variables)}
        np.savez(folder / STATE_FILE, **values)

    def load_state(self, folder: Path) -> None:
        variables = self._state_variables()
        with np.load(folder / STATE_FILE) as saved:
            # In the order the same model and optimizer list them (names carry per-process counters).
            shapes = [saved[f"v{i}"].shape for i in range(len(saved.files))]
            if shapes != [tuple(v.shape) for v in variables]:
                raise ValueError(f"{folder / STATE_FILE} holds the state of another model or optimizer")
            for i, variable in enumerate(variables):
                variable.assign(saved[f"v{i}"])

    def environment(self) -> dict[str, Any]:
        return {
            "framework": "keras",
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "device": self.device,
            "threads": tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0)),
            "precision": self.run.train.precision,
            "optimizer_class": f"{type(self.optimizer).__module__}.{type(self.optimizer).__qualname__}",
            "deterministic": True,
        }
