"""The project's file layout: where every stage reads and writes, relative to the project root.

The one module that knows the layout (dvc.yaml necessarily repeats it as strings; tests/test_paths.py
checks that the two agree)::

    data/prepared/{train,val,test}.pt, manifest.json   fetch
    models/external/<name>.pt                          fetch (model name ``external/<name>``)
    models/<V>-s<seed>.pt                              train (model name ``<V>-s<seed>``)
    metrics/train/<model>.{json,csv}                   train (metrics, per-epoch history)
    metrics/evaluate/<model>.json                      evaluate (test and PGD accuracy)
    selections/s<seed>.pt                              select (the single-image masks' images)
    masks/<model>/{dataset,class,single}.pt            masks
    metrics/masks/<model>.json                         masks
    budgets/<model>.pt, metrics/budgets/<model>.json   budgets (the budget ladder)
    controls/<model>.pt, metrics/controls/<model>.json controls
    results/                                           aggregate
    reports/report.md, reports/figures/                report

:func:`owner_stage` names the stage that writes a file (for the one-line error of a bad file).
Every function takes an optional ``root`` (the project folder; default: the working directory).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(".")
DATA = Path("data/prepared")
CACHE = Path("data/cache")
MODELS = Path("models")
EXTERNAL = MODELS / "external"
MASKS = Path("masks")
BUDGETS = Path("budgets")
CONTROLS = Path("controls")
METRICS = Path("metrics")
RESULTS = Path("results")
REPORTS = Path("reports")
SELECTIONS = Path("selections")

MASK_KINDS = ("dataset", "class", "single")


def model_name(variant: str, seed: int) -> str:
    """The name of a trained model: ``("N", 0)`` -> ``"N-s0"``."""
    return f"{variant}-s{seed}"


def external_name(name: str) -> str:
    """The model name of fetched checkpoint ``name``: ``"ext"`` -> ``"external/ext"``."""
    return f"{EXTERNAL.relative_to(MODELS).as_posix()}/{name}"


def split_file(split: str, root: Path = ROOT) -> Path:
    """A prepared split: ``data/prepared/<split>.pt`` (:func:`freqbias.data.load_split` reads it by name)."""
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


def eval_metrics(model: str, root: Path = ROOT) -> Path:
    """The evaluate stage's metrics of a model (clean and PGD test accuracy): ``metrics/evaluate/<model>.json``."""
    return root / METRICS / "evaluate" / f"{model}.json"


def selection_file(seed: int, root: Path = ROOT) -> Path:
    """The select stage's images for the models of ``seed``: ``selections/s<seed>.pt``."""
    return root / SELECTIONS / f"s{seed}.pt"


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


def budget_file(model: str, root: Path = ROOT) -> Path:
    """The budgets stage's ladder of a model: ``budgets/<model>.pt``."""
    return root / BUDGETS / f"{model}.pt"


def budget_metrics(model: str, root: Path = ROOT) -> Path:
    """The budgets stage's metrics of a model: ``metrics/budgets/<model>.json``."""
    return root / METRICS / "budgets" / f"{model}.json"


def controls_file(model: str, root: Path = ROOT) -> Path:
    """The controls stage's measurements of a model: ``controls/<model>.pt``."""
    return root / CONTROLS / f"{model}.pt"


def yardstick_file(seed: int, root: Path = ROOT) -> Path:
    """The yardstick stage's fit for claim 11: the standard model of ``seed`` on the next seed's selected images,
    ``controls/yardstick-s<seed>.pt``."""
    return root / CONTROLS / f"yardstick-s{seed}.pt"


def controls_metrics(model: str, root: Path = ROOT) -> Path:
    """The controls stage's metrics of a model: ``metrics/controls/<model>.json``."""
    return root / METRICS / "controls" / f"{model}.json"


def report_file(root: Path = ROOT) -> Path:
    """The report: ``reports/report.md``."""
    return root / REPORTS / "report.md"


def figures_dir(root: Path = ROOT) -> Path:
    """The report's figures: ``reports/figures``."""
    return root / REPORTS / "figures"


def _owners() -> list[tuple[re.Pattern, str]]:
    """(pattern of a posix path, the dvc.yaml stage that writes it; ``\\1``-``\\2`` variant and seed)."""
    model = r"([^/]+)-s(\d+)"
    return [(re.compile(p), s) for p, s in (
        (rf"(?:^|/){DATA}/[^/]+$", "fetch"),
        (rf"(?:^|/){EXTERNAL}/[^/]+\.pt$", "fetch"),
        (rf"(?:^|/){MODELS}/{model}\.pt$", r"train@\1-\2"),
        (rf"(?:^|/){METRICS}/train/{model}\.(?:json|csv)$", r"train@\1-\2"),
        (rf"(?:^|/){METRICS}/{MASKS}/external/[^/]+\.json$", "masks-external"),
        (rf"(?:^|/){METRICS}/{MASKS}/{model}\.json$", r"masks@\1-\2"),
        (rf"(?:^|/){MASKS}/external/[^/]+/[^/]+$", "masks-external"),
        (rf"(?:^|/){MASKS}/{model}/[^/]+$", r"masks@\1-\2"),
        (rf"(?:^|/){CONTROLS}/{model}\.pt$", r"controls@\1-\2"),
        (rf"(?:^|/){BUDGETS}/{model}\.pt$", r"budgets@\1-\2"),
        (rf"(?:^|/){METRICS}/budgets/{model}\.json$", r"budgets@\1-\2"),
        (rf"(?:^|/){METRICS}/evaluate/{model}\.json$", r"evaluate@\1-\2"),
        (rf"(?:^|/){SELECTIONS}/s(\d+)\.pt$", r"select@\1"),
        (rf"(?:^|/){METRICS}/controls/{model}\.json$", r"controls@\1-\2"),
        (rf"(?:^|/){RESULTS}/", "aggregate"),
        (rf"(?:^|/){REPORTS}/", "report"),
    )]


def owner_stage(path: str | Path) -> str | None:
    """The dvc.yaml stage that writes ``path`` (``"fetch"``, ``"train@N-0"``, ``"masks@A-1"``,
    ``"masks-external"``, ``"aggregate"``, ``"report"``), or None for a file outside the layout."""
    text = Path(path).as_posix()
    for pattern, stage in _owners():
        match = pattern.search(text)
        if match:
            return match.expand(stage)
    return None
