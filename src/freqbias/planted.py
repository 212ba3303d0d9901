"""The ``planted`` dataset's ground truth for the mask method: synthetic images whose class is carried
only by a grating in a known frequency band (:func:`make_planted`), and that band (:func:`planted_band`).
Registered as a dataset by :mod:`freqbias.data` (``load_planted``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PlantedBand:
    """Where the class signal lives: radius in [r_min, r_max] cycles per image; class c is a grating
    at orientation ``angle + pi * c / num_classes`` (+- ``jitter`` radians)."""

    r_min: float = 5.0
    r_max: float = 8.0
    jitter: float = 0.1
    amplitude: float = 0.25   # grating amplitude, pixels in [0, 1]
    noise: float = 0.2        # std of the white noise, pixels in [0, 1]
    angle: float = 0.0        # orientation of class 0, radians (the classes' offset)


def make_planted(n: int, image_size: int = 28, num_classes: int = 4, seed: int = 0,
                 band: PlantedBand = PlantedBand()) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic synthetic images whose class is carried only by a grating in a known band.

    Image i of class c: ``0.5 + a cos(2 pi <k, p> / size + phase) + noise``, with |k| uniform in
    [r_min, r_max], angle ``angle + pi c / K`` +- jitter, random phase, white Gaussian noise; clipped to [0, 1].
    Returns x uint8 (n, 1, S, S) and y int64 (n,), balanced classes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    radius = band.r_min + (band.r_max - band.r_min) * torch.rand(n, generator=g)
    angle = band.angle + math.pi * y.float() / num_classes + band.jitter * (2 * torch.rand(n, generator=g) - 1)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    coords = torch.arange(image_size, dtype=torch.float32)
    row, col = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)
    ky = (radius * torch.sin(angle)).view(n, 1, 1)
    kx = (radius * torch.cos(angle)).view(n, 1, 1)
    grating = torch.cos(2 * math.pi * (kx * col + ky * row) / image_size + phase.view(n, 1, 1))
    noise = band.noise * torch.randn(n, image_size, image_size, generator=g)
    x = (0.5 + band.amplitude * grating + noise).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).unsqueeze(1), y.long()


def planted_band(image_size: int, full: bool = False, num_classes: int = 4,
                 band: PlantedBand = PlantedBand(), margin: float = 0.75) -> torch.Tensor:
    """Bool mask of the frequencies that carry the planted signal, UNSHIFTED (zero frequency at [0, 0]).

    Shape (S, S//2+1), the rfft half-plane, or with ``full`` the full plane (S, S). A bin is inside when
    its radius is within ``margin`` bins of [r_min, r_max] and its orientation (mod pi) within
    jitter + margin/radius of a class orientation."""
    ky = torch.fft.fftfreq(image_size, d=1 / image_size)
    kx = ky if full else torch.fft.rfftfreq(image_size, d=1 / image_size)
    KY, KX = torch.meshgrid(ky, kx, indexing="ij")
    radius = torch.sqrt(KX ** 2 + KY ** 2)
    in_ring = (radius >= band.r_min - margin) & (radius <= band.r_max + margin)
    theta = torch.atan2(KY, KX) % math.pi
    inside = torch.zeros_like(in_ring)
    tol = band.jitter + margin / radius.clamp(min=1.0)
    for c in range(num_classes):
        centre = band.angle + math.pi * c / num_classes
        d = torch.remainder(theta - centre + math.pi / 2, math.pi) - math.pi / 2  # signed angular distance mod pi
        inside |= d.abs() <= tol
    return in_ring & inside
