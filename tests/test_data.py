"""Datasets: the IDX reader, the registry's loaders on small files made here, fixed splits, the
manifest, and the planted dataset's frequency content."""

from __future__ import annotations

import gzip
import hashlib
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from freqbias.config import DataError, ParamError
from freqbias.data import (
    IMAGENETTE_CLASSES,
    DataConfig,
    PlantedBand,
    PlantedData,
    RawDataset,
    build_manifest,
    interleave_classes,
    load_cifar10,
    load_fashion_mnist,
    load_imagenette,
    load_planted,
    load_raw,
    make_planted,
    make_splits,
    read_idx,
    tensor_sha256,
    write_idx,
)
from freqbias.planted import planted_band

# ---------------------------------------------------------------------------------------------
# IDX files


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 7, 3)), (np.int8, (11,)), (np.uint8, (2, 28, 28))])
def test_idx_round_trip(tmp_path, name, dtype, shape):
    rng = np.random.default_rng(0)
    a = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    write_idx(a, tmp_path / name)
    b = read_idx(tmp_path / name)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_gz_is_compressed(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    write_idx(a, tmp_path / "a.gz")
    assert gzip.decompress((tmp_path / "a.gz").read_bytes())[:4] == bytes([0, 0, 0x08, 3])


def test_idx_big_endian_types_read_as_native(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + values.tobytes())
    out = read_idx(path)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, values.astype(np.int32))


@pytest.mark.parametrize("header", [b"", b"\x00\x00", b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"])
def test_idx_bad_magic(tmp_path, header):
    path = tmp_path / "bad.idx"
    path.write_bytes(header + bytes(16))
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


@pytest.mark.parametrize("name", ["t.idx", "t.idx.gz"])
def test_idx_truncated_body(tmp_path, name):
    write_idx(np.ones((4, 5, 6), np.uint8), tmp_path / "full.idx")
    data = (tmp_path / "full.idx").read_bytes()[:-7]
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match=r"IDX body has 113 bytes, header says 120"):
        read_idx(tmp_path / name)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def _fake_fmnist(folder: Path, n_train: int = 12, n_test: int = 5) -> dict[str, str]:
    """The 4 IDX .gz files of a tiny fake Fashion-MNIST; returns their SHA-256 (the ``expected`` dict)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(a, folder / name)
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in arrays}


def test_fashion_mnist_loads_and_verifies(tmp_path):
    folder = tmp_path / "fmnist"
    expected = _fake_fmnist(folder)
    raw = load_fashion_mnist(str(folder), download=False, cache_dir=tmp_path / "cache", expected=expected)
    assert raw.x_train.shape == (12, 1, 28, 28) and raw.x_train.dtype == torch.uint8
    assert raw.x_test.shape == (5, 1, 28, 28) and raw.x_test.dtype == torch.uint8
    assert raw.y_train.dtype == torch.int64 and raw.y_train.tolist() == [i % 10 for i in range(12)]
    assert raw.y_test.tolist() == [4, 3, 2, 1, 0]
    expected_images = read_idx(folder / "train-images-idx3-ubyte.gz")
    assert torch.equal(raw.x_train[:, 0], torch.from_numpy(expected_images))
    assert raw.files == expected and raw.source == str(folder)
    assert len(raw.classes) == 10


def test_fashion_mnist_wrong_hash_names_the_file(tmp_path):
    folder = tmp_path / "fmnist"
    expected = _fake_fmnist(folder)
    expected["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 [0-9a-f]{64} does not match"):
        load_fashion_mnist(str(folder), download=False, cache_dir=tmp_path / "cache", expected=expected)


def test_fashion_mnist_corrupted_file_fails_the_hash(tmp_path):
    folder = tmp_path / "fmnist"
    expected = _fake_fmnist(folder)
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(str(folder), download=False, cache_dir=tmp_path / "cache", expected=expected)


def test_fashion_mnist_missing_without_download_says_both_ways(tmp_path):
    expected = _fake_fmnist(tmp_path / "elsewhere")
    with pytest.raises(DataError) as info:
        load_fashion_mnist(str(tmp_path / "nope"), download=False, cache_dir=tmp_path / "cache", expected=expected)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "nope") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "data.download: true" in message


def test_fashion_mnist_partial_folder_counts_as_missing(tmp_path):
    folder = tmp_path / "fmnist"
    expected = _fake_fmnist(folder)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="not found"):
        load_fashion_mnist(str(folder), download=False, cache_dir=tmp_path / "cache", expected=expected)


def test_fashion_mnist_falls_back_to_the_download_cache(tmp_path):
    cache = tmp_path / "cache"
    expected = _fake_fmnist(cache / "FashionMNIST" / "raw")
    raw = load_fashion_mnist(str(tmp_path / "nope"), download=False, cache_dir=cache, expected=expected)
    assert raw.source == str(cache / "FashionMNIST" / "raw") and len(raw.y_train) == 12


def test_fashion_mnist_failed_download_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    expected = _fake_fmnist(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"download failed: OSError"):
        load_fashion_mnist(str(tmp_path / "nope"), download=True, cache_dir=tmp_path / "cache", expected=expected)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (torchvision reads the pickled batches; the real class checks the MD5 of the real files,
# so the test runs torchvision's own reader with the MD5s of the fake files instead). The real files are
# Python 2 pickles, which torchvision loads with ``encoding="latin1"``: their keys come back as ``str``
# ("data", "labels", "label_names"), so the fake batches use ``str`` keys too.


def _fake_cifar(root: Path, per_batch: int = 4, n_test: int = 6) -> dict[str, np.ndarray]:
    """A tiny ``cifar-10-batches-py`` folder in the real format; returns the RGB arrays (N, 32, 32, 3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    train = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        labels = [(i + j) % 10 for j in range(per_batch)]
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump({"batch_label": "fake", "labels": labels, "data": data}, fh)
        train.append(data)
    test = rng.integers(0, 256, (n_test, 3072)).astype(np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"batch_label": "fake", "labels": list(range(n_test)), "data": test}, fh)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names, "num_vis": 3072}, fh)
    to_hwc = lambda a: a.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # noqa: E731
    return {"train": to_hwc(np.vstack(train)), "test": to_hwc(test)}


def _cifar_with_fake_md5(root: Path):
    """torchvision's CIFAR10, with the MD5 lists of the fake files under ``root``."""
    from torchvision.datasets import CIFAR10

    md5 = lambda name: hashlib.md5((root / CIFAR10.base_folder / name).read_bytes()).hexdigest()  # noqa: E731

    class FakeMd5CIFAR10(CIFAR10):
        train_list = [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
        test_list = [["test_batch", md5("test_batch")]]
        meta = {**CIFAR10.meta, "md5": md5("batches.meta")}

    return FakeMd5CIFAR10


def test_cifar10_loads_as_grayscale(tmp_path, monkeypatch):
    import torchvision.datasets

    rgb = _fake_cifar(tmp_path)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _cifar_with_fake_md5(tmp_path))
    raw = load_cifar10(str(tmp_path), download=False, cache_dir=tmp_path / "cache")
    assert raw.x_train.shape == (20, 1, 32, 32) and raw.x_train.dtype == torch.uint8
    assert raw.x_test.shape == (6, 1, 32, 32)
    assert raw.y_train.dtype == torch.int64
    assert raw.y_train.tolist() == [(i + j) % 10 for i in range(1, 6) for j in range(4)]
    assert raw.y_test.tolist() == list(range(6))
    assert raw.classes[0] == "airplane" and len(raw.classes) == 10
    luma = np.round(rgb["train"].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    np.testing.assert_allclose(raw.x_train[:, 0].numpy(), luma, atol=1)  # float32 vs float64 rounding
    assert raw.source == str(tmp_path)


def test_cifar10_missing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*data\.download: true"):
        load_cifar10(str(tmp_path), download=False, cache_dir=tmp_path / "cache")


def test_cifar10_real_class_rejects_fake_files(tmp_path):
    """The fake files fail torchvision's MD5 check: the loader reports that as missing data."""
    _fake_cifar(tmp_path)
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_cifar10(str(tmp_path), download=False, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------
# Imagenette


def _gray_level(label: int) -> int:
    return 30 + 40 * label


def _fake_imagenette(root: Path, n_train: int = 2, n_val: int = 1) -> None:
    """train/<wnid>/ and val/<wnid>/ with small flat RGB PNGs; class ``label`` has gray level 30 + 40 label."""
    for split, n in (("train", n_train), ("val", n_val)):
        for label, wnid in enumerate(sorted(IMAGENETTE_CLASSES)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            v = _gray_level(label)
            for i in range(n):
                Image.new("RGB", (48 + 8 * i, 40), (v, v, v)).save(folder / f"img{i}.png")
            (folder / "notes.txt").write_text("not an image")


def test_imagenette_loads_grayscale_resized_with_labels(tmp_path):
    _fake_imagenette(tmp_path)
    raw = load_imagenette(str(tmp_path), download=False, cache_dir=tmp_path / "cache", image_size=32)
    assert raw.x_train.shape == (10, 1, 32, 32) and raw.x_train.dtype == torch.uint8
    assert raw.x_test.shape == (5, 1, 32, 32)
    assert raw.y_train.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert raw.y_test.tolist() == [0, 1, 2, 3, 4]
    for x, y in ((raw.x_train, raw.y_train), (raw.x_test, raw.y_test)):
        for img, label in zip(x, y):
            assert (img.int() - _gray_level(int(label))).abs().max() <= 1
    assert raw.classes == [IMAGENETTE_CLASSES[w] for w in sorted(IMAGENETTE_CLASSES)]
    assert raw.classes[0] == "English springer"


def test_imagenette_test_split_deals_the_classes_round_robin(tmp_path):
    """"The first n test images" (eval, single-image selection, filtered accuracy) must span the classes."""
    _fake_imagenette(tmp_path, n_train=1, n_val=3)
    raw = load_imagenette(str(tmp_path), download=False, cache_dir=tmp_path / "cache", image_size=28)
    assert raw.y_test.tolist() == [0, 1, 2, 3, 4] * 3
    for img, label in zip(raw.x_test, raw.y_test):
        assert (img.int() - _gray_level(int(label))).abs().max() <= 1


def test_interleave_classes_keeps_each_class_in_order():
    y = torch.tensor([2, 2, 2, 0, 1, 1])
    order = interleave_classes(y)
    assert y[order].tolist() == [0, 1, 2, 1, 2, 2] and order.tolist() == [3, 4, 0, 5, 1, 2]
    assert interleave_classes(torch.zeros(0, dtype=torch.long)).tolist() == []


def test_imagenette_centre_crops_the_longer_side(tmp_path):
    _fake_imagenette(tmp_path, n_train=1, n_val=1)
    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, 32:64] = 255  # only the middle third is white
    for split in ("train", "val"):
        Image.fromarray(wide).save(tmp_path / split / sorted(IMAGENETTE_CLASSES)[0] / "img0.png")
    raw = load_imagenette(str(tmp_path), download=False, cache_dir=tmp_path / "cache", image_size=16)
    img = raw.x_train[0, 0].int()
    assert img.shape == (16, 16)
    assert img[:, 2:-2].min() >= 250  # interior of the crop is the white middle (edges: resampling blur)
    assert img.float().mean() > 200


def test_imagenette_missing_root(tmp_path):
    for root in (None, str(tmp_path / "nope")):
        with pytest.raises(DataError, match="Imagenette not found at data.root"):
            load_imagenette(root, download=False, cache_dir=tmp_path / "cache")


def test_imagenette_missing_class_folder_names_it(tmp_path):
    _fake_imagenette(tmp_path)
    wnid = sorted(IMAGENETTE_CLASSES)[3]
    for f in (tmp_path / "val" / wnid).glob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match=rf"val/{wnid}: no images"):
        load_imagenette(str(tmp_path), download=False, cache_dir=tmp_path / "cache", image_size=28)


# ---------------------------------------------------------------------------------------------
# Splits and manifest


def _config(**overrides) -> DataConfig:
    base = dict(dataset="planted", root=None, download=False, image_size=28, val_size=20, split_seed=0,
                max_train=None, max_test=None, mean=None, std=None, planted={})
    return DataConfig(**{**base, **overrides})


def _raw(n_train: int = 100, n_test: int = 30, size: int = 28) -> RawDataset:
    """Images whose every pixel is the image's index (mod 256); labels are the indices."""
    idx = torch.arange(n_train)
    x_train = (idx % 256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, size, size).clone()
    x_test = torch.randint(0, 256, (n_test, 1, size, size), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    return RawDataset(x_train, idx.clone(), x_test, torch.arange(n_test) % 3, classes=[f"c{i}" for i in range(n_train)],
                      source="test")


def test_make_splits_val_is_seeded_and_disjoint():
    raw = _raw()
    a, b = make_splits(raw, _config(split_seed=0)), make_splits(raw, _config(split_seed=0))
    c = make_splits(raw, _config(split_seed=1))
    for split in ("train", "val", "test"):
        assert torch.equal(a[split][0], b[split][0]) and torch.equal(a[split][1], b[split][1])
    assert not torch.equal(a["val"][1], c["val"][1])
    train, val = set(a["train"][1].tolist()), set(a["val"][1].tolist())
    assert len(val) == 20 and len(train) == 80
    assert not train & val and train | val == set(range(100))
    assert set(a["val"][1].tolist()) != set(range(20))  # a permutation, not the first images
    # images travel with their labels
    assert torch.equal(a["train"][0][:, 0, 0, 0].long(), a["train"][1] % 256)


def test_make_splits_test_untouched_and_max_test():
    raw = _raw()
    splits = make_splits(raw, _config())
    assert torch.equal(splits["test"][0], raw.x_test) and torch.equal(splits["test"][1], raw.y_test)
    splits = make_splits(raw, _config(max_test=7))
    assert torch.equal(splits["test"][0], raw.x_test[:7])
    assert len(make_splits(raw, _config(max_test=1000))["test"][1]) == 30


def test_make_splits_max_train_subsamples_the_rest():
    raw = _raw()
    full = make_splits(raw, _config())
    small = make_splits(raw, _config(max_train=10))
    assert len(small["train"][1]) == 10
    assert torch.equal(small["val"][1], full["val"][1])  # val does not depend on max_train
    assert set(small["train"][1].tolist()) <= set(full["train"][1].tolist())


def test_make_splits_resizes_every_split():
    splits = make_splits(_raw(), _config(image_size=40))
    for x, _ in splits.values():
        assert x.shape[-2:] == (40, 40) and x.dtype == torch.uint8
    assert torch.equal(splits["train"][0][:, 0, 17, 23].long(), splits["train"][1] % 256)  # flat stays flat


def test_make_splits_val_too_large():
    with pytest.raises(ParamError, match="data.val_size"):
        make_splits(_raw(n_train=20), _config(val_size=20))


def test_build_manifest_keys_and_counts():
    raw = _raw()
    raw = RawDataset(raw.x_train, raw.y_train % 4, raw.x_test, raw.y_test, classes=["a", "b", "c", "d"],
                     source="test", files={"f": "0" * 64})
    cfg = _config(max_train=50, max_test=12)
    splits = make_splits(raw, cfg)
    m = build_manifest(raw, splits, cfg)
    assert set(m) == {"dataset", "source", "raw_files_sha256", "classes", "num_classes", "in_channels",
                      "image_size", "mean", "std", "split_seed", "counts", "class_counts", "sha256"}
    assert m["counts"] == {"train": 50, "val": 20, "test": 12}
    assert {s: sum(c) for s, c in m["class_counts"].items()} == m["counts"]
    assert m["class_counts"]["test"] == torch.bincount(raw.y_test[:12], minlength=4).tolist()
    assert m["num_classes"] == 4 and m["in_channels"] == 1 and m["image_size"] == 28
    assert m["raw_files_sha256"] == {"f": "0" * 64} and m["source"] == "test"
    x = splits["train"][0].float() / 255
    assert m["mean"] == [pytest.approx(float(x.mean()), abs=1e-4)]
    assert m["std"] == [pytest.approx(float(x.std()), abs=1e-4)]
    assert m["sha256"] == {s: tensor_sha256(x) for s, (x, _) in splits.items()}
    assert len(set(m["sha256"].values())) == 3


def test_build_manifest_fixed_statistics():
    raw = _raw()
    m = build_manifest(raw, make_splits(raw, _config()), _config(mean=0.449, std=0.226))
    assert m["mean"] == [0.449] and m["std"] == [0.226]


# ---------------------------------------------------------------------------------------------
# DataConfig


def _data_params(**data) -> dict:
    base = {"dataset": "planted", "root": None, "download": False, "image_size": 28, "val_size": 10,
            "split_seed": 0, "max_train": None, "max_test": None, "mean": None, "std": None,
            "planted": {"num_classes": 4, "n_train": 100, "n_test": 20}}
    return {"data": {**base, **data}}


def test_data_config_from_params():
    cfg = DataConfig.from_params(_data_params(planted={"r_min": 3, "r_max": 4}))
    assert cfg.dataset == "planted" and cfg.val_size == 10
    assert cfg.planted_band() == PlantedBand(r_min=3.0, r_max=4.0)
    assert cfg.planted_data() == PlantedData(band=PlantedBand(r_min=3.0, r_max=4.0))  # the counts' defaults


@pytest.mark.parametrize("data,key", [
    ({"dataset": "mnist"}, "data.dataset"),
    ({"image_size": 16}, "data.image_size"),
    ({"val_size": 0}, "data.val_size"),
    ({"std": 0}, "data.std"),
    ({"planted": {"num_classes": 1}}, "data.planted.num_classes"),
    ({"planted": {"noise": -0.1}}, "data.planted.noise"),
    ({"dataset": "fashion_mnist", "planted": {"seed": -1}}, "data.planted.seed"),  # read whatever the dataset
])
def test_data_config_errors_name_the_key(data, key):
    with pytest.raises(ParamError, match=f"^{key}:"):
        DataConfig.from_params(_data_params(**data))


def test_missing_root_folder_stops_the_load_not_the_config(tmp_path):
    """Only the fetch stage reads the raw files: later stages must not fail on a data.root that is gone."""
    cfg = DataConfig.from_params(_data_params(dataset="fashion_mnist", root="/no/such/folder"))
    with pytest.raises(ParamError, match=r"^data\.root: folder '/no/such/folder' does not exist; apt-get"):
        load_raw(cfg, cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# The planted dataset


def test_make_planted_shapes_and_balance():
    x, y = make_planted(40, image_size=32, num_classes=4, seed=3)
    assert x.shape == (40, 1, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (40,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [10, 10, 10, 10]


def test_make_planted_deterministic_per_seed():
    a, b, c = make_planted(20, seed=5), make_planted(20, seed=5), make_planted(20, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_make_planted_default_is_unchanged():
    """Pinned output of the default band (``angle`` 0 included): the data behind existing runs stays
    bit-identical."""
    x, y = make_planted(200, 28, 4, seed=0)
    assert tensor_sha256(x) == "437e8768853f3d247495a34ef71c1af242d34a06bc9bd1bd4ec498f5ed3c5a49"
    assert tensor_sha256(y) == "5f8e6494eb86b4f558c1f7a3adeb3a37445f9eb2a31fdc8b137269a3b4bf5081"
    assert PlantedBand().angle == 0.0


def test_planted_angle_rotates_data_and_band():
    """``angle`` turns every class's orientation by the same offset; labels and radii stay put."""
    turned = PlantedBand(angle=0.3)
    (x0, y0), (x1, y1) = make_planted(40, seed=2), make_planted(40, seed=2, band=turned)
    assert torch.equal(y0, y1) and not torch.equal(x0, x1)
    assert not torch.equal(planted_band(32, band=turned), planted_band(32))
    # half a class step (K = 4: pi / 8) is exactly between the default orientations: no bin in common
    half = planted_band(32, band=PlantedBand(angle=math.pi / 8, jitter=0.0), margin=0.3)
    assert half.any() and not (half & planted_band(32, band=PlantedBand(jitter=0.0), margin=0.3)).any()
    # a whole class step (pi / K) maps the class set onto itself
    step = planted_band(32, band=PlantedBand(angle=math.pi / 4))
    assert torch.equal(step, planted_band(32))


def test_load_planted_train_and_test_differ():
    raw = load_planted(None, False, Path("unused"), planted=PlantedData(n_train=40, n_test=20, seed=0))
    assert raw.x_train.shape == (40, 1, 28, 28) and raw.x_test.shape == (20, 1, 28, 28)
    assert not torch.equal(raw.x_train[:20], raw.x_test)
    assert raw.classes == ["0 deg", "45 deg", "90 deg", "135 deg"]


def _class_spectra(size: int, num_classes: int, band: PlantedBand, n: int = 800) -> torch.Tensor:
    """Mean power spectrum (unshifted, full layout) of ``x - class mean`` for each class, DC set to 0: (K, S, S)."""
    x, y = make_planted(n, size, num_classes, seed=0, band=band)
    x = x[:, 0].float() / 255
    power = torch.stack([(torch.fft.fft2(x[y == c] - x[y == c].mean(0)).abs() ** 2).mean(0)
                         for c in range(num_classes)])
    power[:, 0, 0] = 0
    return power


def _orientation(size: int) -> torch.Tensor:
    """Orientation atan2(ky, kx) of every bin of the unshifted full spectrum, (S, S), radians."""
    k = torch.fft.fftfreq(size, d=1 / size)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    return torch.atan2(ky, kx)


def _angle_mod_pi(a: float | torch.Tensor) -> float | torch.Tensor:
    """Signed angle in [-pi/2, pi/2) equivalent to ``a`` mod pi."""
    return (a + math.pi / 2) % math.pi - math.pi / 2


PLANTED_CASES = [(28, 4, PlantedBand()), (32, 3, PlantedBand(r_min=3.0, r_max=5.0, jitter=0.05)),
                 (32, 4, PlantedBand(r_min=10.0, r_max=13.0, angle=0.3))]


@pytest.mark.parametrize("size,num_classes,band", PLANTED_CASES)
def test_planted_power_concentrates_in_the_class_band(size, num_classes, band):
    """Class c's non-DC power sits in the band's sector nearest orientation angle + pi c / K: its share of the
    power there is > 5x that sector's share of the bins, and the other classes' sectors hold little."""
    power = _class_spectra(size, num_classes, band)
    mask = planted_band(size, full=True, num_classes=num_classes, band=band)
    assert not mask[0, 0] and mask.sum() / mask.numel() < 0.2
    nearest = torch.stack([_angle_mod_pi(_orientation(size) - band.angle - math.pi * c / num_classes).abs()
                           for c in range(num_classes)]).argmin(0)
    for c, p in enumerate(power):
        own = mask & (nearest == c)
        bin_share = own.sum().item() / (size * size - 1)
        share = (p[own].sum() / p.sum()).item()
        assert share > 5 * bin_share, (c, share, bin_share)
        for other in range(num_classes):
            if other != c:
                other_share = (p[mask & (nearest == other)].sum() / p.sum()).item()
                assert other_share < share / 5, (c, other, other_share, share)


@pytest.mark.parametrize("size,num_classes,band", PLANTED_CASES)
def test_planted_class_orientation(size, num_classes, band):
    """Within the band, the power-weighted orientation (mean of the doubled angle, mod pi) of class c's
    spectrum is angle + pi c / K; the strongest non-DC bin of each class lies in the band."""
    power = _class_spectra(size, num_classes, band)
    mask = planted_band(size, full=True, num_classes=num_classes, band=band)
    theta = _orientation(size)
    for c, p in enumerate(power):
        w = p * mask
        mean = 0.5 * math.atan2(float((w * torch.sin(2 * theta)).sum()), float((w * torch.cos(2 * theta)).sum()))
        assert abs(_angle_mod_pi(mean - band.angle - math.pi * c / num_classes)) < 0.05, (c, mean)
        assert mask.flatten()[p.argmax()]


def test_planted_band_layouts_agree():
    full = planted_band(28, full=True)
    rfft = planted_band(28)
    assert full.dtype == torch.bool and full.shape == (28, 28) and rfft.shape == (28, 15)
    assert torch.equal(full[:, :15], rfft)
    assert torch.equal(full, torch.roll(full.flip(0, 1), (1, 1), (0, 1)))  # symmetric under k -> -k
