"""Tests of freqbias.bands: full-plane expansion, ring / wedge geometry, band energies, band helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqbias import bands as bd
from freqbias import baselines as bl
from freqbias import stage_aggregate as ag
from freqbias.parametrisation import Rfft

H = W = 28


# ----------------------------------------------------------------------------- band geometry


@pytest.mark.parametrize("h,w,n", [(28, 28, 14), (28, 28, 16), (7, 9, 5), (128, 128, 64), (1, 1, 3)])
def test_bands_partition_the_plane(h, w, n):
    for index in (bd.radial_band_index(h, w, n), bd.angular_band_index(h, w, n)):
        assert index.shape == (h, w) and index.dtype == torch.int64
        assert index.min() >= 0 and index.max() < n        # every pixel in exactly one band


def test_radial_rings_exact_geometry():
    h = w = 28
    ky, kx = torch.meshgrid(torch.arange(h) - 14, torch.arange(w) - 14, indexing="ij")
    r = torch.sqrt((ky ** 2 + kx ** 2).double())
    index = bd.radial_band_index(h, w, 14)
    width = math.sqrt(2) * 14 / 14
    assert index[14, 14] == 0 and index[0, 0] == 13                    # centre; farthest corner in last ring
    assert torch.all(index == torch.clamp(torch.floor(r / width + 1e-9), max=13).long())
    assert index[14 + 1, 14 + 1] == 1                                   # r = sqrt(2) exactly on a boundary: outer ring
    assert torch.all(index.diff(dim=1)[14, 14:] >= 0)                  # monotone along a ray


def test_angular_wedges_orientation():
    index = bd.angular_band_index(9, 9, 4)           # quadrants, centre (4, 4)
    assert index[4, 4] == 0                           # zero frequency in wedge 0
    assert index[4, 8] == 0                           # +kx (right): angle 0
    assert index[0, 4] == 1                           # up on screen (-ky): angle pi/2
    assert index[4, 0] == 2                           # left: pi
    assert index[8, 4] == 3                           # down: 3 pi / 2
    assert index[2, 6] == 0 and index[2, 2] == 1 and index[6, 2] == 2 and index[6, 6] == 3


def test_no_empty_bands_at_28_and_detection_of_empty_ones():
    assert bd.empty_bands(28, 28, 14, 16) == {"radial": [], "angular": []}
    assert bd.empty_bands(28, 28, 14, 32) == {"radial": [], "angular": []}
    assert bd.empty_bands(128, 128, 64, 64) == {"radial": [], "angular": []}
    too_many = bd.empty_bands(28, 28, 64, 128)          # rings 0.31 wide, wedges 2.8 degrees: some get no pixel
    assert too_many["radial"][:3] == [1, 2, 5]           # no integer frequency has radius in [0.31, 0.93) etc.
    for key, index, n in (("radial", bd.radial_band_index(28, 28, 64), 64),
                          ("angular", bd.angular_band_index(28, 28, 128), 128)):
        counts = torch.bincount(index.flatten(), minlength=n)
        assert too_many[key] and [b for b in range(n) if counts[b] == 0] == too_many[key]
    assert bd.empty_bands(1, 1, 2, 2) == {"radial": [1], "angular": [1]}


# ----------------------------------------------------------------------------- band energies


def test_energies_sum_of_squares_is_one():
    torch.manual_seed(0)
    masks = torch.rand(5, 28, 28)
    for n, index in ((14, bd.radial_band_index(28, 28, 14)), (16, bd.angular_band_index(28, 28, 16))):
        e = bd.band_energies(masks, index, n)
        assert e.shape == (5, n)
        torch.testing.assert_close(e.square().sum(-1), torch.ones(5))
        torch.testing.assert_close(bd.band_energies(3.0 * masks, index, n), e)   # scale-invariant


def test_energies_known_masks():
    h = w = 28
    radial, angular = bd.radial_band_index(h, w, 14), bd.angular_band_index(h, w, 16)
    ring = (radial == 5).float()
    e = bd.band_energies(ring, radial, 14)
    assert e[5] == pytest.approx(1.0) and e.sum() == pytest.approx(1.0)
    wedge = (angular == 3).float()
    e = bd.band_energies(wedge, angular, 16)
    assert e[3] == pytest.approx(1.0) and e.sum() == pytest.approx(1.0)
    delta = torch.zeros(h, w)
    delta[14, 14] = 7.0
    assert bd.band_energies(delta, radial, 14).tolist() == [1.0] + [0.0] * 13
    # half the mask's squared mass in ring 2, half in ring 9: energies 1/sqrt(2) each
    two = torch.zeros(h, w)
    two[radial == 2] = 1.0 / (radial == 2).sum().sqrt()
    two[radial == 9] = 1.0 / (radial == 9).sum().sqrt()
    e = bd.band_energies(two, radial, 14)
    assert e[2] == pytest.approx(2 ** -0.5) and e[9] == pytest.approx(2 ** -0.5)
    assert torch.isnan(bd.band_energies(torch.zeros(h, w), radial, 14)).all()
    with pytest.raises(ValueError):
        bd.band_energies(ring, radial, 10)                              # index values out of range


def test_band_profiles_from_unshifted_rfft_mask():
    h = w = 28
    # low-pass mask (|k| <= 3) in rfft layout, unshifted: all energy in the lowest rings
    dist = bl.radial_distance(h, w)[:, : w // 2 + 1]
    radial, angular = bd.band_profiles((dist <= 3).float(), Rfft(h, w), 14, 16)
    assert radial.shape == (14,) and angular.shape == (16,)
    assert radial[3:].abs().max() == 0 and radial[:3].square().sum() == pytest.approx(1.0)
    assert angular.square().sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- band statistics


def test_share_curves():
    rng = np.random.default_rng(0)
    n_images = 500
    base = rng.random((n_images, 3))
    a = base.copy()
    a[:, 0] += 1.0                                       # always greater
    a[:, 1] -= 1.0                                       # never greater
    a[:, 2] = base[:, 2] + rng.normal(0, 1, n_images)    # greater for about half
    share, lo, hi = bd.share_curves({"N": [base], "A": [a]}, ag.AggregateConfig(n_boot=1000))["A"]
    assert share[0] == 1.0 and share[1] == 0.0
    assert lo[0] == hi[0] == 1.0 and lo[1] == hi[1] == 0.0
    assert lo[2] < 0.5 < hi[2] and 0.4 < share[2] < 0.6
    ties = bd.share_curves({"N": [base], "A": [base]}, ag.AggregateConfig())["A"]
    assert ties[0].tolist() == [0.0, 0.0, 0.0]  # ties are not "greater"


def test_band_helpers():
    low, mid = bd.band_thirds(14)
    assert list(low) == [0, 1, 2, 3, 4] and list(mid) == [5, 6, 7, 8, 9]
    rc, ac = bd.band_centres(H, W, 14, 16)
    assert rc[0] == pytest.approx(math.hypot(14, 14) / 28) and ac[-1] == pytest.approx(348.75)
    e = np.array([[0.6, 0.8, 0.0]])
    assert bd.low_energy(e, np.array([0, 1]))[0] == pytest.approx(1.0)
    a, b = bd.paired(np.array([[1.0], [np.nan]]), np.array([[2.0], [3.0]]))
    assert a.tolist() == [[1.0]] and b.tolist() == [[2.0]]
