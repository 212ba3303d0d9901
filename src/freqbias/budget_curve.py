"""Accuracy against budget: how many frequencies a network needs, and masks compared at equal size.

For one model, budgeted masks (:mod:`freqbias.budgeted`) are fitted on the dataset mask's fit images at each budget
of a *ladder* (``budgets.ladder``: full-plane means from a few per cent of the plane to about half), from the
largest down, each fit warm-started from the one above it (the identity for the first), and scored on held-out test
images beside a centred low-pass disc of the same budget (the rfft entries nearest the zero frequency,
:func:`freqbias.orders.keep_masks`). At the claims' budget (``budgets.claims``, one of the ladder's), each fold
of the fit images gets a mask too, in the same batched fit and from the same start: the equal-budget route of claims
2-4, whose band energies cannot differ between models by mask size, since every mask has the same size.

Images are normalised (the tensor entering ``model.net``); masks are in the masks' parametrisation, UNSHIFTED.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .budgeted import BudgetConfig, fit_at_budgets, search_budgets
from .config import ParamError, Section
from .fourier import predict
from .frequency_orders import as_rfft, order_by, rfft_radius
from .orders import correct_under, keep_masks, rfft_weights
from .parametrisation import Parametrisation

ROUND_STEPS = 2   # a search round may take this many times masks.budget.max_steps (a ladder fit 4 x: stage_budgets):
#                   the first round starts from a uniform mask at budget 0.5, and with 60 steps N-s0's stopped, still
#                   improving, short of the rule its settled fit meets; later rounds start from a mask that met it


@dataclass(frozen=True)
class BudgetPlan:
    """``masks.budget`` of params.yaml: the budgeted fits' constants (``fit``), whether the dataset, fold and class
    masks are the sparsest budget by search (``search``; False: ``masks.dataset``'s penalised fit) and the class
    masks' images per step in the search (``class_batch_size``; None: ``fit.batch_size``)."""

    fit: BudgetConfig
    search: bool
    class_batch_size: int | None = None

    def search_fit(self, seed: int) -> BudgetConfig:
        """The search's fit constants: ``fit`` with a round's cap (:data:`ROUND_STEPS` x ``max_steps``) and the fit
        seed ``seed``."""
        return dataclasses.replace(self.fit, seed=seed, max_steps=ROUND_STEPS * self.fit.max_steps)

    @classmethod
    def from_section(cls, sec: Section, parametrisation: type[Parametrisation], acc_ratio: float,
                     push_tol: float) -> "BudgetPlan":
        step = sec.number("step", min=0, max=1, strict_min=True)
        if not step < 1:
            raise ParamError(f"{sec.key('step')}: must be < 1 (the search's factor down from the identity)")
        fit = BudgetConfig(
            lr=sec.number("lr", min=0, strict_min=True), batch_size=sec.integer("batch_size", min=1),
            max_steps=sec.integer("max_steps", min=1), check_every=sec.integer("check_every", min=1),
            eval_n=sec.integer("eval_n", min=1), tol=sec.number("tol", min=0), patience=sec.integer("patience", min=1),
            step=step, rounds=sec.integer("rounds", min=1),
            budget_min=sec.number("budget_min", min=0, max=1, strict_min=True),
            acc_ratio=acc_ratio, push_tol=push_tol, parametrisation=parametrisation)
        return cls(fit=fit, search=sec.boolean("search", True),
                   class_batch_size=sec.integer("class_batch_size", None, min=1, optional=True))


@dataclass(frozen=True)
class LadderConfig:
    """``budgets`` of params.yaml: the ``ladder`` of budgets (ascending), the ``claims`` budget of the fold masks (one
    of the ladder's) and ``test_n`` held-out images per score (None: all)."""

    ladder: tuple[float, ...]
    claims: float
    test_n: int | None

    @classmethod
    def from_params(cls, params: dict) -> "LadderConfig":
        sec = Section(params, "budgets")
        ladder = tuple(sec.numbers("ladder", min=0))
        if not ladder or any(not 0 < b <= 1 for b in ladder) or list(ladder) != sorted(set(ladder)):
            raise ParamError(f"budgets.ladder: needs distinct budgets in (0, 1], ascending; got {list(ladder)}")
        claims = sec.number("claims", min=0, max=1, strict_min=True)
        if claims not in ladder:
            raise ParamError(f"budgets.claims: must be one of budgets.ladder {list(ladder)}, got {claims}")
        return cls(ladder=ladder, claims=claims, test_n=sec.integer("test_n", None, min=1, optional=True))


def sparsest(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor], plan: BudgetPlan,
             seed: int, foreign: Sequence[tuple[torch.Tensor, int] | None] | None = None,
             desc: str = "budget search") -> tuple[torch.Tensor, list[dict]]:
    """The sparsest budgeted masks of ``groups`` (:func:`freqbias.budgeted.search_budgets`): (G, *shape) and their
    records, with the record keys of :class:`freqbias.shared_masks.SharedMasks` (``lam`` None: no penalty). The
    groups with ``foreign`` images (the class masks) are searched with ``plan.class_batch_size`` images per step, in a
    second batched search when that differs from the others'."""
    cfg, foreign = plan.search_fit(seed), list(foreign or [None] * len(groups))
    class_cfg = cfg if plan.class_batch_size is None else dataclasses.replace(cfg, batch_size=plan.class_batch_size)
    if class_cfg == cfg:
        fit = search_budgets(net, z, y, groups, cfg, foreign, desc)
        return fit.masks, [{**r, "lam": None} for r in fit.records]
    plain, kept_out = ([g for g, f in enumerate(foreign) if (f is None) == want] for want in (True, False))
    parts = [(rows, c) for rows, c in ((plain, cfg), (kept_out, class_cfg)) if rows]
    masks, records = [None] * len(groups), [None] * len(groups)
    for rows, part_cfg in parts:
        fit = search_budgets(net, z, y, [groups[g] for g in rows], part_cfg, [foreign[g] for g in rows], desc)
        for i, g in enumerate(rows):
            masks[g], records[g] = fit.masks[i], {**fit.records[i], "lam": None}
    return torch.stack(masks), records


def disc_masks(h: int, w: int, budgets: Sequence[float], seed: int = 0) -> torch.Tensor:
    """Centred low-pass discs, one per budget (full-plane share kept, the nearest rfft entries first, ties at
    random): binary rfft masks (B, H, W//2+1)."""
    return keep_masks(order_by(rfft_radius(h, w), descending=False, seed=seed), rfft_weights(h, w), budgets)


def budget_ladder(net: nn.Module, fit: tuple[torch.Tensor, torch.Tensor, torch.Tensor], folds: Sequence[torch.Tensor],
                  test: tuple[torch.Tensor, torch.Tensor], cfg: BudgetConfig, plan: LadderConfig, seed: int,
                  desc: str = "budget ladder") -> dict:
    """The ladder of one model (module doc). ``fit = (z, y, index)``: normalised val images, labels and the dataset
    mask's fit images (indices into ``z``); ``folds``: its folds; ``test = (z, y)``: held-out images (the first
    ``plan.test_n``); ``cfg``: the fits' constants. Returns ``budgets`` (B,), ``masks`` (B, *shape) with their fit
    ``records``, ``rows`` (one per budget: ``budget``, the test accuracy ``clean_acc``, ``masked_acc``, ``disc_acc``,
    the ratios ``masked_ratio`` / ``disc_ratio`` to clean (None when clean accuracy is 0), ``converged``, ``steps``,
    ``loss``), ``claims_budget``, ``folds`` (F, *shape) at that budget with ``fold_records``. Masks on the CPU."""
    z, y, index = fit
    par = cfg.parametrisation(*z.shape[-2:])
    ladder, cfg = list(plan.ladder), dataclasses.replace(cfg, seed=seed)
    masks, records = [None] * len(ladder), [None] * len(ladder)
    prev = par.init(1, device=z.device, dtype=z.dtype)
    for b in reversed(range(len(ladder))):   # from the largest budget down, each fit warm-started from the last
        extra = list(folds) if ladder[b] == plan.claims else []
        result = fit_at_budgets(net, z, y, [index, *extra], [ladder[b]] * (1 + len(extra)),
                                cfg, init=prev.expand(1 + len(extra), *prev.shape[1:]), desc=f"{desc} {ladder[b]:g}")
        masks[b], records[b], prev = result.masks[0], result.records[0], result.masks[:1]
        if extra:
            fold_masks, fold_records = result.masks[1:], result.records[1:]
    masks = torch.stack(masks)
    z_te, y_te = test[0][:plan.test_n], test[1][:plan.test_n]
    clean = (predict(net, z_te) == y_te).float().mean().item()
    width = z.shape[-1]
    learned = as_rfft(par.to_full(torch.nan_to_num(masks, nan=0.0)).float(), width) if len(masks) else masks
    scored = correct_under(net, z_te, y_te, torch.cat([learned, disc_masks(*z.shape[-2:], ladder, seed)])).float()
    rows = []
    for b, (budget, rec) in enumerate(zip(ladder, records)):
        masked, disc = scored[b].mean().item(), scored[len(ladder) + b].mean().item()
        rows.append({"budget": budget, "clean_acc": clean, "masked_acc": masked, "disc_acc": disc,
                     "masked_ratio": masked / clean if clean > 0 else None,
                     "disc_ratio": disc / clean if clean > 0 else None, "test_n": len(y_te),
                     "converged": rec["converged"], "steps": rec["steps"],
                     "loss": rec["loss"] if math.isfinite(rec["loss"]) else None})
    return {"budgets": ladder, "masks": masks.cpu(), "records": records, "rows": rows,
            "claims_budget": plan.claims, "folds": fold_masks.cpu(), "fold_records": fold_records}
