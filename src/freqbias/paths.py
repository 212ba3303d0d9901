"""The project's file layout: where every stage reads and writes, relative to the project root.

The one module that knows the layout (dvc.yaml necessarily repeats it as strings; tests/test_paths.py
checks that the two agree)::

    data/prepared/{train,val,test}.pt, manifest.json   fetch
    models/external/<name>.pt                          fetch (model name ``external/<name>``)
    models/<V>-s<seed>.pt                              train (model name ``<V>-s<seed>``)
    metrics/train/<model>.{json,csv}                   train (metrics, per-epoch history)
    masks/<model>/{dataset,class,single}.pt            masks
    metrics/masks/<model>.json                         masks
    results/                                           aggregate
    reports/report.md, reports/figures/                report

Every function takes an optional ``root`` (the project folder; default: the working directory).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(".")
DATA = Path("data/prepared")
CACHE = Path("data/cache")
MODELS = Path("models")
EXTERNAL = MODELS / "external"
MASKS = Path("masks")
METRICS = Path("metrics")
RESULTS = Path("results")
REPORTS = Path("reports")

MASK_KINDS = ("dataset", "class", "single")


def model_name(variant: str, seed: int) -> str:
    """The name of a trained model: ``("N", 0)`` -> ``"N-s0"``."""
    return f"{variant}-s{seed}"


def external_name(name: str) -> str:
    """The model name of fetched checkpoint ``name``: ``"ext"`` -> ``"external/ext"``."""
    return f"{EXTERNAL.relative_to(MODELS).as_posix()}/{name}"


def split_file(split: str, root: Path = ROOT) -> Path:
    """A prepared split: ``data/prepared/<split>.pt`` (read with :func:`freqbias.data.load_split`)."""
    return root / DATA / f"{split}.pt"


def manifest_file(root: Path = ROOT) -> Path:
    """The prepared dataset's manifest: ``data/prepared/manifest.json``."""
    return root / DATA / "manifest.json"


def checkpoint(model: str, root: Path = ROOT) -> Path:
    """A model's checkpoint: ``models/<model>.pt`` (``models/external/<name>.pt`` for an external one)."""
    return root / MODELS / f"{model}.pt"


def train_metrics(model: str, root: Path = ROOT) -> Path:
    """The train stage's metrics of a model: ``metrics/train/<model>.json``."""
    return root / METRICS / "train" / f"{model}.json"


def train_history(model: str, root: Path = ROOT) -> Path:
    """The train stage's per-epoch history of a model: ``metrics/train/<model>.csv``."""
    return root / METRICS / "train" / f"{model}.csv"


def mask_dir(model: str, root: Path = ROOT) -> Path:
    """The masks stage's output folder of a model: ``masks/<model>``."""
    return root / MASKS / model


def mask_file(model: str, artifact: str, root: Path = ROOT) -> Path:
    """One mask artifact of a model: ``masks/<model>/<artifact>.pt``, ``artifact`` in :data:`MASK_KINDS`."""
    if artifact not in MASK_KINDS:
        raise ValueError(f"mask kind {artifact!r}; allowed: {', '.join(MASK_KINDS)}")
    return mask_dir(model, root) / f"{artifact}.pt"


def mask_metrics(model: str, root: Path = ROOT) -> Path:
    """The masks stage's metrics of a model: ``metrics/masks/<model>.json``."""
    return root / METRICS / "masks" / f"{model}.json"


def report_file(root: Path = ROOT) -> Path:
    """The report: ``reports/report.md``."""
    return root / REPORTS / "report.md"


def figures_dir(root: Path = ROOT) -> Path:
    """The report's figures: ``reports/figures``."""
    return root / REPORTS / "figures"
