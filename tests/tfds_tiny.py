"""A tiny image-classification dataset in tfds' own format, written offline by tfds itself.

:func:`prepare` writes ``tiny_shapes`` (grayscale 12 x 12 images of three classes,
published ``train`` and ``test`` splits) into a folder with tfds' builder machinery: the same files
``tfds build`` writes for cifar10 or fashion_mnist. It runs in its own process so that the process loading it
has no builder class of that name registered, as on a user's machine where the files were copied in.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = ["circle", "square", "stripe"]
SIZES = {"train": 30, "test": 9}  # images per split (a third of each class)


def tiny_image(label: int, index: int) -> np.ndarray:
    """A 12 x 12 x 1 uint8 image whose brightness pattern depends on the class, so it can be learnt."""
    rng = np.random.default_rng([label, index])
    pixels = np.full((12, 12), 40 + 90 * label, np.float64) + rng.normal(0, 10, (12, 12))
    return np.clip(pixels, 0, 255).astype(np.uint8)[..., None]


class TinyShapes(tfds.core.GeneratorBasedBuilder):
    """Three classes of 12 x 12 grayscale images."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(12, 12, 1)),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):  # nothing to download
        return {split: self._generate_examples(n) for split, n in SIZES.items()}

    def _generate_examples(self, n: int):
        for index in range(n):
            label = index % len(CLASS_NAMES)
            yield index, {"image": tiny_image(label, index), "label": label}


def prepare(data_dir: str) -> None:
    """Write tiny_shapes into ``data_dir`` as ``tfds build`` would."""
    TinyShapes(data_dir=data_dir).download_and_prepare()
