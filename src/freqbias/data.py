"""Datasets: IDX reader, dataset registry, fixed splits, and the ``planted`` ground truth.

Prepared data are uint8 tensors ``x`` (N, C, H, W) with pixels in 0..255 (divide by 255 for [0, 1])
and int64 labels ``y`` (N,), in three fixed splits: ``train``, ``val`` (carved from the source's
train split with a seed) and ``test`` (the source's test split, untouched).

Add a dataset with one entry in :data:`DATASETS`: a loader returning a :class:`RawDataset`.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import paths
from .config import DataError, ParamError, Section
from .io import bad_file_error, load_torch, sha256_file
from .planted import PlantedBand, make_planted

SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------------------------
# IDX files (MNIST / Fashion-MNIST format)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into an array of its stored shape and dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise DataError(f"{path}: IDX body has {len(body)} bytes, header says {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(array: np.ndarray, path: str | Path) -> None:
    """Write an array as an IDX file (``.gz`` compressed when the name ends so). Used by tests."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass
class RawDataset:
    """A source's own train and test splits, uint8 (N, C, H, W), before val is carved out."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    source: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256


FASHION_MNIST_FILES = {  # SHA-256 of the original gzip files (identical in Debian's package)
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def load_fashion_mnist(root: str | None, download: bool, cache_dir: Path,
                       expected: dict[str, str] = FASHION_MNIST_FILES) -> RawDataset:
    """Fashion-MNIST from ``root`` (default: Debian's ``dataset-fashion-mnist`` files), else torchvision's
    download into ``cache_dir`` when ``download`` is set. Every raw file's SHA-256 is verified."""
    folder = Path(root or DEBIAN_FASHION_MNIST)
    if not all((folder / name).exists() for name in expected):
        folder = cache_dir / "FashionMNIST" / "raw"
        if not all((folder / name).exists() for name in expected):
            if not download:
                raise DataError(_fmnist_missing(root))
            try:
                from torchvision.datasets import FashionMNIST

                FashionMNIST(str(cache_dir), train=True, download=True)
                FashionMNIST(str(cache_dir), train=False, download=True)
            except Exception as exc:  # noqa: BLE001 - no network, server down, ...
                raise DataError(_fmnist_missing(root) + f" (download failed: {exc.__class__.__name__})") from None
    hashes = {name: sha256_file(folder / name) for name in expected}
    for name, digest in hashes.items():
        if digest != expected[name]:
            raise DataError(f"{folder / name}: SHA-256 {digest} does not match the expected {expected[name]}")
    read = lambda stem: torch.from_numpy(read_idx(folder / f"{stem}.gz").copy())  # noqa: E731
    return RawDataset(
        x_train=read("train-images-idx3-ubyte").unsqueeze(1), y_train=read("train-labels-idx1-ubyte").long(),
        x_test=read("t10k-images-idx3-ubyte").unsqueeze(1), y_test=read("t10k-labels-idx1-ubyte").long(),
        classes=FASHION_MNIST_CLASSES, source=str(folder), files=hashes)


def _fmnist_missing(root: str | None) -> str:
    where = root or DEBIAN_FASHION_MNIST
    return (f"Fashion-MNIST not found in {where}: install Debian's package (apt-get install dataset-fashion-mnist), "
            "or set data.download: true on a machine with a network, or point data.root at a folder with the "
            "4 .gz files")


def load_cifar10(root: str | None, download: bool, cache_dir: Path) -> RawDataset:
    """CIFAR-10 through torchvision (``root`` holding ``cifar-10-batches-py``, or a download), as grayscale."""
    from torchvision.datasets import CIFAR10

    folder = Path(root) if root else cache_dir
    try:
        train = CIFAR10(str(folder), train=True, download=download)
        test = CIFAR10(str(folder), train=False, download=download)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"CIFAR-10 not found in {folder} (expected cifar-10-batches-py/); set data.download: true "
                        f"on a machine with a network, or data.root to a folder holding it "
                        f"({exc.__class__.__name__})") from None
    to_gray = lambda a: _rgb_to_gray(torch.from_numpy(a).permute(0, 3, 1, 2))  # noqa: E731
    return RawDataset(to_gray(train.data), torch.tensor(train.targets), to_gray(test.data), torch.tensor(test.targets),
                      classes=list(train.classes), source=str(folder))


IMAGENETTE_CLASSES = {  # the study's five classes (WordNet ids used by Imagenette's folders)
    "n02102040": "English springer", "n03000684": "chain saw", "n03028079": "church",
    "n03394916": "French horn", "n03417042": "garbage truck",
}


def load_imagenette(root: str | None, download: bool, cache_dir: Path, image_size: int = 128) -> RawDataset:
    """Imagenette's study subset from an ImageFolder root with ``train/`` and ``val/`` folders: grayscale,
    resized (shorter side) and centre-cropped to ``image_size``. ``val/`` is used as the test split, its
    classes dealt round-robin (:func:`interleave_classes`): the stages take "the first n test images"."""
    from PIL import Image

    if root is None or not Path(root).is_dir():
        raise DataError(f"Imagenette not found at data.root={root!r}: download imagenette2-160 or imagenette2 from "
                        "https://github.com/fastai/imagenette, unpack it and set data.root to the folder holding "
                        "train/ and val/")
    out = {}
    for split in ("train", "val"):
        xs, ys = [], []
        for label, wnid in enumerate(sorted(IMAGENETTE_CLASSES)):
            folder = Path(root) / split / wnid
            files = sorted(p for p in folder.glob("*") if p.suffix.lower() in {".jpeg", ".jpg", ".png"})
            if not files:
                raise DataError(f"{folder}: no images (data.root must hold train/<wnid>/ and val/<wnid>/ folders)")
            for f in files:
                with Image.open(f) as im:
                    xs.append(_resize_center_crop(im.convert("L"), image_size))
                ys.append(label)
        out[split] = (torch.stack(xs), torch.tensor(ys))
    order = interleave_classes(out["val"][1])
    out["val"] = (out["val"][0][order], out["val"][1][order])
    return RawDataset(*out["train"], *out["val"], classes=[IMAGENETTE_CLASSES[w] for w in sorted(IMAGENETTE_CLASSES)],
                      source=str(root))


def interleave_classes(y: torch.Tensor) -> torch.Tensor:
    """Indices (N,) that deal labels ``y`` (N,) round-robin: every class's first image (in class order),
    then every class's second, ...; each class keeps its own order. A class-sorted split becomes one
    whose every prefix holds all classes while they last."""
    rank = torch.zeros_like(y)
    for k in y.unique():
        idx = (y == k).nonzero().squeeze(1)
        rank[idx] = torch.arange(len(idx))
    return torch.argsort(rank * (int(y.max()) + 1) + y, stable=True) if len(y) else rank


def _resize_center_crop(image: Any, size: int) -> torch.Tensor:
    """PIL grayscale image -> uint8 (1, size, size): shorter side resized to ``size``, centre crop."""
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))))
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).unsqueeze(0)


def _rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 1, H, W), ITU-R 601 luma."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# The planted dataset (ground truth for the mask method: freqbias.planted)


@dataclass(frozen=True)
class PlantedData:
    """The planted dataset's size and draw (``data.planted``): ``num_classes`` orientations, ``n_train`` and
    ``n_test`` images (test drawn with ``seed + 10_000``), its frequency ``band``."""

    num_classes: int = 4
    n_train: int = 6000
    n_test: int = 1000
    seed: int = 0
    band: PlantedBand = PlantedBand()


def load_planted(root: str | None, download: bool, cache_dir: Path, image_size: int = 28,
                 planted: PlantedData = PlantedData()) -> RawDataset:
    """The planted dataset as a registry entry (train and test from different seeds); ``root``, ``download``
    and ``cache_dir`` are unused (synthetic). Images uint8 (N, 1, image_size, image_size)."""
    p = planted
    x_train, y_train = make_planted(p.n_train, image_size, p.num_classes, p.seed, p.band)
    x_test, y_test = make_planted(p.n_test, image_size, p.num_classes, p.seed + 10_000, p.band)
    return RawDataset(x_train, y_train, x_test, y_test,
                      classes=[f"{round(180 * c / p.num_classes)} deg" for c in range(p.num_classes)],
                      source="synthetic")


DATA_HINTS = {  # how to get each dataset, for error messages
    "fashion_mnist": "apt-get install dataset-fashion-mnist, or set data.download: true on a machine with a network",
    "cifar10": "set data.download: true on a machine with a network, or put cifar-10-batches-py/ in that folder",
    "imagenette": "download imagenette2-160 from https://github.com/fastai/imagenette and unpack it there "
                  "(it must hold train/ and val/)",
    "planted": "synthetic, needs no files",
}

DATASETS: dict[str, Callable[..., RawDataset]] = {
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "imagenette": load_imagenette,
    "planted": load_planted,
}


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` section of params.yaml."""

    dataset: str
    root: str | None
    download: bool
    image_size: int
    val_size: int
    split_seed: int
    max_train: int | None
    max_test: int | None
    mean: float | None
    std: float | None
    planted: dict[str, Any]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "DataConfig":
        sec = Section(params, "data")
        return cls(
            dataset=sec.choice("dataset", DATASETS),
            root=sec.string("root", None, optional=True),
            download=sec.boolean("download", True),
            image_size=sec.integer("image_size", min=28),
            val_size=sec.integer("val_size", min=1),
            split_seed=sec.integer("split_seed", 0),
            max_train=sec.integer("max_train", None, min=1, optional=True),
            max_test=sec.integer("max_test", None, min=1, optional=True),
            mean=sec.number("mean", None, optional=True),
            std=sec.number("std", None, min=0, strict_min=True, optional=True),
            planted=cls._planted(sec.sub("planted", {})),
        )

    @staticmethod
    def _planted(p: Section) -> dict[str, Any]:
        """``data.planted``, read (and checked) whatever the dataset, so that its keys are always known."""
        planted: dict[str, Any] = {"num_classes": p.integer("num_classes", 4, min=2),
                                   "n_train": p.integer("n_train", 6000, min=10),
                                   "n_test": p.integer("n_test", 1000, min=10), "seed": p.integer("seed", 0, min=0)}
        for key in ("r_min", "r_max", "jitter", "amplitude", "noise"):
            planted[key] = p.number(key, getattr(PlantedBand(), key), min=0)
        return planted

    def planted_band(self) -> PlantedBand:
        fields = {k: float(v) for k, v in self.planted.items() if k in PlantedBand.__dataclass_fields__}
        return PlantedBand(**fields)

    def planted_data(self) -> PlantedData:
        """``data.planted`` as the planted loader's :class:`PlantedData`."""
        counts = {k: int(self.planted[k]) for k in ("num_classes", "n_train", "n_test", "seed") if k in self.planted}
        return PlantedData(**counts, band=self.planted_band())


def load_raw(cfg: DataConfig, cache_dir: Path) -> RawDataset:
    """Load the configured source dataset through the registry (``data.root``, when set, must exist)."""
    if cfg.root is not None and cfg.dataset != "planted" and not Path(cfg.root).exists():
        raise ParamError(f"data.root: folder {cfg.root!r} does not exist; {DATA_HINTS[cfg.dataset]}")
    loader = DATASETS[cfg.dataset]
    if cfg.dataset == "imagenette":
        return loader(cfg.root, cfg.download, cache_dir, image_size=cfg.image_size)
    if cfg.dataset == "planted":
        return loader(cfg.root, cfg.download, cache_dir, image_size=cfg.image_size, planted=cfg.planted_data())
    return loader(cfg.root, cfg.download, cache_dir)


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), bilinear with antialiasing (no-op at that size)."""
    if x.shape[-2:] == (size, size):
        return x
    out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def make_splits(raw: RawDataset, cfg: DataConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fixed splits: val (``val_size`` images) carved from the source's train split by a seeded
    permutation, train is the rest (optionally subsampled to ``max_train``), test untouched (optionally
    its first ``max_test`` images)."""
    n = len(raw.y_train)
    if cfg.val_size >= n:
        raise ParamError(f"data.val_size: must be < the {n} training images, got {cfg.val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[:cfg.val_size], perm[cfg.val_size:]
    if cfg.max_train is not None:
        train_idx = train_idx[:cfg.max_train]
    n_test = len(raw.y_test) if cfg.max_test is None else min(cfg.max_test, len(raw.y_test))
    size = cfg.image_size
    return {
        "train": (resize_uint8(raw.x_train[train_idx], size), raw.y_train[train_idx]),
        "val": (resize_uint8(raw.x_train[val_idx], size), raw.y_train[val_idx]),
        "test": (resize_uint8(raw.x_test[:n_test], size), raw.y_test[:n_test]),
    }


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def build_manifest(raw: RawDataset, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                   cfg: DataConfig) -> dict[str, Any]:
    """Source, hashes, counts, image size and the normalisation statistics (of the train split, in
    [0, 1] pixel units, unless fixed in params)."""
    x_train = to_float(splits["train"][0])
    mean = cfg.mean if cfg.mean is not None else round(float(x_train.mean()), 4)
    std = cfg.std if cfg.std is not None else round(float(x_train.std()), 4)
    return {
        "dataset": cfg.dataset, "source": raw.source, "raw_files_sha256": raw.files, "classes": raw.classes,
        "num_classes": len(raw.classes), "in_channels": int(x_train.shape[1]), "image_size": cfg.image_size,
        "mean": [mean] * x_train.shape[1], "std": [std] * x_train.shape[1], "split_seed": cfg.split_seed,
        "counts": {s: int(len(y)) for s, (x, y) in splits.items()},
        "class_counts": {s: torch.bincount(y, minlength=len(raw.classes)).tolist() for s, (x, y) in splits.items()},
        "sha256": {s: tensor_sha256(x) for s, (x, y) in splits.items()},
    }


def load_split(split: str, root: Path = paths.ROOT) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepared split ``split`` (its file: :func:`freqbias.paths.split_file`) -> (x uint8 (N, C, H, W),
    y int64 (N,)); DataError (one line) when missing, truncated or malformed."""
    path = paths.split_file(split, root)
    blob = load_torch(path, "prepared data")
    if not {"x", "y"} <= blob.keys() or not all(isinstance(blob[k], torch.Tensor) for k in "xy"):
        raise bad_file_error(path, "malformed prepared data: expected tensors x and y")
    return blob["x"], blob["y"]


def load_splits(*splits: str, root: Path = paths.ROOT) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The prepared ``splits`` by name (:func:`load_split` each): ``{"val": (x, y), ...}``."""
    return {s: load_split(s, root) for s in splits}


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images as pixels in [0, 1]: uint8 (0..255) -> float32 divided by 255; float images are returned as they are."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x
