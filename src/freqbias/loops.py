"""Shared pieces of minibatch loops: contiguous batches, the OneCycle schedule (torch's for training; its
lr and Adam beta1 per step as functions for the mask fits' own Adam), and prediction in eval mode.

Used by :mod:`freqbias.training`, :mod:`freqbias.fourier`, :mod:`freqbias.fitting` and
:mod:`freqbias.baselines` alike, so that none imports another for them. Model inputs are (N, C, H, W):
uint8 pixels are divided by 255 (:func:`freqbias.data.to_float`), float inputs (pixels in [0, 1], or
normalised images for a bare ``model.net``) are used as they are.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
from torch import nn

from .data import to_float

# Images per forward pass wherever the batch size is the code's choice (prediction, the masks' rule
# checks and fitting steps): a batch whose activations stay in the CPU's cache runs about twice as fast
# as one of 1024 (small_cnn at 28 x 28 on 2 cores: 15,600 against 7,700 images/s; ``make bench``).
BATCH_SIZE = 128


def batches(n: int, size: int) -> Iterator[slice]:
    """Contiguous batches ``[0, size), [size, 2 size), ...`` over ``range(n)``, the last one shorter.
    For a shuffled epoch, index a permutation with them: ``order[s]``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def one_cycle_plan(total_steps: int, pct_start: float) -> tuple[int, float]:
    """``(total_steps, pct_start)`` of a OneCycle schedule for a run of ``total_steps``: at least 4 steps,
    with a warm-up of at least 2 and a decay of at least 2, so very short runs (tiny profiles) stay well
    defined."""
    total_steps = max(total_steps, 4)
    return total_steps, min(max(pct_start, 2 / total_steps), 1 - 2 / total_steps)


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int,
              pct_start: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's OneCycle schedule for ``opt``, sized by :func:`one_cycle_plan` (training)."""
    total_steps, pct = one_cycle_plan(total_steps, pct_start)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct)


def one_cycle_lr(step: int, total: int, max_lr: float, pct_start: float) -> float:
    """The lr of step ``step`` (1-based) of ``total`` under torch's cosine OneCycle schedule: from
    ``max_lr / 25`` up to ``max_lr`` over ``pct_start`` of the steps, then down to ``max_lr / 25e4``."""
    return _one_cycle(step, total, pct_start, max_lr / 25, max_lr, max_lr / 25e4)


def one_cycle_momentum(step: int, total: int, pct_start: float, base: float = 0.85, peak: float = 0.95) -> float:
    """Adam's beta1 at step ``step`` (1-based) of ``total`` under torch's OneCycle schedule, which cycles it
    against the lr (``cycle_momentum``): from ``peak`` down to ``base`` while the lr rises, then back."""
    return _one_cycle(step, total, pct_start, peak, base, peak)


def _one_cycle(step: int, total: int, pct_start: float, start: float, mid: float, end: float) -> float:
    """Cosine from ``start`` to ``mid`` over the warm-up, then to ``end``, as torch's OneCycleLR anneals."""
    s, up = step - 1, pct_start * total - 1  # torch counts steps from 0; the warm-up ends at step ``up``
    if s <= up:
        return start + (mid - start) * (1 - math.cos(math.pi * s / up)) / 2 if up > 0 else mid
    frac = min((s - up) / max(total - 1 - up, 1e-12), 1.0)
    return end + (mid - end) * (1 + math.cos(math.pi * frac)) / 2


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """Put ``net`` in eval mode for the duration; restore its previous mode afterwards."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = BATCH_SIZE,
            transform: Callable[[torch.Tensor, slice], torch.Tensor] | None = None) -> torch.Tensor:
    """Predicted classes (N,) int64, on ``x``'s device, of ``model`` on inputs ``x`` (N, C, H, W).

    Runs without gradients in eval mode (the model's mode is restored afterwards), in batches of
    ``batch_size`` (uint8 converted to [0, 1] per batch) moved to the model's device; ``transform``,
    when given, maps each batch: ``transform(batch, s)``, ``s`` the batch's slice of ``x``."""
    device = next((p.device for p in model.parameters()), x.device)
    out = []
    with frozen(model):
        for s in batches(len(x), batch_size):
            xb = to_float(x[s]).to(device)
            if transform is not None:
                xb = transform(xb, s)
            out.append(model(xb).argmax(dim=1).to(x.device))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)
