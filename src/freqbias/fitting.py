"""Fitting Fourier masks (:mod:`freqbias.fourier`): configs, loss, stopping rule, dataset / class /
single-image fitting, and the ``masks`` params section.

Loss per image (averaged over a minibatch for a shared mask, summed over images for per-image masks)::

    exp((CE(f(z~), y) - CE(f(z), y))^2) + lam * ||M||_1 / ||M_init||_1

with ``f = model.net`` frozen in eval mode and the clean CE computed once, without gradient;
``z~`` is ``z`` filtered by the mask (:func:`freqbias.fourier.apply_mask`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_bn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import runtime
from .fourier import (
    KINDS,
    agreement,
    apply_mask,
    check_kind,
    init_masks,
    l1_ratio,
    mask_shape,
    predict,
    project_,
    sparsity,
)
from .loops import batches, frozen, one_cycle

# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def _check_common(cfg: "DatasetMaskConfig | SingleMaskConfig", positive: tuple[str, ...]) -> None:
    check_kind(cfg.kind)
    for name in ("lr", "patience", "eval_batch_size") + positive:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if not 0 < cfg.pct_start < 1:
        raise ValueError(f"pct_start must be in (0, 1), got {cfg.pct_start}")
    if cfg.lam < 0 or cfg.tol < 0:
        raise ValueError(f"lam and tol must be >= 0, got lam={cfg.lam}, tol={cfg.tol}")


@dataclass(frozen=True)
class DatasetMaskConfig:
    """Constants for dataset- and class-level masks, built by the caller from params.

    Published values: lam 0.2, lr 1e-3, pct_start 0.1, batch_size 1, max_epochs 100, acc_ratio 0.99,
    tol 1e-5 (change of the mean mask value), patience 7 (epochs). ``fast_net``: see
    :func:`fitting_copy` (speed only)."""

    lam: float
    lr: float
    pct_start: float
    batch_size: int
    max_epochs: int
    acc_ratio: float
    tol: float
    patience: int
    kind: str = "rfft"
    seed: int = 0
    eval_batch_size: int = 1024
    fast_net: bool = True

    def __post_init__(self) -> None:
        _check_common(self, ("batch_size", "max_epochs"))
        if self.acc_ratio < 0:
            raise ValueError(f"acc_ratio must be >= 0, got {self.acc_ratio}")


@dataclass(frozen=True)
class SingleMaskConfig:
    """Constants for single-image masks, built by the caller from params.

    Published values: lam 0.07, lr 0.2, pct_start 0.1, max_steps 20000, tol 1e-5 (change of the L1
    ratio), tol_gap 1e-6 (change of the squared CE gap), patience 300 (steps). ``chunk_size`` images
    are fitted as one batch (speed and memory only; set by ``FREQBIAS_CHUNK_SIZE`` in a stage).
    ``fast_net``: see :func:`fitting_copy` (speed only)."""

    lam: float
    lr: float
    pct_start: float
    max_steps: int
    tol: float
    tol_gap: float
    patience: int
    chunk_size: int = runtime.DEFAULT_CHUNK_SIZE
    kind: str = "rfft"
    eval_batch_size: int = 1024
    fast_net: bool = True

    def __post_init__(self) -> None:
        _check_common(self, ("max_steps", "chunk_size"))
        if self.tol_gap < 0:
            raise ValueError(f"tol_gap must be >= 0, got {self.tol_gap}")


# --------------------------------------------------------------------------------------------
# Loss, stopping rule, evaluation
# --------------------------------------------------------------------------------------------

def fitting_copy(net: nn.Module, fast: bool) -> nn.Module:
    """A frozen copy of ``net`` to fit masks against: eval mode, no weight gradients. With ``fast``,
    eval-mode BatchNorm is folded into the preceding convolutions (when ``torch.fx`` can trace the
    net) and the copy runs channels-last: the same function up to float rounding, about twice as
    fast on CPU. The caller's net is left untouched."""
    net = copy.deepcopy(net).eval()
    if fast:
        try:
            net = fuse_conv_bn(net, inplace=True)
        except Exception:  # noqa: BLE001 - untraceable nets (shape-dependent control flow) stay unfused
            pass
        net = net.to(memory_format=torch.channels_last)
    return net.requires_grad_(False)


def loss_terms(logits: torch.Tensor, y: torch.Tensor, clean_ce: torch.Tensor, m: torch.Tensor,
               width: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``(CE(f(z~), y) - CE(f(z), y))^2`` (B,) and ``||M||_1 / ||M_init||_1``: a scalar for a
    shared mask ``m`` (H, Wm), (B,) for per-image masks (B, H, Wm)."""
    gap = F.cross_entropy(logits, y, reduction="none") - clean_ce
    return gap.square(), l1_ratio(m, width, kind)


def mask_loss(gap_sq: torch.Tensor, l1: torch.Tensor, lam: float) -> torch.Tensor:
    """The study's loss ``exp(gap^2) + lam * L1 ratio``, per image (B,).

    A shared mask's minibatch loss is its mean over images: the published batch-1 loss averaged over
    the batch. (Squaring the gap of the batch-mean CE instead would let individual images flip while
    the mean CE stays put, and gives masks that miss the accuracy rule.)"""
    return torch.exp(gap_sq) + lam * l1


class Plateau:
    """Per-run plateau counter: run ``i`` stops once each tracked value ``k`` changed by <= ``tol[k]``
    (and ``ok[i]`` held) at ``patience`` consecutive updates; any other update resets its count.

    Dataset masks track 1 run, 1 value (mean mask) per epoch with ``ok`` = accuracy rule met;
    single-image masks track N runs, 2 values (squared CE gap, L1 ratio) per step with ``ok`` =
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
             batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image CE of the unmasked logits (N,) and the clean predictions (N,), no gradient."""
    ces, preds = [], []
    with frozen(net):
        for s in batches(len(z), batch_size):
            logits = net(z[s])
            ces.append(F.cross_entropy(logits, y[s], reduction="none"))
            preds.append(logits.argmax(dim=1))
    return torch.cat(ces), torch.cat(preds)


def _optimiser(param: torch.Tensor, lr: float, pct_start: float, total_steps: int):
    """Adam with a OneCycle lr (peak ``lr``) planned for exactly ``total_steps`` steps."""
    opt = torch.optim.Adam([param], lr=lr)
    return opt, one_cycle(opt, lr, total_steps, pct_start)


def _step(param: torch.Tensor, loss: torch.Tensor, opt: torch.optim.Optimizer, sched) -> None:
    """One Adam step on the mask only (no gradients for the frozen net's weights), then project."""
    (param.grad,) = torch.autograd.grad(loss, param)
    opt.step()
    sched.step()
    with torch.no_grad():
        project_(param)


def _check_images(z: torch.Tensor, y: torch.Tensor) -> None:
    if z.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(z.shape)}")
    if len(z) == 0 or len(z) != len(y):
        raise ValueError(f"need as many labels as images (> 0), got {len(z)} images and {len(y)} labels")


# --------------------------------------------------------------------------------------------
# Dataset- and class-level masks
# --------------------------------------------------------------------------------------------

def fit_dataset_mask(net: nn.Module, z: torch.Tensor, y: torch.Tensor,
                     cfg: DatasetMaskConfig) -> tuple[torch.Tensor, list[dict]]:
    """Fit one mask shared by all images ``z`` (N, C, H, W, normalised) with labels ``y`` (N,).

    Minibatches of ``cfg.batch_size`` in a seeded random order, up to ``cfg.max_epochs`` epochs,
    OneCycle sized to ``max_epochs * batches_per_epoch``. After every epoch the masked accuracy on
    the same images is measured; the returned mask (H, Wm), unshifted, is the last one whose masked
    accuracy is >= ``acc_ratio`` x clean accuracy (the initial ones mask if none was). Stops once
    the mean mask value changed by <= ``tol`` in ``patience`` consecutive epochs that each met the
    accuracy rule.

    History: one dict per epoch with ``epoch, loss`` (mean over steps), ``masked_acc, clean_acc,
    mean_mask`` (of the current mask) and ``kept``."""
    _check_images(z, y)
    n, h, w = len(z), z.shape[-2], z.shape[-1]
    y = y.to(z.device)
    net = fitting_copy(net, cfg.fast_net)
    ce0, pred0 = clean_ce(net, z, y, cfg.eval_batch_size)
    clean_acc = (pred0 == y).float().mean().item()
    param = init_masks(1, h, w, cfg.kind, device=z.device, dtype=z.dtype)[0].requires_grad_()
    best = param.detach().clone()
    per_epoch = math.ceil(n / cfg.batch_size)
    opt, sched = _optimiser(param, cfg.lr, cfg.pct_start, cfg.max_epochs * per_epoch)
    plateau = Plateau(1, cfg.tol, cfg.patience)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    bar = tqdm(range(1, cfg.max_epochs + 1), desc="dataset mask", unit="epoch", disable=not runtime.progress())
    for epoch in bar:
        order = torch.randperm(n, generator=gen).to(z.device)
        total = 0.0
        for s in batches(n, cfg.batch_size):
            idx = order[s]
            logits = net(apply_mask(z[idx], param, cfg.kind))
            loss = mask_loss(*loss_terms(logits, y[idx], ce0[idx], param, w, cfg.kind), cfg.lam).mean()
            _step(param, loss, opt, sched)
            total += loss.item()
        mask = param.detach()
        masked_acc = agreement(net, z, y, mask, cfg.kind, cfg.eval_batch_size)
        kept = masked_acc >= cfg.acc_ratio * clean_acc
        if kept:
            best = mask.clone()
        mean_mask = sparsity(mask, w, cfg.kind).item()
        history.append({"epoch": epoch, "loss": total / per_epoch, "masked_acc": masked_acc,
                        "clean_acc": clean_acc, "mean_mask": mean_mask, "kept": kept})
        bar.set_postfix(acc=f"{masked_acc:.3f}/{clean_acc:.3f}", mean=f"{mean_mask:.4f}")
        if plateau.update(torch.tensor([[mean_mask]]), torch.tensor([kept])).item():
            break
    return best, history


def fit_class_masks(net: nn.Module, z: torch.Tensor, y: torch.Tensor, num_classes: int,
                    cfg: DatasetMaskConfig, absent: str = "raise") -> tuple[torch.Tensor, list[list[dict]]]:
    """One dataset mask per class, each fitted on that class's images only: (K, H, Wm) masks and
    the K histories. A class with no image raises ``ValueError`` (``absent="raise"``) or gets an
    all-NaN mask and an empty history (``absent="nan"``: no mask could be fitted)."""
    if absent not in ("raise", "nan"):
        raise ValueError(f"absent must be 'raise' or 'nan', got {absent!r}")
    _check_images(z, y)
    y = y.to(z.device)
    masks, histories = [], []
    for k in range(num_classes):
        sel = (y == k).nonzero().squeeze(1)
        if len(sel) == 0 and absent == "nan":
            masks.append(torch.full(mask_shape(*z.shape[-2:], cfg.kind), math.nan, device=z.device, dtype=z.dtype))
            histories.append([])
            continue
        if len(sel) == 0:
            raise ValueError(f"class {k} has no images to fit a class mask on")
        mask, history = fit_dataset_mask(net, z[sel], y[sel], cfg)
        masks.append(mask)
        histories.append(history)
    return torch.stack(masks), histories


# --------------------------------------------------------------------------------------------
# Single-image masks
# --------------------------------------------------------------------------------------------

@dataclass
class SingleMaskResult:
    """Per-image masks and their fitting record.

    ``masks`` (N, H, Wm) unshifted; ``steps_used`` (N,) optimiser steps applied to each mask;
    ``kept`` (N,) bool: prediction under the mask equals the target; ``mean_mask`` (N,) full-plane
    mean mask value."""

    masks: torch.Tensor
    steps_used: torch.Tensor
    kept: torch.Tensor
    mean_mask: torch.Tensor


def _fit_single_chunk(net: nn.Module, z: torch.Tensor, target: torch.Tensor,
                      cfg: SingleMaskConfig, bar: tqdm) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit len(z) masks as one batch; return masks (n, H, Wm) and steps used (n,)."""
    n, w = len(z), z.shape[-1]
    ce0, _ = clean_ce(net, z, target, cfg.eval_batch_size)
    param = init_masks(n, z.shape[-2], w, cfg.kind, device=z.device, dtype=z.dtype).requires_grad_()
    opt, sched = _optimiser(param, cfg.lr, cfg.pct_start, cfg.max_steps)
    plateau = Plateau(n, (cfg.tol_gap, cfg.tol), cfg.patience)
    out = torch.empty_like(param.detach())
    steps = torch.full((n,), cfg.max_steps, dtype=torch.long)
    active = torch.arange(n, device=z.device)
    for t in range(cfg.max_steps):
        m = param[active]
        logits = net(apply_mask(z[active], m, cfg.kind))
        gap_sq, l1 = loss_terms(logits, target[active], ce0[active], m, w, cfg.kind)
        ok = logits.argmax(dim=1) == target[active]
        stop = plateau.update(torch.stack([gap_sq, l1], dim=1), ok, active).to(z.device)
        if stop.any():  # freeze these masks as they are (they gave the target at this step)
            done = active[stop]
            out[done] = m.detach()[stop]
            steps[done.cpu()] = t
            active = active[~stop]
            if len(active) == 0:
                break
            gap_sq, l1 = gap_sq[~stop], l1[~stop]
        _step(param, mask_loss(gap_sq, l1, cfg.lam).sum(), opt, sched)
        bar.update(1)
        bar.set_postfix(active=len(active))
    out[active] = param.detach()[active]
    return out, steps


def fit_single_masks(net: nn.Module, z: torch.Tensor, target: torch.Tensor,
                     cfg: SingleMaskConfig) -> SingleMaskResult:
    """Fit one mask per image for normalised images ``z`` (N, C, H, W) and targets (N,).

    Images are fitted ``cfg.chunk_size`` at a time, each chunk as one batch: the loss is the sum of
    per-image losses, so the gradients and the (elementwise) Adam state of each mask are those of
    a fit on that image alone; only the OneCycle lr (sized to ``max_steps``) is shared. Image ``i``
    stops (its mask frozen) once its prediction equals its target and its squared CE gap and L1
    ratio changed by <= ``tol_gap`` and ``tol`` at ``patience`` consecutive steps, or after
    ``max_steps`` steps. No images (N = 0) give an empty result (masks (0, H, Wm))."""
    if z.dim() == 4 and len(z) == 0 == len(target):
        h, w = z.shape[-2:]
        empty = torch.zeros(0, *mask_shape(h, w, cfg.kind), device=z.device, dtype=z.dtype)
        return SingleMaskResult(masks=empty, steps_used=torch.zeros(0, dtype=torch.long),
                                kept=torch.zeros(0, dtype=torch.bool), mean_mask=torch.zeros(0))
    _check_images(z, target)
    target = target.to(z.device)
    net = fitting_copy(net, cfg.fast_net)
    masks, steps = [], []
    n_chunks, bars = math.ceil(len(z) / cfg.chunk_size), runtime.progress()
    for c, s in enumerate(batches(len(z), cfg.chunk_size)):
        with tqdm(total=cfg.max_steps, desc=f"single masks {c + 1}/{n_chunks}", unit="step", disable=not bars) as bar:
            m, st = _fit_single_chunk(net, z[s], target[s], cfg, bar)
        masks.append(m)
        steps.append(st)
    masks_t = torch.cat(masks)
    kept = predict(net, z, masks_t, cfg.kind, cfg.eval_batch_size) == target
    return SingleMaskResult(masks=masks_t, steps_used=torch.cat(steps), kept=kept.cpu(),
                            mean_mask=sparsity(masks_t, z.shape[-1], cfg.kind).cpu())


# --------------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MasksConfig:
    """The ``masks`` section of params.yaml: mask kind and the fitting constants."""

    kind: str
    dataset: DatasetMaskConfig
    dataset_fit_n: int | None
    class_fit_n: int
    single: SingleMaskConfig
    single_n: int

    @classmethod
    def from_params(cls, params: dict) -> "MasksConfig":
        from .config import Section

        sec = Section(params, "masks")
        kind = sec.choice("kind", KINDS, "rfft")
        d, s = sec.sub("dataset"), sec.sub("single")
        dataset = DatasetMaskConfig(
            lam=d.number("lam", min=0), lr=d.number("lr", min=0, strict_min=True),
            pct_start=d.number("pct_start", min=0, max=1, strict_min=True), batch_size=d.integer("batch_size", min=1),
            max_epochs=d.integer("max_epochs", min=1), acc_ratio=d.number("acc_ratio", min=0, max=1),
            tol=d.number("tol", min=0), patience=d.integer("patience", min=1), kind=kind)
        single = SingleMaskConfig(
            lam=s.number("lam", min=0), lr=s.number("lr", min=0, strict_min=True),
            pct_start=s.number("pct_start", min=0, max=1, strict_min=True), max_steps=s.integer("max_steps", min=1),
            tol=s.number("tol", min=0), tol_gap=s.number("tol_gap", min=0), patience=s.integer("patience", min=1),
            kind=kind)
        return cls(kind=kind, dataset=dataset, dataset_fit_n=d.integer("fit_n", None, min=1, optional=True),
                   class_fit_n=d.integer("class_fit_n", min=1), single=single, single_n=s.integer("n_images", min=1))

    def single_for(self, net: nn.Module, image_shape: tuple[int, int, int], *, chunk_size: int,
                   memory_mb: float | None) -> SingleMaskConfig:
        """The single-image config with ``chunk_size`` images per batch, fewer when ``memory_mb`` (MiB)
        is set and too small for that many (run-only settings, :mod:`freqbias.runtime`: the masks do
        not depend on them)."""
        if memory_mb is not None:
            per_image = bytes_per_image(net, image_shape, self.kind)
            chunk_size = min(chunk_size, int(memory_mb * 2**20 // per_image))
        return dataclasses.replace(self.single, chunk_size=max(1, chunk_size))


def bytes_per_image(net: nn.Module, image_shape: tuple[int, int, int], kind: str = "rfft") -> int:
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
    mask = math.prod(mask_shape(h, w, kind))
    return 4 * (2 * numel + 4 * mask + 6 * c * h * w)
