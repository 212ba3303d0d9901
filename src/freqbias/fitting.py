"""Fitting Fourier masks (:mod:`freqbias.fourier`): the loss, the frozen net, and single-image masks.
Masks shared by a group of images (dataset, fold and class masks) are fitted by :mod:`freqbias.shared_masks`.

Loss per image (averaged over a minibatch for a shared mask, summed over images for per-image masks)::

    exp((CE(f(z~), y) - CE(f(z), y))^2) + lam * ||M||_1 / ||M_init||_1

with ``f = model.net`` frozen in eval mode and the clean CE computed once, without gradient;
``z~`` is ``z`` filtered by the mask in its parametrisation (:meth:`freqbias.parametrisation.Parametrisation.apply`).
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
from .fourier import predict
from .frozen import fitting_copy
from .loops import BATCH_SIZE, batches, frozen, one_cycle_lr, one_cycle_momentum, one_cycle_plan
from .parametrisation import Parametrisation, Rfft, check_parametrisation

# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SingleMaskConfig:
    """Constants for single-image masks, built by the caller from params.

    Published values: lam 0.07, lr 0.2, pct_start 0.1, max_steps 20000, tol 1e-5 (change of the L1
    ratio), tol_gap 1e-6 (change of the squared CE gap), patience 300 (steps). ``chunk_size`` images
    are fitted as one batch (speed and memory only; set by ``FREQBIAS_CHUNK_SIZE`` in a stage).
    ``fast_net``: see :func:`fitting_copy` (speed only). ``parametrisation``: the class of the masks
    (:data:`freqbias.parametrisation.PARAMETRISATIONS`), instantiated for the images' size."""

    lam: float
    lr: float
    pct_start: float
    max_steps: int
    tol: float
    tol_gap: float
    patience: int
    chunk_size: int = runtime.DEFAULT_CHUNK_SIZE
    parametrisation: type[Parametrisation] = Rfft
    eval_batch_size: int = BATCH_SIZE
    fast_net: bool = True

    def __post_init__(self) -> None:
        check_parametrisation(self.parametrisation)
        for name in ("lr", "patience", "eval_batch_size", "max_steps", "chunk_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.lam < 0 or self.tol < 0 or self.tol_gap < 0:
            raise ValueError(f"lam, tol and tol_gap must be >= 0, got {self.lam}, {self.tol}, {self.tol_gap}")


# --------------------------------------------------------------------------------------------
# Loss, stopping rule, evaluation
# --------------------------------------------------------------------------------------------

def loss_terms(logits: torch.Tensor, y: torch.Tensor, clean_ce: torch.Tensor, m: torch.Tensor,
               par: Parametrisation) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``(CE(f(z~), y) - CE(f(z), y))^2`` (B,) and ``||M||_1 / ||M_init||_1`` in parametrisation
    ``par``: a scalar for a shared mask ``m`` (*shape), (B,) for per-image masks (B, *shape)."""
    gap = F.cross_entropy(logits, y, reduction="none") - clean_ce
    return gap.square(), par.l1_ratio(m)


EXP_CAP = 20.0  # exp(20) ~ 4.9e8: its gradients and their squares (Adam's second moment) are finite in float32


def stable_exp(u: torch.Tensor, cap: float = EXP_CAP) -> torch.Tensor:
    """``exp(u)`` up to ``cap``, continued beyond it by its tangent ``exp(cap) (1 + u - cap)``: finite (and with a
    finite gradient) for every finite ``u``, where ``exp`` overflows float32 above u = 88.7 and its gradient,
    through Adam's squared moment, far earlier. The continuation is increasing and >= exp(cap), so it changes no
    minimiser of the mask loss: the identity mask already scores ``1 + lam`` per image, and any mask with an image
    past the cap scores more (for a shared mask: more than ``exp(cap) / batch``, far above ``1 + lam``)."""
    above = u > cap
    e = torch.exp(torch.where(above, cap, u))  # not clamp: its gradient vanishes at u == cap
    return torch.where(above, e * (1.0 + u - cap), e)


def mask_loss(gap_sq: torch.Tensor, l1: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """The study's loss ``exp(gap^2) + lam * L1 ratio``, per image (B,), with the exponential continued linearly
    past ``gap^2 = 20`` (:func:`stable_exp`: a CE gap over 9.4 nats overflowed float32 and made a mask NaN).

    A shared mask's minibatch loss is its mean over images: the published batch-1 loss averaged over
    the batch. (Squaring the gap of the batch-mean CE instead would let individual images flip while
    the mean CE stays put, and gives masks that miss the accuracy rule.)"""
    return stable_exp(gap_sq) + lam * l1


class Plateau:
    """Per-run plateau counter: run ``i`` stops once each tracked value ``k`` changed by <= ``tol[k]``
    (and ``ok[i]`` held) at ``patience`` consecutive updates; any other update resets its count.

    Single-image masks track N runs, 2 values (squared CE gap, L1 ratio) per step with ``ok`` =
    prediction equals target."""

    def __init__(self, n: int, tol: float | Sequence[float], patience: int):
        self.tol = torch.tensor(tol, dtype=torch.float64).reshape(-1)
        self.patience = patience
        self.prev: torch.Tensor | None = None
        self.count = torch.zeros(n, dtype=torch.long)

    def update(self, values: torch.Tensor, ok: torch.Tensor | None = None,
               idx: torch.Tensor | None = None) -> torch.Tensor:
        """``values`` (n_upd, K) for runs ``idx`` (all runs when None); return bool (n_upd,): stop now."""
        values = values.detach().to("cpu", torch.float64)
        idx = torch.arange(len(self.count)) if idx is None else idx.cpu()
        if self.prev is None:
            self.prev = torch.full((len(self.count), values.shape[1]), math.nan, dtype=torch.float64)
        still = ((values - self.prev[idx]).abs() <= self.tol).all(dim=1)  # NaN (first update) -> False
        if ok is not None:
            still &= ok.cpu()
        self.count[idx] = torch.where(still, self.count[idx] + 1, torch.zeros_like(self.count[idx]))
        self.prev[idx] = values
        return self.count[idx] >= self.patience


@torch.no_grad()
def clean_ce(net: nn.Module, z: torch.Tensor, y: torch.Tensor,
             batch_size: int = BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image CE of the unmasked logits (N,) and the clean predictions (N,), no gradient."""
    ces, preds = [], []
    with frozen(net):
        for s in batches(len(z), batch_size):
            logits = net(z[s])
            ces.append(F.cross_entropy(logits, y[s], reduction="none"))
            preds.append(logits.argmax(dim=1))
    return torch.cat(ces), torch.cat(preds)


class MaskAdam:
    """Adam on a stack of masks ``param`` (G, *shape) of any parametrisation, updated in place and clamped to [0, 1],
    with a lr, a step count and moments per mask, so that some masks can stop (single-image masks) or restart
    (moments cleared, :meth:`restart`; shared masks) while the others go on. After each (re)start the lr ramps up
    linearly over ``warmup`` steps (1: none): from ones (or a restart) the CE gap's gradient is ~0, Adam would move
    every entry down by the full lr, and a shared mask's first check would find the rule broken by a uniform
    dimming. Betas and eps: torch's defaults; ``lr`` may be reassigned per step (a schedule). The masks' own
    optimiser rather than ``torch.optim.Adam``: per-mask state, and a masks stage that never imports
    ``torch._dynamo`` (which ``torch.optim``'s step does, about 1 s per process)."""

    def __init__(self, param: torch.Tensor, lr: float, warmup: int):
        self.param, self.m, self.v = param, torch.zeros_like(param), torch.zeros_like(param)
        self.lr = torch.full((len(param),), lr, dtype=param.dtype, device=param.device)
        self.t = torch.zeros(len(param), dtype=param.dtype, device=param.device)
        self.warmup = warmup

    @torch.no_grad()
    def step(self, grad: torch.Tensor, act: torch.Tensor, b1: float = 0.9, b2: float = 0.999) -> None:
        """Update masks ``act`` (indices) with their gradient ``grad`` (len(act), *shape), then clamp to [0, 1]."""
        self.t[act] += 1
        per_mask = (-1,) + (1,) * (self.param.dim() - 1)  # broadcast a per-mask value over the mask's entries
        t = self.t[act].view(per_mask)
        self.m[act] = b1 * self.m[act] + (1 - b1) * grad
        self.v[act] = b2 * self.v[act] + (1 - b2) * grad.square()
        update = (self.m[act] / (1 - b1**t)) / ((self.v[act] / (1 - b2**t)).sqrt() + 1e-8)
        lr = self.lr[act].view(per_mask) * (t / self.warmup).clamp(max=1.0)
        self.param[act] = (self.param[act] - lr * update).clamp(0.0, 1.0)

    def restart(self, g: int, value: torch.Tensor, lr: float) -> None:
        """Set mask ``g`` to ``value`` with lr ``lr`` and fresh moments."""
        self.param[g], self.m[g], self.v[g], self.t[g], self.lr[g] = value, 0.0, 0.0, 0.0, lr


def check_images(z: torch.Tensor, y: torch.Tensor) -> None:
    if z.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(z.shape)}")
    if len(z) == 0 or len(z) != len(y):
        raise ValueError(f"need as many labels as images (> 0), got {len(z)} images and {len(y)} labels")


# --------------------------------------------------------------------------------------------
# Single-image masks
# --------------------------------------------------------------------------------------------

@dataclass
class SingleMaskResult:
    """Per-image masks and their fitting record.

    ``masks`` (N, *shape) in the config's parametrisation; ``steps_used`` (N,) optimiser steps applied to each mask;
    ``kept`` (N,) bool: prediction under the mask equals the target; ``mean_mask`` (N,) full-plane
    mean mask value."""

    masks: torch.Tensor
    steps_used: torch.Tensor
    kept: torch.Tensor
    mean_mask: torch.Tensor


def _fit_single_chunk(net: nn.Module, z: torch.Tensor, target: torch.Tensor,
                      cfg: SingleMaskConfig, par: Parametrisation, bar: tqdm) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit len(z) masks in ``par`` as one batch; return each image's sparsest mask that gave its target
    (n, *shape) and the steps used (n,)."""
    n = len(z)
    ce0, _ = clean_ce(net, z, target, cfg.eval_batch_size)
    param = par.init(n, device=z.device, dtype=z.dtype)
    adam, (total, pct) = MaskAdam(param, cfg.lr, warmup=1), one_cycle_plan(cfg.max_steps, cfg.pct_start)
    plateau = Plateau(n, (cfg.tol_gap, cfg.tol), cfg.patience)
    best = param.clone()  # the identity gives the target (it is the clean prediction)
    best_l1 = torch.full((n,), math.inf, device=z.device, dtype=z.dtype)
    steps = torch.full((n,), cfg.max_steps, dtype=torch.long)
    active = torch.arange(n, device=z.device)
    for t in range(cfg.max_steps):
        m = param[active].requires_grad_()
        logits = net(par.apply(z[active], m))
        gap_sq, l1 = loss_terms(logits, target[active], ce0[active], m, par)
        ok = logits.argmax(dim=1) == target[active]
        sparser = ok & (l1.detach() < best_l1[active])  # keep the sparsest mask that gave the target
        best[active[sparser]], best_l1[active[sparser]] = m.detach()[sparser], l1.detach()[sparser]
        stop = plateau.update(torch.stack([gap_sq, l1], dim=1), None, active).to(z.device)
        if stop.any():  # the loss terms settled: this mask's fit is done
            steps[active[stop].cpu()] = t
            active = active[~stop]
            if len(active) == 0:
                break
            gap_sq, l1 = gap_sq[~stop], l1[~stop]
        (grad,) = torch.autograd.grad(mask_loss(gap_sq, l1, cfg.lam).sum(), m)  # stopped rows: no loss
        adam.lr[:] = one_cycle_lr(t + 1, total, cfg.lr, pct)  # torch's OneCycle (lr and beta1) as functions
        adam.step(grad[~stop], active, b1=one_cycle_momentum(t + 1, total, pct))
        bar.update(1)
        bar.set_postfix(active=len(active))
    return best, steps


def fit_single_masks(net: nn.Module, z: torch.Tensor, target: torch.Tensor,
                     cfg: SingleMaskConfig) -> SingleMaskResult:
    """Fit one mask per image for normalised images ``z`` (N, C, H, W) and targets (N,).

    Images are fitted ``cfg.chunk_size`` at a time, each chunk as one batch: the loss is the sum of
    per-image losses, so the gradients and the (elementwise) Adam state of each mask are those of
    a fit on that image alone; only the OneCycle lr (sized to ``max_steps``) is shared. Image ``i``
    stops by its rule once its squared CE gap and L1 ratio changed by <= ``tol_gap`` and ``tol`` at
    ``patience`` consecutive steps (``steps_used`` < ``max_steps``), else at the cap. Its mask is the
    sparsest (lowest L1 ratio) of the fit that gave the target, as for shared masks (the sparsest that
    met the rule): a fit whose loss settles just past the decision boundary still returns a mask that
    keeps the prediction, and the fit is not held running by a prediction it will not recover.
    No images (N = 0) give an empty result (masks (0, *shape))."""
    par = cfg.parametrisation(*z.shape[-2:]) if z.dim() == 4 else None
    if par is not None and len(z) == 0 == len(target):
        empty = torch.zeros(0, *par.shape, device=z.device, dtype=z.dtype)
        return SingleMaskResult(masks=empty, steps_used=torch.zeros(0, dtype=torch.long),
                                kept=torch.zeros(0, dtype=torch.bool), mean_mask=torch.zeros(0))
    check_images(z, target)
    target = target.to(z.device)
    net = fitting_copy(net, cfg.fast_net)
    masks, steps = [], []
    n_chunks, bars = math.ceil(len(z) / cfg.chunk_size), runtime.progress()
    for c, s in enumerate(batches(len(z), cfg.chunk_size)):
        with tqdm(total=cfg.max_steps, desc=f"single masks {c + 1}/{n_chunks}", unit="step", disable=not bars) as bar:
            m, st = _fit_single_chunk(net, z[s], target[s], cfg, par, bar)
        masks.append(m)
        steps.append(st)
    masks_t = torch.cat(masks)
    kept = predict(net, z, masks_t, par, cfg.eval_batch_size) == target
    return SingleMaskResult(masks=masks_t, steps_used=torch.cat(steps), kept=kept.cpu(),
                            mean_mask=par.sparsity(masks_t).cpu())


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def bytes_per_image(net: nn.Module, image_shape: tuple[int, int, int],
                    parametrisation: type[Parametrisation] = Rfft) -> int:
    """Rough memory one image costs while its mask is fitted: every module output kept for the
    backward pass and its gradient (float32), plus the mask, its gradient and Adam's two moments,
    plus the FFT buffers. Counted from one forward pass with hooks, so it is the same on any device."""
    numel = 0

    def count(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal numel
        if isinstance(output, torch.Tensor):
            numel += output[0].numel()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    param = next(net.parameters())
    try:
        with torch.no_grad():
            net(torch.zeros(1, *image_shape, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
    c, h, w = image_shape
    mask = math.prod(parametrisation(h, w).shape)
    return 4 * (2 * numel + 4 * mask + 6 * c * h * w)
