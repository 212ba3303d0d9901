"""The controls stage's work for one model (docs/study.md, "Controls"): equal-budget baselines, faithfulness curves,
class-mask specificity, the sparsest isotropic mask and, for the standard model, the re-initialised model's
single-image masks. Measurements: :mod:`freqbias.controls`; what the aggregate stage makes of them:
:mod:`freqbias.control_claims`.

Images arrive as the prepared splits (uint8 (N, C, H, W), labels (N,), on the CPU) and are normalised with the
model's own ``normalize``; masks come from the masks stage (:mod:`freqbias.artifacts`), UNSHIFTED.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .artifacts import ControlsData, LoadedModel, MaskSet
from .controls import (
    ControlsConfig,
    cascade,
    class_specificity,
    default_class,
    equal_budget,
    faithfulness,
    layer_groups,
    randomised,
)
from .data import to_float
from .fitting import SingleMaskConfig, fit_single_masks
from .fourier import predict
from .frozen import fitting_copy
from .mask_groups import shared_groups
from .models import Classifier
from .parametrisation import Isotropic
from .stage_masks import MasksConfig

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ModelControls:
    """What the controls stage writes for one model: ``data`` (``controls/<model>.pt``: every measurement, per
    image where there is one) and ``metrics`` (``metrics/controls/<model>.json``: the headline numbers)."""

    data: ControlsData
    metrics: dict[str, Any]


def fit_isotropic(net: nn.Module, z_val: torch.Tensor, y_val: torch.Tensor, groups: list[torch.Tensor],
                  masks_cfg: MasksConfig, seed: int, desc: str) -> dict[str, Any]:
    """The sparsest isotropic masks (one value per ring) of ``groups``, fitted with the dataset masks' method and
    rule (:meth:`freqbias.stage_masks.MasksConfig.sparsest` with :class:`~freqbias.parametrisation.Isotropic`):
    ``{"masks": ring profiles (G, R), "rfft": the same as rfft masks (G, H, W//2+1), "records": [...]}``."""
    masks, records = masks_cfg.sparsest(net, z_val, y_val, groups, seed, parametrisation=Isotropic, desc=desc)
    par = Isotropic(*z_val.shape[-2:])
    return {"masks": masks.cpu(), "rfft": par.expand(masks).cpu(), "records": records}


def run_controls(subject: LoadedModel, masks: MaskSet, splits: Splits, cfg: ControlsConfig, masks_cfg: MasksConfig,
                 seed: int, *, standard: bool, log: Callable[[str], None] = lambda m: None) -> ModelControls:
    """All controls of ``subject`` (its model on the stage's device) and its ``masks``. ``standard``: the
    standard model, whose stage also fits the randomisation check's masks (:func:`randomisation`; its yardstick is
    the yardstick stage's, :func:`freqbias.stage_yardstick.yardstick`). The fit groups are the masks stage's own
    (:func:`freqbias.mask_groups.shared_groups`, same seed)."""
    name, model, meta = subject.name, subject.model, subject.meta
    dataset, classes, single = masks.dataset, masks.classes, masks.single
    t0, times = time.perf_counter(), {}
    device = next(model.parameters()).device
    (x_val, y_val), (x_te, y_te) = splits["val"], splits["test"]
    normalise = lambda x: model.normalize(to_float(x).to(device))  # noqa: E731
    fast = fitting_copy(model.net, fast=True)
    fast_model = nn.Sequential(model.normalize, fast).eval()  # pixels -> logits, like model
    z_val, z_te, y_val, y_te = normalise(x_val), normalise(x_te), y_val.to(device), y_te.to(device)
    k = meta["num_classes"]
    n_fit = min(masks_cfg.dataset_fit_n or len(y_val), len(y_val))
    groups = shared_groups(y_val.cpu(), n_fit, masks_cfg.folds, masks_cfg.class_fit_n, k, seed)

    def lap(what: str) -> None:
        times[what] = round(time.perf_counter() - t0 - sum(times.values()), 1)

    fit_masks = torch.cat([dataset.mask[None], dataset.folds])
    budget_rows = equal_budget(fast, fit_masks, [(z_val[g[:cfg.n]], y_val[g[:cfg.n]]) for g in groups.fit],
                               (z_te, y_te), cfg)
    lap("equal_budget")
    x_single = to_float(x_te[single.index.to(x_te.device)])
    faith = faithfulness(fast_model, x_te, y_te, dataset.mask, (x_single, single.target.to(device), single.masks),
                         cfg, normalise)
    lap("faithfulness")
    n_cls = min(cfg.class_n, len(y_te))
    specificity = class_specificity(fast, classes.masks, z_te[:n_cls], y_te[:n_cls])
    default = default_class(fast, z_te[:n_cls], k)
    lap("class_specificity")
    isotropic = fit_isotropic(model.net, z_val, y_val, groups.folds, masks_cfg, seed, f"{name} isotropic masks")
    lap("isotropic")
    data = ControlsData(model=name, equal_budget=budget_rows, faithfulness=faith, class_specificity=specificity,
                        default_class=default, isotropic=isotropic)
    if standard and cfg.randomised and len(single):
        fits = randomisation(model, (x_single, single.index), z_val[:cfg.n], masks_cfg.single,
                             cfg, cfg.seed + 7919 * (seed + 1))
        data.randomised, data.cascade = fits["randomised"], fits.get("cascade")
        lap("randomised")
    log(f"controls timings (s): {times}")
    return ModelControls(data, controls_metrics(name, data, single_cap=masks_cfg.single.max_steps,
                                                seconds=time.perf_counter() - t0))


def fit_own_masks(model: Classifier, x: torch.Tensor, single_cfg: SingleMaskConfig) -> dict[str, Any]:
    """Single-image masks of ``model`` on pixels ``x`` (n, C, H, W) keeping its own prediction, as the masks stage
    fits them (one batch): masks, target, steps, kept and whether each stopped by its rule (``converged``)."""
    z = model.normalize(x.to(next(model.parameters()).device))
    target = predict(model.net, z)
    fitted = fit_single_masks(model.net, z, target, dataclasses.replace(single_cfg, chunk_size=max(1, len(z))))
    return {"masks": fitted.masks.cpu(), "target": target.cpu(), "steps": fitted.steps_used, "kept": fitted.kept,
            "converged": fitted.steps_used < single_cfg.max_steps}


def randomisation(model: Classifier, images: tuple[torch.Tensor, torch.Tensor], calibrate: torch.Tensor,
                  single_cfg: SingleMaskConfig, cfg: ControlsConfig, seed: int) -> dict[str, Any]:
    """The randomisation check's fits for the standard model (docs/study.md "Controls"), every one a single-image
    fit like the masks stage's. ``images``: this seed's selected pixels (n, C, H, W) and their test indices (n,).

    - ``randomised``: the fully re-initialised model (from ``seed``, BatchNorm recalibrated on the normalised
      images ``calibrate``: :func:`freqbias.controls.cascade`) on all images; ``modal_share``: the share of them
      it assigns to its most frequent class (1 = a constant function);
    - ``cascade``: the top k layer groups re-initialised, k = 1 .. L - 1 (``layers``: the groups' names from the
      top), on the first ``cfg.cascade_n`` images (k = L is ``randomised``).

    The yardstick (another trained seed's masks on these images) is the yardstick stage's:
    :func:`freqbias.stage_yardstick.yardstick`."""
    x, index = images
    groups = layer_groups(model.net)
    rand = fit_own_masks(randomised(model, seed, calibrate), x, single_cfg)
    counts = torch.bincount(rand["target"])
    out: dict[str, Any] = {"randomised": {**rand, "index": index, "modal_share": float(counts.max() / len(x))}}
    m = min(cfg.cascade_n, len(x))
    if m and len(groups) > 1:
        out["cascade"] = {"layers": [name for name, _ in groups], "index": index[:m],
                          "steps": [fit_own_masks(cascade(model, seed, k, calibrate), x[:m], single_cfg)
                                    for k in range(1, len(groups))]}
    return out


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def controls_metrics(name: str, data: ControlsData, single_cap: int, seconds: float) -> dict[str, Any]:
    """The headline numbers of one model's controls (metrics JSON): the dataset mask's test accuracy with its
    support, a disc and random supports of the same size; the mean insertion / deletion areas per order; the
    largest push of a class mask; the isotropic masks' mean beside the free fold masks'; the randomised
    single-image masks' convergence."""
    out: dict[str, Any] = {"model": name}
    head = data.equal_budget[0]
    for v in ("mask", "support", "disc", "random"):
        out[f"test_{v}"] = head.get(f"test_{v}")
    for source in ("dataset", "single"):
        for order, per in data.faithfulness.get(source, {}).get("areas", {}).items():
            for kind, values in per.items():
                out[f"{source}_{kind}_{order}"] = _mean(values)
    pushed = [r["pushed"] for r in data.class_specificity if "pushed" in r]
    out["class_pushed_max"] = max(pushed) if pushed else None
    out["class_into_max"] = max((r["into_masked"] for r in data.class_specificity if "into_masked" in r),
                                default=None)
    out["default_class"] = data.default_class["dc_class"]
    iso = [r for r in data.isotropic["records"] if r.get("n_images")]
    out["isotropic_mean"] = _mean([r["mean"] for r in iso])
    out["isotropic_converged"] = sum(bool(r["converged"]) for r in iso) / len(iso) if iso else None
    if data.randomised is not None:
        out["randomised_converged"] = float((data.randomised["steps"] < single_cap).float().mean())
        out["randomised_modal_share"] = data.randomised["modal_share"]
    if data.cascade is not None:
        out["cascade_converged"] = _mean([float(s["converged"].float().mean()) for s in data.cascade["steps"]])
    out["seconds"] = round(seconds, 1)
    return out
