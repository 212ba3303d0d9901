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
(highest CE under the group's mask at its last check) and stops once its verdict is settled, too many wrong for
the rule to hold or enough right for it to hold whatever the rest give (:func:`score_rule`): the same verdicts
(and masks, bit for bit) as scoring all, with fewer forward passes. Most of the saving is on the checks that miss
(about half of a fit settled on the rule's boundary), which stop early; a check that meets the rule saves little
(about 5 % of a model's check time on the default profile), since the images most at risk, scored first, include
the clean-wrong ones. Two methods (``method``, :data:`freqbias.fit_methods.METHODS`; a new one is one class there):

- ``"constrained"`` (default): ``lam_g`` is a multiplier on the sparsity term set by the rule itself:
  multiplied by ``lam_factor`` after a check that met it, divided by it after one that did not (dual
  ascent in log-space). The path sparsifies while the rule holds and settles on its boundary, so no
  lambda is tuned per model. Constant lr.
- ``"fixed"`` (as published): ``lam_g = lam`` throughout, OneCycle lr over ``max_steps``.

A group *converged* when its sparsest mean improved by <= ``tol`` over ``patience`` consecutive checks
(it then stops); otherwise it hit ``max_steps``. docs/study.md, "Converged masks", says why the default
differs from the study's fixed lambda and epoch budget.

A class mask also has *foreign* images (other classes'; :mod:`freqbias.class_rule`): its loss penalises raising its
class's probability on them and its rule requires that no more of them go to its class than clean, plus
``push_tol`` of them, so that a mask cannot meet the rule by turning every image into the model's default class.

Each mask's state (best mask, plateau counter, lr cuts, lambda, history, risk order, generator) is one
:class:`_GroupFit`; :func:`fit_shared_masks` steps all active masks together, then at each check has every
one check, keep the sparsest, adjust lambda, and refine or stop. Masks are in the config's parametrisation
(:mod:`freqbias.parametrisation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import runtime
from .class_rule import Foreign, foreign_of, push_gradients, score_push
from .fit_methods import METHODS, FitMethod
from .fitting import MaskAdam, check_images, clean_ce, loss_terms, mask_loss
from .fourier import predict
from .frozen import fitting_copy
from .loops import BATCH_SIZE, batches
from .parametrisation import Parametrisation, Rfft, check_parametrisation


@dataclass(frozen=True)
class SharedMaskConfig:
    """Constants for shared (dataset, fold, class) masks, built by the caller from params.

    ``lam``: the sparsity weight (``fixed``) or its starting value (``constrained``); ``lr``: Adam's lr
    (the OneCycle peak for ``fixed``); ``batch_size``: images per group per step; ``check_every``: steps
    between rule checks; ``tol`` (full-plane mean) and ``patience`` (checks): the convergence rule.
    The study: fixed lam 0.2, lr 1e-3, batch 1, <= 100 epochs, acc_ratio 0.99 (checked per epoch).
    ``eval_batch_size``: images per forward pass, in checks and (whole groups) in steps, and ``fast_net``
    (:func:`freqbias.frozen.fitting_copy`): speed only. ``parametrisation``: the class of the masks
    (:data:`freqbias.parametrisation.PARAMETRISATIONS`), instantiated for the images' size. ``push_tol``:
    the share of a class mask's foreign images it may send into its class beyond the clean count."""

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
    parametrisation: type[Parametrisation] = Rfft
    seed: int = 0
    eval_batch_size: int = BATCH_SIZE
    fast_net: bool = True
    push_tol: float = 0.05

    def __post_init__(self) -> None:
        check_parametrisation(self.parametrisation)
        if not 0 <= self.push_tol <= 1:
            raise ValueError(f"push_tol must be in [0, 1], got {self.push_tol}")
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

    @property
    def fit_method(self) -> FitMethod:
        """The :class:`~freqbias.fit_methods.FitMethod` named by ``method``."""
        return METHODS[self.method]


@dataclass
class SharedMasks:
    """The fitted masks (G, *shape) in the config's parametrisation (all-NaN for a group without images), and
    one record per group: ``n_images, clean_acc, masked_acc`` (of the returned mask, on the group's images),
    ``converged`` (stopped by the rule with a mask sparser than the identity; None without images),
    ``steps`` (optimiser steps used),
    ``mean, support, min`` (full-plane mean, share above 1e-3, smallest entry), ``lam`` (final weight)
    and ``history``: one dict per check (``step, masked_acc, scored, mean, lam, lr, met``; ``masked_acc``
    None where the check stopped early, after ``scored`` images, its verdict settled)."""

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
               par: Parametrisation | None = None, batch_size: int = BATCH_SIZE) -> tuple[int, int, torch.Tensor]:
    """Score ``mask`` (*shape of ``par``; None: :class:`~freqbias.parametrisation.Rfft`) on normalised images
    ``z`` (N, C, H, W) with labels ``y``, in their order and in batches of ``batch_size``, until the rule's verdict
    is settled: more than ``allowed_wrong`` misclassified (missed whatever the rest give) or at least
    ``N - allowed_wrong`` correct (held whatever the rest give). ``net``: eval mode, on ``z``'s device. Returns
    ``(correct, scored, ce)``: correct among the first ``scored`` images (``scored`` = N unless stopped early)
    and their CE under the mask (scored,). The rule holds iff ``scored - correct <= allowed_wrong``."""
    par = Rfft(*z.shape[-2:]) if par is None else par
    correct, scored, ces = 0, 0, []
    for s in batches(len(z), batch_size):
        logits = net(par.apply(z[s], mask))
        ces.append(F.cross_entropy(logits, y[s], reduction="none"))
        correct, scored = correct + int((logits.argmax(dim=1) == y[s]).sum()), s.stop
        if scored - correct > allowed_wrong or correct >= len(z) - allowed_wrong:
            break
    return correct, scored, torch.cat(ces) if ces else z.new_zeros(0)


def _gradient(net: nn.Module, z: torch.Tensor, y: torch.Tensor, ce0: torch.Tensor, masks: torch.Tensor,
              lam: torch.Tensor, par: Parametrisation) -> torch.Tensor:
    """The gradient (G, *shape) of the summed group losses (module doc) for masks ``masks`` (G, *shape) with
    weights ``lam`` (G,), on normalised images ``z`` (G * b, C, H, W), ``b`` per group in group order, their
    labels ``y`` and clean CE ``ce0`` (G * b,). The fit calls it on a few groups at a time: each group's
    gradient depends on its own images only, and cache-sized batches run faster (``loops.BATCH_SIZE``)."""
    m = masks.detach().requires_grad_()
    logits = net(par.apply(z, m.repeat_interleave(len(z) // len(m), dim=0)))
    gap_sq, l1 = loss_terms(logits, y, ce0, m, par)
    loss = mask_loss(gap_sq.view(len(m), -1), l1[:, None], lam[:, None]).mean(dim=1).sum()
    return torch.autograd.grad(loss, m)[0]


class _GroupFit:
    """The fit of one group's mask, row ``row`` of the optimiser's stack: its images ``index`` (n,) and the
    images it must keep correct (``need`` of ``correct0``); its sparsest mask that met the rule (``best``,
    full-plane mean ``best_mean``), the sparsest mean at the last improvement by more than ``tol``
    (``ref_mean``) and the checks since (``since``), lr cuts used, steps done, whether it ``converged``
    (None without images), one ``history`` dict per check, its sparsity weight ``lam`` (0-dim), ``risk``:
    per image the CE at its last check (clean CE at first; checks score the highest first) and its own
    generator, so that its draws (and so its mask) do not depend on which other groups are fitted. A class
    mask's ``foreign`` images (:class:`~freqbias.class_rule.Foreign`) with their clean probabilities of
    its class ``p0`` (n_f,) add the rule's second side (``foreign = (Foreign, p0)``, :func:`foreign_of`)."""

    def __init__(self, row: int, index: torch.Tensor, y: torch.Tensor, ce0: torch.Tensor, pred0: torch.Tensor,
                 init: torch.Tensor, cfg: SharedMaskConfig,
                 foreign: tuple[Foreign | None, torch.Tensor | None] = (None, None)):
        f, p0 = foreign
        self.row, self.index, self.size = row, index, len(index)
        self.foreign, self.p0 = (f, p0) if f is not None and len(f.index) and len(index) else (None, None)
        self.correct0 = int((pred0[index] == y[index]).sum())
        self.need = min_correct(self.correct0, cfg.acc_ratio)
        self.best, self.best_mean, self.ref_mean = init.clone(), 1.0, 1.0
        self.since, self.cuts, self.steps = 0, 0, 0
        self.converged: bool | None = False if self.size else None
        self.history: list[dict] = []
        self.lam = torch.full((), cfg.lam, device=init.device, dtype=init.dtype)
        self.risk = ce0[index].clone()
        self.gen = torch.Generator().manual_seed(cfg.seed * 100_003 + row)

    def draw(self, b: int) -> torch.Tensor:
        """``b`` of the group's images, drawn with replacement: indices into ``z`` (b,)."""
        return self.index[torch.randint(self.size, (b,), generator=self.gen).to(self.index.device)]

    def draw_foreign(self, b: int) -> torch.Tensor:
        """``b`` foreign images, with replacement, from the same generator: positions in ``foreign.index`` (b,)."""
        return torch.randint(len(self.foreign.index), (b,), generator=self.gen).to(self.index.device)

    def pushes(self, net: nn.Module, z: torch.Tensor, mask: torch.Tensor, par: Parametrisation,
               batch_size: int) -> tuple[bool, int | None]:
        """Whether ``mask`` keeps the foreign images out of the class (the rule's second side; True without
        foreign images) and how many it sends there (None when the count stopped early, on missing it)."""
        if self.foreign is None:
            return True, None
        f = self.foreign
        pushed, scored = score_push(net, z[f.index], f.target, mask, f.allowed, par, batch_size)
        return pushed <= f.allowed, pushed if scored == len(f.index) else None

    def by_risk(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The order (n,) of the group's images, most at risk first, and their indices into ``z`` in that order."""
        order = self.risk.argsort(descending=True, stable=True)
        return order, self.index[order]

    def check(self, step: int, net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
              par: Parametrisation, lr: float, batch_size: int) -> tuple[bool, float]:
        """Score ``mask`` on the group's images, most at risk first (:func:`score_rule`), update their risk
        and log the check in ``history``; return whether it met the rule and its full-plane mean."""
        order, idx = self.by_risk()
        allowed = self.size - self.need
        correct, scored, ce = score_rule(net, z[idx], y[idx], mask, allowed, par, batch_size)
        self.risk[order[:scored]] = ce
        met, mean = scored - correct <= allowed, par.sparsity(mask).item()
        kept_out, pushed = self.pushes(net, z, mask, par, batch_size) if met else (True, None)
        self.history.append({"step": step, "masked_acc": correct / self.size if scored == self.size else None,
                             "scored": scored, "mean": mean, "lam": self.lam.item(), "lr": lr,
                             "met": met and kept_out, **({"pushed": pushed} if self.foreign is not None else {})})
        met = met and kept_out
        self.steps = step
        return met, mean

    def keep_sparsest(self, mask: torch.Tensor, mean: float, met: bool) -> None:
        """Keep ``mask`` as the result when it met the rule and is sparser than the best so far."""
        if met and mean < self.best_mean:
            self.best, self.best_mean = mask, mean

    def adjust_lambda(self, met: bool, factor: float) -> None:
        """Constrained method: sparsify harder after a check that met the rule, ease off after one that did not."""
        self.lam *= factor if met else 1 / factor

    def plateaued(self, tol: float, patience: int) -> bool:
        """Count this check towards the plateau (the sparsest mean improved by <= ``tol`` since the reference)
        or reset it; whether ``patience`` checks in a row have now plateaued."""
        if self.ref_mean - self.best_mean > tol:
            self.ref_mean, self.since = self.best_mean, 0
        else:
            self.since += 1
        return self.since >= patience

    def refine(self, adam: MaskAdam) -> None:
        """Restart from the best mask with half the lr and fresh moments (one lr cut)."""
        self.cuts, self.since = self.cuts + 1, 0
        adam.restart(self.row, self.best, adam.lr[self.row].item() / 2)

    def stop(self) -> None:
        """Stopped by the rule; a mask no sparser than the identity is no result, though."""
        self.converged = self.best_mean < 1.0

    def result(self, net: nn.Module, z: torch.Tensor, y: torch.Tensor, par: Parametrisation,
               cfg: SharedMaskConfig) -> tuple[torch.Tensor, dict]:
        """The returned mask (:func:`prune` of the best, on the images most at risk first; all-NaN without
        images) and its record (:class:`SharedMasks`)."""
        if not self.size:
            return torch.full(par.shape, math.nan, device=z.device, dtype=z.dtype), {
                "n_images": 0, "converged": None, "history": []}
        _, first = self.by_risk()
        keeps_out = None if self.foreign is None else (
            lambda m: self.pushes(net, z, m, par, cfg.eval_batch_size)[0])
        mask = prune(net, z[first], y[first], self.best, self.need, cfg, extra=keeps_out)
        correct = int((predict(net, z[self.index], mask, par, cfg.eval_batch_size) == y[self.index]).sum())
        record = {
            "n_images": self.size, "clean_acc": self.correct0 / self.size, "masked_acc": correct / self.size,
            "met": correct >= self.need, "converged": self.converged, "steps": self.steps,
            "mean": par.sparsity(mask).item(), "support": par.support(mask).item(),
            "min": mask.min().item(), "lam": self.lam.item(), "history": self.history}
        if self.foreign is not None:
            f = self.foreign
            pushed = int((predict(net, z[f.index], mask, par, cfg.eval_batch_size) == f.target).sum())
            record.update({"n_foreign": len(f.index), "pushed_clean": f.clean, "pushed": pushed,
                           "met": record["met"] and pushed <= f.allowed})
        return mask, record


def fit_shared_masks(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor],
                     cfg: SharedMaskConfig, desc: str = "shared masks",
                     foreign: Sequence[tuple[torch.Tensor, int] | None] | None = None) -> SharedMasks:
    """Fit one mask per group of normalised images ``z`` (N, C, H, W) with labels ``y`` (N,); ``groups``:
    index tensors into ``z`` (they may overlap; an empty one gets an all-NaN mask). ``foreign``: per group,
    None or a class mask's ``(index into z, class)``: other classes' images it must not send into the class
    (:mod:`freqbias.class_rule`). See the module doc."""
    check_images(z, y)
    par = cfg.parametrisation(*z.shape[-2:])
    dev, y = z.device, y.to(z.device)
    groups = [g.to(dev).long() for g in groups]
    net = fitting_copy(net, cfg.fast_net)
    ce0, pred0 = torch.full_like(y, math.nan, dtype=z.dtype), torch.full_like(y, -1)
    foreign = [None if f is None else (f[0].to(dev).long(), int(f[1])) for f in (foreign or [None] * len(groups))]
    used = torch.cat(groups + [f[0] for f in foreign if f is not None]).unique()
    ce0[used], pred0[used] = clean_ce(net, z[used], y[used], cfg.eval_batch_size)
    b = cfg.batch_size
    param = par.init(len(groups), device=dev, dtype=z.dtype)
    method = cfg.fit_method
    adam = MaskAdam(param, cfg.lr, warmup=method.warmup(cfg))
    fits = [_GroupFit(g, index, y, ce0, pred0, param[g], cfg,
                      foreign_of(net, z, pred0, f, cfg.push_tol, cfg.eval_batch_size))
            for g, (index, f) in enumerate(zip(groups, foreign))]
    active = [fit for fit in fits if fit.size]
    bar = tqdm(total=cfg.max_steps, desc=desc, unit="step", disable=not runtime.progress())
    for step in range(1, cfg.max_steps + 1):
        if not active:
            break
        # step: every active mask on a minibatch of its own group, a few groups per forward pass
        act = torch.tensor([fit.row for fit in active], device=dev)
        method.set_lr(adam, step, cfg)
        idx = torch.stack([fit.draw(b) for fit in active])
        grad = torch.cat([_gradient(net, z[idx[c]].flatten(0, 1), y[idx[c]].flatten(), ce0[idx[c]].flatten(),
                                    param[act[c]], torch.stack([fit.lam for fit in active[c]]), par)
                          for c in batches(len(active), max(1, cfg.eval_batch_size // b))])
        grad = grad + push_gradients(net, z, active, grad, param, par, max(1, b // 4), cfg.eval_batch_size)
        adam.step(grad, act)
        bar.update(1)
        if step % cfg.check_every and step != cfg.max_steps:
            continue
        for fit in list(active):  # check, keep the sparsest, adjust lambda, refine or stop
            mask = param[fit.row].clone()
            met, mean = fit.check(step, net, z, y, mask, par, adam.lr[fit.row].item(), cfg.eval_batch_size)
            fit.keep_sparsest(mask, mean, met)
            method.after_check(fit, met, cfg)
            if fit.plateaued(cfg.tol, cfg.patience) and not method.continues(fit, adam, cfg):
                fit.stop()
                active.remove(fit)
        bar.set_postfix(active=len(active), mean=f"{min(fit.best_mean for fit in fits):.3f}")
    bar.close()
    masks, records = zip(*(fit.result(net, z, y, par, cfg) for fit in fits))
    return SharedMasks(masks=torch.stack(masks), records=list(records))


def prune(net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, need: int,
          cfg: SharedMaskConfig, rounds: int = 8, extra: Callable[[torch.Tensor], bool] | None = None) -> torch.Tensor:
    """``mask`` (*shape, the config's parametrisation) with its entries below a threshold set to 0, for the
    largest threshold (binary search over the mask's own value quantiles, ``rounds`` checks) at which the
    masked accuracy on ``z``, ``y`` keeps at least ``need`` images correct; ``mask`` itself when no threshold
    does. The fit leaves entries
    the network does not need hovering just above 0 (Adam's noise against the clamp); this sets them
    to exactly 0 without giving up the rule. A threshold at or below the smallest entry (a sparse mask's
    exact zeros fill the lower quantiles) leaves ``mask`` as it is, which the fit found to meet the rule:
    such a round costs no forward pass. Each candidate is scored by :func:`score_rule` in the images'
    order (the fit passes them most at risk first), so one that misses the rule stops early. ``extra``: a
    further condition a candidate must meet (a class mask's foreign images, :mod:`freqbias.class_rule`)."""
    values = mask.flatten().sort().values
    lo, hi, kept = 0, len(values) - 1, mask
    for _ in range(rounds):
        if lo > hi:
            break
        mid = (lo + hi) // 2
        cand = torch.where(mask >= values[mid], mask, torch.zeros_like(mask))
        if values[mid] <= values[0] or (_meets(net, z, y, cand, need, cfg) and (extra is None or extra(cand))):
            kept, lo = cand, mid + 1
        else:
            hi = mid - 1
    return kept


def _meets(net: nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, need: int,
           cfg: SharedMaskConfig) -> bool:
    """Whether ``mask`` keeps at least ``need`` of the images ``z`` correct (:func:`score_rule`)."""
    par = cfg.parametrisation(*z.shape[-2:])
    correct, scored, _ = score_rule(net, z, y, mask, len(z) - need, par, cfg.eval_batch_size)
    return scored - correct <= len(z) - need
