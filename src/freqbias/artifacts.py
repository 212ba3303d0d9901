"""The stages' outputs as types: what ``masks/<model>/{dataset,class,single}.pt`` (:class:`MaskSet`) and
``controls/<model>.pt`` (:class:`ControlsData`, :class:`YardstickData`) hold, and a loaded model (:class:`LoadedModel`).

Each is a dataclass with ``save(path)`` (atomic, :mod:`freqbias.io`) and ``load(path)``
(``torch.load(weights_only=True)``, onto the CPU). On disk each is a plain dict of the dataclass's
fields (tensors, numbers, strings, lists and dicts of them), the keys the stage always wrote, so files
written before these types existed still load. Masks are UNSHIFTED and act on the normalised image
(see :mod:`freqbias.fourier`). Checkpoints keep their one format, :func:`freqbias.models.checkpoint_dict`;
:func:`save_checkpoint` / :func:`load_checkpoint` are its thin writer / reader. Paths: :mod:`freqbias.paths`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import paths
from .config import DataError
from .io import bad_file_error, load_torch, save_torch
from .models import Classifier, checkpoint_dict, load_checkpoint
from .paths import owner_stage

__all__ = ["ClassMasks", "ControlsData", "DatasetMask", "LoadedModel", "MaskSet", "SingleMasks", "YardstickData",
           "load_checkpoint", "save_checkpoint"]

T = TypeVar("T", bound="_Artifact")


class _Artifact:
    """``save`` / ``load`` of a dataclass as the dict of its fields (None-valued optional fields omitted)."""

    STAGE = "masks"  # the stage that writes it (named by a missing file's error)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            out[f.name] = value.cpu() if isinstance(value, torch.Tensor) else value
        return out

    def save(self, path: str | Path) -> None:
        save_torch(self.to_dict(), path)

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        """Read ``path`` (:func:`freqbias.io.load_torch`); :class:`DataError` (one line) when it is missing,
        truncated, unreadable or lacks a field."""
        path = Path(path)
        if not path.exists():
            stage = owner_stage(path)
            how = f": `dvc repro {stage}`" if stage else ""
            raise DataError(f"{path}: not found (run the {cls.STAGE} stage first{how})")
        blob = load_torch(path, f"{cls.__name__} file")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in blob.items() if k in names})
        except TypeError as exc:
            raise bad_file_error(path, f"not a {cls.__name__} file ({exc})") from None


@dataclass
class DatasetMask(_Artifact):
    """One mask for a whole dataset: ``mask`` (H, Wm) and its fitting ``record``; ``folds`` (K, H, Wm): one
    mask per disjoint fold of the same fit images (its uncertainty), with ``fold_records``; ``kind``: mask
    layout; ``meta``: the model's checkpoint meta. Records: :class:`freqbias.shared_masks.SharedMasks`.
    ``correct``: per split (``"val"``, ``"test"``) bool (2, N), whether the model is right on each of the
    split's N images without (row 0) and with (row 1) ``mask``, so that the aggregate stage need not score
    them again (None in files written before: it re-scores)."""

    mask: torch.Tensor
    record: dict
    folds: torch.Tensor
    fold_records: list[dict]
    kind: str
    meta: dict
    correct: dict | None = None


@dataclass
class ClassMasks(_Artifact):
    """One mask per class: ``masks`` (K, H, Wm), fitted on the val images ``index`` (n,); ``kind``;
    ``records``: the K fitting records (:class:`freqbias.shared_masks.SharedMasks`); ``counts`` (K,): fit
    images per class (a class without any has an all-NaN mask, n/a)."""

    masks: torch.Tensor
    index: torch.Tensor
    kind: str
    records: list[dict]
    counts: torch.Tensor


@dataclass
class SingleMasks(_Artifact):
    """One mask per image on the test images ``index`` (n,) (true labels ``y``); ``x_adv`` their PGD
    versions against the standard model, pixels in [0, 1] (n, C, H, W) (None in old files: rebuilt);
    ``target`` (n,) the model's prediction on the clean image; ``masks`` (n, H, Wm); ``steps`` (n,)
    optimiser steps used; ``kept`` (n,) bool: the masked image still gives ``target``; ``pool``: test
    images screened to find them; ``kind``. The standard model also has masks of the PGD images:
    ``masks_adv``, ``target_adv``, ``steps_adv``, ``kept_adv`` (None for every other model)."""

    index: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    masks: torch.Tensor
    steps: torch.Tensor
    kept: torch.Tensor
    pool: int
    kind: str
    x_adv: torch.Tensor | None = None
    masks_adv: torch.Tensor | None = None
    target_adv: torch.Tensor | None = None
    steps_adv: torch.Tensor | None = None
    kept_adv: torch.Tensor | None = None

    @property
    def has_adv(self) -> bool:
        """Whether the masks of the PGD images are stored (the standard model)."""
        return self.masks_adv is not None

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class MaskSet:
    """The masks stage's three artifacts of one model, ``masks/<model>/{dataset,class,single}.pt``."""

    dataset: DatasetMask
    classes: ClassMasks
    single: SingleMasks

    def save(self, model: str, root: Path | None = None) -> None:
        for kind, artifact in zip(paths.MASK_KINDS, (self.dataset, self.classes, self.single)):
            artifact.save(paths.mask_file(model, kind, *([root] if root else [])))

    @classmethod
    def load(cls, model: str, root: Path | None = None) -> "MaskSet":
        """Read the three files of ``model`` (one-line :class:`DataError` naming a missing or bad one)."""
        files = [paths.mask_file(model, kind, *([root] if root else [])) for kind in paths.MASK_KINDS]
        return cls(DatasetMask.load(files[0]), ClassMasks.load(files[1]), SingleMasks.load(files[2]))


@dataclass
class BudgetLadder(_Artifact):
    """The budgets stage's ladder of one model, ``budgets/<model>.pt`` (:func:`freqbias.budget_curve.budget_ladder`):
    ``budgets`` (B,) ascending, ``masks`` (B, *shape) in parametrisation ``kind`` with their fit ``records``,
    ``rows`` (held-out scores per budget), ``claims_budget`` and the fold masks at it, ``folds`` (F, *shape) with
    ``fold_records``."""

    STAGE = "budgets"

    model: str
    kind: str
    budgets: list[float]
    masks: torch.Tensor
    records: list[dict]
    rows: list[dict]
    claims_budget: float
    folds: torch.Tensor
    fold_records: list[dict]


@dataclass
class ControlsData(_Artifact):
    """The controls stage's measurements of one model, ``controls/<model>.pt`` (:mod:`freqbias.stage_controls`;
    rows and dicts as documented there): ``equal_budget`` (one row per mask: the dataset mask, then its folds),
    ``faithfulness``, ``class_specificity`` (one row per class), ``default_class``, ``isotropic`` (``masks`` (G, R),
    ``rfft``, ``records``: one per fold); the standard model's also ``randomised`` and ``cascade`` (None for every
    other model, or where not fitted)."""

    STAGE = "controls"

    model: str
    equal_budget: list[dict]
    faithfulness: dict
    class_specificity: list[dict]
    default_class: dict
    isotropic: dict
    randomised: dict | None = None
    cascade: dict | None = None


@dataclass
class YardstickData(_Artifact):
    """The yardstick stage's fit, ``controls/yardstick-s<seed>.pt``: a trained standard model's single-image masks
    on the images seed ``seed`` was selected on (test ``index`` (n,)): ``masks`` (n, H, Wm), ``target``, ``steps``,
    ``kept``, ``converged`` (n,). With one trained seed there is none: every field None and ``na`` says why."""

    STAGE = "yardstick"

    seed: int | None = None
    index: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    target: torch.Tensor | None = None
    steps: torch.Tensor | None = None
    kept: torch.Tensor | None = None
    converged: torch.Tensor | None = None
    na: str | None = None

    @property
    def fitted(self) -> bool:
        return self.masks is not None


@dataclass
class LoadedModel:
    """A trained model read from its checkpoint: ``name`` (``<variant>-s<seed>`` or ``external/<name>``), the
    :class:`~freqbias.models.Classifier` (pixels in [0, 1] -> logits) and its checkpoint ``meta``."""

    name: str
    model: Classifier
    meta: dict[str, Any]

    @classmethod
    def load(cls, name: str, device: torch.device | str = "cpu", root: Path | None = None) -> "LoadedModel":
        model, meta = load_checkpoint(paths.checkpoint(name, *([root] if root else [])), map_location=device)
        return cls(name, model, meta)


def save_checkpoint(model: Classifier, meta: dict[str, Any], path: str | Path) -> None:
    """Write ``model`` with ``meta`` in the one checkpoint format (:func:`freqbias.models.checkpoint_dict`)."""
    save_torch(checkpoint_dict(model, meta), path)
