"""Keras 3 on TensorFlow: the seed blog's framework, and the reference for the optimizer semantics."""

import os

# Keras 3 picks its backend once, at import; flowerbench's Keras backend is TensorFlow (tf.function, tf.data).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of the run log
