"""Shared pieces of minibatch loops: contiguous batches, the OneCycle schedule, and prediction in eval mode.

Used by :mod:`freqbias.training`, :mod:`freqbias.fourier`, :mod:`freqbias.fitting` and
:mod:`freqbias.baselines` alike, so that none imports another for them. Model inputs are (N, C, H, W):
uint8 pixels are divided by 255 (:func:`freqbias.data.to_float`), float inputs (pixels in [0, 1], or
normalised images for a bare ``model.net``) are used as they are.
"""

from __future__ import annotations

import contextlib
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


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int,
              pct_start: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycle schedule sized to ``total_steps``; the warm-up is kept to at least 2 steps and the
    decay to at least 2, so very short runs (tiny profiles) stay well defined."""
    total_steps = max(total_steps, 4)
    pct = min(max(pct_start, 2 / total_steps), 1 - 2 / total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct)


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
