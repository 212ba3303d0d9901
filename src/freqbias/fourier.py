"""Fourier masks: the two parametrisations, applying a mask, its statistics, masked prediction.

A mask ``M`` is real, in [0, 1], stored UNSHIFTED (zero frequency at ``[0, 0]``) and acts on the
*normalised* image ``z = model.normalize(x)``, the tensor that enters ``model.net``. Two kinds:

- ``"rfft"`` (default): shape ``(H, W//2+1)``, ``z~ = irfft2(M * rfft2(z), s=(H, W))``; real by
  construction, no redundant entries off the DC / Nyquist columns.
- ``"full"`` (as published): shape ``(H, W)``, ``z~ = Re(ifft2(M * fft2(z)))``. Taking the real part
  makes ``M(k)`` and ``M(-k)`` act together, as their mean.

Both describe the same family of filters (:func:`to_full` maps an rfft mask to the point-symmetric
full mask with the same effect; statistics and figures use it for either layout). The L1 term
weights every rfft entry by the number of full-plane entries it stands for (:func:`mask_weights`),
so the loss of an rfft mask equals the loss of its full equivalent, and because Adam is invariant to
the gradient's scale, fitting either kind from ones follows the same path (up to Adam's eps).
Fitting masks: :mod:`freqbias.fitting`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import loops

KINDS = ("rfft", "full")


# --------------------------------------------------------------------------------------------
# Parametrisations
# --------------------------------------------------------------------------------------------

def check_kind(kind: str) -> None:
    """Raise ``ValueError`` (one line) unless ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(KINDS)}, got {kind!r}")


def mask_shape(h: int, w: int, kind: str = "rfft") -> tuple[int, int]:
    """Spatial shape of a mask for ``h`` x ``w`` images: ``(h, w//2+1)`` for rfft, ``(h, w)`` for full."""
    check_kind(kind)
    return (h, w // 2 + 1) if kind == "rfft" else (h, w)


def init_masks(n: int, h: int, w: int, kind: str = "rfft", device: torch.device | str | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """``n`` masks of ones (identity filters): (n, H, Wm), unshifted."""
    return torch.ones(n, *mask_shape(h, w, kind), device=device, dtype=dtype)


def check_mask(m: torch.Tensor, h: int, w: int, kind: str = "rfft", batch: int | None = None) -> None:
    """Raise ``ValueError`` (one line) unless ``m`` is a (H, Wm) or (batch, H, Wm) mask for h x w images."""
    expected = mask_shape(h, w, kind)
    if m.dim() not in (2, 3) or tuple(m.shape[-2:]) != expected:
        raise ValueError(f"{kind} mask of shape {tuple(m.shape)} does not fit {h}x{w} images: "
                         f"expected (H, Wm) = {expected}, optionally with a leading batch dimension")
    if m.dim() == 3 and batch is not None and m.shape[0] not in (1, batch):
        raise ValueError(f"per-image masks: got {m.shape[0]} masks for {batch} images")


def apply_mask(z: torch.Tensor, m: torch.Tensor, kind: str = "rfft") -> torch.Tensor:
    """Filter normalised images ``z`` (B, C, H, W) with an unshifted mask ``m``.

    ``m`` is (H, Wm), shared by all images, or (B, H, Wm), one per image; it is broadcast over
    channels. Returns the filtered images (B, C, H, W), real, still in normalised units."""
    h, w = z.shape[-2:]
    check_mask(m, h, w, kind, batch=z.shape[0])
    m = m.unsqueeze(1) if m.dim() == 3 else m
    if kind == "rfft":
        return torch.fft.irfft2(torch.fft.rfft2(z) * m, s=(h, w))
    return torch.fft.ifft2(torch.fft.fft2(z) * m).real


def project_(m: torch.Tensor) -> torch.Tensor:
    """Clamp a mask to [0, 1] in place (after every optimiser step); return it."""
    return m.clamp_(0.0, 1.0)


def mask_weights(h: int, w: int, kind: str = "rfft", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """(H, Wm) weights summing to 1: the share of the full H x W plane each stored entry stands for.

    Full masks: ``1 / (H W)`` everywhere. Rfft masks: columns ``1 .. ceil(W/2)-1`` stand for two
    entries (``k`` and ``-k``), column 0 and, for even W, the Nyquist column for one."""
    hm, wm = mask_shape(h, w, kind)
    weights = torch.ones(hm, wm, device=device, dtype=dtype)
    if kind == "rfft":
        last = wm if w % 2 else wm - 1  # the Nyquist column (even W) has no mirror
        weights[:, 1:last] = 2.0
    return weights / (h * w)


def l1_ratio(m: torch.Tensor, width: int, kind: str = "rfft") -> torch.Tensor:
    """``||M||_1 / ||M_init||_1`` over the full plane (M_init = ones), per mask: shape ``m.shape[:-2]``."""
    weights = mask_weights(m.shape[-2], width, kind, device=m.device, dtype=m.dtype)
    return (m.abs() * weights).sum(dim=(-2, -1))


def sparsity(m: torch.Tensor, width: int, kind: str = "rfft") -> torch.Tensor:
    """Mean mask value over the full plane (1 = identity, 0 = everything removed), per mask."""
    return l1_ratio(m, width, kind)


def support(m: torch.Tensor, width: int, kind: str = "rfft", threshold: float = 1e-3) -> torch.Tensor:
    """Share of the full plane where the mask exceeds ``threshold``, per mask."""
    weights = mask_weights(m.shape[-2], width, kind, device=m.device, dtype=m.dtype)
    return ((m > threshold).to(weights.dtype) * weights).sum(dim=(-2, -1))


def binary_complement(m: torch.Tensor) -> torch.Tensor:
    """``1 - 1[M > 0]``: keeps exactly the frequencies the mask removed. Returns a new tensor."""
    return 1.0 - (m > 0).to(m.dtype)


def to_full(m: torch.Tensor, width: int) -> torch.Tensor:
    """The full UNSHIFTED plane (..., H, W) of float mask(s) ``m`` in either layout, for images of ``width``.

    A full-layout mask (last dimension ``width``) is returned unchanged. An rfft mask (..., H, W//2+1)
    becomes the point-symmetric full mask with the same effect: a column ``kx > W//2`` is the mirror
    ``M[(-ky) mod H, W - kx]``; on the DC and (even W) Nyquist columns ``irfft2`` drops the
    anti-Hermitian part of its input, so there an entry ``M[ky, kx]`` acts on both ``k`` and ``-k`` with
    weight 1/2, and the full mask holds the mean of ``M[ky, kx]`` and its mirror ``M[-ky, kx]``. Hence
    ``irfft2(rfft2(z) * m) == ifft2(fft2(z) * to_full(m))``, imaginary part zero."""
    h, wm = m.shape[-2:]
    if wm == width:
        return m
    if wm != width // 2 + 1:
        raise ValueError(f"mask of width {wm} does not fit images of width {width}: expected {width // 2 + 1} "
                         f"(rfft) or {width} (full)")
    neg_rows = (-torch.arange(h, device=m.device)) % h
    full = m.new_empty(*m.shape[:-1], width)
    full[..., :wm] = m
    mirrored_cols = width - torch.arange(wm, width, device=m.device)
    full[..., wm:] = m[..., neg_rows, :][..., mirrored_cols]
    selfmirror = [0] if width % 2 else [0, wm - 1]
    for c in selfmirror:
        full[..., c] = 0.5 * (m[..., c] + m[..., neg_rows, c])
    return full


# --------------------------------------------------------------------------------------------
# Masked prediction
# --------------------------------------------------------------------------------------------

def predict(net: nn.Module, z: torch.Tensor, mask: torch.Tensor | None = None, kind: str = "rfft",
            batch_size: int = loops.BATCH_SIZE) -> torch.Tensor:
    """Predicted classes (N,) of ``net`` (run in eval mode, :func:`freqbias.loops.predict`) on normalised
    images ``z`` (N, C, H, W) filtered by ``mask``: None (clean), shared (H, Wm) or per image (N, H, Wm)."""
    if mask is None:
        return loops.predict(net, z, batch_size)
    check_mask(mask, *z.shape[-2:], kind, batch=len(z))
    return loops.predict(net, z, batch_size,
                         lambda zb, s: apply_mask(zb, mask if mask.dim() == 2 else mask[s], kind))


def agreement(net: nn.Module, z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
              kind: str = "rfft", batch_size: int = loops.BATCH_SIZE) -> float:
    """Share of images whose prediction under ``mask`` equals ``target`` (accuracy when ``target`` is
    the true label; agreement when it is another model's prediction)."""
    if len(z) == 0:
        raise ValueError("agreement: no images")
    return (predict(net, z, mask, kind, batch_size) == target.to(z.device)).float().mean().item()
