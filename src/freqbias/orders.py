"""Binary masks of a given budget on the rfft grid and a net's predictions under them: the pieces of the masks' controls
(:mod:`freqbias.controls`).

Everything here lives on the UNSHIFTED rfft grid (H, W//2+1) of H x W images: a binary mask keeps or drops
whole rfft entries, and entry ``(ky, kx)`` off the DC / Nyquist columns stands for the pair ``k, -k`` of the full
plane. A *budget* is a share of the full H x W plane, counted with :meth:`freqbias.parametrisation.Rfft.weights`
(the weights of the rfft entries, summing to 1), so a budget of 0.1 keeps 10 % of the full plane's
frequencies whatever the layout the compared mask was fitted in. An *order* is a permutation of the
H * (W//2+1) entries, most important first; :func:`keep_masks` turns an order and a list of budgets into the
binary masks that keep its first entries (insertion). The orders themselves, :func:`order_by` and the registry
of named orders are in :mod:`freqbias.frequency_orders`.

Extension point: a new order is one :func:`freqbias.frequency_orders.register_order` call.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .frequency_orders import as_rfft, order_by, random_order, rfft_radius
from .loops import BATCH_SIZE, batches, frozen
from .parametrisation import Rfft


def rfft_weights(h: int, w: int) -> torch.Tensor:
    """(H, W//2+1) float64: the share of the full plane each rfft entry stands for (sums to 1)."""
    return Rfft(h, w).weights(dtype=torch.float64)


def keep_masks(order: torch.Tensor, weights: torch.Tensor, budgets: Sequence[float]) -> torch.Tensor:
    """Binary rfft masks that keep the first entries of ``order`` (..., F) whose cumulative full-plane share
    (``weights`` (H, Wm), :func:`rfft_weights`) is <= each budget: float32 (len(budgets), ..., H, Wm).
    A budget of 0 keeps nothing, 1 keeps everything."""
    h, wm = weights.shape
    w_sorted = weights.flatten()[order]                                   # (..., F)
    cum = w_sorted.cumsum(-1)
    b = torch.as_tensor(list(budgets), dtype=torch.float64).view(-1, *([1] * order.dim()))
    keep_sorted = (cum[None] <= b + 1e-9).float()                         # (B, ..., F)
    out = torch.zeros_like(keep_sorted).scatter_(-1, order.expand_as(keep_sorted), keep_sorted)
    return out.view(*out.shape[:-1], h, wm)


def support_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The binary support ``1[M > 0]`` of masks (..., H, Wm) in either layout, as rfft masks (float32)."""
    return (as_rfft(mask, width) > 0).float()


def budget(mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Full-plane share of the non-zero entries of binary rfft masks (..., H, Wm): float64 (...)."""
    return ((mask > 0).double() * weights).sum(dim=(-2, -1))


def disc_like(mask: torch.Tensor, width: int, seed: int = 0) -> torch.Tensor:
    """A centred low-pass disc with as many frequencies as the support of ``mask`` (H, Wm) (either layout):
    the rfft entries nearest the zero frequency, ties broken at random, float32 (H, W//2+1)."""
    sup = support_mask(mask, width)
    w = rfft_weights(sup.shape[-2], width)
    return keep_masks(order_by(rfft_radius(sup.shape[-2], width), descending=False, seed=seed),
                      w, [float(budget(sup, w))])[0]


def random_like(mask: torch.Tensor, width: int, draws: int, seed: int = 0) -> torch.Tensor:
    """``draws`` random binary supports with as many frequencies as the support of ``mask`` (H, Wm):
    float32 (draws, H, W//2+1)."""
    sup = support_mask(mask, width)
    w = rfft_weights(sup.shape[-2], width)
    orders = random_order((draws,), sup.shape[-2], sup.shape[-1], seed)
    return keep_masks(orders, w, [float(budget(sup, w))])[0]


@torch.no_grad()
def predictions_under(net: nn.Module, z: torch.Tensor, masks: torch.Tensor,
                      batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``net``'s predicted classes on normalised images ``z`` (N, C, H, W) filtered by each of ``masks`` (P, H, Wm)
    rfft (shared by all images) or (P, N, H, Wm) (one per image): int64 (P, N), on the CPU. All masks of a batch
    of images run as one forward pass of about ``batch_size`` images."""
    out = torch.empty(len(masks), len(z), dtype=torch.long)
    if len(z) == 0:
        return out
    per_image = masks.dim() == 4
    step = max(1, batch_size // max(1, min(len(z), batch_size)))
    with frozen(net):
        for s in batches(len(z), batch_size):
            spectrum = torch.fft.rfft2(z[s])                                          # (B, C, H, Wm)
            for p in batches(len(masks), step):
                m = masks[p, s] if per_image else masks[p, None]                     # (P', B|1, H, Wm)
                filtered = torch.fft.irfft2(spectrum[None] * m[:, :, None].to(z.device), s=z.shape[-2:])
                out[p, s] = net(filtered.flatten(0, 1)).argmax(dim=1).view(len(m), -1).cpu()
    return out


def correct_under(net: nn.Module, z: torch.Tensor, target: torch.Tensor, masks: torch.Tensor,
                  batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Whether ``net`` predicts ``target`` (N,) under each mask (:func:`predictions_under`): bool (P, N), CPU."""
    return predictions_under(net, z, masks, batch_size) == target.cpu()[None]


def gradient_scores(net: nn.Module, z: torch.Tensor, target: torch.Tensor, per_image: bool,
                    batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Importance of each rfft entry from the gradient of the cross-entropy at the all-ones mask: ``-dCE/dM``
    (removing entry k changes the CE by about ``-dCE/dM_k``, so the highest score matters most).
    ``per_image``: one map per image (N, H, Wm); else the mean CE's map (H, Wm). float64, CPU."""
    h, w = z.shape[-2:]
    grads = []
    with frozen(net):
        for s in batches(len(z), batch_size):
            m = torch.ones(len(z[s]), h, w // 2 + 1, device=z.device, dtype=z.dtype, requires_grad=True)
            ce = F.cross_entropy(net(Rfft(h, w).apply(z[s], m)), target[s].to(z.device), reduction="sum")
            grads.append(-torch.autograd.grad(ce, m)[0].double().cpu())
    g = torch.cat(grads)
    return g if per_image else g.mean(dim=0)


def area(correct: torch.Tensor, budgets: Sequence[float]) -> torch.Tensor:
    """Area under a curve of correctness (B, N) over the budgets (B,) (trapezoid, budgets in [0, 1]):
    float64 (N,), one area per image (its mean is the area under the accuracy curve)."""
    x = torch.as_tensor(list(budgets), dtype=torch.float64)
    return torch.trapezoid(correct.double(), x, dim=0)
