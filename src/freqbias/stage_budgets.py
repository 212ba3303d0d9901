"""The budgets stage's work for one model: its budget ladder (accuracy against budget) and its fold masks at the
claims' budget (:mod:`freqbias.budget_curve`), and the metrics the stage logs.

Images arrive as the prepared splits (uint8 (N, C, H, W), labels (N,), on the CPU); masks are fitted on the
normalised image ``model.normalize(x)`` and returned UNSHIFTED on the CPU (:class:`freqbias.artifacts.BudgetLadder`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping

import torch

from .artifacts import BudgetLadder, LoadedModel
from .budget_curve import LadderConfig, budget_ladder
from .data import to_float
from .mask_groups import shared_groups
from .stage_masks import MasksConfig

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]

LADDER_STEPS = 4   # a ladder fit may take this many times a search round's cap (masks.budget.max_steps): a round only
#                    decides whether a budget meets the rule, the ladder measures (at the round's cap of 60 steps every
#                    ladder fit of the default run was still improving by more than masks.budget.tol)


def fit_model_budgets(subject: LoadedModel, seed: int, splits: Splits, masks_cfg: MasksConfig, cfg: LadderConfig,
                      log: Callable[[str], None] = lambda m: None) -> tuple[BudgetLadder, dict[str, Any]]:
    """The ladder of ``subject`` on the masks stage's fit images and folds (``masks.dataset.fit_n``, ``folds``,
    grouped with ``seed``), each fit capped at :data:`LADDER_STEPS` x ``masks.budget.max_steps``, scored on the test
    split; its artifact and metrics (``seconds``, the share of fits that
    converged, and per budget ``ratio_<budget>`` / ``disc_ratio_<budget>``: masked / clean test accuracy of the
    budgeted mask and of the low-pass disc, None when clean accuracy is 0)."""
    if masks_cfg.budget is None:
        raise ValueError("masks.budget: the budgets stage needs the budgeted fits' settings")
    model, meta = subject.model, subject.meta
    device = next(model.parameters()).device
    (x_val, y_val), (x_te, y_te) = splits["val"], splits["test"]
    z_val, z_te = (model.normalize(to_float(x).to(device)) for x in (x_val, x_te))
    y_val, y_te = y_val.to(device), y_te.to(device)
    t0 = time.perf_counter()
    n_fit = min(masks_cfg.dataset_fit_n or len(y_val), len(y_val))
    groups = shared_groups(y_val.cpu(), n_fit, masks_cfg.folds, masks_cfg.class_fit_n, meta["num_classes"], seed)
    fit = dataclasses.replace(masks_cfg.budget.fit, max_steps=LADDER_STEPS * masks_cfg.budget.fit.max_steps)
    out = budget_ladder(model.net, (z_val, y_val, groups.dataset), groups.folds, (z_te, y_te), fit, cfg, seed,
                        f"{subject.name} budget ladder")
    log("budget ladder, test masked / clean accuracy (low-pass disc of the budget): " + "; ".join(
        f"{r['budget']:g}: {_num(r['masked_ratio'])} ({_num(r['disc_ratio'])})"
        f"{'' if r['converged'] else ' NOT converged'}" for r in out["rows"]))
    fits = out["records"] + out["fold_records"]
    metrics = {"model": subject.name, "variant": meta.get("variant", "external"), "seed": meta.get("seed", seed),
               "converged": sum(bool(r["converged"]) for r in fits) / len(fits),
               **{f"ratio_{r['budget']:g}": r["masked_ratio"] for r in out["rows"]},
               **{f"disc_ratio_{r['budget']:g}": r["disc_ratio"] for r in out["rows"]},
               "seconds": round(time.perf_counter() - t0, 1)}
    ladder = BudgetLadder(model=subject.name, kind=masks_cfg.parametrisation.kind, **out)
    return ladder, metrics


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
