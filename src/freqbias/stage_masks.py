"""The masks stage's work for one model: its dataset mask, class masks and single-image masks, and the
metrics the stage logs (docs/study.md, "Three kinds of mask").

Images arrive as the prepared splits (uint8 (N, C, H, W), labels (N,), on the CPU); masks are fitted
on the normalised image ``model.normalize(x)`` and returned UNSHIFTED on the CPU (:mod:`freqbias.artifacts`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from . import runtime
from .artifacts import ClassMasks, DatasetMask, LoadedModel, MaskSet, SingleMasks
from .budget_curve import BudgetPlan, sparsest
from .data import to_float
from .fit_methods import METHODS
from .fitting import SingleMaskConfig, SingleMaskResult, bytes_per_image, fit_single_masks
from .fourier import predict
from .mask_groups import MaskGroups, foreign_images, shared_groups
from .parametrisation import PARAMETRISATIONS, Parametrisation
from .shared_masks import SharedMaskConfig, fit_shared_masks
from .single_image import evaluate_single_masks
from .stage_selection import Selection

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MasksConfig:
    """The ``masks`` section of params.yaml: the masks' parametrisation (the class named by ``masks.kind``,
    :data:`freqbias.parametrisation.PARAMETRISATIONS`), the shared-mask fit (dataset, folds, classes) and
    the single-image fit. ``class_other_n``: other classes' val images each class mask must not push into its
    class (0: none, the study's one-sided rule; :mod:`freqbias.class_rule`). ``budget``: budgeted fits
    (:mod:`freqbias.budget_curve`, ``masks.budget``): with ``budget.search`` the dataset, fold and class masks are the
    sparsest budget by search rather than ``dataset``'s penalised fit (None: the penalised fit)."""

    parametrisation: type[Parametrisation]
    dataset: SharedMaskConfig
    dataset_fit_n: int | None
    folds: int
    class_fit_n: int
    single: SingleMaskConfig
    class_other_n: int = 0
    budget: BudgetPlan | None = None

    @classmethod
    def from_params(cls, params: dict) -> "MasksConfig":
        from .config import Section

        sec = Section(params, "masks")
        chosen = PARAMETRISATIONS[sec.choice("kind", tuple(PARAMETRISATIONS), "rfft")]
        d, s = sec.sub("dataset"), sec.sub("single")
        dataset = SharedMaskConfig(
            method=d.choice("method", METHODS, "constrained"), lam=d.number("lam", min=0),
            lam_factor=d.number("lam_factor", 1.2, min=1, strict_min=True), lr=d.number("lr", min=0, strict_min=True),
            lr_cuts=d.integer("lr_cuts", 2, min=0), pct_start=d.number("pct_start", 0.1, min=0, max=1, strict_min=True),
            batch_size=d.integer("batch_size", min=1), max_steps=d.integer("max_steps", min=1),
            check_every=d.integer("check_every", min=1), acc_ratio=d.number("acc_ratio", min=0, max=1),
            tol=d.number("tol", min=0), patience=d.integer("patience", min=1), parametrisation=chosen,
            push_tol=d.number("class_push_tol", 0.05, min=0, max=1))
        single = SingleMaskConfig(
            lam=s.number("lam", min=0), lr=s.number("lr", min=0, strict_min=True),
            pct_start=s.number("pct_start", min=0, max=1, strict_min=True), max_steps=s.integer("max_steps", min=1),
            tol=s.number("tol", min=0), tol_gap=s.number("tol_gap", min=0), patience=s.integer("patience", min=1),
            parametrisation=chosen)
        budget = (None if sec.raw("budget", None) is None else
                  BudgetPlan.from_section(sec.sub("budget"), chosen, dataset.acc_ratio, dataset.push_tol))
        return cls(parametrisation=chosen, dataset=dataset,
                   dataset_fit_n=d.integer("fit_n", None, min=1, optional=True), folds=d.integer("folds", 4, min=2),
                   class_fit_n=d.integer("class_fit_n", min=1), single=single,
                   class_other_n=d.integer("class_other_n", 0, min=0), budget=budget)

    def sparsest(self, net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor], seed: int,
                 foreign: Sequence[tuple[torch.Tensor, int] | None] | None = None,
                 parametrisation: type[Parametrisation] | None = None,
                 desc: str = "shared masks") -> tuple[torch.Tensor, list[dict]]:
        """The sparsest shared masks of ``groups`` (indices into normalised images ``z`` with labels ``y``) that meet
        the rule: by budget search (``budget.search``, :func:`freqbias.budget_curve.sparsest`) or by
        ``dataset``'s penalised fit (:func:`freqbias.shared_masks.fit_shared_masks`); (G, *shape) and one record
        per group. ``parametrisation``: another than the masks' (the isotropic control)."""
        par = parametrisation or self.parametrisation
        if self.budget is not None and self.budget.search:
            plan = dataclasses.replace(self.budget, fit=dataclasses.replace(self.budget.fit, parametrisation=par))
            return sparsest(net, z, y, groups, plan, seed, foreign, desc)
        fit = fit_shared_masks(net, z, y, groups, dataclasses.replace(self.dataset, seed=seed, parametrisation=par),
                               desc=desc, foreign=foreign)
        return fit.masks, fit.records

    def single_for(self, net: nn.Module, image_shape: tuple[int, int, int], *, chunk_size: int,
                   memory_mb: float | None) -> SingleMaskConfig:
        """The single-image config with ``chunk_size`` images per batch, fewer when ``memory_mb`` (MiB)
        is set and too small for that many (run-only settings, :mod:`freqbias.runtime`: the masks do
        not depend on them)."""
        if memory_mb is not None:
            per_image = bytes_per_image(net, image_shape, self.parametrisation)
            chunk_size = min(chunk_size, int(memory_mb * 2**20 // per_image))
        return dataclasses.replace(self.single, chunk_size=max(1, chunk_size))


@dataclass
class ModelMasks:
    """Everything the masks stage writes for one model: its three artifacts and its metrics (JSON-ready)."""

    masks: MaskSet
    metrics: dict[str, Any]


def ratio_or_none(num: float, den: float) -> float | None:
    """``num / den``, or None (n/a in the metrics JSON) when ``den`` is 0 or either is not finite."""
    if den == 0 or not (math.isfinite(num) and math.isfinite(den)):
        return None
    return num / den


def fit_model_masks(subject: LoadedModel, seed: int, sel: Selection, splits: Splits, cfg: MasksConfig, *,
                    adv_masks: bool, log: Callable[[str], None] = lambda m: None) -> ModelMasks:
    """Fit the masks of ``subject`` (its model on the stage's device; ``seed``: of its fit groups and fits).

    - dataset mask: fitted on the first ``cfg.dataset_fit_n`` val images (all when None), scored on all
      of val and on the untouched test split (clean and masked accuracy, and each image's correctness,
      ``DatasetMask.correct``); ``cfg.folds`` more masks, one
      per disjoint fold of those images, give its uncertainty;
    - class masks: one per class, on that class's first ``cfg.class_fit_n`` val images;
      all of these in one batched fit (:func:`freqbias.shared_masks.fit_shared_masks` over
      :class:`~freqbias.mask_groups.MaskGroups`);
    - single-image masks: on the study's test images ``sel``, chosen by the select stage with N and A
      (:func:`freqbias.stage_selection.select_images`); target = the model's own prediction. With
      ``adv_masks`` (the standard model) also the masks of the PGD images.

    ``splits``: ``{"val": (x, y), "test": (x, y)}``. Logs one line per kind of mask through ``log``."""
    name, model, meta = subject.name, subject.model, subject.meta
    device = next(model.parameters()).device
    (x_val, y_val), (x_te, y_te) = splits["val"], splits["test"]
    net, norm = model.net, lambda x: model.normalize(to_float(x).to(device))
    z_val, z_te = norm(x_val), norm(x_te)
    y_val, y_te = y_val.to(device), y_te.to(device)
    par = cfg.parametrisation(*z_val.shape[-2:])
    k = meta["num_classes"]
    t0 = time.perf_counter()

    n_fit = min(cfg.dataset_fit_n or len(y_val), len(y_val))
    groups = shared_groups(y_val, n_fit, cfg.folds, cfg.class_fit_n, k, seed)
    torch.manual_seed(seed)
    foreign = foreign_images(y_val, k, cfg.class_other_n, cfg.class_fit_n) if cfg.class_other_n else [None] * k
    flat_masks, flat_records = cfg.sparsest(net, z_val, y_val, groups.flat(), seed,
                                            MaskGroups(None, [None] * cfg.folds, foreign).flat(),
                                            desc=f"{name} shared masks")
    t_shared = time.perf_counter() - t0
    masks, records = groups.like(flat_masks), groups.like(flat_records)
    correct = {split: torch.stack([predict(net, z, m, par) == y for m in (None, masks.dataset)]).cpu()
               for split, z, y in (("val", z_val, y_val), ("test", z_te, y_te))}
    scores = {f"{split}_{what}": c[row].float().mean().item()
              for split, c in correct.items() for row, what in enumerate(("clean_acc", "masked_acc"))}
    log(f"dataset mask: {describe(records.dataset)}; {scores}")
    log(f"fold masks: {'; '.join(describe(r) for r in records.folds)}")
    counts = torch.tensor([len(g) for g in groups.classes])
    absent = (counts == 0).nonzero().squeeze(1).tolist()
    if absent:
        log(f"class masks: no val image of class(es) {absent}: their masks are NaN (n/a)")
    log(f"class masks: {'; '.join(describe(r) for r in records.classes)}")
    unconverged = [g for g, r in enumerate(records.flat()) if r["converged"] is False]
    if unconverged:
        log(f"WARNING: {len(unconverged)} shared mask(s) did not converge (hit max_steps, or found nothing "
            f"sparser than the identity): groups {unconverged}")

    z, z_adv = model.normalize(sel.x.to(device)), model.normalize(sel.x_adv.to(device))
    target = predict(net, z)
    single_cfg = cfg.single_for(net, tuple(z.shape[1:]), chunk_size=runtime.chunk_size(),
                                memory_mb=runtime.memory_mb())
    clean = fit_single_masks(net, z, target, single_cfg)
    single = SingleMasks(index=sel.index, y=sel.y, x_adv=sel.x_adv.cpu(), target=target.cpu(),
                         masks=clean.masks.cpu(), steps=clean.steps_used, kept=clean.kept, pool=sel.pool, kind=par.kind)
    evaluation = evaluate_single_masks(net, z, target, clean.masks, par, z_adv=z_adv if adv_masks else None)
    if adv_masks:  # the study's third mask: the standard model on the PGD image
        target_adv = predict(net, z_adv)
        adv = fit_single_masks(net, z_adv, target_adv, single_cfg)
        single.masks_adv, single.target_adv = adv.masks.cpu(), target_adv.cpu()
        single.steps_adv, single.kept_adv = adv.steps_used, adv.kept
        evaluation["adv_masked_agreement"] = float(adv.kept.float().mean())
    log(f"single-image masks on {len(target)} images (of {sel.pool} screened): {evaluation}")

    metrics = masks_metrics(subject, seed, par, scores, records,
                            single_metrics(clean, single_cfg.max_steps, evaluation), time.perf_counter() - t0)
    metrics["seconds_shared"] = round(t_shared, 1)   # the dataset, fold and class masks' batched fit (cost study)
    reasons = {f"{split}_ratio": f"{split} clean accuracy is 0: masked / clean is undefined"
               for split in ("val", "test")}
    reasons.update({"class": f"no val image of class(es) {absent}"} if absent else {})
    reasons.update({"single": "no single-image masks: no test image met the selection rule"} if not len(target) else {})
    return ModelMasks(MaskSet(DatasetMask(mask=masks.dataset.cpu(), record=records.dataset, folds=masks.folds.cpu(),
                                          fold_records=records.folds, kind=par.kind, meta=dict(meta), correct=correct),
                              ClassMasks(masks=masks.classes.cpu(), index=torch.cat(groups.classes).cpu(),
                                         kind=par.kind, records=records.classes, counts=counts),
                              single),
                      with_reasons(metrics, reasons))


def describe(record: Mapping[str, Any]) -> str:
    """One log phrase for a shared mask's record (:class:`freqbias.shared_masks.SharedMasks`)."""
    if not record["n_images"]:
        return "no images (n/a)"
    state = "converged" if record["converged"] else "NOT converged"
    return (f"mean {record['mean']:.3f}, support {record['support']:.3f}, min {record['min']:.3g}, "
            f"{state} after {record['steps']} steps, acc masked {record['masked_acc']:.3f} / clean "
            f"{record['clean_acc']:.3f}")


def with_reasons(metrics: Mapping[str, Any], reasons: Mapping[str, str]) -> dict[str, Any]:
    """``metrics`` with every missing (None) or non-finite number as None, plus ``na``: key -> why it is
    missing (``reasons[key]``, else ``reasons`` of the key's prefix before "_", else "not finite")."""
    out, na = {}, {}
    for key, value in metrics.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            value, na[key] = None, reasons.get(key, reasons.get(key.split("_")[0], "not finite"))
        out[key] = value
    return {**out, "na": na}


def single_metrics(clean: SingleMaskResult, cap: int, evaluation: Mapping[str, float]) -> dict[str, Any]:
    """The single-image part of the metrics: count, mean steps, the share that stopped by their rule before ``cap``
    steps (``single_converged``), the mean mask and the agreements of ``evaluation`` (``single_*``)."""
    return {"single_n": len(clean.masks), "single_steps_mean": float(clean.steps_used.float().mean()),
            "single_converged": float((clean.steps_used < cap).float().mean()),
            "single_mask_mean": float(clean.mean_mask.mean()), **{f"single_{k}": v for k, v in evaluation.items()}}


def masks_metrics(subject: LoadedModel, seed: int, par: Parametrisation, scores: Mapping[str, float],
                  records: MaskGroups[Mapping[str, Any]], single: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """The masks stage's metrics JSON (``metrics/masks/<model>.json``) from the shared masks' ``records``
    (:class:`freqbias.shared_masks.SharedMasks`, by group) and the single-image part (:func:`single_metrics`):
    accuracies clean / under the dataset mask (``scores``; ``*_ratio`` = masked / clean, None when clean accuracy
    is 0), each kind's mean, support, smallest entry, steps and whether it converged (``*_converged``: the share
    of masks that stopped by their rule); masks in ``par``."""
    dataset, folds = records.dataset, records.folds
    fitted = [r for r in records.classes if r["n_images"]]  # an absent class has no mask

    def share(records: Sequence[Mapping[str, Any]]) -> float:
        return sum(bool(r["converged"]) for r in records) / len(records) if records else math.nan

    def mean_of(records: Sequence[Mapping[str, Any]], key: str) -> float:
        return sum(r[key] for r in records) / len(records) if records else math.nan

    return {
        "model": subject.name, "variant": subject.meta.get("variant", "external"),
        "seed": subject.meta.get("seed", seed), "kind": par.kind,
        **scores,
        "val_ratio": ratio_or_none(scores["val_masked_acc"], scores["val_clean_acc"]),
        "test_ratio": ratio_or_none(scores["test_masked_acc"], scores["test_clean_acc"]),
        "dataset_mask_mean": dataset["mean"], "dataset_mask_support": dataset["support"],
        "dataset_mask_min": dataset["min"], "dataset_converged": bool(dataset["converged"]),
        "dataset_steps": dataset["steps"], "dataset_fit_n": dataset["n_images"],
        "fold_mask_mean": mean_of(folds, "mean"), "fold_converged": share(folds),
        "class_mask_mean": mean_of(fitted, "mean"),
        "class_mask_min_max": max((r["min"] for r in fitted), default=math.nan),
        "class_converged": share(fitted), "class_steps_mean": mean_of(fitted, "steps"),
        **single,
        "seconds": round(seconds, 1),
    }
