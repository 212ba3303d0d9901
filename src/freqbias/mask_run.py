"""The masks stage's work for one model: its dataset mask, class masks and single-image masks, and the
metrics the stage logs (docs/study.md, "Three kinds of mask").

Images arrive as the prepared splits (uint8 (N, C, H, W), labels (N,), on the CPU); masks are fitted
on the normalised image ``model.normalize(x)`` and returned UNSHIFTED on the CPU (:mod:`freqbias.artifacts`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from . import runtime
from .artifacts import ClassMasks, DatasetMask, SingleMasks
from .attacks import PGD
from .data import to_float
from .fitting import MasksConfig, SingleMaskResult, fit_class_masks, fit_dataset_mask, fit_single_masks
from .fourier import agreement, predict, sparsity, support
from .models import Classifier
from .single_image import evaluate_single_masks, select_images

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ModelMasks:
    """Everything the masks stage writes for one model: the three artifacts and its metrics (JSON-ready)."""

    dataset: DatasetMask
    classes: ClassMasks
    single: SingleMasks
    metrics: dict[str, Any]


def ratio_or_none(num: float, den: float) -> float | None:
    """``num / den``, or None (n/a in the metrics JSON) when ``den`` is 0 or either is not finite."""
    if den == 0 or not (math.isfinite(num) and math.isfinite(den)):
        return None
    return num / den


def fit_model_masks(name: str, model: Classifier, meta: Mapping[str, Any], standard: Classifier,
                    adversarial: Classifier, splits: Splits, cfg: MasksConfig, attack: PGD, seed: int,
                    adv_masks: bool, log: Callable[[str], None] = lambda m: None) -> ModelMasks:
    """Fit the masks of ``model`` (named ``name``, checkpoint ``meta``; on the stage's device).

    - dataset mask: fitted on the first ``cfg.dataset_fit_n`` val images (all when None), scored on all
      of val and on the untouched test split (clean and masked accuracy);
    - class masks: one per class, on that class's first ``cfg.class_fit_n`` val images;
    - single-image masks: on the study's test images, chosen with ``standard`` and ``adversarial``
      (:func:`freqbias.single_image.select_images`, PGD ``attack``, ``seed``); target = the model's own
      prediction. With ``adv_masks`` (the standard model) also the masks of the PGD images.

    ``splits``: ``{"val": (x, y), "test": (x, y)}``. Logs one line per kind of mask through ``log``."""
    device = next(model.parameters()).device
    (x_val, y_val), (x_te, y_te) = splits["val"], splits["test"]
    net, norm = model.net, lambda x: model.normalize(to_float(x).to(device))
    z_val, z_te = norm(x_val), norm(x_te)
    y_val, y_te = y_val.to(device), y_te.to(device)
    width = z_val.shape[-1]
    t0 = time.perf_counter()

    n_fit = min(cfg.dataset_fit_n or len(y_val), len(y_val))
    torch.manual_seed(seed)
    mask, history = fit_dataset_mask(net, z_val[:n_fit], y_val[:n_fit], cfg.dataset)
    scores = {f"{split}_{what}": agreement(net, z, y, m, cfg.kind)
              for split, z, y in (("val", z_val, y_val), ("test", z_te, y_te))
              for what, m in (("clean_acc", None), ("masked_acc", mask))}
    log(f"dataset mask: mean {sparsity(mask, width, cfg.kind):.4f}, {len(history)} epochs, {scores}")

    pick = torch.cat([(y_val == k).nonzero().squeeze(1)[:cfg.class_fit_n] for k in range(meta["num_classes"])])
    counts = torch.bincount(y_val[pick].cpu(), minlength=meta["num_classes"])
    class_masks, class_hist = fit_class_masks(net, z_val[pick], y_val[pick], meta["num_classes"], cfg.dataset,
                                              absent="nan")
    absent = (counts == 0).nonzero().squeeze(1).tolist()
    if absent:
        log(f"class masks: no val image of class(es) {absent}: their masks are NaN (n/a)")
    log(f"class masks: mean values {[round(float(v), 3) for v in sparsity(class_masks, width, cfg.kind)]}")

    sel = select_images(standard, adversarial, x_te, y_te.cpu(), attack, cfg.single_n, seed=seed)
    if len(sel.index) < cfg.single_n:
        log(f"single-image masks: only {len(sel.index)} of the {cfg.single_n} images asked for met the "
            f"selection rule in the {sel.pool} test images")
    z, z_adv = model.normalize(sel.x.to(device)), model.normalize(sel.x_adv.to(device))
    target = predict(net, z)
    single_cfg = cfg.single_for(net, tuple(z.shape[1:]), chunk_size=runtime.chunk_size(),
                                memory_mb=runtime.memory_mb())
    clean = fit_single_masks(net, z, target, single_cfg)
    single = SingleMasks(index=sel.index, y=sel.y, x_adv=sel.x_adv.cpu(), target=target.cpu(),
                         masks=clean.masks.cpu(), steps=clean.steps_used, kept=clean.kept, pool=sel.pool, kind=cfg.kind)
    evaluation = evaluate_single_masks(net, z, target, clean.masks, cfg.kind, z_adv=z_adv if adv_masks else None)
    if adv_masks:  # the study's third mask: the standard model on the PGD image
        target_adv = predict(net, z_adv)
        adv = fit_single_masks(net, z_adv, target_adv, single_cfg)
        single.masks_adv, single.target_adv = adv.masks.cpu(), target_adv.cpu()
        single.steps_adv, single.kept_adv = adv.steps_used, adv.kept
        evaluation["adv_masked_agreement"] = float(adv.kept.float().mean())
    log(f"single-image masks on {len(target)} images (of {sel.pool} screened): {evaluation}")

    metrics = masks_metrics(name, meta, seed, cfg.kind, scores, mask, history, class_masks, class_hist, clean,
                            evaluation, n_fit, width, time.perf_counter() - t0)
    reasons = {f"{split}_ratio": f"{split} clean accuracy is 0: masked / clean is undefined"
               for split in ("val", "test")}
    reasons.update({"class": f"no val image of class(es) {absent}"} if absent else {})
    reasons.update({"single": "no single-image masks: no test image met the selection rule"} if not len(target) else {})
    return ModelMasks(DatasetMask(mask=mask.cpu(), history=history, kind=cfg.kind, meta=dict(meta)),
                      ClassMasks(masks=class_masks.cpu(), index=pick.cpu(), kind=cfg.kind, histories=class_hist,
                                 counts=counts),
                      single, with_reasons(metrics, reasons))


def with_reasons(metrics: Mapping[str, Any], reasons: Mapping[str, str]) -> dict[str, Any]:
    """``metrics`` with every missing (None) or non-finite number as None, plus ``na``: key -> why it is
    missing (``reasons[key]``, else ``reasons`` of the key's prefix before "_", else "not finite")."""
    out, na = {}, {}
    for key, value in metrics.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            value, na[key] = None, reasons.get(key, reasons.get(key.split("_")[0], "not finite"))
        out[key] = value
    return {**out, "na": na}


def masks_metrics(name: str, meta: Mapping[str, Any], seed: int, kind: str, scores: Mapping[str, float],
                  mask: torch.Tensor, history: list[dict], class_masks: torch.Tensor, class_hist: list[list[dict]],
                  clean: SingleMaskResult, evaluation: Mapping[str, float], n_fit: int, width: int,
                  seconds: float) -> dict[str, Any]:
    """The masks stage's metrics JSON (``metrics/masks/<model>.json``) from the fitted dataset mask (H, Wm),
    class masks (K, H, Wm), their histories and the single-image fit: accuracies clean / under the dataset
    mask (``scores``; ``*_ratio`` = masked / clean, None when clean accuracy is 0), mean mask values,
    fitting lengths and the single-image agreements (``single_*``). ``width``: image width W (pixels)."""
    fitted = [h for h in class_hist if h]  # an absent class has no history
    return {
        "model": name, "variant": meta.get("variant", "external"), "seed": meta.get("seed", seed), "kind": kind,
        **scores,
        "val_ratio": ratio_or_none(scores["val_masked_acc"], scores["val_clean_acc"]),
        "test_ratio": ratio_or_none(scores["test_masked_acc"], scores["test_clean_acc"]),
        "dataset_mask_mean": float(sparsity(mask, width, kind)),
        "dataset_mask_support": float(support(mask, width, kind)),
        "dataset_epochs": len(history), "dataset_fit_n": n_fit,
        "class_mask_mean": float(sparsity(class_masks, width, kind).nanmean()),
        "class_epochs_mean": (sum(len(h) for h in fitted) / len(fitted)) if fitted else math.nan,
        "single_n": len(clean.masks), "single_steps_mean": float(clean.steps_used.float().mean()),
        "single_mask_mean": float(clean.mean_mask.mean()), **{f"single_{k}": v for k, v in evaluation.items()},
        "seconds": round(seconds, 1),
    }
