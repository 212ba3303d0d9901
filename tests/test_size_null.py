"""freqbias.size_null: the radial twin keeps a mask's size and values and nothing of where they sit."""

from __future__ import annotations

import math

import pytest
import torch

from freqbias.band_geometry import band_profiles
from freqbias.parametrisation import Full, Rfft
from freqbias.size_null import radial_twin, size_share, twin_profiles

H = W = 22                                    # a size the other band tests do not use


def _radius() -> torch.Tensor:
    ky = torch.arange(H, dtype=torch.float64)[:, None] - H // 2
    kx = torch.arange(W, dtype=torch.float64)[None, :] - W // 2
    return torch.sqrt(ky ** 2 + kx ** 2)


def test_a_disc_is_its_own_twin_and_a_ring_becomes_a_disc_of_its_size():
    r = _radius()
    disc = (r <= 4.0).double()
    assert torch.equal(radial_twin(disc), disc)
    ring = ((r >= 6.0) & (r <= 8.0)).double()
    twin = radial_twin(ring)
    assert twin.sum() == pytest.approx(ring.sum())                        # same size ...
    assert twin[r <= 3].min() == 1 and twin[r > 6].max() < 1             # ... nearest the origin


def test_twin_keeps_values_norm_and_is_radially_non_increasing():
    g = torch.Generator().manual_seed(5)
    m = torch.rand(3, H, W, generator=g, dtype=torch.float64) ** 3
    twin = radial_twin(m)
    assert twin.sum(dim=(1, 2)) == pytest.approx(m.sum(dim=(1, 2)))      # the L1 size exactly
    norms = torch.linalg.vector_norm(twin, dim=(1, 2)) / torch.linalg.vector_norm(m, dim=(1, 2))
    assert ((norms <= 1 + 1e-12) & (norms > 0.99)).all()                  # equal radii share their mean
    order = torch.argsort(_radius().flatten(), stable=True)
    along = twin.flatten(1)[:, order]
    assert (along[:, 1:] <= along[:, :-1] + 1e-12).all()
    assert torch.allclose(radial_twin(twin), twin)                        # a twin is its own twin
    r = _radius()
    for k in (1.0, 5.0, math.sqrt(50)):                                   # no direction within a radius
        ring = twin[:, (r - k).abs() < 1e-9]
        assert torch.allclose(ring, ring[:, :1].expand_as(ring))


def test_twin_profiles_match_band_profiles_of_the_twin_in_any_parametrisation():
    g = torch.Generator().manual_seed(1)
    full = torch.rand(2, H, W, generator=g)
    full = 0.5 * (full + torch.roll(full.flip(-2, -1), (1, 1), (-2, -1)))  # Hermitian, so rfft holds it
    rfft = full[..., : W // 2 + 1]
    for par, m in ((Full(H, W), full), (Rfft(H, W), rfft)):
        radial, angular = twin_profiles(m, par, 9, 8)
        twin = radial_twin(torch.fft.fftshift(par.to_full(m), dim=(-2, -1)))
        ref = band_profiles(torch.fft.ifftshift(twin, dim=(-2, -1)), Full(H, W), 9, 8)
        assert torch.allclose(radial, ref[0], atol=1e-6) and torch.allclose(angular, ref[1], atol=1e-6)
        assert (radial.square().sum(-1) - 1).abs().max() < 1e-5


def test_excess_of_a_smaller_disc_is_zero_where_its_raw_difference_is_not():
    """Two low-pass discs of different sizes: their raw band energies differ (the smaller is more
    concentrated in low rings), their excess energies over their twins do not (both are their own twins)."""
    r = _radius()
    small, large = (r <= 3.0).double(), (r <= 7.0).double()
    par = Full(H, W)
    masks = torch.fft.ifftshift(torch.stack([small, large]), dim=(-2, -1))
    raw, _ = band_profiles(masks, par, 9, 8)
    twin, _ = twin_profiles(masks, par, 9, 8)
    assert (raw[0] - raw[1]).abs().max() > 0.2
    assert ((raw - twin).abs().max()) < 1e-12


def test_size_share():
    assert size_share(0.12, 0.014) == pytest.approx(0.8833, abs=1e-4)
    assert size_share(-0.2, 0.045) == pytest.approx(1.225)
    assert math.isnan(size_share(0.0, 0.1)) and math.isnan(size_share(float("nan"), 0.1))


def test_size_table_pairs_each_size_matched_part_with_its_raw_one():
    from freqbias.size_null import size_table

    def part(name, est, verdict="holds"):
        return {"statistic": name, "estimate": est, "lo": est - 0.01, "hi": est + 0.01, "verdict": verdict}
    claims = [
        {"claim": 2, "parts": [part("A - N low (folds, size-matched)", 0.014, "inconclusive")],
         "secondary": [part("A - N low (folds)", 0.120)]},
        {"claim": 3, "parts": [part("most positive wedge 5 (folds, size-matched)", 0.02)],
         "secondary": [part("most positive wedge 2 (folds)", 0.04)]},
        {"claim": 7, "parts": [{"statistic": "share (single, size-matched)", "estimate": float("nan"), "lo": 0.0,
                                "hi": 1.0, "verdict": "not measured", "reason": "no images"}],
         "secondary": [part("share (single)", 0.6)]},
        {"claim": 9, "parts": [part("N: x, size-matched", 1.0)], "secondary": [part("N: x", 1.0)]},
    ]
    rows = size_table(claims)
    assert [r["claim"] for r in rows] == [2, 3, 7]                       # claim 9 is no band claim
    low = rows[0]
    assert low["raw"] == 0.120 and low["size_matched"] == 0.014 and low["by_size"] == pytest.approx(0.106)
    assert low["size_share"] == pytest.approx(0.8833, abs=1e-4) and low["size_matched_verdict"] == "inconclusive"
    assert rows[1]["by_size"] == pytest.approx(0.02)                     # wedges paired whatever their index
    assert rows[2]["size_matched"] is None and rows[2]["reason"] == "no images"


def test_no_share_of_a_raw_value_whose_interval_contains_zero():
    """'4930.9 % of the raw value given by size alone' of a raw +0.001 [-0.02, 0.02] means nothing: n/a, why."""
    from freqbias.size_null import size_table

    def part(name, est, half):
        return {"statistic": name, "estimate": est, "lo": est - half, "hi": est + half, "verdict": "inconclusive"}
    claims = [{"claim": 2, "parts": [part("low (folds, size-matched)", -0.05, 0.01),
                                     part("mid (folds, size-matched)", 0.05, 0.01)],
               "secondary": [part("low (folds)", 0.001, 0.02), part("mid (folds)", 0.1, 0.02)]}]
    near_zero, clear = size_table(claims)
    assert near_zero["size_share"] is None and "interval contains 0" in near_zero["reason"]
    assert near_zero["by_size"] == pytest.approx(0.051)                  # the difference itself is still given
    assert clear["size_share"] == pytest.approx(0.5) and clear["reason"] == ""
