"""Shared pieces of minibatch loops: contiguous batches and the OneCycle schedule.

Used by :mod:`freqbias.training` and :mod:`freqbias.fourier` alike, so that neither imports the other.
"""

from __future__ import annotations

from typing import Iterator

import torch


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
