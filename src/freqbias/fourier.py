"""Fourier masks in use: masked prediction, agreement and the binary complement.

A mask ``M`` is real, in [0, 1], stored UNSHIFTED (zero frequency at ``[0, 0]``) and acts on the
*normalised* image ``z = model.normalize(x)``, the tensor that enters ``model.net``. How it is stored
and applied (rfft, full or isotropic), its L1 weights, full plane and statistics belong to its
parametrisation, :mod:`freqbias.parametrisation`. Fitting masks: :mod:`freqbias.fitting`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import loops
from .parametrisation import Parametrisation, Rfft


def binary_complement(m: torch.Tensor) -> torch.Tensor:
    """``1 - 1[M > 0]``: keeps exactly the frequencies the mask removed. Returns a new tensor."""
    return 1.0 - (m > 0).to(m.dtype)


# --------------------------------------------------------------------------------------------
# Masked prediction
# --------------------------------------------------------------------------------------------

def predict(net: nn.Module, z: torch.Tensor, mask: torch.Tensor | None = None, par: Parametrisation | None = None,
            batch_size: int = loops.BATCH_SIZE) -> torch.Tensor:
    """Predicted classes (N,) of ``net`` (run in eval mode, :func:`freqbias.loops.predict`) on normalised
    images ``z`` (N, C, H, W) filtered by ``mask`` in parametrisation ``par`` (None: :class:`Rfft` of z's
    size): None (clean), shared (*shape) or per image (N, *shape)."""
    if mask is None:
        return loops.predict(net, z, batch_size)
    par = Rfft(*z.shape[-2:]) if par is None else par
    par.check_images(z)
    par.check(mask, batch=len(z))
    shared = par.is_shared(mask)
    return loops.predict(net, z, batch_size, lambda zb, s: par.apply(zb, mask if shared else mask[s]))


def agreement(net: nn.Module, z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
              par: Parametrisation | None = None, batch_size: int = loops.BATCH_SIZE) -> float:
    """Share of images whose prediction under ``mask`` equals ``target`` (accuracy when ``target`` is
    the true label; agreement when it is another model's prediction)."""
    if len(z) == 0:
        raise ValueError("agreement: no images")
    return (predict(net, z, mask, par, batch_size) == target.to(z.device)).float().mean().item()
