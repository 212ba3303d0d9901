"""Single-image analysis (docs/study.md, "Three kinds of mask", kind 3): what the masks keep, on clean and PGD images
(which images: :mod:`freqbias.stage_selection`).

Images are pixels in [0, 1] (N, C, H, W); masks are unshifted (see :mod:`freqbias.fourier`) and act
on the normalised image ``model.normalize(x)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .fourier import agreement, binary_complement
from .parametrisation import Parametrisation


def evaluate_single_masks(net: nn.Module, z: torch.Tensor, target: torch.Tensor, masks: torch.Tensor,
                          par: Parametrisation, z_adv: torch.Tensor | None = None) -> dict[str, float]:
    """Agreement with ``target`` (N,) of ``net`` on normalised images ``z`` (N, C, H, W) under their own
    masks (N, *shape) in ``par``, under the binary complement ``1 - 1[M > 0]``, and, given the PGD images
    ``z_adv``: unmasked, and under the clean image's mask (continuous and binarised ``1[M > 0]``).
    Every value is NaN when there are no images (N = 0): an agreement over no image is undefined."""
    keys = ["masked_agreement", "complement_agreement"]
    keys += ["adv_agreement", "adv_restored_continuous", "adv_restored_binary"] if z_adv is not None else []
    if len(z) == 0:
        return dict.fromkeys(keys, math.nan)
    out = {
        "masked_agreement": agreement(net, z, target, masks, par),
        "complement_agreement": agreement(net, z, target, binary_complement(masks), par),
    }
    if z_adv is not None:
        out["adv_agreement"] = agreement(net, z_adv, target, None, par)
        out["adv_restored_continuous"] = agreement(net, z_adv, target, masks, par)
        out["adv_restored_binary"] = agreement(net, z_adv, target, (masks > 0).to(masks.dtype), par)
    return out


