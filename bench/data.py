"""An image-classification dataset as uint8 arrays: find the images, decode once, cache on disk, split, batch.

Two sources end in the same arrays: a local folder of ``<root>/<class>/<image>`` (tf_flowers' flower_photos
layout, or a user's own photos: ``dataset=folder``; any suffix Pillow reads), and any tfds image-classification
dataset by name (``tfds.load("tf_flowers")``, or ``dataset=tfds dataset.tfds_name=cifar10``). Images are decoded
with Pillow, converted to RGB (a grayscale dataset gets three equal channels), resized (bilinear) to
``image_size`` squared and kept as uint8; the backends scale them to [0, 1] on the device. The decoded arrays
are cached under ``dataset.cache_dir`` keyed by source, file list and settings, so every run of a sweep after
the first starts training without decoding an image.

Split: folder images are put in a fixed permutation (``split_seed``, independent of the run seed) and the
seed's ``train[:80%]`` / ``train[80%:]`` is taken over it; tfds records keep tfds' own published order of its
``train`` split, which is what ``train[:80%]`` means there. Every run of every seed and backend validates on
the same images. With ``test_fraction > 0`` the last ``test_fraction`` of that order is held out as a test
split, the validation split comes just before it, and training keeps the rest (``val_fraction=0.15
test_fraction=0.15``: 70/15/15); with the default 0 the split is the two-way one above, image for image. With
``dataset.splits=published`` (tfds only) the test split is the dataset's own published ``test`` split instead.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from bench.config import DatasetConfig
from bench.errors import ConfigError, DataError
from bench.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the cached arrays' meaning changes, so old caches are rebuilt
TFDS_NAME = "tf_flowers:3.0.1"
#: The labels tf_flowers:3.0.1's metadata names (tests check they agree), for when tensorflow-datasets is absent.
TFDS_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
TFDS_DOWNLOAD_HOST = "download.tensorflow.org"  # where tfds' tf_flowers builder downloads flower_photos.tgz
#: Where tfds fetches other datasets' prepared files first (its GCS mirror), to tell offline in seconds.
TFDS_MIRROR_HOST = "storage.googleapis.com"


@functools.cache
def image_suffixes() -> frozenset[str]:
    """Every file suffix Pillow can open here (``.jpg``, ``.png``, ``.webp``, ``.tif``...), lower case."""
    Image.init()  # registers every plugin Pillow has, not only the ones imported so far
    return frozenset(suffix.lower() for suffix in Image.registered_extensions())


@dataclass
class ImageData:
    """Decoded images, already split. Images are uint8 N x H x W x 3; labels int32 indices of ``class_names``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: list[str]
    source: str
    skipped_files: int = 0
    test_images: np.ndarray | None = None  # None without a test split (dataset.test_fraction = 0)
    test_labels: np.ndarray | None = None

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[1])


# ---------------------------------------------------------------------------------------------- batching


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training indices' order in ``epoch`` (1-based): a pure function of (seed, epoch), same on every backend."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def iterate_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, order: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches in ``order`` (default: as stored); the last one may be smaller, as in Keras' ``fit``."""
    indices = np.arange(len(labels)) if order is None else order
    for start in range(0, len(indices), batch_size):
        chosen = indices[start : start + batch_size]
        if order is None:  # contiguous: a view, no copy
            yield images[start : start + batch_size], labels[start : start + batch_size]
        else:
            yield images[chosen], labels[chosen]


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return -(-n_images // batch_size)


# ---------------------------------------------------------------------------------------------- decoding


def decode_image(source: str | Path | bytes | np.ndarray, size: int) -> np.ndarray:
    """One photo (path, encoded bytes or a decoded array) → uint8 ``size`` x ``size`` x 3, bilinear resize."""
    if isinstance(source, np.ndarray):
        # tfds gives grayscale images as H x W x 1, which Pillow reads only without the channel axis
        image = Image.fromarray(source[..., 0] if source.ndim == 3 and source.shape[-1] == 1 else source)
    else:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    with image:
        resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _decode_or_none(path: Path, size: int) -> np.ndarray | None:
    try:
        return decode_image(path, size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None  # a corrupt or non-image file: skipped and counted, never a decoder traceback


def decode_files(paths: Sequence[Path], size: int, desc: str = "decoding photos") -> list[np.ndarray | None]:
    """Decode in threads (Pillow releases the GIL while decoding), with a progress bar on a terminal."""
    workers = min(8, len(os.sched_getaffinity(0)) * 2)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda p: _decode_or_none(p, size), paths)
        return list(tqdm(results, total=len(paths), desc=desc, unit="img", disable=None, leave=False))


def available_memory(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Bytes of memory this machine can still give a process without swapping, or None when unknown.

    Linux: ``MemAvailable`` of /proc/meminfo; elsewhere the free physical pages (``os.sysconf``), where the
    platform reports them.
    """
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a name this platform knows (macOS), or no sysconf
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _human_bytes(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


def check_decoded_size(n_photos: int, cfg: DatasetConfig) -> None:
    """Refuse, before decoding, photos whose decoded uint8 arrays cannot fit in the available memory.

    Raises:
        ConfigError: ``n_photos`` x ``image_size``² x 3 bytes exceed the available memory (skipped if unknown).
    """
    needed = n_photos * cfg.image_size**2 * 3
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(
            f"dataset.image_size={cfg.image_size}: {n_photos} decoded photos need {_human_bytes(needed)} of "
            f"memory, but only {_human_bytes(available)} is available; use a smaller dataset.image_size or "
            "dataset.max_per_class"
        )


# ---------------------------------------------------------------------------------------------- sources


def split_bounds(n: int, val_fraction: float, test_fraction: float = 0.0) -> tuple[int, int]:
    """Where training ends and where the test split starts: ``[:train_end]`` trains, ``[train_end:test_start]``
    validates, ``[test_start:]`` tests (empty when ``test_fraction`` is 0, the seed's ``train[:80%]``)."""
    test_start = n - int(round(n * test_fraction))
    return test_start - int(round(n * val_fraction)), test_start


def check_split(n: int, cfg: DatasetConfig) -> None:
    """Refuse a split that leaves a split empty: no photo to train on, to validate on, or (with
    ``test_fraction > 0``) to test on. Checked before decoding where the photos can be counted first.

    Raises:
        DataError: naming the fractions, how many photos each split would get, and what to change.
    """
    train_end, test_start = split_bounds(n, cfg.val_fraction, cfg.test_fraction)
    sizes = {"train on": train_end, "validate on": test_start - train_end, "test on": n - test_start}
    if cfg.test_fraction == 0:
        del sizes["test on"]
    empty = [what for what, size in sizes.items() if size < 1]
    if empty:
        counts = f"train {train_end}, validation {test_start - train_end}, test {n - test_start}"
        raise DataError(
            f"dataset.val_fraction={cfg.val_fraction} and dataset.test_fraction={cfg.test_fraction} leave no "
            f"photo to {' or '.join(empty)} out of {n} ({counts}): change the fractions"
            + (" or dataset.max_per_class" if cfg.max_per_class is not None else "")
        )


def list_folder(root: Path, cfg: DatasetConfig) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images of a ``<root>/<class>/<image>`` folder in the fixed split order, with their labels.

    Raises:
        DataError: the folder is missing, holds fewer than two class folders, or a class folder holds no images.
    """
    if not root.is_dir():
        raise DataError(f"photo folder {root} does not exist (set {_where_the_path_is_set(cfg)})")
    class_names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_names:
        raise DataError(
            f"photo folder {root} holds no class folders: expected one folder per class, <root>/<class>/<image>"
        )
    if len(class_names) < 2:
        raise DataError(
            f"photo folder {root} holds one class folder ({class_names[0]}): a classifier needs two classes or "
            "more, each in its own folder <root>/<class>/"
        )
    files, labels = [], []
    for label, name in enumerate(class_names):
        suffixes = image_suffixes()
        photos = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in suffixes and p.is_file())
        if not photos:
            raise DataError(
                f"class folder {root / name} holds no images (no file with a suffix Pillow reads, e.g. .jpg, .png)"
            )
        photos = photos[: cfg.max_per_class]
        files += photos
        labels += [label] * len(photos)
    order = np.random.default_rng(cfg.split_seed).permutation(len(files))
    return [files[i] for i in order], np.asarray(labels, np.int32)[order], class_names


def download_reachable(host: str = TFDS_DOWNLOAD_HOST, port: int = 80, timeout_s: float = 5.0) -> bool:
    """Whether tfds' download server answers at all (DNS and TCP), checked before tfds starts its retries."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _where_the_path_is_set(cfg: DatasetConfig) -> str:
    """How the user points this dataset at its folder, for messages."""
    if cfg.name == "tf_flowers":
        return "FLOWER_PHOTOS or dataset.path to a flower_photos folder"
    return "dataset.path to a folder of <class>/<image> files"


def _tfds_hint(cfg: DatasetConfig) -> str:
    if cfg.tfds_name == TFDS_NAME:
        return (
            "without internet, use a local copy: unpack flower_photos.tgz and set FLOWER_PHOTOS=/path/to/"
            "flower_photos (or dataset.path=...)"
        )
    return (
        f"without internet, prepare it where there is (tfds build {cfg.tfds_name.split(':')[0]} --data_dir DIR) "
        "and set dataset.data_dir=DIR here, or put its images in <class>/<image> folders and use dataset=folder"
    )


def _tfds_load(cfg: DatasetConfig, split: str = "train"):
    """``tfds.load(dataset.tfds_name)``, one whole published split, with errors a user can act on: its
    (image, label) records, the class names and the number of records (None where tfds' metadata lacks it).

    A dataset already prepared in ``dataset.data_dir`` loads from its files alone, offline, even when this
    tensorflow-datasets has no builder of that name.
    """
    name, hint = cfg.tfds_name, _tfds_hint(cfg)
    try:
        import tensorflow_datasets as tfds  # lazy: only the tfds source needs TensorFlow in this process
    except ImportError as exc:
        raise DataError(f"dataset.source=tfds needs tensorflow-datasets ({exc}); {hint}") from exc
    try:
        builder = tfds.builder(name, data_dir=cfg.data_dir)
    except Exception as exc:  # DatasetNotFoundError, and the ValueErrors of a malformed name
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(f"dataset.tfds_name={name!r}: tfds knows no such dataset ({reason})") from exc
    host = TFDS_DOWNLOAD_HOST if name == TFDS_NAME else TFDS_MIRROR_HOST
    if not builder.is_prepared() and not download_reachable(host):
        # Fail in seconds: tfds would retry the download for minutes before giving up.
        where = cfg.data_dir or "~/tensorflow_datasets"
        raise DataError(f"{name} is not prepared in {where} and {host} is unreachable; {hint}")
    label = label_key(builder.info, name)
    if split not in builder.info.splits and builder.info.splits:
        published = ", ".join(sorted(builder.info.splits))
        raise DataError(
            f"{name} publishes no {split!r} split (it has: {published})"
            + ("; use dataset.splits=suite" if split == "test" else "")
        )
    try:
        dataset, info = tfds.load(
            name, split=split, data_dir=cfg.data_dir, as_supervised=True, with_info=True
        )
    except Exception as exc:  # tfds raises many kinds (download, checksum, I/O); all mean "not reachable"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(f"could not load {name} through tensorflow-datasets ({reason}); {hint}") from exc
    try:
        n_records = info.splits[split].num_examples
    except KeyError:  # no split metadata (tfds' mock_data)
        n_records = None
    return tfds.as_numpy(dataset), info.features[label].names, n_records


def label_key(info: Any, name: str) -> str:
    """The feature that labels an image (``supervised_keys``' second), refused unless it is a ClassLabel."""
    keys = info.supervised_keys
    label = keys[1] if keys and len(keys) == 2 and isinstance(keys[1], str) else None
    if label is None or not hasattr(info.features[label], "names"):
        raise DataError(
            f"{name} is not an image-classification dataset: tfds gives it no (image, class label) pair"
        )
    return label


def read_tfds(cfg: DatasetConfig, split: str = "train") -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Decoded, resized tfds images of one split in tfds' published order (that order is what
    ``train[:80%]`` splits), at most ``max_per_class`` of each class."""
    records, tfds_names, n_records = _tfds_load(cfg, split)
    if n_records:
        per_class_cap = len(tfds_names) * cfg.max_per_class if cfg.max_per_class is not None else n_records
        check_decoded_size(min(n_records, per_class_cap), cfg)
    # tfds numbers the classes in its own order; use the folder's (sorted) so a label means one flower everywhere.
    class_names = sorted(tfds_names)
    relabel = [class_names.index(name) for name in tfds_names]
    seen: dict[int, int] = {}
    images, labels = [], []
    for image, tfds_label in tqdm(
        records, desc=f"reading tfds {cfg.tfds_name} {split}", unit="img", disable=None, leave=False
    ):
        label = relabel[int(tfds_label)]
        seen[label] = seen.get(label, 0) + 1
        if cfg.max_per_class is None or seen[label] <= cfg.max_per_class:
            images.append(decode_image(image, cfg.image_size))
            labels.append(label)
    return images, np.asarray(labels, np.int32), class_names


# ---------------------------------------------------------------------------------------------- cache


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class ArrayCache:
    """Decoded arrays in one ``.npz`` beside a ``meta.json`` holding the key and the file's checksum.

    A cache whose key or checksum does not match (stale settings, a truncated or corrupt file) is rebuilt,
    never trusted. Both files are written atomically, so concurrent jobs of a sweep can race harmlessly.
    """

    def __init__(self, cache_dir: str | Path, key: dict):
        self.key = key
        digest = _sha256(json.dumps(key, sort_keys=True).encode())[:20]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(key["name"]))  # a tfds name may hold "/" and ":"
        self.folder = Path(cache_dir).expanduser() / f"{name}-{key['source']}-{key['image_size']}px-{digest}"

    def load(self) -> dict[str, np.ndarray] | None:
        meta_path, arrays_path = self.folder / "meta.json", self.folder / "arrays.npz"
        if not meta_path.exists() or not arrays_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            data = arrays_path.read_bytes()
            if meta.get("key") != self.key or meta.get("sha256") != _sha256(data):
                log.warning("ignoring stale or corrupt photo cache %s; rebuilding it", self.folder)
                return None
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                return {name: arrays[name] for name in arrays.files} | {"meta": meta}
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            log.warning("unreadable photo cache %s (%s); rebuilding it", self.folder, exc)
            return None

    def save(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        try:
            atomic_write_bytes(self.folder / "arrays.npz", data)
            atomic_write_json(self.folder / "meta.json", {"key": self.key, "sha256": _sha256(data)} | extra)
        except OSError as exc:  # a read-only cache only costs time: decode again next run
            log.warning("could not write the photo cache %s (%s); continuing without it", self.folder, exc)


# ---------------------------------------------------------------------------------------------- entry point


def resolve_source(cfg: DatasetConfig) -> str:
    """``auto`` means the local folder when a path is given (FLOWER_PHOTOS or dataset.path), else tfds."""
    if cfg.source == "folder" and not cfg.path:
        raise DataError(f"dataset.source=folder needs a folder: set {_where_the_path_is_set(cfg)}")
    if cfg.source == "auto":
        return "folder" if cfg.path else "tfds"
    return cfg.source


def _published_test(cfg: DatasetConfig, source: str) -> bool:
    """Whether the test split is the dataset's own published one (``dataset.splits=published``, tfds only)."""
    if cfg.splits == "published" and source != "tfds":
        raise DataError("dataset.splits=published needs a tfds dataset: a folder has no published splits")
    return cfg.splits == "published" and cfg.test_fraction > 0


def _decode_source(cfg: DatasetConfig, source: str) -> tuple[dict[str, np.ndarray], list[str], int]:
    """Decode every image of the source: the arrays (``images``, ``labels`` in split order, and with published
    splits ``test_images``, ``test_labels``), the class names, the files skipped."""
    if source == "folder":
        files, labels, class_names = list_folder(Path(cfg.path).expanduser(), cfg)
        check_split(len(files), cfg)
        check_decoded_size(len(files), cfg)
        decoded = decode_files(files, cfg.image_size)
        bad = [i for i, image in enumerate(decoded) if image is None]
        if bad:
            log.warning("skipped %d file(s) that are not readable images, e.g. %s", len(bad), files[bad[0]])
        kept = [i for i, image in enumerate(decoded) if image is not None]
        arrays = {"images": np.stack([decoded[i] for i in kept]), "labels": labels[kept]}
        return arrays, class_names, len(bad)
    images, labels, class_names = read_tfds(cfg)
    arrays = {"images": np.stack(images), "labels": labels}
    if _published_test(cfg, source):
        test_images, test_labels, _ = read_tfds(cfg, "test")
        arrays |= {"test_images": np.stack(test_images), "test_labels": test_labels}
    return arrays, class_names, 0


def _cache_key(cfg: DatasetConfig, source: str) -> dict:
    """What the decoded arrays depend on. The folder's file list is listed (cheap); tfds' version is pinned."""
    key = {"format": CACHE_FORMAT, "name": cfg.name, "source": source, "image_size": cfg.image_size}
    key |= {"max_per_class": cfg.max_per_class, "val_fraction": cfg.val_fraction}
    if source == "folder":
        root = Path(cfg.path).expanduser()
        files, _, class_names = list_folder(root, cfg)
        key |= {"split_seed": cfg.split_seed, "classes": class_names}
        key["files"] = _sha256(
            json.dumps([[str(p.relative_to(root)), p.stat().st_size] for p in files]).encode()
        )
    else:
        key["tfds"] = cfg.tfds_name
        if _published_test(cfg, source):  # only then: the caches of the suite's own split stay valid
            key["splits"] = "published"
    return key


def check_classes_trained(labels: np.ndarray, train_end: int, class_names: Sequence[str]) -> None:
    """Refuse a split that leaves a class with no image to train on: it could only ever be guessed wrong.

    Raises:
        DataError: naming the class, how many images it has, and what to change.
    """
    counts = np.bincount(labels, minlength=len(class_names))
    trained = np.bincount(labels[:train_end], minlength=len(class_names))
    missing = [i for i in range(len(class_names)) if trained[i] == 0]
    if missing:
        name = class_names[missing[0]]
        raise DataError(
            f"class {name!r} has {counts[missing[0]]} image(s), none of them among the {train_end} the split "
            "trains on: add images of it, or remove its folder"
        )


def load_dataset(cfg: DatasetConfig) -> ImageData:
    """The split, decoded images for ``cfg``: from the disk cache when it holds them, else decoded and cached.

    Raises:
        DataError: the images cannot be found, listed, read or downloaded, or a class gets no training image.
        ConfigError: the decoded images would not fit in the available memory (checked before decoding).
    """
    source = resolve_source(cfg)
    cache = ArrayCache(cfg.cache_dir, _cache_key(cfg, source))
    cached = cache.load()
    if cached is None:
        log.info(
            "decoding %s images at %d px (cached for later runs in %s)", source, cfg.image_size, cache.folder
        )
        arrays, class_names, skipped = _decode_source(cfg, source)
        cache.save(arrays, {"class_names": class_names, "skipped_files": skipped})
        cached = arrays | {"meta": {"class_names": class_names, "skipped_files": skipped}}
    images, labels, meta = cached["images"], cached["labels"], cached["meta"]
    class_names = list(meta["class_names"])
    published_test = "test_images" in cached
    # The suite's split of one array; with the published test split, the array is train + validation only.
    fractions = (cfg.val_fraction, 0.0 if published_test else cfg.test_fraction)
    check_split(len(labels), cfg)  # again: tfds, and photos that did not decode, are counted only now
    train_end, test_start = split_bounds(len(labels), *fractions)
    check_classes_trained(labels, train_end, class_names)
    test_images, test_labels = None, None
    if published_test:
        test_images, test_labels = cached["test_images"], cached["test_labels"]
    elif test_start < len(labels):
        test_images, test_labels = images[test_start:], labels[test_start:]
    return ImageData(
        train_images=images[:train_end],
        train_labels=labels[:train_end],
        val_images=images[train_end:test_start],
        val_labels=labels[train_end:test_start],
        class_names=class_names,
        source=source,
        skipped_files=int(meta.get("skipped_files", 0)),
        test_images=test_images,
        test_labels=test_labels,
    )
