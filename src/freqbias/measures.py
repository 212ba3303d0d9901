"""Per-model measurements on images: loading a model with its masks, the single-image selection, and
what the masks keep (agreement, SSIM and pixel correlation of the masked images).

Masks are stored UNSHIFTED and act on the *normalised* image ``model.normalize(x)`` (see
:mod:`freqbias.fourier`); images are pixels in [0, 1] (N, C, H, W), uint8 images divided by 255.
Outcomes are per image, 1.0 / 0.0 (or a similarity), as numpy arrays (n,) ready for a bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from . import paths
from .artifacts import BudgetLadder, MaskSet, SingleMasks, load_checkpoint
from .attacks import PGD
from .config import DataError, ParamError
from .data import to_float
from .fourier import binary_complement, predict
from .io import load_json
from .mask_groups import MaskGroups
from .models import Classifier
from .parametrisation import Parametrisation, parametrisation
from .stage_selection import select_images


@dataclass
class ModelRecord:
    """One trained model and its masks. ``dataset_mask`` (*shape), ``fold_masks`` (F, *shape): the dataset
    mask refitted on each of F disjoint folds of its fit images, ``class_masks`` (K, *shape) and the
    single-image masks (:class:`freqbias.artifacts.SingleMasks`), all in parametrisation ``par`` (the
    artifacts' ``kind`` for the model's image size), on the CPU; ``model``
    in eval mode on the stage's device. ``fit_records``: the shared masks' fitting records
    by role (:class:`freqbias.mask_groups.MaskGroups` of :class:`freqbias.shared_masks.SharedMasks` records).
    ``dataset_correct``: the masks stage's per-image correctness without and with the dataset mask
    (``DatasetMask.correct``; None in older files). ``budgets``: the budgets stage's ladder and fold masks at equal
    budget (:class:`freqbias.artifacts.BudgetLadder` as a dict; None when ``budgets/<model>.pt`` is absent)."""

    name: str
    variant: str
    seed: int
    model: Classifier
    par: Parametrisation
    dataset_mask: torch.Tensor
    class_masks: torch.Tensor
    single: SingleMasks
    train_metrics: dict
    mask_metrics: dict
    fold_masks: torch.Tensor
    fit_records: MaskGroups[dict]
    dataset_correct: dict | None = None
    budgets: dict | None = None


def load_records(variants: Sequence[str], seeds: Sequence[int], device: torch.device,
                 root: Path = Path(".")) -> list[ModelRecord]:
    """Load ``models/<V>-s<seed>.pt``, ``masks/<V>-s<seed>/*.pt`` and the metrics JSONs of every model
    (``train_metrics``: the train stage's and the evaluate stage's, merged).

    Raise :class:`ParamError` when N (the reference of every difference) is not a variant and
    :class:`DataError` when a file is missing."""
    if "N" not in variants:
        raise ParamError("train.variants: the aggregate stage compares every variant with N; add N")
    records = []
    for seed in seeds:
        for variant in variants:
            name = paths.model_name(variant, seed)
            metrics = {"train": paths.train_metrics(name, root), "masks": paths.mask_metrics(name, root),
                       "evaluate": paths.eval_metrics(name, root)}
            files = [paths.mask_file(name, k, root) for k in paths.MASK_KINDS] + list(metrics.values())
            missing = [str(p) for p in files if not p.exists()]
            if missing:
                raise DataError(f"{missing[0]}: not found (run the train, evaluate and masks stages first)")
            model, meta = load_checkpoint(paths.checkpoint(name, root), map_location=device)
            size = meta["image_size"]
            masks = MaskSet.load(name, root)
            dataset, classes, single = masks.dataset, masks.classes, masks.single
            records.append(ModelRecord(
                name=name, variant=variant, seed=seed, model=model,
                par=parametrisation(single.kind, size, size), dataset_mask=dataset.mask,
                class_masks=classes.masks, single=single,
                train_metrics={**load_json(metrics["train"], "metrics file", dict),
                               **load_json(metrics["evaluate"], "metrics file", dict)},
                mask_metrics=load_json(metrics["masks"], "metrics file", dict), fold_masks=dataset.folds,
                fit_records=MaskGroups(dataset.record, dataset.fold_records, classes.records),
                dataset_correct=dataset.correct,
                budgets=BudgetLadder.load(ladder).to_dict() if (ladder := paths.budget_file(name, root)).exists()
                else None))
    return records


@dataclass
class SeedImages:
    """The single-image selection of one seed: test-split ``index`` (n,), true labels ``y`` (n,), clean
    images ``x`` and their PGD versions ``x_adv`` (against N), pixels in [0, 1] (n, C, H, W)."""

    index: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    x_adv: torch.Tensor


def seed_images(standard: ModelRecord, adversarial: ModelRecord, x_test: torch.Tensor, y_test: torch.Tensor,
                attack: PGD, device: torch.device) -> SeedImages:
    """Rebuild the images the masks of one seed were fitted on.

    ``single.pt`` stores the test indices; PGD images are taken from it when stored (``x_adv``),
    else regenerated with the masks stage's rule and seed (:func:`freqbias.stage_selection.select_images`)
    and checked against the stored indices (:class:`DataError` on a mismatch)."""
    single = standard.single
    index = single.index
    if not torch.equal(adversarial.single.index, index):
        raise DataError(f"{paths.mask_file(adversarial.name, 'single')}: images differ from "
                        f"{paths.mask_dir(standard.name)}; rerun masks")
    x = to_float(x_test[index]).to(device)
    if single.x_adv is not None:
        return SeedImages(index, single.y, x, single.x_adv.to(device))
    sel = select_images(standard.model, adversarial.model, x_test.to(device), y_test.to(device), attack,
                        len(index), seed=standard.seed)
    if not torch.equal(sel.index.cpu(), index):
        raise DataError(f"{paths.mask_file(standard.name, 'single')}: regenerated PGD selection differs from the "
                        "stored one (different device or params?); rerun the masks stage")
    return SeedImages(index, single.y, x, sel.x_adv.to(device))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity of image pairs (N, C, H, W) -> (N,), uniform ``window`` x ``window``
    windows (valid positions only), population (biased) local variances, constants of Wang et al. 2004
    for pixels spanning ``data_range``, averaged over channels. This is scikit-image's
    ``structural_similarity(win_size=7, gaussian_weights=False, use_sample_covariance=False)``
    (tests/test_reference.py), not the Gaussian-window (sigma 1.5) SSIM of Wang et al. 2004."""
    a, b = a.double(), b.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    mu_a, mu_b = pool(a), pool(b)
    var_a, var_b = pool(a * a) - mu_a ** 2, pool(b * b) - mu_b ** 2
    cov = pool(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return score.flatten(1).mean(dim=1)


def pixel_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the pixels of image pairs (N, ...) -> (N,); NaN for a constant image."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


def masked_pixels(model: Classifier, x: torch.Tensor, masks: torch.Tensor, par: Parametrisation) -> torch.Tensor:
    """Images ``x`` (pixels in [0, 1], (N, C, H, W)) seen through their masks (N, *shape) in ``par``, back
    in pixel units (not clipped): ``par.apply(normalize(x), masks) * std + mean``."""
    z = par.apply(model.normalize(x), masks.to(x))
    return z * model.normalize.std + model.normalize.mean


@torch.no_grad()
def single_outcomes(record: ModelRecord, images: SeedImages) -> dict[str, np.ndarray]:
    """Per-image outcomes (n,) of one model's stored single-image masks, re-evaluated.

    Agreement with the stored target (the model's clean prediction), 1.0 / 0.0: ``target_ok`` (clean
    image), ``masked``, ``complement`` (binary complement ``1 - 1[M > 0]``); similarity of x and the
    masked x in pixels: ``ssim``, ``corr``; and for N (which also has masks of the PGD images): ``pgd``
    (PGD image, no mask), ``restored`` / ``restored_binary`` (PGD image under the clean image's mask,
    continuous / ``1[M > 0]``), ``adv_masked`` (PGD image under its own mask vs its own target).
    An outcome that needs a mask with a NaN (or inf) entry is NaN for that image (undefined), as is
    ``corr`` for a constant masked image."""
    s, model, par = record.single, record.model, record.par
    if not torch.equal(s.index, images.index):
        raise DataError(f"{paths.mask_file(record.name, 'single')}: fitted on other images than N of seed "
                        f"{record.seed}; rerun masks")
    if not len(images.index):  # no images: every outcome is empty (the FFT backends reject an empty batch)
        keys = ["target_ok", "masked", "complement", "ssim", "corr"]
        keys += ["pgd", "restored", "restored_binary", "adv_masked"] if s.has_adv else []
        return {k: np.zeros(0) for k in keys}
    net, x = model.net, images.x
    z = model.normalize(x)
    masks, target = s.masks.to(z), s.target.to(z.device)
    out = {"target_ok": predict(net, z, None, par) == target,
           "masked": predict(net, z, masks, par) == target,
           "complement": predict(net, z, binary_complement(masks), par) == target}
    seen = masked_pixels(model, x, masks, par)
    out["ssim"], out["corr"] = ssim(x, seen), pixel_correlation(x, seen)
    if s.has_adv:
        z_adv = model.normalize(images.x_adv)
        out["pgd"] = predict(net, z_adv, None, par) == target
        out["restored"] = predict(net, z_adv, masks, par) == target
        out["restored_binary"] = predict(net, z_adv, (masks > 0).to(masks.dtype), par) == target
        out["adv_masked"] = predict(net, z_adv, s.masks_adv.to(z), par) == s.target_adv.to(z.device)
    finite = {"masks": finite_masks(s.masks), "masks_adv": finite_masks(s.masks_adv if s.has_adv else s.masks)}
    needs = {k: "masks_adv" if k == "adv_masked" else "masks" for k in out if k not in ("target_ok", "pgd")}
    return {k: torch.where(finite[needs[k]], v.double().cpu(), math.nan).numpy() if k in needs
            else v.double().cpu().numpy() for k, v in out.items()}


def finite_masks(masks: torch.Tensor) -> torch.Tensor:
    """Per mask (n, *shape) -> bool (n,): every entry finite."""
    return torch.isfinite(masks).flatten(1).all(dim=1)


@torch.no_grad()
def dataset_correct(record: ModelRecord, x: torch.Tensor, y: torch.Tensor, split: str | None = None,
                    n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness (n,) 1.0 / 0.0 of the model on the first ``n`` (None: all) images of ``x``
    (uint8 or [0, 1]) without and with its dataset mask (NaN, undefined, when the mask has a NaN / inf
    entry). When ``x`` is the whole ``split`` and the masks stage stored that split's correctness
    (``record.dataset_correct``, one entry per image of ``x``), it is read from there, not scored again."""
    stored = (record.dataset_correct or {}).get(split)
    fresh = stored is None or stored.shape[-1] != len(y)
    clean, masked = (_score_dataset_mask(record, x[:n], y[:n]) if fresh else stored[:, :n]).double().numpy()
    if not torch.isfinite(record.dataset_mask).all():  # a NaN in the mask: masked correctness is undefined
        masked = np.full(len(clean), np.nan)
    return clean, masked


def _score_dataset_mask(record: ModelRecord, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bool (2, n), as the masks stage stores it (``DatasetMask.correct``): whether the model is right on
    each image of ``x`` without (row 0) and with (row 1) its dataset mask (not applied when it is not
    finite; :func:`dataset_correct` then reports NaN)."""
    model = record.model
    device = next(model.parameters()).device
    z, y = model.normalize(to_float(x).to(device)), y.to(device)
    mask = record.dataset_mask if torch.isfinite(record.dataset_mask).all() else None
    return torch.stack([predict(model.net, z, m if m is None else m.to(z), record.par) == y
                        for m in (None, mask)]).cpu()
