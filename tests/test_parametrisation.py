"""Tests for freqbias.parametrisation: the registry, the isotropic (ring profile) parametrisation, and that
no function outside the module takes a layout string. Rfft and full: tests/test_fourier.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from freqbias import shared_masks as sm
from freqbias.fitting import MaskAdam
from freqbias.parametrisation import PARAMETRISATIONS, Full, Isotropic, Rfft, parametrisation
from test_fourier import SIZES, _net
from test_shared_masks import DEFAULT_BAND, PLANTED_CFG, _planted

ROOT = Path(__file__).resolve().parents[1]


def test_registry_and_factory():
    assert set(PARAMETRISATIONS) == {"rfft", "full", "isotropic"}
    for kind, cls in PARAMETRISATIONS.items():
        par = parametrisation(kind, 7, 9)
        assert type(par) is cls and par.kind == kind and (par.h, par.w) == (7, 9)
        assert par == cls(7, 9) and hash(par) == hash(cls(7, 9)) and par != cls(9, 7)
    with pytest.raises(ValueError, match="mask kind must be one of rfft, full, isotropic, got 'dct'"):
        parametrisation("dct", 7, 9)


@pytest.mark.parametrize("kind", list(PARAMETRISATIONS))
@pytest.mark.parametrize("h,w", SIZES)
def test_weights_sum_to_one_and_sparsity_is_the_full_plane_mean(kind, h, w):
    par = parametrisation(kind, h, w)
    weights = par.weights(dtype=torch.float64)
    assert weights.shape == par.shape and (weights >= 0).all()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    m = torch.rand(4, *par.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    if kind == "rfft":  # DC / Nyquist columns symmetric: to_full averages M(ky) and M(-ky) there (support)
        m = par.to_full(m)[..., : w // 2 + 1]
    full = par.to_full(m)
    assert full.shape == (4, h, w)
    torch.testing.assert_close(par.sparsity(m), full.mean(dim=(-2, -1)))
    torch.testing.assert_close(par.support(m, 0.5), (full > 0.5).double().mean(dim=(-2, -1)))


@pytest.mark.parametrize("h,w", SIZES)
def test_isotropic_rings_and_weights(h, w):
    iso = Isotropic(h, w)
    ky = torch.fft.fftfreq(h, d=1 / h).double()[:, None]
    kx = torch.fft.fftfreq(w, d=1 / w).double()[None, :]
    rings = (ky ** 2 + kx ** 2).sqrt().round().long()
    assert torch.equal(iso.ring_index(), rings)
    assert iso.shape == (int(rings.max()) + 1,)
    assert torch.equal(iso.ring_index(full=False), rings[:, : w // 2 + 1])  # |kx| of the Nyquist column: W/2
    counts = torch.bincount(rings.flatten(), minlength=iso.shape[0]).double()
    torch.testing.assert_close(iso.weights(dtype=torch.float64), counts / (h * w))
    assert iso.ring_index()[0, 0] == 0 and iso.weights()[0] == pytest.approx(1 / (h * w))


@pytest.mark.parametrize("h,w", SIZES)
def test_isotropic_apply_is_the_expanded_rfft_mask_and_its_full_plane(h, w):
    iso, rfft, full = Isotropic(h, w), Rfft(h, w), Full(h, w)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 2, h, w, generator=g)
    for m in (torch.rand(iso.shape, generator=g), torch.rand(3, *iso.shape, generator=g)):
        expanded = iso.expand(m)
        assert expanded.shape == (*m.shape[:-1], *rfft.shape)
        assert torch.equal(iso.apply(z, m), rfft.apply(z, expanded))
        assert torch.equal(iso.to_full(m), rfft.to_full(expanded))  # the expansion is point-symmetric
        torch.testing.assert_close(iso.apply(z, m), full.apply(z, iso.to_full(m)), atol=1e-5, rtol=0)
        torch.testing.assert_close(iso.sparsity(m), rfft.sparsity(expanded))
    with pytest.raises(ValueError, match="does not fit"):
        iso.apply(z, torch.ones(iso.shape[0] + 1))


def test_isotropic_gradient_sums_over_each_ring():
    iso = Isotropic(12, 12)
    m = torch.rand(iso.shape, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(12, 7, dtype=torch.float64)
    (iso.expand(m) * weights).sum().backward()
    expected = torch.zeros(iso.shape, dtype=torch.float64).index_add_(0, iso.ring_index(full=False).flatten(),
                                                                      weights.flatten())
    torch.testing.assert_close(m.grad, expected)


def test_mask_adam_steps_masks_of_any_shape():
    """The same per-mask step for (G, R) ring profiles as for the same values laid out as (G, R, 1, 1)."""
    g = torch.Generator().manual_seed(3)
    flat, grads = torch.rand(3, 5, generator=g), [torch.randn(3, 5, generator=g) for _ in range(4)]
    deep, untouched = flat.clone().view(3, 5, 1, 1), flat[2].clone()
    a, b = MaskAdam(flat, 0.1, warmup=2), MaskAdam(deep, 0.1, warmup=2)
    a.lr[1] = b.lr[1] = 0.3
    act = torch.tensor([0, 1])
    for grad in grads:
        a.step(grad[act], act)
        b.step(grad[act].view(2, 5, 1, 1), act)
    assert torch.equal(a.param, b.param.view(3, 5)) and bool((a.param >= 0).all() & (a.param <= 1).all())
    assert torch.equal(a.param[2], untouched) and not torch.equal(a.param[:2], torch.zeros(2, 5))
    assert a.t.tolist() == [4.0, 4.0, 0.0]


def test_prune_works_on_ring_profiles():
    net = _net()
    torch.manual_seed(4)
    z = torch.randn(16, 1, 28, 28)
    y = net(z).argmax(1)
    iso = Isotropic(28, 28)
    mask = torch.linspace(0.05, 1.0, iso.shape[0])
    cfg = sm.SharedMaskConfig(lam=0.2, lr=0.05, batch_size=8, max_steps=10, check_every=5, acc_ratio=0.9, tol=1e-3,
                              patience=3, parametrisation=Isotropic)
    need = 12
    pruned = sm.prune(net, z, y, mask, need, cfg)
    assert pruned.shape == iso.shape
    changed = pruned != mask
    assert (pruned[changed] == 0).all()
    assert int((net(iso.apply(z, pruned)).argmax(1) == y).sum()) >= need or torch.equal(pruned, mask)


def test_isotropic_shared_fit_on_planted_data_converges():
    """A shared fit with ring profiles (the default profile's settings, but a plateau of 4 checks, not 8, stops it:
    means 0.10 and 0.09 as with 8, in half the steps) on planted data: finite, converged, sparser than the identity,
    meets the rule, and its record's mean is the expanded full plane's mean."""
    net, z_all, y_all = _planted(28, DEFAULT_BAND)
    z, y = z_all[:192], y_all[:192]
    cfg = sm.SharedMaskConfig(**{**PLANTED_CFG, "max_steps": 600, "patience": 4}, parametrisation=Isotropic)
    res = sm.fit_shared_masks(net, z, y, [torch.arange(len(z)), torch.arange(0, len(z), 2)], cfg)
    iso = Isotropic(28, 28)
    assert res.masks.shape == (2, *iso.shape)
    for mask, rec in zip(res.masks, res.records):
        assert torch.isfinite(mask).all() and rec["converged"] is True and rec["met"] is True
        assert rec["mean"] < 1.0 and rec["masked_acc"] >= 0.99 * rec["clean_acc"] - 1e-9
        assert rec["mean"] == pytest.approx(iso.to_full(mask).mean().item(), abs=1e-6)
        assert rec["history"] and all(h["mean"] <= 1.0 for h in rec["history"])


def _function_args(tree: ast.AST) -> list[tuple[str, int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    out.append((getattr(node, "name", "<lambda>"), node.lineno, arg.arg))
    return out


def test_no_function_outside_the_parametrisation_module_takes_a_layout_string():
    """Issue 24: the layout is one object, chosen once; no function re-dispatches on a ``kind`` / ``layout``."""
    files = [p for d in ("src", "stages", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
    assert any(p.name == "shared_masks.py" for p in files)
    offenders = [f"{p.relative_to(ROOT)}:{line} {name}({arg})" for p in files if p.name != "parametrisation.py"
                 for name, line, arg in _function_args(ast.parse(p.read_text())) if arg in ("kind", "layout")]
    assert not offenders, offenders
