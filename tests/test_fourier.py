"""Tests for freqbias.fourier (masked prediction) and the rfft / full parametrisations (freqbias.parametrisation)."""

from __future__ import annotations

import math

import pytest
import torch

from freqbias import fourier as fm
from freqbias.models import build_model
from freqbias.parametrisation import Full, Rfft, parametrisation

SIZES = [(8, 8), (7, 9), (6, 5), (28, 28)]
KINDS = ("rfft", "full")


def _negate(t: torch.Tensor) -> torch.Tensor:
    """M(-k) for an unshifted full mask (..., H, W)."""
    h, w = t.shape[-2:]
    return t[..., (-torch.arange(h)) % h, :][..., (-torch.arange(w)) % w]


def _net(seed: int = 0, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn", 1, classes, 28, [0.5], [0.25]).net.eval()


# ---- parametrisations (rfft and full; isotropic: tests/test_parametrisation.py) -------------------

def test_mask_shape_and_init():
    assert Rfft(28, 28).shape == (28, 15)
    assert Rfft(7, 9).shape == (7, 5)
    assert Full(7, 9).shape == (7, 9)
    m = Rfft(28, 28).init(3)
    assert m.shape == (3, 28, 15) and bool((m == 1).all())
    assert parametrisation("full", 7, 9) == Full(7, 9) != Rfft(7, 9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("h,w", SIZES)
def test_ones_mask_is_identity(kind, h, w):
    torch.manual_seed(0)
    z = torch.randn(3, 2, h, w)
    par = parametrisation(kind, h, w)
    torch.testing.assert_close(par.apply(z, par.init(1)[0]), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(par.apply(z, par.init(3)), z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w", SIZES)
def test_rfft_and_full_agree_on_point_symmetric_mask(h, w):
    torch.manual_seed(1)
    z = torch.randn(4, 1, h, w)
    full = torch.rand(h, w)
    full = 0.5 * (full + _negate(full))  # M(k) = M(-k)
    assert torch.equal(full, _negate(full))
    rfft = full[:, : w // 2 + 1]
    torch.testing.assert_close(Rfft(h, w).apply(z, rfft), Full(h, w).apply(z, full), atol=1e-5, rtol=0)
    torch.testing.assert_close(Rfft(h, w).to_full(rfft), full)
    torch.testing.assert_close(Rfft(h, w).l1_ratio(rfft), Full(h, w).l1_ratio(full))


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_has_the_same_effect_and_l1(h, w):
    torch.manual_seed(2)
    z = torch.randn(2, 1, h, w)
    m = torch.rand(2, h, w // 2 + 1)  # arbitrary, not symmetric in its DC column
    full = Rfft(h, w).to_full(m)
    assert full.shape == (2, h, w)
    assert torch.equal(full, _negate(full))
    torch.testing.assert_close(Rfft(h, w).apply(z, m), Full(h, w).apply(z, full), atol=1e-5, rtol=0)
    torch.testing.assert_close(Rfft(h, w).l1_ratio(m), full.mean(dim=(-2, -1)))
    torch.testing.assert_close(Rfft(h, w).sparsity(m), Full(h, w).sparsity(full))


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_matches_fft_of_real_images(h, w):
    torch.manual_seed(0)
    x = torch.randn(3, h, w, dtype=torch.float64)
    expanded = Rfft(h, w).to_full(torch.fft.rfft2(x).abs())
    assert expanded.shape == (3, h, w)
    torch.testing.assert_close(expanded, torch.fft.fft2(x).abs())


def test_to_full_symmetric_and_passthrough():
    torch.manual_seed(0)
    h, w = 6, 8
    # a mask that is the rfft part of a symmetric full mask expands back to that full mask
    full = torch.rand(h, w)
    full = (full + torch.roll(torch.flip(full, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))) / 2  # M(-k) = M(k)
    torch.testing.assert_close(Rfft(h, w).to_full(full[:, : w // 2 + 1]), full)
    assert Full(h, w).to_full(full) is full
    assert Rfft(h, w).to_full(torch.ones(h, w // 2 + 1, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError):
        Rfft(h, w).to_full(torch.ones(h, 3))
    with pytest.raises(ValueError):
        Full(h, w).to_full(torch.ones(h, w // 2 + 1))


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_is_the_exact_multiplier_of_an_asymmetric_rfft_mask(h, w):
    """irfft2 applies an rfft mask's DC / Nyquist entries M(ky) and M(-ky) as their mean: the expanded
    mask reproduces irfft2 as a plain full-plane product, real without taking the real part."""
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(3, h, w, dtype=torch.float64, generator=gen)
    m = torch.rand(h, w // 2 + 1, dtype=torch.float64, generator=gen)         # random: DC column not symmetric
    assert not torch.allclose(m[:, 0], m[(-torch.arange(h)) % h, 0])
    full = Rfft(h, w).to_full(m)
    out = torch.fft.ifft2(torch.fft.fft2(z) * full)
    torch.testing.assert_close(out.real, torch.fft.irfft2(torch.fft.rfft2(z) * m, s=(h, w)))
    assert out.imag.abs().max() < 1e-12
    cols = [0] if w % 2 else [0, w // 2]
    torch.testing.assert_close(full[:, cols], 0.5 * (m[:, cols] + m[(-torch.arange(h)) % h][:, cols]))


def test_full_mask_acts_through_its_symmetric_part():
    """Taking the real part (as published) makes M(k) and M(-k) act as their mean."""
    torch.manual_seed(3)
    z = torch.randn(2, 1, 10, 10)
    m = torch.rand(10, 10)
    full = Full(10, 10)
    torch.testing.assert_close(full.apply(z, m), full.apply(z, 0.5 * (m + _negate(m))), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_keeps_or_removes_a_single_frequency(kind):
    """A grating at frequency (3, 5) survives a mask that keeps only (+-)(3, 5) and vanishes when that bin is 0."""
    h = w = 16
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grating = torch.cos(2 * math.pi * (3 * r / h + 5 * c / w)).view(1, 1, h, w)
    par = parametrisation(kind, h, w)
    keep = torch.zeros(par.shape)
    keep[3, 5] = 1.0
    if kind == "full":
        keep[-3, -5] = 1.0
    torch.testing.assert_close(par.apply(grating, keep), grating, atol=1e-5, rtol=0)
    torch.testing.assert_close(par.apply(grating, 1 - keep), torch.zeros_like(grating), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", [*KINDS, "isotropic"])
def test_per_image_masks_match_one_image_at_a_time(kind):
    torch.manual_seed(4)
    z = torch.randn(3, 2, 12, 12)
    par = parametrisation(kind, 12, 12)
    m = torch.rand(3, *par.shape)
    batched = par.apply(z, m)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], par.apply(z[i : i + 1], m[i]))


def test_project_sparsity_support_and_complement():
    m = torch.tensor([[-0.5, 0.0, 0.5], [1.5, 1e-4, 0.2]])
    out = Full(2, 3).project_(m)
    assert out is m
    assert torch.equal(m, torch.tensor([[0.0, 0.0, 0.5], [1.0, 1e-4, 0.2]]))
    comp = fm.binary_complement(m)
    assert torch.equal(comp, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert m[0, 0] == 0.0 and m[0, 2] == 0.5  # not binarised in place
    assert Full(2, 3).sparsity(m).item() == pytest.approx(m.mean().item())
    assert Full(2, 3).support(m).item() == pytest.approx(3 / 6)
    # rfft of a 4-wide image: columns 0 and 2 (Nyquist) count once, column 1 twice
    assert torch.equal(Rfft(2, 4).weights() * 8, torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]))
    assert Rfft(7, 9).weights().sum().item() == pytest.approx(1.0)


def test_mask_size_mismatch_raises_one_line_error():
    z = torch.randn(2, 1, 28, 28)
    rfft = Rfft(28, 28)
    with pytest.raises(ValueError, match=r"does not fit 28x28 images: expected \(28, 15\)") as exc:
        rfft.apply(z, torch.ones(32, 17))
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="does not fit"):
        Full(28, 28).apply(z, torch.ones(28, 15))
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        rfft.apply(z, torch.ones(3, 28, 15))
    with pytest.raises(ValueError, match="do not fit images of shape"):
        Rfft(32, 32).apply(z, torch.ones(32, 17))
    with pytest.raises(ValueError, match="mask kind"):
        parametrisation("dct", 28, 28)
    with pytest.raises(ValueError, match="does not fit"):
        fm.predict(_net(), z, torch.ones(28, 28))
    with pytest.raises(ValueError, match="does not fit 28x28 images"):
        rfft.to_full(torch.ones(28, 3))
