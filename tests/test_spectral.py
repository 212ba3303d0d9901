"""Tests of freqbias.spectral: band geometry and energies, bootstrap, verdict, probe, frequency baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freqbias import spectral as sp


# ----------------------------------------------------------------------------- as_full_plane


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (6, 5), (28, 28)])
def test_as_full_plane_matches_fft_of_real_images(h, w):
    torch.manual_seed(0)
    x = torch.randn(3, h, w, dtype=torch.float64)
    expanded = sp.as_full_plane(torch.fft.rfft2(x).abs(), w)
    assert expanded.shape == (3, h, w)
    torch.testing.assert_close(expanded, torch.fft.fft2(x).abs())


def test_as_full_plane_symmetric_and_passthrough():
    torch.manual_seed(0)
    h, w = 6, 8
    # a mask that is the rfft part of a symmetric full mask expands back to that full mask
    full = torch.rand(h, w)
    full = (full + torch.roll(torch.flip(full, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))) / 2  # M(-k) = M(k)
    torch.testing.assert_close(sp.as_full_plane(full[:, : w // 2 + 1], w), full)
    assert sp.as_full_plane(full, w) is full
    assert sp.as_full_plane(torch.ones(h, w // 2 + 1, dtype=torch.bool), w).dtype == torch.bool
    with pytest.raises(ValueError):
        sp.as_full_plane(torch.ones(h, 3), w)


# ----------------------------------------------------------------------------- band geometry


@pytest.mark.parametrize("h,w,n", [(28, 28, 14), (28, 28, 16), (7, 9, 5), (128, 128, 64), (1, 1, 3)])
def test_bands_partition_the_plane(h, w, n):
    for index in (sp.radial_band_index(h, w, n), sp.angular_band_index(h, w, n)):
        assert index.shape == (h, w) and index.dtype == torch.int64
        assert index.min() >= 0 and index.max() < n        # every pixel in exactly one band


def test_radial_rings_exact_geometry():
    h = w = 28
    ky, kx = torch.meshgrid(torch.arange(h) - 14, torch.arange(w) - 14, indexing="ij")
    r = torch.sqrt((ky ** 2 + kx ** 2).double())
    index = sp.radial_band_index(h, w, 14)
    width = math.sqrt(2) * 14 / 14
    assert index[14, 14] == 0 and index[0, 0] == 13                    # centre; farthest corner in last ring
    assert torch.all(index == torch.clamp(torch.floor(r / width + 1e-9), max=13).long())
    assert index[14 + 1, 14 + 1] == 1                                   # r = sqrt(2) exactly on a boundary: outer ring
    assert torch.all(index.diff(dim=1)[14, 14:] >= 0)                  # monotone along a ray


def test_angular_wedges_orientation():
    index = sp.angular_band_index(9, 9, 4)           # quadrants, centre (4, 4)
    assert index[4, 4] == 0                           # zero frequency in wedge 0
    assert index[4, 8] == 0                           # +kx (right): angle 0
    assert index[0, 4] == 1                           # up on screen (-ky): angle pi/2
    assert index[4, 0] == 2                           # left: pi
    assert index[8, 4] == 3                           # down: 3 pi / 2
    assert index[2, 6] == 0 and index[2, 2] == 1 and index[6, 2] == 2 and index[6, 6] == 3


def test_no_empty_bands_at_28_and_detection_of_empty_ones():
    assert sp.empty_bands(28, 28, 14, 16) == {"radial": [], "angular": []}
    assert sp.empty_bands(28, 28, 14, 32) == {"radial": [], "angular": []}
    assert sp.empty_bands(128, 128, 64, 64) == {"radial": [], "angular": []}
    too_many = sp.empty_bands(28, 28, 64, 128)          # rings 0.31 wide, wedges 2.8 degrees: some get no pixel
    assert too_many["radial"][:3] == [1, 2, 5]           # no integer frequency has radius in [0.31, 0.93) etc.
    for key, index, n in (("radial", sp.radial_band_index(28, 28, 64), 64),
                          ("angular", sp.angular_band_index(28, 28, 128), 128)):
        counts = torch.bincount(index.flatten(), minlength=n)
        assert too_many[key] and [b for b in range(n) if counts[b] == 0] == too_many[key]
    assert sp.empty_bands(1, 1, 2, 2) == {"radial": [1], "angular": [1]}


# ----------------------------------------------------------------------------- band energies


def test_energies_sum_of_squares_is_one():
    torch.manual_seed(0)
    masks = torch.rand(5, 28, 28)
    for n, index in ((14, sp.radial_band_index(28, 28, 14)), (16, sp.angular_band_index(28, 28, 16))):
        e = sp.band_energies(masks, index, n)
        assert e.shape == (5, n)
        torch.testing.assert_close(e.square().sum(-1), torch.ones(5))
        torch.testing.assert_close(sp.band_energies(3.0 * masks, index, n), e)   # scale-invariant


def test_energies_known_masks():
    h = w = 28
    radial, angular = sp.radial_band_index(h, w, 14), sp.angular_band_index(h, w, 16)
    ring = (radial == 5).float()
    e = sp.band_energies(ring, radial, 14)
    assert e[5] == pytest.approx(1.0) and e.sum() == pytest.approx(1.0)
    wedge = (angular == 3).float()
    e = sp.band_energies(wedge, angular, 16)
    assert e[3] == pytest.approx(1.0) and e.sum() == pytest.approx(1.0)
    delta = torch.zeros(h, w)
    delta[14, 14] = 7.0
    assert sp.band_energies(delta, radial, 14).tolist() == [1.0] + [0.0] * 13
    # half the mask's squared mass in ring 2, half in ring 9: energies 1/sqrt(2) each
    two = torch.zeros(h, w)
    two[radial == 2] = 1.0 / (radial == 2).sum().sqrt()
    two[radial == 9] = 1.0 / (radial == 9).sum().sqrt()
    e = sp.band_energies(two, radial, 14)
    assert e[2] == pytest.approx(2 ** -0.5) and e[9] == pytest.approx(2 ** -0.5)
    assert torch.isnan(sp.band_energies(torch.zeros(h, w), radial, 14)).all()
    with pytest.raises(ValueError):
        sp.band_energies(ring, radial, 10)                              # index values out of range


def test_band_profiles_from_unshifted_rfft_mask():
    h = w = 28
    # low-pass mask (|k| <= 3) in rfft layout, unshifted: all energy in the lowest rings
    dist = sp.radial_distance(h, w)[:, : w // 2 + 1]
    radial, angular = sp.band_profiles((dist <= 3).float(), w, 14, 16)
    assert radial.shape == (14,) and angular.shape == (16,)
    assert radial[3:].abs().max() == 0 and radial[:3].square().sum() == pytest.approx(1.0)
    assert angular.square().sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- bootstrap, shares, verdict


def test_bootstrap_mean_of_normal_samples():
    rng = np.random.default_rng(1)
    mu, sigma, n = 1.5, 2.0, 400
    values = rng.normal(mu, sigma, n)
    est, lo, hi = sp.bootstrap_ci(values, n_boot=2000, seed=0)
    assert isinstance(est, float) and est == pytest.approx(values.mean())
    assert lo < mu < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * sigma / math.sqrt(n), rel=0.15)
    assert sp.bootstrap_ci(values, n_boot=500, seed=3) == sp.bootstrap_ci(values, n_boot=500, seed=3)


def test_bootstrap_coverage_and_vector_case():
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(100):
        _, lo, hi = sp.bootstrap_ci(rng.normal(0.0, 1.0, 60), n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += lo < 0.0 < hi
    assert 85 <= covered <= 100
    # per-band: (n, k) values, k independent means; alpha widens/narrows the interval
    values = rng.normal([0.0, 5.0, -3.0], [1.0, 0.1, 3.0], size=(300, 3))
    est, lo, hi = sp.bootstrap_ci(values, n_boot=1000)
    assert est.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo < [0.0, 5.0, -3.0]) and np.all(hi > [0.0, 5.0, -3.0])
    assert np.argsort(hi - lo).tolist() == [1, 0, 2]
    _, lo90, hi90 = sp.bootstrap_ci(values, n_boot=1000, alpha=0.1)
    assert np.all(hi90 - lo90 < hi - lo)
    est_t, _, _ = sp.bootstrap_ci(torch.from_numpy(values).T, n_boot=10, axis=1, stat=np.median)
    np.testing.assert_allclose(est_t, np.median(values, axis=0))


def test_share_greater():
    rng = np.random.default_rng(0)
    n_images = 500
    base = rng.random((n_images, 3))
    a = base.copy()
    a[:, 0] += 1.0                                       # always greater
    a[:, 1] -= 1.0                                       # never greater
    a[:, 2] = base[:, 2] + rng.normal(0, 1, n_images)    # greater for about half
    share, lo, hi = sp.share_greater(a, base, n_boot=1000)
    assert share[0] == 1.0 and share[1] == 0.0
    assert lo[0] == hi[0] == 1.0 and lo[1] == hi[1] == 0.0
    assert lo[2] < 0.5 < hi[2] and 0.4 < share[2] < 0.6
    assert sp.share_greater(base, base)[0].tolist() == [0.0, 0.0, 0.0]  # ties are not "greater"


@pytest.mark.parametrize("est,lo,hi,thr,direction,expected", [
    (0.5, 0.2, 0.8, 0.0, ">", "holds"),
    (-0.5, -0.8, -0.2, 0.0, ">", "does not hold"),
    (0.1, -0.1, 0.3, 0.0, ">", "inconclusive"),
    (-0.1, -0.2, 0.0, 0.0, ">", "does not hold"),     # touching the threshold from below: not ">"
    (0.1, 0.0, 0.2, 0.0, ">", "inconclusive"),        # lo == threshold: not strictly above
    (0.95, 0.92, 0.97, 0.99, ">", "does not hold"),
    (0.995, 0.991, 0.999, 0.99, ">", "holds"),
    (-0.5, -0.8, -0.2, 0.0, "<", "holds"),
    (0.5, 0.2, 0.8, 0.0, "<", "does not hold"),
    (0.0, -0.1, 0.1, 0.0, "<", "inconclusive"),
])
def test_verdict(est, lo, hi, thr, direction, expected):
    assert sp.verdict(est, lo, hi, thr, direction) == expected


def test_verdict_rejects_bad_input():
    for args in [(0.0, 0.1, 0.2), (float("nan"), 0.0, 1.0), (0.5, 0.0, float("inf"))]:
        with pytest.raises(ValueError):
            sp.verdict(*args)
    with pytest.raises(ValueError):
        sp.verdict(0.5, 0.0, 1.0, direction=">=")


# ----------------------------------------------------------------------------- linear probe


def test_probe_random_features_and_permuted_labels_near_chance():
    torch.manual_seed(0)
    x = torch.randn(400, 20)
    y = torch.randint(0, 4, (400,))
    out = sp.linear_probe(x, y, train_frac=0.7, seed=0)
    assert 0.15 < out["test_acc"] < 0.4 and 0.15 < out["permuted_test_acc"] < 0.4
    assert 0.2 <= out["chance"] <= 0.32
    assert out["train_acc"] > out["test_acc"]           # it does fit its training split


def test_probe_separable_features_near_perfect_but_not_with_permuted_labels():
    rng = np.random.default_rng(0)
    k, per_class, d = 5, 60, 30
    centres = rng.normal(0, 1, (k, d)) * 4
    y = np.repeat(np.arange(k), per_class)
    x = centres[y] + rng.normal(0, 1, (k * per_class, d))
    out = sp.linear_probe(x, y, train_frac=0.6, seed=1)
    assert out["train_acc"] == 1.0 and out["test_acc"] >= 0.97
    assert out["permuted_test_acc"] < 0.4
    assert out["chance"] == pytest.approx(0.2)
    # split: stratified, disjoint, covers everything; outputs aligned with the test split
    train, test = out["train_index"], out["test_index"]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    assert np.all(np.bincount(y[train]) == 36)
    n_test = len(test)
    assert out["test_logits"].shape == (n_test, k) and out["embedding"].shape == (n_test, 2)
    np.testing.assert_array_equal(out["test_labels"], y[test])
    assert out["test_correct"].mean() == out["test_acc"]
    np.testing.assert_array_equal(out["test_logits"].argmax(1) == y[test], out["test_correct"])
    # deterministic given the seed; no permuted keys without the control
    again = sp.linear_probe(x, y, train_frac=0.6, seed=1, permute=False)
    assert again["test_acc"] == out["test_acc"] and "permuted_test_acc" not in again
    np.testing.assert_allclose(again["embedding"], out["embedding"])


# ----------------------------------------------------------------------------- frequency baselines


class CosineDetector(nn.Module):
    """Two-class model linear in one Fourier coefficient of the pixels: logits = (s, -s) with
    ``s = <x - 0.5, cos(2 pi (ky m/H + kx n/W))>``. Anything that removes or flips that frequency breaks it."""

    def __init__(self, h: int, w: int, ky: int, kx: int):
        super().__init__()
        self.register_buffer("template", sp.fourier_basis(h, w, torch.tensor([ky]), torch.tensor([kx]))[0])

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


def test_filtered_accuracy_radial_low_and_high_pass():
    h = w = 28
    model = CosineDetector(h, w, 2, 2)                 # signal at radius sqrt(8) ~ 2.83 (diagonal)
    x, y = cosine_data(64, h, w, 2, 2)
    assert (model(x).argmax(1) == y).all()
    radii = [0.0, 2.0, 2.8, 2.9, 5.0, 30.0]
    low = sp.filtered_accuracy(model, x, y, radii, kind="low", batch_size=20)
    high = sp.filtered_accuracy(model, x, y, radii, kind="high", batch_size=20)
    # low-pass keeps the signal only once the radius reaches 2.83 (Euclidean distance, cycles per image)
    assert low.tolist()[3:] == [1.0, 1.0, 1.0] and max(low[:3]) < 0.75
    # high-pass keeps it only while the radius is below 2.83
    assert high.tolist()[:3] == [1.0, 1.0, 1.0] and max(high[3:]) < 0.75
    # strict ideal high-pass (zero frequency removed too): the signal still decides at radius 0, not at 5
    strict = sp.filtered_accuracy(model, x, y, [0.0, 5.0], kind="high", keep_dc=False)
    assert strict[0] == 1.0 and strict[1] < 0.75
    assert sp.filtered_accuracy(model, (x * 255).round().to(torch.uint8), y, [30.0]).tolist() == [1.0]


def test_filtered_accuracy_odd_size_and_axis_frequency():
    h, w = 27, 29
    model = CosineDetector(h, w, 0, 4)
    x, y = cosine_data(40, h, w, 0, 4, noise_freqs=((10, 10),))
    low = sp.filtered_accuracy(model, x, y, [3.9, 4.0], kind="low")
    assert low[0] < 0.75 and low[1] == 1.0          # "low" keeps distance <= radius


def test_heatmap_full_grid_finds_the_models_frequency():
    h = w = 28
    ky0, kx0 = 3, -5
    model = CosineDetector(h, w, ky0, kx0)
    x, y = cosine_data(40, h, w, ky0, kx0, noise_freqs=())
    # flip threshold: norm > amplitude * ||cos|| = 0.1 * sqrt(h*w/2) ~ 1.98
    heat = sp.fourier_heatmap(model, x, y, norm=3.0, grid=h, batch_size=700, seed=1)
    assert heat.shape == (h, w)
    hot = {(int(i) - h // 2, int(j) - w // 2) for i, j in zip(*np.nonzero(heat))}
    assert hot == {(ky0, kx0), (-ky0, -kx0)}                       # exactly the frequency and its mirror
    assert 0.2 < heat[ky0 + h // 2, kx0 + w // 2] < 0.8            # random signs: about half flip
    assert heat[ky0 + h // 2, kx0 + w // 2] == heat[-ky0 + h // 2, -kx0 + w // 2]
    assert sp.fourier_heatmap(model, x, y, norm=1.0, grid=h).max() == 0.0   # too weak to flip


def test_heatmap_coarse_grid_and_mask_correlation():
    h = w = 28
    freqs = sp.heatmap_frequencies(h, 7)
    assert freqs.tolist() == [-13, -9, -4, 0, 4, 9, 13]
    assert sp.heatmap_frequencies(h, 40).tolist() == list(range(-14, 14))
    model = CosineDetector(h, w, 4, 9)
    x, y = cosine_data(24, h, w, 4, 9, noise_freqs=())
    heat = sp.fourier_heatmap(model, x, y, norm=3.0, grid=7, seed=1)
    assert heat.shape == (7, 7) and heat[4, 5] > 0 and heat[2, 1] > 0 and heat.sum() == heat[4, 5] + heat[2, 1]
    # a mask that keeps exactly the model's frequency pair correlates positively; its complement negatively
    mask = torch.zeros(h, w)
    mask[4 + 14, 9 + 14] = mask[-4 + 14, -9 + 14] = 1.0
    rho = sp.heatmap_mask_correlation(heat, mask)
    assert rho == pytest.approx(1.0)
    assert sp.heatmap_mask_correlation(heat, 1 - mask) == pytest.approx(-1.0)
    assert sp.heatmap_mask_correlation(heat, mask, method="pearson") == pytest.approx(1.0)
    assert math.isnan(sp.heatmap_mask_correlation(heat, torch.ones(h, w)))
    # sampling uses the heat map's frequencies: a mask elsewhere does not line up
    other = torch.zeros(h, w)
    other[5 + 14, 9 + 14] = 1.0
    assert math.isnan(sp.heatmap_mask_correlation(heat, other))      # not on the grid: mask constant there
    # explicit, different frequencies per axis: a (3, 4) map, rows ky and columns kx
    freqs = (torch.tensor([-4, 0, 4]), torch.tensor([-9, 0, 9, 13]))
    heat = sp.fourier_heatmap(model, x, y, norm=3.0, freqs=freqs, seed=1)
    assert heat.shape == (3, 4) and set(zip(*np.nonzero(heat))) == {(0, 0), (2, 2)}
    assert sp.heatmap_mask_correlation(heat, mask, freqs=freqs) == pytest.approx(1.0)


def test_spearman_ranks_with_ties():
    heat = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[0.0, 0.0], [5.0, 9.0]])
    freqs = (torch.tensor([-1, 0]), torch.tensor([-1, 0]))   # the whole 2x2 shifted plane
    # ranks: heat 1..4, mask (1.5, 1.5, 3, 4) -> Pearson of the ranks
    expected = np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1]
    assert sp.heatmap_mask_correlation(heat, mask, freqs=freqs) == pytest.approx(expected)
    assert sp.heatmap_mask_correlation(heat, mask, freqs=freqs, method="pearson") == pytest.approx(
        np.corrcoef([1, 2, 3, 4], [0, 0, 5, 9])[0, 1])
