"""Masks shared by a group of images: dataset-, fold- and class-level masks, fitted together.

A *group* is a set of images (indices into ``z``) that share one mask: all fit images (the dataset
mask), a fold of them (its uncertainty, :func:`fold_groups`) or one class (a class mask). All groups
are fitted in ONE batched run: every step draws ``batch_size`` images per group, filters each with its
group's mask and sums the groups' losses, so each mask gets the gradient (and, Adam being elementwise,
the path) of a fit on its group alone. The loss per group is the study's::

    mean_i exp((CE(f(z~_i), y_i) - CE(f(z_i), y_i))^2) + lam_g * ||M_g||_1 / ||M_init||_1

Every ``check_every`` steps each group's current mask is scored on all of its images; it *meets the
rule* when its masked accuracy is >= ``acc_ratio`` x the clean accuracy on them. The returned mask is the
sparsest (lowest full-plane mean) one that met the rule. A check scores the images most at risk first
(highest CE under the group's mask at its last check) and stops once too many are wrong for the rule to
hold (:func:`score_rule`): the same verdicts as scoring all, with about half the forward passes, since
about half the checks of a fit settled on the rule's boundary miss it. Two methods (``method``):

- ``"constrained"`` (default): ``lam_g`` is a multiplier on the sparsity term set by the rule itself:
  multiplied by ``lam_factor`` after a check that met it, divided by it after one that did not (dual
  ascent in log-space). The path sparsifies while the rule holds and settles on its boundary, so no
  lambda is tuned per model. Constant lr.
- ``"fixed"`` (as published): ``lam_g = lam`` throughout, OneCycle lr over ``max_steps``.

A group *converged* when its sparsest mean improved by <= ``tol`` over ``patience`` consecutive checks
(it then stops); otherwise it hit ``max_steps``. docs/study.md, "Converged masks", says why the default
differs from the study's fixed lambda and epoch budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import runtime
from .fitting import MaskAdam, check_images, clean_ce, fitting_copy, loss_terms, mask_loss
from .fourier import apply_mask, check_kind, init_masks, predict, sparsity, support
from .loops import BATCH_SIZE, batches, one_cycle_lr

METHODS = ("constrained", "fixed")


@dataclass(frozen=True)
class SharedMaskConfig:
    """Constants for shared (dataset, fold, class) masks, built by the caller from params.

    ``lam``: the sparsity weight (``fixed``) or its starting value (``constrained``); ``lr``: Adam's lr
    (the OneCycle peak for ``fixed``); ``batch_size``: images per group per step; ``check_every``: steps
    between rule checks; ``tol`` (full-plane mean) and ``patience`` (checks): the convergence rule.
    The study: fixed lam 0.2, lr 1e-3, batch 1, <= 100 epochs, acc_ratio 0.99 (checked per epoch).
    ``eval_batch_size``: images per forward pass, in checks and (whole groups) in steps, and ``fast_net``
    (:func:`freqbias.fitting.fitting_copy`): speed only."""

    lam: float
    lr: float
    batch_size: int
    max_steps: int
    check_every: int
    acc_ratio: float
    tol: float
    patience: int
    method: str = "constrained"
    lam_factor: float = 1.25
    lr_cuts: int = 2
    pct_start: float = 0.1
    kind: str = "rfft"
    seed: int = 0
    eval_batch_size: int = BATCH_SIZE
    fast_net: bool = True

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("lr", "batch_size", "max_steps", "check_every", "patience", "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lam < 0 or self.tol < 0 or self.acc_ratio < 0:
            raise ValueError(f"lam, tol and acc_ratio must be >= 0, got {self.lam}, {self.tol}, {self.acc_ratio}")
        if self.lam_factor <= 1:
            raise ValueError(f"lam_factor must be > 1, got {self.lam_factor}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")


@dataclass
class SharedMasks:
    """The fitted masks (G, H, Wm), unshifted (all-NaN for a group without images), and one record per
    group: ``n_images, clean_acc, masked_acc`` (of the returned mask, on the group's images),
    ``converged`` (stopped by the rule with a mask sparser than the identity; None without images),
    ``steps`` (optimiser steps used),
    ``mean, support, min`` (full-plane mean, share above 1e-3, smallest entry), ``lam`` (final weight)
    and ``history``: one dict per check (``step, masked_acc, scored, mean, lam, lr, met``; ``masked_acc``
    None where the check stopped early, after ``scored`` images, on missing the rule)."""

    masks: torch.Tensor
    records: list[dict]

    def __len__(self) -> int:
        return len(self.records)


def fold_groups(n: int, folds: int, seed: int = 0) -> list[torch.Tensor]:
    """``folds`` disjoint index sets covering ``range(n)`` in a seeded random order (sizes differ by <= 1)."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [order[k::folds].sort().values for k in range(folds)]


def class_groups(y: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """The indices of each class ``0 .. num_classes-1`` in ``y`` (empty for an absent class)."""
    y = y.cpu()
    return [(y == k).nonzero().squeeze(1) for k in range(num_classes)]


def min_correct(clean_correct: int, acc_ratio: float) -> int:
    """Images a mask must keep correct to meet the rule: ``acc_ratio x clean_correct`` rounded up to a whole
    image, so that a mask meeting it keeps at least ``acc_ratio`` of the clean accuracy (135 correct at
    0.995 may lose none, 4488 at 0.99 may lose 44)."""
    return math.ceil(acc_ratio * clean_correct - 1e-9)  # 1e-9: 0.995 x 200 is 199.00000000000003 in floats


@torch.no_grad()
def score_rule(net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, allowed_wrong: int,
               kind: str = "rfft", batch_size: int = BATCH_SIZE) -> tuple[int, int, torch.Tensor]:
    """Score ``mask`` (H, Wm) on normalised images ``z`` (N, C, H, W) with labels ``y``, in their order and
    in batches of ``batch_size``, until more than ``allowed_wrong`` are misclassified: the rule (at most
    that many wrong) is then missed whatever the rest give. ``net``: eval mode, on ``z``'s device.
    Returns ``(correct, scored, ce)``: correct among the first ``scored`` images (``scored`` = N unless
    stopped early) and their CE under the mask (scored,). The rule holds iff ``scored - correct <=
    allowed_wrong``."""
    correct, scored, ces = 0, 0, []
    for s in batches(len(z), batch_size):
        logits = net(apply_mask(z[s], mask, kind))
        ces.append(F.cross_entropy(logits, y[s], reduction="none"))
        correct, scored = correct + int((logits.argmax(dim=1) == y[s]).sum()), s.stop
        if scored - correct > allowed_wrong:
            break
    return correct, scored, torch.cat(ces) if ces else z.new_zeros(0)


def _gradient(net: nn.Module, z: torch.Tensor, y: torch.Tensor, ce0: torch.Tensor, masks: torch.Tensor,
              lam: torch.Tensor, kind: str) -> torch.Tensor:
    """The gradient (G, H, Wm) of the summed group losses (module doc) for masks ``masks`` (G, H, Wm) with
    weights ``lam`` (G,), on normalised images ``z`` (G * b, C, H, W), ``b`` per group in group order, their
    labels ``y`` and clean CE ``ce0`` (G * b,). The fit calls it on a few groups at a time: each group's
    gradient depends on its own images only, and cache-sized batches run faster (``loops.BATCH_SIZE``)."""
    m = masks.detach().requires_grad_()
    logits = net(apply_mask(z, m.repeat_interleave(len(z) // len(m), dim=0), kind))
    gap_sq, l1 = loss_terms(logits, y, ce0, m, z.shape[-1], kind)
    loss = mask_loss(gap_sq.view(len(m), -1), l1[:, None], lam[:, None]).mean(dim=1).sum()
    return torch.autograd.grad(loss, m)[0]


def fit_shared_masks(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor],
                     cfg: SharedMaskConfig, desc: str = "shared masks") -> SharedMasks:
    """Fit one mask per group of normalised images ``z`` (N, C, H, W) with labels ``y`` (N,); ``groups``:
    index tensors into ``z`` (they may overlap; an empty one gets an all-NaN mask). See the module doc."""
    check_images(z, y)
    h, w = z.shape[-2:]
    dev, y = z.device, y.to(z.device)
    groups = [g.to(dev).long() for g in groups]
    net = fitting_copy(net, cfg.fast_net)
    ce0, pred0 = torch.full_like(y, math.nan, dtype=z.dtype), torch.full_like(y, -1)
    used = torch.cat(groups).unique()
    ce0[used], pred0[used] = clean_ce(net, z[used], y[used], cfg.eval_batch_size)
    n_groups, b = len(groups), cfg.batch_size
    sizes = [len(g) for g in groups]
    correct0 = [int((pred0[g] == y[g]).sum()) for g in groups]
    need = [min_correct(c, cfg.acc_ratio) for c in correct0]

    param = init_masks(n_groups, h, w, cfg.kind, device=dev, dtype=z.dtype)
    adam = MaskAdam(param, cfg.lr, warmup=cfg.check_every if cfg.method == "constrained" else 1)
    best = param.clone()
    best_mean, ref_mean = [1.0] * n_groups, [1.0] * n_groups
    lam = torch.full((n_groups,), cfg.lam, device=dev, dtype=z.dtype)
    since, cuts, steps = [0] * n_groups, [0] * n_groups, [0] * n_groups
    converged: list[bool | None] = [False if s else None for s in sizes]
    history: list[list[dict]] = [[] for _ in groups]
    # per group and image, the CE at the group's last check (clean CE at first): checks score the highest first
    risk = [ce0[g].clone() for g in groups]
    # one generator per group: a group's draws (and so its mask) do not depend on which other groups are fitted
    gens = [torch.Generator().manual_seed(cfg.seed * 100_003 + g) for g in range(n_groups)]
    active = [g for g in range(n_groups) if sizes[g]]
    bar = tqdm(total=cfg.max_steps, desc=desc, unit="step", disable=not runtime.progress())
    for step in range(1, cfg.max_steps + 1):
        if not active:
            break
        act = torch.tensor(active, device=dev)
        if cfg.method == "fixed":
            adam.lr[:] = one_cycle_lr(step, cfg.max_steps, cfg.lr, cfg.pct_start)
        idx = torch.stack([groups[g][torch.randint(sizes[g], (b,), generator=gens[g]).to(dev)] for g in active])
        grad = torch.cat([_gradient(net, z[idx[c]].flatten(0, 1), y[idx[c]].flatten(), ce0[idx[c]].flatten(),
                                    param[act[c]], lam[act[c]], cfg.kind)
                          for c in batches(len(active), max(1, cfg.eval_batch_size // b))])
        adam.step(grad, act)
        bar.update(1)
        if step % cfg.check_every and step != cfg.max_steps:
            continue
        for g in list(active):
            mask = param[g].clone()
            order = risk[g].argsort(descending=True, stable=True)
            idx = groups[g][order]
            correct, scored, ce = score_rule(net, z[idx], y[idx], mask, sizes[g] - need[g], cfg.kind,
                                             cfg.eval_batch_size)
            risk[g][order[:scored]] = ce
            met = scored - correct <= sizes[g] - need[g]
            mean = sparsity(mask, w, cfg.kind).item()
            history[g].append({"step": step, "masked_acc": correct / sizes[g] if scored == sizes[g] else None,
                               "scored": scored, "mean": mean, "lam": lam[g].item(), "lr": adam.lr[g].item(),
                               "met": met})
            steps[g] = step
            if met and mean < best_mean[g]:
                best[g], best_mean[g] = mask, mean
            if cfg.method == "constrained":
                lam[g] *= cfg.lam_factor if met else 1 / cfg.lam_factor
            if ref_mean[g] - best_mean[g] > cfg.tol:
                ref_mean[g], since[g] = best_mean[g], 0
            else:
                since[g] += 1
            if since[g] < cfg.patience:
                continue
            if cfg.method == "constrained" and cuts[g] < cfg.lr_cuts:  # refine: restart from the best, half the lr
                cuts[g], since[g] = cuts[g] + 1, 0
                adam.restart(g, best[g], adam.lr[g].item() / 2)
            else:  # stopped by the rule; a mask no sparser than the identity is no result, though
                converged[g] = best_mean[g] < 1.0
                active.remove(g)
        bar.set_postfix(active=len(active), mean=f"{min(best_mean):.3f}")
    bar.close()

    records = []
    for g in range(n_groups):
        if not sizes[g]:
            best[g] = math.nan
            records.append({"n_images": 0, "converged": None, "history": []})
            continue
        first = groups[g][risk[g].argsort(descending=True, stable=True)]
        best[g] = prune(net, z[first], y[first], best[g], need[g], cfg)
        zg, yg = z[groups[g]], y[groups[g]]
        correct = int((predict(net, zg, best[g], cfg.kind, cfg.eval_batch_size) == yg).sum())
        records.append({
            "n_images": sizes[g], "clean_acc": correct0[g] / sizes[g], "masked_acc": correct / sizes[g],
            "met": correct >= need[g], "converged": converged[g], "steps": steps[g],
            "mean": sparsity(best[g], w, cfg.kind).item(), "support": support(best[g], w, cfg.kind).item(),
            "min": best[g].min().item(), "lam": lam[g].item(), "history": history[g]})
    return SharedMasks(masks=best, records=records)


def prune(net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, need: int,
          cfg: SharedMaskConfig, rounds: int = 8) -> torch.Tensor:
    """``mask`` (H, Wm) with its entries below a threshold set to 0, for the largest threshold (binary
    search over the mask's own value quantiles, ``rounds`` checks) at which the masked accuracy on
    ``z``, ``y`` keeps at least ``need`` images correct; ``mask`` itself when no threshold does. The fit leaves entries
    the network does not need hovering just above 0 (Adam's noise against the clamp); this sets them
    to exactly 0 without giving up the rule. A threshold at or below the smallest entry (a sparse mask's
    exact zeros fill the lower quantiles) leaves ``mask`` as it is, which the fit found to meet the rule:
    such a round costs no forward pass. Each candidate is scored by :func:`score_rule` in the images'
    order (the fit passes them most at risk first), so one that misses the rule stops early."""
    values = mask.flatten().sort().values
    lo, hi, kept = 0, len(values) - 1, mask
    for _ in range(rounds):
        if lo > hi:
            break
        mid = (lo + hi) // 2
        cand = torch.where(mask >= values[mid], mask, torch.zeros_like(mask))
        if values[mid] <= values[0] or _meets(net, z, y, cand, need, cfg):
            kept, lo = cand, mid + 1
        else:
            hi = mid - 1
    return kept


def _meets(net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, need: int,
           cfg: SharedMaskConfig) -> bool:
    """Whether ``mask`` keeps at least ``need`` of the images ``z`` correct (:func:`score_rule`)."""
    correct, scored, _ = score_rule(net, z, y, mask, len(z) - need, cfg.kind, cfg.eval_batch_size)
    return scored - correct <= len(z) - need
