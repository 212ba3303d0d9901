"""Frequency baselines of a trained model: accuracy on low- / high-pass filtered images, the Fourier heat
map (Yin et al. 2019), and the heat map's correlation with the model's dataset mask.

Model inputs are pixels in [0, 1], shape (B, C, H, W) (see :class:`freqbias.models.Classifier`);
uint8 images are divided by 255. Filters act on the UNSHIFTED ``fft2`` of each channel, distances in
cycles per image; heat maps read like the SHIFTED plane (row i / column j = frequency ``(ky[i], kx[j])``,
low frequencies in the middle), as do the masks they are compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from .data import to_float
from .loops import batches, predict

if TYPE_CHECKING:
    from .config import Section


def radial_distance(h: int, w: int) -> torch.Tensor:
    """Distance in cycles per image of every frequency of the UNSHIFTED (H, W) plane: float64 (H, W)."""
    ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64)
    kx = torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def filtered_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radii: Sequence[float],
                      band: str = "low", batch_size: int = 256, keep_dc: bool = True) -> np.ndarray:
    """Accuracy on ideal radially low- or high-pass filtered images, one value per radius: float (len(radii),).

    ``x``: pixels (N, C, H, W) in [0, 1] (or uint8), ``y`` (N,). The filter (``band``) acts on ``fft2`` of each
    channel: "low" keeps frequencies at distance ``<= radius`` (cycles per image, from the zero
    frequency of the centred plane), "high" keeps those ``> radius``. With ``keep_dc`` the high-pass
    filter also keeps the zero frequency (the mean brightness), so that clipping does not cut off the
    negative half of a zero-mean image. Filtered images are clipped to [0, 1] before the model."""
    if band not in ("low", "high"):
        raise ValueError(f"band must be 'low' or 'high', got {band!r}")
    if len(x) == 0:
        raise ValueError("filtered_accuracy needs at least one image")
    if any(r < 0 for r in radii):
        raise ValueError(f"radii must be >= 0, got {list(radii)}")
    h, w = x.shape[-2:]
    dist = radial_distance(h, w)
    filters = []
    for r in radii:
        keep = dist <= r if band == "low" else dist > r
        if band == "high" and keep_dc:
            keep[0, 0] = True
        filters.append(keep)
    correct = np.zeros(len(radii))
    for s in batches(len(x), batch_size):
        xb, yb = to_float(x[s]), y[s].cpu()
        spectrum = torch.fft.fft2(xb.double())
        for i, keep in enumerate(filters):
            filtered = torch.fft.ifft2(spectrum * keep).real.clamp(0, 1).float()
            correct[i] += (predict(model, filtered, len(filtered)).cpu() == yb).sum().item()
    return correct / len(x)


def heatmap_frequencies(size: int, grid: int) -> torch.Tensor:
    """Signed integer frequencies probed along one axis of a heat map: int64 (G,).

    ``grid >= size``: every frequency of the axis in shifted order ``-(size//2) .. (size-1)//2``;
    otherwise ``grid`` frequencies evenly spaced (rounded) and symmetric over ``-m .. m``,
    ``m = (size-1)//2``."""
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if grid >= size:
        return torch.arange(size, dtype=torch.int64) - size // 2
    m = (size - 1) // 2
    return torch.round(torch.linspace(-m, m, grid, dtype=torch.float64)).long()


def fourier_basis(h: int, w: int, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Real Fourier basis images of unit L2 norm, one per frequency pair: (F, H, W) float32.

    ``U = cos(2 pi (ky m / H + kx n / W))`` normalised; its spectrum is non-zero only at ``(ky, kx)`` and
    ``(-ky, -kx)`` (Yin et al. 2019)."""
    m = torch.arange(h, dtype=torch.float64)[None, :, None]
    n = torch.arange(w, dtype=torch.float64)[None, None, :]
    phase = 2 * math.pi * (ky.double()[:, None, None] * m / h + kx.double()[:, None, None] * n / w)
    basis = torch.cos(phase)
    return (basis / torch.linalg.vector_norm(basis, dim=(-2, -1), keepdim=True)).float()


@dataclass(frozen=True)
class HeatmapConfig:
    """The settings of a Fourier heat map (:func:`fourier_heatmap`), the same ``heatmap:`` layout wherever params
    set one (``controls.heatmap``, ``aggregate.heatmap``): the first ``n`` images, ``grid`` frequencies probed
    per axis (>= the image size: every one) and ``norm``, the L2 norm of the added basis image (pixel units)."""

    n: int
    grid: int
    norm: float

    @classmethod
    def from_section(cls, sec: Section, grid_min: int = 1, grid_default: int | None = None) -> "HeatmapConfig":
        """Read ``sec`` (a ``heatmap:`` section): ``n``, ``grid`` (>= ``grid_min``; ``grid_default`` when absent,
        required without one) and ``norm`` (> 0)."""
        n = sec.integer("n", min=1)
        grid = sec.integer("grid", *([] if grid_default is None else [grid_default]), min=grid_min)
        return cls(n=n, grid=grid, norm=sec.number("norm", min=0, strict_min=True))


def fourier_heatmap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: float, grid: int = 9,
                    freqs: tuple[torch.Tensor, torch.Tensor] | None = None, batch_size: int = 512,
                    seed: int = 0) -> np.ndarray:
    """Fourier heat map of Yin et al. 2019: error rate under one added basis image per frequency.

    For each probed frequency (ky, kx) every image becomes ``clip(x + s * norm * U_{ky,kx}, 0, 1)``:
    ``U`` from :func:`fourier_basis` (same for all channels), ``norm`` its L2 norm in pixel units per
    channel, ``s = +-1`` a random sign per image (seeded, the same for all frequencies).
    ``x``: pixels (N, C, H, W) in [0, 1] (or uint8), ``y`` (N,). Frequencies: ``freqs = (ky (Gy,), kx (Gx,))``
    or by default ``heatmap_frequencies`` of each axis with ``grid``.
    Returns the error rate, float (Gy, Gx), row i / column j = frequency ``(ky[i], kx[j])`` (so it reads
    like the shifted plane, low frequencies in the middle)."""
    if len(x) == 0:
        raise ValueError("fourier_heatmap needs at least one image")
    h, w = x.shape[-2:]
    fy, fx = freqs if freqs is not None else (heatmap_frequencies(h, grid), heatmap_frequencies(w, grid))
    gy, gx = torch.meshgrid(torch.as_tensor(fy), torch.as_tensor(fx), indexing="ij")
    basis = fourier_basis(h, w, gy.flatten(), gx.flatten())                      # (F, H, W)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (len(x),), generator=gen).float() * 2 - 1
    errors = torch.zeros(len(basis))
    per_chunk = max(1, batch_size // min(len(x), batch_size))
    for s in batches(len(x), batch_size):
        xb, yb = to_float(x[s]), y[s].cpu()
        delta = norm * signs[s, None, None, None]                                 # (B, 1, 1, 1)
        for f in batches(len(basis), per_chunk):
            u = basis[f]                                                          # (F', H, W)
            batch = (xb[None] + delta[None] * u[:, None, None]).clamp(0, 1)       # (F', B, C, H, W)
            pred = predict(model, batch.flatten(0, 1), len(u) * len(xb)).cpu().view(len(u), len(xb))
            errors[f] += (pred != yb[None]).sum(dim=1)
    return (errors / len(x)).view(gy.shape).numpy().astype(np.float64)


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank."""
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    ranks = np.empty(len(a))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def heatmap_mask_correlation(heatmap: np.ndarray | torch.Tensor, mask_full_shifted: torch.Tensor,
                             freqs: tuple[torch.Tensor, torch.Tensor] | None = None,
                             method: str = "spearman") -> float:
    """Correlation between a Fourier heat map (Gy, Gx) and a mask sampled at the same frequencies.

    ``mask_full_shifted``: full-plane SHIFTED mask (H, W) (e.g. ``fftshift(par.to_full(m))``).
    ``freqs``: the heat map's (ky, kx); by default those of :func:`heatmap_frequencies` for its shape.
    ``method``: "spearman" (Pearson on average ranks; default) or "pearson". NaN when either side is
    constant. A positive value: the model errs most at the frequencies its mask keeps."""
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    heat = np.asarray(heatmap, dtype=np.float64)
    h, w = mask_full_shifted.shape[-2:]
    fy, fx = freqs if freqs is not None else (heatmap_frequencies(h, heat.shape[0]),
                                              heatmap_frequencies(w, heat.shape[1]))
    fy, fx = torch.as_tensor(fy), torch.as_tensor(fx)
    if heat.shape != (len(fy), len(fx)):
        raise ValueError(f"heat map shape {heat.shape} does not match the frequencies ({len(fy)}, {len(fx)})")
    sampled = mask_full_shifted.detach().double().cpu()[(fy + h // 2)[:, None], (fx + w // 2)[None, :]].numpy()
    a, b = heat.ravel(), sampled.ravel()
    if method == "spearman":
        a, b = average_ranks(a), average_ranks(b)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
