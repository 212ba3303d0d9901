"""Band geometry of Fourier masks: rings and wedges of the shifted full plane, band energies of masks.

Conventions: see :mod:`freqbias.bands` (masks UNSHIFTED in storage; geometry on the SHIFTED full plane,
zero frequency at pixel ``(H//2, W//2)``; angles counter-clockwise as displayed, from the +kx axis).
Used by :mod:`freqbias.bands` (band statistics) and :mod:`freqbias.runs` (params check, band centres).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .parametrisation import Parametrisation



def _shifted_frequencies(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer frequencies (ky, kx), each int64 (H, W), of the pixels of the shifted plane."""
    ky = torch.arange(h, dtype=torch.int64) - h // 2
    kx = torch.arange(w, dtype=torch.int64) - w // 2
    return torch.meshgrid(ky, kx, indexing="ij")


def radial_band_index(h: int, w: int, n_bands: int) -> torch.Tensor:
    """Ring of every pixel of the shifted (H, W) plane: int64 (H, W) with values in [0, n_bands).

    The radii 0 .. R, with R the distance from the centre to the farthest corner
    ``sqrt((H//2)^2 + (W//2)^2)``, are split into ``n_bands`` equal rings ``[b R/n, (b+1) R/n)``; the
    last ring is closed so that the farthest corner is in it. The zero frequency is in ring 0.
    The assignment is computed in exact integer arithmetic (no pixel flips ring on rounding)."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    ky, kx = _shifted_frequencies(h, w)
    corner2 = (h // 2) ** 2 + (w // 2) ** 2
    if corner2 == 0:  # a 1x1 plane: a single pixel, ring 0
        return torch.zeros(h, w, dtype=torch.int64)
    # ring b <=> b^2 * R^2 <= r^2 * n^2 < (b+1)^2 * R^2, i.e. b = floor(sqrt(r^2 n^2 / R^2))
    scaled = (ky ** 2 + kx ** 2) * n_bands ** 2
    band = torch.sqrt(scaled.double() / corner2).floor().long()
    band = band - (band ** 2 * corner2 > scaled).long()            # correct float rounding, both ways
    band = band + ((band + 1) ** 2 * corner2 <= scaled).long()
    return band.clamp(max=n_bands - 1)


def angular_band_index(h: int, w: int, n_bands: int) -> torch.Tensor:
    """Wedge of every pixel of the shifted (H, W) plane: int64 (H, W) with values in [0, n_bands).

    Wedge b covers angles ``[2 pi b / n, 2 pi (b+1) / n)`` with ``theta = atan2(-ky, kx)`` in [0, 2 pi):
    counter-clockwise as displayed (row 0 on top), from the +kx axis. Pixels on a wedge boundary go
    to the wedge that starts there. The zero-frequency pixel (no angle) is put in wedge 0.
    Under the mask symmetry ``M(-k) = M(k)``, wedges b and b + n/2 carry (almost) the same energy."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    ky, kx = _shifted_frequencies(h, w)
    theta = torch.atan2((-ky).double(), kx.double())
    theta = torch.where(theta < 0, theta + 2 * math.pi, theta)
    band = torch.floor(theta * n_bands / (2 * math.pi) + 1e-9).long()  # boundary pixels: wedge above
    return band % n_bands


def empty_bands(h: int, w: int, n_radial: int, n_angular: int) -> dict[str, list[int]]:
    """Bands with no pixel on an (H, W) plane: ``{"radial": [...], "angular": [...]}`` (empty lists when
    every band has pixels). Stages raise on a non-empty answer."""
    def empty(index: torch.Tensor, n: int) -> list[int]:
        counts = torch.bincount(index.flatten(), minlength=n)
        return [int(b) for b in torch.nonzero(counts == 0).flatten()]

    return {"radial": empty(radial_band_index(h, w, n_radial), n_radial),
            "angular": empty(angular_band_index(h, w, n_angular), n_angular)}


def band_energies(mask_shifted: torch.Tensor, index: torch.Tensor, n_bands: int) -> torch.Tensor:
    """Energy per band of shifted full-plane masks: (..., H, W) -> float (..., n_bands).

    Each mask is divided by its Frobenius norm; the energy of a band is the L2 norm of the normalised
    mask over the band's pixels (``index``: (H, W) band of every pixel, from :func:`radial_band_index`
    or :func:`angular_band_index`). The squared energies of a mask sum to 1. An all-zero mask has no
    direction: its energies are NaN."""
    if index.shape != mask_shifted.shape[-2:]:
        raise ValueError(f"index shape {tuple(index.shape)} does not match mask plane {tuple(mask_shifted.shape[-2:])}")
    if index.numel() and (index.min() < 0 or index.max() >= n_bands):
        raise ValueError(f"index values must lie in [0, {n_bands})")
    m = mask_shifted.double()
    norm = torch.linalg.vector_norm(m, dim=(-2, -1), keepdim=True)
    squared = (m / norm).square().flatten(-2)
    energy2 = torch.zeros(*squared.shape[:-1], n_bands, dtype=torch.float64, device=m.device)
    energy2.index_add_(-1, index.flatten().to(m.device), squared)
    dtype = mask_shifted.dtype if mask_shifted.is_floating_point() else torch.float32
    return energy2.sqrt().to(dtype)


def band_profiles(mask: torch.Tensor, par: Parametrisation, n_radial: int,
                  n_angular: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial and angular band energies of masks (..., *shape) in parametrisation ``par``
    -> (radial (..., n_radial), angular (..., n_angular))."""
    full = torch.fft.fftshift(par.to_full(mask), dim=(-2, -1))
    return (band_energies(full, radial_band_index(par.h, par.w, n_radial), n_radial),
            band_energies(full, angular_band_index(par.h, par.w, n_angular), n_angular))


def mask_issue(mask: torch.Tensor) -> str:
    """Why a mask (*shape) has no band energies (NaN / inf entries, none finite: not fitted, or all
    zero), or "" when it has them. Reasons avoid the word NaN: reports flag it as a raw value."""
    if not torch.isfinite(mask).all():
        return "non-finite entries in the mask" if torch.isfinite(mask).any() else "mask not fitted (no finite entry)"
    return "all-zero mask (no band energies)" if not mask.any() else ""


def shifted_full(mask: torch.Tensor, par: Parametrisation) -> torch.Tensor:
    """Masks (..., *shape) in parametrisation ``par`` -> shifted full planes (..., H, W), float32 CPU."""
    return torch.fft.fftshift(par.to_full(mask), dim=(-2, -1)).float().cpu()


def band_centres(h: int, w: int, n_radial: int, n_angular: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre of every ring (cycles per image) and every wedge (degrees), matching
    :func:`radial_band_index` / :func:`angular_band_index`."""
    corner = math.hypot(h // 2, w // 2)
    return (np.arange(n_radial) + 0.5) * corner / n_radial, (np.arange(n_angular) + 0.5) * 360.0 / n_angular


def band_thirds(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the low and mid thirds of ``n_bands`` rings (``np.array_split`` into three)."""
    low, mid, _ = np.array_split(np.arange(n_bands), 3)
    return low, mid
