"""Photo sources, the fixed split, the disk cache and the per-epoch batch order."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import data as data_lib
from bench.config import DatasetConfig, load_option
from bench.errors import ConfigError, DataError
from tests.conftest import CLASSES, make_photo_tree, run_cli

ROOT = Path(__file__).resolve().parent.parent


def folder_config(path: Path, cache_dir: Path, **changes) -> DatasetConfig:
    return load_option(
        "dataset", "tf_flowers", path=str(path), cache_dir=str(cache_dir), image_size=16, **changes
    )


def tfds_config(cache_dir: Path, **changes) -> DatasetConfig:
    return load_option(
        "dataset", "tf_flowers", source="tfds", cache_dir=str(cache_dir), image_size=16, **changes
    )


def test_folder_source_decodes_resizes_and_splits(tiny_photos, cache_dir):
    flowers = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    assert flowers.class_names == list(CLASSES) and flowers.source == "folder"
    assert flowers.train_images.shape == (24, 16, 16, 3) and flowers.val_images.shape == (6, 16, 16, 3)
    assert flowers.train_images.dtype == np.uint8
    labels = np.concatenate([flowers.train_labels, flowers.val_labels])
    assert np.bincount(labels).tolist() == [6] * 5  # every photo once, in train or in val


def test_split_is_fixed_by_split_seed_and_max_per_class_takes_first_photos(tiny_photos, cache_dir):
    first = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    again = data_lib.load_dataset(folder_config(tiny_photos, cache_dir / "other"))
    np.testing.assert_array_equal(first.val_images, again.val_images)
    reshuffled = data_lib.load_dataset(folder_config(tiny_photos, cache_dir, split_seed=7))
    assert not np.array_equal(first.val_labels, reshuffled.val_labels) or not np.array_equal(
        first.val_images, reshuffled.val_images
    )
    small = data_lib.load_dataset(folder_config(tiny_photos, cache_dir, max_per_class=2))
    assert len(small.train_labels) + len(small.val_labels) == 10


def test_a_test_split_is_held_out_and_the_default_split_is_unchanged(tiny_photos, cache_dir):
    two_way = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    assert two_way.test_images is None and two_way.test_labels is None
    three_way = data_lib.load_dataset(
        folder_config(tiny_photos, cache_dir, val_fraction=0.2, test_fraction=0.2)
    )
    sizes = [len(three_way.train_labels), len(three_way.val_labels), len(three_way.test_labels)]
    assert sizes == [18, 6, 6]
    # the same fixed order, cut in three: train, then validation, then test (disjoint, every photo once)
    every = np.concatenate([three_way.train_images, three_way.val_images, three_way.test_images])
    np.testing.assert_array_equal(every, np.concatenate([two_way.train_images, two_way.val_images]))
    with pytest.raises(ConfigError, match="test_fraction"):
        folder_config(tiny_photos, cache_dir, val_fraction=0.5, test_fraction=0.5)


def test_second_load_reads_the_cache_without_decoding(tiny_photos, cache_dir, monkeypatch):
    first = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a photo although the cache holds them")

    monkeypatch.setattr(data_lib, "decode_files", no_decoding)
    cached = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    np.testing.assert_array_equal(first.train_images, cached.train_images)


def test_corrupt_or_stale_cache_is_rebuilt(tiny_photos, cache_dir, caplog):
    first = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    (arrays,) = cache_dir.glob("*/arrays.npz")
    arrays.write_bytes(arrays.read_bytes()[:1000])  # truncated, as by a crash or a full disk
    with caplog.at_level(logging.WARNING):
        rebuilt = data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    assert "corrupt" in caplog.text
    np.testing.assert_array_equal(first.train_images, rebuilt.train_images)
    meta = arrays.parent / "meta.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"key": {"stale": True}}))
    assert (
        data_lib.ArrayCache(cache_dir, {"stale": True, "name": "x", "source": "y", "image_size": 1}).load()
        is None
    )
    np.testing.assert_array_equal(
        first.val_images, data_lib.load_dataset(folder_config(tiny_photos, cache_dir)).val_images
    )


def test_changed_file_list_gets_a_new_cache(tiny_photos, cache_dir, tmp_path):
    photos = shutil.copytree(tiny_photos, tmp_path / "photos")
    data_lib.load_dataset(folder_config(photos, cache_dir))
    (photos / "roses" / "roses_000.jpg").unlink()
    flowers = data_lib.load_dataset(folder_config(photos, cache_dir))
    assert len(flowers.train_labels) + len(flowers.val_labels) == 29
    assert len(list(cache_dir.iterdir())) == 2


def test_corrupt_and_non_image_files_are_skipped_and_counted(tiny_photos, cache_dir, tmp_path, caplog):
    photos = shutil.copytree(tiny_photos, tmp_path / "photos")
    (photos / "daisy" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (photos / "daisy" / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        flowers = data_lib.load_dataset(folder_config(photos, cache_dir))
    assert flowers.skipped_files == 1 and "skipped 1 file(s)" in caplog.text
    assert len(flowers.train_labels) + len(flowers.val_labels) == 30


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "does not exist"),
        ("empty", "holds no class folders"),
        ("empty_class", "holds no images"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path, cache_dir, layout, message):
    root = tmp_path / "photos"
    if layout != "missing":
        root.mkdir()
    if layout == "empty_class":
        make_photo_tree(root, per_class=2)
        (root / "lilies").mkdir()
    with pytest.raises(DataError, match=message):
        data_lib.load_dataset(folder_config(root, cache_dir))


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    first = data_lib.epoch_order(seed=0, epoch=1, n=50)
    np.testing.assert_array_equal(first, data_lib.epoch_order(0, 1, 50))
    assert sorted(first.tolist()) == list(range(50))
    assert not np.array_equal(first, data_lib.epoch_order(0, 2, 50))
    assert not np.array_equal(first, data_lib.epoch_order(1, 1, 50))


def test_batches_keep_the_last_partial_batch():
    images, labels = np.zeros((10, 4, 4, 3), np.uint8), np.arange(10)
    batches = list(data_lib.iterate_batches(images, labels, 4, order=np.arange(10)[::-1]))
    assert [len(y) for _, y in batches] == [4, 4, 2] and batches[0][1].tolist() == [9, 8, 7, 6]
    assert data_lib.steps_per_epoch(10, 4) == 3


def test_tfds_source_through_its_real_code_path(cache_dir, monkeypatch):
    """tfds cannot download here; its mock_data fills tf_flowers with random photos through the same calls."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(
        data_lib, "download_reachable", lambda host: True
    )  # mock_data stands in for the download
    config = tfds_config(cache_dir, max_per_class=3)
    with tfds.testing.mock_data(num_examples=40):
        flowers = data_lib.load_dataset(config)
    assert flowers.source == "tfds" and flowers.class_names == list(CLASSES)
    n = len(flowers.train_labels) + len(flowers.val_labels)
    assert n <= 15 and len(flowers.val_labels) == round(n * 0.2)
    assert flowers.train_images.shape[1:] == (16, 16, 3) and flowers.train_images.dtype == np.uint8
    np.testing.assert_array_equal(
        flowers.val_images, data_lib.load_dataset(config).val_images
    )  # from the cache


def test_unreachable_tfds_says_how_to_use_a_local_folder(cache_dir, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'download.tensorflow.org'")

    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setattr(
        data_lib, "download_reachable", lambda host: True
    )  # reachable, but the download then fails
    with pytest.raises(
        DataError, match="could not load tf_flowers.*set FLOWER_PHOTOS=/path/to/flower_photos"
    ):
        data_lib.load_dataset(tfds_config(cache_dir))


def test_real_photos_through_flower_photos(real_photos, cache_dir):
    flowers = data_lib.load_dataset(folder_config(real_photos, cache_dir, max_per_class=4))
    assert flowers.class_names == list(CLASSES)
    assert len(flowers.train_labels) == 16 and len(flowers.val_labels) == 4
    assert flowers.train_images.std() > 10  # real, varied photos, not blank decodes


def test_offline_tfds_fails_in_seconds_not_minutes(tmp_path, cache_dir, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data_lib, "download_reachable", lambda host: False)
    config = tfds_config(cache_dir, data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match="unreachable; without internet, use a local copy"):
        data_lib.load_dataset(config)


def _no_decoding(*args, **kwargs):
    raise AssertionError("decoded a photo although the photos cannot fit in memory")


def test_photos_that_cannot_fit_in_memory_are_refused_before_decoding(tiny_photos, cache_dir, monkeypatch):
    monkeypatch.setattr(data_lib, "decode_files", _no_decoding)
    monkeypatch.setattr(
        data_lib, "available_memory", lambda: 20_000
    )  # 30 photos x 16 x 16 x 3 = 23,040 bytes
    with pytest.raises(ConfigError) as refused:
        data_lib.load_dataset(folder_config(tiny_photos, cache_dir))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        "dataset.image_size=16: 30 decoded photos need 22.5 KiB of memory, but only 19.5 KiB"
    )
    assert "dataset.max_per_class" in message  # what to change
    assert not list(cache_dir.glob("*/arrays.npz"))
    monkeypatch.undo()  # decode again
    monkeypatch.setattr(data_lib, "available_memory", lambda: 23_040)  # exactly enough
    assert len(data_lib.load_dataset(folder_config(tiny_photos, cache_dir)).train_labels) == 24


def test_memory_check_is_skipped_when_the_available_memory_is_unknown(tiny_photos, cache_dir, monkeypatch):
    monkeypatch.setattr(data_lib, "available_memory", lambda: None)
    assert len(data_lib.load_dataset(folder_config(tiny_photos, cache_dir)).val_labels) == 6


def test_tfds_photos_that_cannot_fit_are_refused_before_reading_a_record(cache_dir, monkeypatch):
    def records():
        raise AssertionError("read a tfds record although the photos cannot fit in memory")
        yield

    names = ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    monkeypatch.setattr(data_lib, "_tfds_load", lambda cfg, split: (records(), names, 3670))
    monkeypatch.setattr(data_lib, "available_memory", lambda: 10_000)
    with pytest.raises(ConfigError, match="3670 decoded photos need 2.7 MiB"):
        data_lib.read_tfds(tfds_config(cache_dir))
    with pytest.raises(ConfigError, match="15 decoded photos need 11.2 KiB"):  # 5 classes x max_per_class=3
        data_lib.read_tfds(tfds_config(cache_dir, max_per_class=3))


def test_available_memory_reads_mem_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       16318412 kB\nMemFree:          734512 kB\nMemAvailable:    9871234 kB\n"
    )
    assert data_lib.available_memory(meminfo) == 9871234 * 1024
    fallback = data_lib.available_memory(tmp_path / "missing")  # os.sysconf, or unknown on this platform
    assert fallback is None or fallback > 0


def test_cli_refuses_photos_too_big_for_memory_in_one_line(tiny_photos, tmp_path):
    size = 1_000_000  # 30 photos of 1e6 x 1e6 x 3 bytes: 82 TiB, refused before any is decoded
    available = data_lib.available_memory()
    if available is None or available >= 30 * size**2 * 3:
        pytest.skip("this machine's available memory is unknown (or vast): the check is skipped")
    run_dir = tmp_path / "run"
    result = run_cli(
        f"dataset.path={tiny_photos}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        f"dataset.image_size={size}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert f"flowerbench: error: dataset.image_size={size}: 30 decoded photos need 81.9 TiB" in result.stderr
    assert "Traceback" not in result.stderr and not run_dir.exists()


# ------------------------------------------------------------------------------------- your own images


def test_a_folder_of_your_own_images_with_any_pillow_suffix(tmp_path, cache_dir):
    """dataset=folder: other class names, PNG and WebP files beside JPEGs, a class of its own size."""
    root = tmp_path / "my_photos"
    rng = np.random.default_rng(0)
    for label, (name, suffix, count) in enumerate(
        [("cats", ".png", 7), ("dogs", ".webp", 5), ("owls", ".jpg", 6)]
    ):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.full((20, 20, 3), 60 * label, np.uint8) + rng.integers(0, 20, (20, 20, 3), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}{suffix}")
    config = load_option("dataset", "folder", path=str(root), cache_dir=str(cache_dir), image_size=16)
    data = data_lib.load_dataset(config)
    assert data.class_names == ["cats", "dogs", "owls"] and data.source == "folder"
    labels = np.concatenate([data.train_labels, data.val_labels])
    assert np.bincount(labels).tolist() == [7, 5, 6]  # every image, whatever its suffix
    assert data.train_images.shape[1:] == (16, 16, 3)


def test_a_class_that_the_split_leaves_untrained_is_refused_in_one_line(tmp_path, cache_dir):
    root = make_photo_tree(tmp_path / "photos", per_class=4)
    for extra in sorted((root / "tulips").iterdir())[1:]:
        extra.unlink()  # one tulip, which a split seed can put in the validation split
    tulip = CLASSES.index("tulips")

    def config(split_seed: int) -> DatasetConfig:
        return load_option(
            "dataset",
            "folder",
            path=str(root),
            cache_dir=str(cache_dir),
            image_size=16,
            split_seed=split_seed,
        )

    def trains_on_the_tulip(split_seed: int) -> bool:
        order = data_lib.list_folder(root, config(split_seed))[1]
        return tulip in order[: data_lib.split_bounds(len(order), 0.2)[0]]

    seed = next(seed for seed in range(100) if not trains_on_the_tulip(seed))
    with pytest.raises(DataError, match=r"class 'tulips' has 1 image\(s\), none of them among the 14 "):
        data_lib.load_dataset(config(seed))
    data_lib.load_dataset(config(next(seed for seed in range(100) if trains_on_the_tulip(seed))))


@pytest.fixture(scope="module")
def tiny_tfds_dir(tmp_path_factory) -> Path:
    """tiny_shapes prepared in tfds' format by tfds itself, in another process (so none is registered here)."""
    pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path_factory.mktemp("tfds")
    script = f"from tests.tfds_tiny import prepare; prepare({str(data_dir)!r})"
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, cwd=ROOT)
    return data_dir


def test_a_prepared_tfds_dataset_loads_offline_by_name(tiny_tfds_dir, cache_dir, monkeypatch):
    def no_network(host: str) -> bool:
        raise AssertionError(f"asked the network ({host}) for a dataset that is prepared")

    monkeypatch.setattr(data_lib, "download_reachable", no_network)
    config = load_option(
        "dataset", "tfds", tfds_name="tiny_shapes", data_dir=str(tiny_tfds_dir), cache_dir=str(cache_dir),
        image_size=16,
    )  # fmt: skip
    data = data_lib.load_dataset(config)
    assert config.name == "tiny_shapes" and data.source == "tfds"
    assert data.class_names == ["circle", "square", "stripe"]
    assert (len(data.train_labels), len(data.val_labels), data.test_labels) == (24, 6, None)
    assert data.train_images.shape[1:] == (16, 16, 3)  # grayscale to RGB, resized
    channels = data.train_images.astype(int)
    assert (channels[..., 0] == channels[..., 2]).all()  # three equal channels
    # tfds' published order kept: training is its train[:80%], record for record
    import tensorflow_datasets as tfds

    published = tfds.load("tiny_shapes", split="train[:80%]", data_dir=str(tiny_tfds_dir), as_supervised=True)
    assert data.train_labels.tolist() == [int(label) for _, label in tfds.as_numpy(published)]


def test_published_splits_take_the_datasets_own_test_split(tiny_tfds_dir, cache_dir):
    config = load_option(
        "dataset", "tfds", tfds_name="tiny_shapes", data_dir=str(tiny_tfds_dir), cache_dir=str(cache_dir),
        image_size=16, splits="published", test_fraction=0.1,
    )  # fmt: skip
    data = data_lib.load_dataset(config)
    assert (len(data.train_labels), len(data.val_labels), len(data.test_labels)) == (24, 6, 9)
    assert np.bincount(data.test_labels).tolist() == [3, 3, 3]
    suite_split = data_lib.load_dataset(
        load_option(
            "dataset",
            "tfds",
            tfds_name="tiny_shapes",
            data_dir=str(tiny_tfds_dir),
            cache_dir=str(cache_dir),
            image_size=16,
            test_fraction=0.1,
        )  # fmt: skip
    )
    assert len(suite_split.test_labels) == 3  # the suite's own: the last tenth of tfds' train split


def test_an_unknown_or_unprepared_tfds_dataset_is_one_line(tmp_path, cache_dir, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data_lib, "download_reachable", lambda host: False)
    unprepared = load_option(
        "dataset", "tfds", tfds_name="mnist", data_dir=str(tmp_path), cache_dir=str(cache_dir), image_size=16
    )
    with pytest.raises(DataError, match=r"mnist is not prepared in .* is unreachable; .*tfds build mnist"):
        data_lib.load_dataset(unprepared)
    unknown = load_option("dataset", "tfds", tfds_name="no_such_dataset_xyz", cache_dir=str(cache_dir))
    with pytest.raises(DataError, match="tfds knows no such dataset"):
        data_lib.load_dataset(unknown)
