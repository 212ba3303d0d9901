"""Tests of freqbias.baselines: filtered accuracy, Fourier heat map, heat map vs mask correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freqbias import baselines as bl


class CosineDetector(nn.Module):
    """Two-class model linear in one Fourier coefficient of the pixels: logits = (s, -s) with
    ``s = <x - 0.5, cos(2 pi (ky m/H + kx n/W))>``. Anything that removes or flips that frequency breaks it."""

    def __init__(self, h: int, w: int, ky: int, kx: int):
        super().__init__()
        self.register_buffer("template", bl.fourier_basis(h, w, torch.tensor([ky]), torch.tensor([kx]))[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = ((x - 0.5) * self.template).sum(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)


def cosine_data(n: int, h: int, w: int, ky: int, kx: int, amplitude: float = 0.1, noise_freqs=((9, 11), (12, 3))):
    """Images 0.5 + sign * amplitude * cos at (ky, kx) + fixed-amplitude cosines at far-away frequencies
    with random phases; label 0 for sign +1, 1 for sign -1. Pixels stay inside [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=gen)
    m = torch.arange(h, dtype=torch.float32)[:, None]
    k = torch.arange(w, dtype=torch.float32)[None, :]
    x = 0.5 + (1 - 2 * y.float())[:, None, None] * amplitude * torch.cos(2 * math.pi * (ky * m / h + kx * k / w))
    for fy, fx in noise_freqs:
        phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
        x = x + 0.1 * torch.cos(2 * math.pi * (fy * m / h + fx * k / w) + phase)
    return x[:, None].clamp(0, 1), y


# ----------------------------------------------------------------------------- filtered accuracy


def test_filtered_accuracy_radial_low_and_high_pass():
    h = w = 28
    model = CosineDetector(h, w, 2, 2)                 # signal at radius sqrt(8) ~ 2.83 (diagonal)
    x, y = cosine_data(64, h, w, 2, 2)
    assert (model(x).argmax(1) == y).all()
    radii = [0.0, 2.0, 2.8, 2.9, 5.0, 30.0]
    low = bl.filtered_accuracy(model, x, y, radii, band="low", batch_size=20)
    high = bl.filtered_accuracy(model, x, y, radii, band="high", batch_size=20)
    # low-pass keeps the signal only once the radius reaches 2.83 (Euclidean distance, cycles per image)
    assert low.tolist()[3:] == [1.0, 1.0, 1.0] and max(low[:3]) < 0.75
    # high-pass keeps it only while the radius is below 2.83
    assert high.tolist()[:3] == [1.0, 1.0, 1.0] and max(high[3:]) < 0.75
    # strict ideal high-pass (zero frequency removed too): the signal still decides at radius 0, not at 5
    strict = bl.filtered_accuracy(model, x, y, [0.0, 5.0], band="high", keep_dc=False)
    assert strict[0] == 1.0 and strict[1] < 0.75
    assert bl.filtered_accuracy(model, (x * 255).round().to(torch.uint8), y, [30.0]).tolist() == [1.0]


def test_filtered_accuracy_odd_size_and_axis_frequency():
    h, w = 27, 29
    model = CosineDetector(h, w, 0, 4)
    x, y = cosine_data(40, h, w, 0, 4, noise_freqs=((10, 10),))
    low = bl.filtered_accuracy(model, x, y, [3.9, 4.0], band="low")
    assert low[0] < 0.75 and low[1] == 1.0          # "low" keeps distance <= radius


# ----------------------------------------------------------------------------- Fourier heat map


def test_heatmap_full_grid_finds_the_models_frequency():
    h = w = 28
    ky0, kx0 = 3, -5
    model = CosineDetector(h, w, ky0, kx0)
    x, y = cosine_data(40, h, w, ky0, kx0, noise_freqs=())
    # flip threshold: norm > amplitude * ||cos|| = 0.1 * sqrt(h*w/2) ~ 1.98
    heat = bl.fourier_heatmap(model, x, y, norm=3.0, grid=h, batch_size=700, seed=1)
    assert heat.shape == (h, w)
    hot = {(int(i) - h // 2, int(j) - w // 2) for i, j in zip(*np.nonzero(heat))}
    assert hot == {(ky0, kx0), (-ky0, -kx0)}                       # exactly the frequency and its mirror
    assert 0.2 < heat[ky0 + h // 2, kx0 + w // 2] < 0.8            # random signs: about half flip
    assert heat[ky0 + h // 2, kx0 + w // 2] == heat[-ky0 + h // 2, -kx0 + w // 2]
    assert bl.fourier_heatmap(model, x, y, norm=1.0, grid=h).max() == 0.0   # too weak to flip


def test_heatmap_coarse_grid_and_mask_correlation():
    h = w = 28
    freqs = bl.heatmap_frequencies(h, 7)
    assert freqs.tolist() == [-13, -9, -4, 0, 4, 9, 13]
    assert bl.heatmap_frequencies(h, 40).tolist() == list(range(-14, 14))
    model = CosineDetector(h, w, 4, 9)
    x, y = cosine_data(24, h, w, 4, 9, noise_freqs=())
    heat = bl.fourier_heatmap(model, x, y, norm=3.0, grid=7, seed=1)
    assert heat.shape == (7, 7) and heat[4, 5] > 0 and heat[2, 1] > 0 and heat.sum() == heat[4, 5] + heat[2, 1]
    # a mask that keeps exactly the model's frequency pair correlates positively; its complement negatively
    mask = torch.zeros(h, w)
    mask[4 + 14, 9 + 14] = mask[-4 + 14, -9 + 14] = 1.0
    rho = bl.heatmap_mask_correlation(heat, mask)
    assert rho == pytest.approx(1.0)
    assert bl.heatmap_mask_correlation(heat, 1 - mask) == pytest.approx(-1.0)
    assert bl.heatmap_mask_correlation(heat, mask, method="pearson") == pytest.approx(1.0)
    assert math.isnan(bl.heatmap_mask_correlation(heat, torch.ones(h, w)))
    # sampling uses the heat map's frequencies: a mask elsewhere does not line up
    other = torch.zeros(h, w)
    other[5 + 14, 9 + 14] = 1.0
    assert math.isnan(bl.heatmap_mask_correlation(heat, other))      # not on the grid: mask constant there
    # explicit, different frequencies per axis: a (3, 4) map, rows ky and columns kx
    freqs = (torch.tensor([-4, 0, 4]), torch.tensor([-9, 0, 9, 13]))
    heat = bl.fourier_heatmap(model, x, y, norm=3.0, freqs=freqs, seed=1)
    assert heat.shape == (3, 4) and set(zip(*np.nonzero(heat))) == {(0, 0), (2, 2)}
    assert bl.heatmap_mask_correlation(heat, mask, freqs=freqs) == pytest.approx(1.0)


def test_spearman_ranks_with_ties():
    heat = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[0.0, 0.0], [5.0, 9.0]])
    freqs = (torch.tensor([-1, 0]), torch.tensor([-1, 0]))   # the whole 2x2 shifted plane
    # ranks: heat 1..4, mask (1.5, 1.5, 3, 4) -> Pearson of the ranks
    expected = np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1]
    assert bl.heatmap_mask_correlation(heat, mask, freqs=freqs) == pytest.approx(expected)
    assert bl.heatmap_mask_correlation(heat, mask, freqs=freqs, method="pearson") == pytest.approx(
        np.corrcoef([1, 2, 3, 4], [0, 0, 5, 9])[0, 1])
