"""Tests for freqbias.fourier: parametrisations, loss, stopping rule, fitting, ground truth."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from freqbias import fourier as fm
from freqbias.models import build_model

SIZES = [(8, 8), (7, 9), (6, 5), (28, 28)]


def _negate(t: torch.Tensor) -> torch.Tensor:
    """M(-k) for an unshifted full mask (..., H, W)."""
    h, w = t.shape[-2:]
    return t[..., (-torch.arange(h)) % h, :][..., (-torch.arange(w)) % w]


def _net(seed: int = 0, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn", 1, classes, 28, [0.5], [0.25]).net.eval()


def _single_cfg(**kw) -> fm.SingleMaskConfig:
    base = dict(lam=0.07, lr=0.2, pct_start=0.1, max_steps=40, tol=1e-4, tol_gap=1e-4, patience=5, chunk_size=4)
    return fm.SingleMaskConfig(**{**base, **kw})


def _dataset_cfg(**kw) -> fm.DatasetMaskConfig:
    base = dict(lam=0.2, lr=0.05, pct_start=0.1, batch_size=8, max_epochs=3, acc_ratio=0.99, tol=1e-5,
                patience=7)
    return fm.DatasetMaskConfig(**{**base, **kw})


# ---- parametrisations ------------------------------------------------------------------------

def test_mask_shape_and_init():
    assert fm.mask_shape(28, 28) == (28, 15)
    assert fm.mask_shape(7, 9, "rfft") == (7, 5)
    assert fm.mask_shape(7, 9, "full") == (7, 9)
    m = fm.init_masks(3, 28, 28)
    assert m.shape == (3, 28, 15) and bool((m == 1).all())


@pytest.mark.parametrize("kind", fm.KINDS)
@pytest.mark.parametrize("h,w", SIZES)
def test_ones_mask_is_identity(kind, h, w):
    torch.manual_seed(0)
    z = torch.randn(3, 2, h, w)
    torch.testing.assert_close(fm.apply_mask(z, fm.init_masks(1, h, w, kind)[0], kind), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(fm.apply_mask(z, fm.init_masks(3, h, w, kind), kind), z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w", SIZES)
def test_rfft_and_full_agree_on_point_symmetric_mask(h, w):
    torch.manual_seed(1)
    z = torch.randn(4, 1, h, w)
    full = torch.rand(h, w)
    full = 0.5 * (full + _negate(full))  # M(k) = M(-k)
    assert torch.equal(full, _negate(full))
    rfft = full[:, : w // 2 + 1]
    torch.testing.assert_close(fm.apply_mask(z, rfft, "rfft"), fm.apply_mask(z, full, "full"), atol=1e-5, rtol=0)
    torch.testing.assert_close(fm.to_full(rfft, w), full)
    torch.testing.assert_close(fm.l1_ratio(rfft, w, "rfft"), fm.l1_ratio(full, w, "full"))


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_has_the_same_effect_and_l1(h, w):
    torch.manual_seed(2)
    z = torch.randn(2, 1, h, w)
    m = torch.rand(2, h, w // 2 + 1)  # arbitrary, not symmetric in its DC column
    full = fm.to_full(m, w)
    assert full.shape == (2, h, w)
    assert torch.equal(full, _negate(full))
    torch.testing.assert_close(fm.apply_mask(z, m, "rfft"), fm.apply_mask(z, full, "full"), atol=1e-5, rtol=0)
    torch.testing.assert_close(fm.l1_ratio(m, w, "rfft"), full.mean(dim=(-2, -1)))
    torch.testing.assert_close(fm.sparsity(m, w, "rfft"), fm.sparsity(full, w, "full"))


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_matches_fft_of_real_images(h, w):
    torch.manual_seed(0)
    x = torch.randn(3, h, w, dtype=torch.float64)
    expanded = fm.to_full(torch.fft.rfft2(x).abs(), w)
    assert expanded.shape == (3, h, w)
    torch.testing.assert_close(expanded, torch.fft.fft2(x).abs())


def test_to_full_symmetric_and_passthrough():
    torch.manual_seed(0)
    h, w = 6, 8
    # a mask that is the rfft part of a symmetric full mask expands back to that full mask
    full = torch.rand(h, w)
    full = (full + torch.roll(torch.flip(full, dims=(0, 1)), shifts=(1, 1), dims=(0, 1))) / 2  # M(-k) = M(k)
    torch.testing.assert_close(fm.to_full(full[:, : w // 2 + 1], w), full)
    assert fm.to_full(full, w) is full
    assert fm.to_full(torch.ones(h, w // 2 + 1, dtype=torch.float64), w).dtype == torch.float64
    with pytest.raises(ValueError):
        fm.to_full(torch.ones(h, 3), w)


@pytest.mark.parametrize("h,w", SIZES)
def test_to_full_is_the_exact_multiplier_of_an_asymmetric_rfft_mask(h, w):
    """irfft2 applies an rfft mask's DC / Nyquist entries M(ky) and M(-ky) as their mean: the expanded
    mask reproduces irfft2 as a plain full-plane product, real without taking the real part."""
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(3, h, w, dtype=torch.float64, generator=gen)
    m = torch.rand(h, w // 2 + 1, dtype=torch.float64, generator=gen)         # random: DC column not symmetric
    assert not torch.allclose(m[:, 0], m[(-torch.arange(h)) % h, 0])
    full = fm.to_full(m, w)
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
    torch.testing.assert_close(fm.apply_mask(z, m, "full"), fm.apply_mask(z, 0.5 * (m + _negate(m)), "full"),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", fm.KINDS)
def test_mask_keeps_or_removes_a_single_frequency(kind):
    """A grating at frequency (3, 5) survives a mask that keeps only (+-)(3, 5) and vanishes when that bin is 0."""
    h = w = 16
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grating = torch.cos(2 * math.pi * (3 * r / h + 5 * c / w)).view(1, 1, h, w)
    keep = torch.zeros(fm.mask_shape(h, w, kind))
    keep[3, 5] = 1.0
    if kind == "full":
        keep[-3, -5] = 1.0
    torch.testing.assert_close(fm.apply_mask(grating, keep, kind), grating, atol=1e-5, rtol=0)
    torch.testing.assert_close(fm.apply_mask(grating, 1 - keep, kind), torch.zeros_like(grating), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", fm.KINDS)
def test_per_image_masks_match_one_image_at_a_time(kind):
    torch.manual_seed(4)
    z = torch.randn(3, 2, 12, 12)
    m = torch.rand(3, *fm.mask_shape(12, 12, kind))
    batched = fm.apply_mask(z, m, kind)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], fm.apply_mask(z[i : i + 1], m[i], kind))


def test_project_sparsity_support_and_complement():
    m = torch.tensor([[-0.5, 0.0, 0.5], [1.5, 1e-4, 0.2]])
    out = fm.project_(m)
    assert out is m
    assert torch.equal(m, torch.tensor([[0.0, 0.0, 0.5], [1.0, 1e-4, 0.2]]))
    comp = fm.binary_complement(m)
    assert torch.equal(comp, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert m[0, 0] == 0.0 and m[0, 2] == 0.5  # not binarised in place
    assert fm.sparsity(m, 3, "full").item() == pytest.approx(m.mean().item())
    assert fm.support(m, 3, "full").item() == pytest.approx(3 / 6)
    # rfft of a 4-wide image: columns 0 and 2 (Nyquist) count once, column 1 twice
    assert torch.equal(fm.mask_weights(2, 4) * 8, torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]))
    assert fm.mask_weights(7, 9).sum().item() == pytest.approx(1.0)


def test_mask_size_mismatch_raises_one_line_error():
    z = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"does not fit 28x28 images: expected \(H, Wm\) = \(28, 15\)") as exc:
        fm.apply_mask(z, torch.ones(32, 17))
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="does not fit"):
        fm.apply_mask(z, torch.ones(28, 15), "full")
    with pytest.raises(ValueError, match="3 masks for 2 images"):
        fm.apply_mask(z, torch.ones(3, 28, 15))
    with pytest.raises(ValueError, match="mask kind"):
        fm.mask_shape(28, 28, "dct")
    with pytest.raises(ValueError, match="does not fit"):
        fm.predict(_net(), z, torch.ones(28, 28))
    with pytest.raises(ValueError, match="does not fit images of width 28"):
        fm.to_full(torch.ones(28, 3), 28)


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="pct_start"):
        _single_cfg(pct_start=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        _single_cfg(max_steps=0)
    with pytest.raises(ValueError, match="mask kind"):
        _dataset_cfg(kind="dct")
    with pytest.raises(ValueError, match="batch_size"):
        _dataset_cfg(batch_size=0)


# ---- loss and stopping rule ------------------------------------------------------------------

def test_loss_terms_at_identity_and_per_image():
    net = _net()
    torch.manual_seed(5)
    z, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    ce0, _ = fm.clean_ce(net, z, y)
    with torch.no_grad():
        shared = fm.init_masks(1, 28, 28)[0]
        gap_sq, l1 = fm.loss_terms(net(fm.apply_mask(z, shared)), y, ce0, shared, 28, "rfft")
        assert gap_sq.shape == (4,) and l1.shape == ()
        assert gap_sq.abs().max().item() == pytest.approx(0.0, abs=1e-10) and l1.item() == pytest.approx(1.0)
        assert fm.mask_loss(gap_sq, l1, 0.2).mean().item() == pytest.approx(1.2)
        half = 0.5 * shared
        gap_half, _ = fm.loss_terms(net(fm.apply_mask(z, half)), y, ce0, half, 28, "rfft")
    ce_half = F.cross_entropy(net(fm.apply_mask(z, half)), y, reduction="none").detach()
    # a shared mask is scored per image (the batch-1 loss averaged), not on the batch-mean CE
    torch.testing.assert_close(gap_half, (ce_half - ce0) ** 2)
    with torch.no_grad():
        per = 0.5 * fm.init_masks(4, 28, 28)
        gap_sq, l1 = fm.loss_terms(net(fm.apply_mask(z, per)), y, ce0, per, 28, "rfft")
    ce = F.cross_entropy(net(fm.apply_mask(z, per)), y, reduction="none").detach()
    assert gap_sq.shape == l1.shape == (4,)
    torch.testing.assert_close(gap_sq, (ce - ce0) ** 2)
    torch.testing.assert_close(l1, torch.full((4,), 0.5))
    torch.testing.assert_close(fm.mask_loss(gap_sq, l1, 0.07), torch.exp((ce - ce0) ** 2) + 0.035)


def test_plateau_counts_consecutive_small_changes():
    p = fm.Plateau(1, tol=0.1, patience=3)
    seq = [1.0, 0.95, 0.9, 0.5, 0.45, 0.42, 0.41]
    stops = [p.update(torch.tensor([[v]])).item() for v in seq]
    # changes: -, .05, .05, .4 (reset), .05, .03, .01 -> third small change in a row at the last step
    assert stops == [False, False, False, False, False, False, True]


def test_plateau_per_run_with_ok_flag_and_subset():
    p = fm.Plateau(3, tol=0.0, patience=2)
    vals = torch.zeros(3, 2)
    assert not p.update(vals).any()  # first update: nothing to compare with
    stop = p.update(vals, ok=torch.tensor([True, False, True]))
    assert stop.tolist() == [False, False, False]
    # runs 0 and 1 only; run 1 was reset by ok=False, run 0 reaches patience
    stop = p.update(torch.zeros(2, 2), ok=torch.tensor([True, True]), idx=torch.tensor([0, 1]))
    assert stop.tolist() == [True, False]
    # a change in one of the two values resets
    stop = p.update(torch.tensor([[0.0, 1.0]]), idx=torch.tensor([2]))
    assert stop.tolist() == [False] and p.count.tolist() == [2, 1, 0]


def test_plateau_with_one_tolerance_per_value():
    p = fm.Plateau(1, tol=(1e-6, 1e-2), patience=1)
    p.update(torch.tensor([[0.0, 0.0]]))
    assert p.update(torch.tensor([[0.0, 5e-3]])).item()  # both within their own tolerance
    assert not p.update(torch.tensor([[1e-5, 5e-3]])).item()  # first value moved by more than 1e-6


# ---- single-image masks ----------------------------------------------------------------------

def _tiny_net() -> torch.nn.Module:
    """A small float64 conv net with eval-mode BatchNorm (random running statistics)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 4))
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval().double()


def test_batched_single_masks_equal_one_at_a_time():
    """In float64, so that rounding differences between batch sizes cannot be amplified by Adam's
    normalisation of near-zero gradients. Two chunks (3 + 2 images)."""
    net = _tiny_net()
    torch.manual_seed(6)
    z = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    target = fm.predict(net, z)
    target[0] = (target[0] + 1) % 4  # never reached: runs to max_steps
    cfg = _single_cfg(chunk_size=3, patience=4)
    batched = fm.fit_single_masks(net, z, target, cfg)
    alone = [fm.fit_single_masks(net, z[i : i + 1], target[i : i + 1], cfg) for i in range(len(z))]
    torch.testing.assert_close(batched.masks, torch.cat([r.masks for r in alone]), atol=1e-9, rtol=0)
    assert torch.equal(batched.steps_used, torch.cat([r.steps_used for r in alone]))
    assert torch.equal(batched.kept, torch.cat([r.kept for r in alone]))
    # the stopping differs per image: some stopped early, image 0 ran to the cap
    assert batched.steps_used[0] == cfg.max_steps
    assert (batched.steps_used[1:] < cfg.max_steps).all() and len(set(batched.steps_used.tolist())) > 1
    assert batched.kept[1:].all()  # early stops require the target prediction
    assert batched.masks.shape == (5, 28, 15) and batched.mean_mask.shape == (5,)
    assert ((batched.masks >= 0) & (batched.masks <= 1)).all()
    assert (batched.mean_mask < 0.5).all()  # the L1 term made them sparse


def test_rfft_gradients_are_the_full_gradients_summed_over_mirror_pairs():
    """Same loss for an rfft mask and its full equivalent; each rfft entry off the DC / Nyquist
    columns stands for two full entries, so its gradient is exactly twice theirs (Adam's steps match)."""
    net = _net().double()
    torch.manual_seed(7)
    z = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    target = fm.predict(net, z)
    ce0, _ = fm.clean_ce(net, z, target)
    m = (0.5 + 0.5 * torch.rand(3, 28, 15, dtype=torch.float64)).requires_grad_()
    full = fm.to_full(m.detach(), 28).requires_grad_()
    totals = []
    for p, kind in [(m, "rfft"), (full, "full")]:
        loss = fm.mask_loss(*fm.loss_terms(net(fm.apply_mask(z, p, kind)), target, ce0, p, 28, kind), 0.07)
        loss.sum().backward()
        totals.append(loss)
    torch.testing.assert_close(totals[0], totals[1])
    # point-symmetric up to FFT rounding (pocketfft/MKL kernels differ by machine: not bitwise)
    torch.testing.assert_close(full.grad, _negate(full.grad), rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(m.grad[..., 1:14], 2 * full.grad[..., 1:14])
    torch.testing.assert_close(m.grad[..., [0, 14]], full.grad[..., [0, 14]])


def test_single_mask_fits_follow_the_same_path_for_rfft_and_full():
    """Up to Adam's eps (which is why lam is large enough for gradients >> eps)."""
    net = _net().double()
    torch.manual_seed(7)
    z = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    target = fm.predict(net, z)
    common = dict(lam=1.0, lr=0.05, max_steps=10, patience=100)
    rfft = fm.fit_single_masks(net, z, target, _single_cfg(kind="rfft", **common))
    full = fm.fit_single_masks(net, z, target, _single_cfg(kind="full", **common))
    assert (rfft.steps_used == 10).all()
    assert full.masks.shape == (3, 28, 28)
    assert (rfft.mean_mask < 0.9).all()
    torch.testing.assert_close(fm.to_full(rfft.masks, 28), full.masks, atol=1e-5, rtol=0)
    torch.testing.assert_close(rfft.mean_mask, full.mean_mask, atol=1e-6, rtol=0)


class _ShapeDependent(torch.nn.Module):
    """Control flow on the input shape: torch.fx cannot trace it, so it cannot be fused."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.bn(self.conv(x)) if x.shape[-1] > 8 else x
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize("make", [_net, _ShapeDependent])
def test_fitting_copy_computes_the_same_function(make):
    net = make().eval()
    if isinstance(net, _ShapeDependent):
        net.bn.running_mean.normal_()
    fast, plain = fm.fitting_copy(net, fast=True), fm.fitting_copy(net, fast=False)
    assert fast is not net and not any(p.requires_grad for p in fast.parameters())
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert has_bn == (make is _ShapeDependent)  # folded into the convs where fx can trace the net
    torch.manual_seed(12)
    z = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast(z), net(z), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(plain(z), net(z))


def test_fitting_leaves_the_net_untouched():
    net = _net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(8)
    z = torch.randn(2, 1, 28, 28)
    fm.fit_single_masks(net, z, torch.tensor([0, 1]), _single_cfg(max_steps=3))
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---- dataset and class masks -----------------------------------------------------------------

def test_dataset_mask_stops_on_flat_sparsity():
    """A tiny lr keeps the mean mask flat, so the rule stops after exactly `patience` flat epochs
    (plus the first epoch, which has nothing to compare with)."""
    net = _net()
    torch.manual_seed(9)
    z, y = torch.randn(16, 1, 28, 28), torch.randint(0, 4, (16,))
    mask, history = fm.fit_dataset_mask(net, z, y, _dataset_cfg(lr=1e-9, patience=3, max_epochs=20))
    assert len(history) == 4
    torch.testing.assert_close(mask, torch.ones(28, 15), atol=1e-6, rtol=0)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert set(history[0]) >= {"epoch", "loss", "masked_acc", "mean_mask", "kept"}
    assert all(h["kept"] and h["masked_acc"] == h["clean_acc"] for h in history)


def test_dataset_mask_keeps_only_masks_meeting_the_accuracy_rule():
    net = _net()
    torch.manual_seed(10)
    z = torch.randn(24, 1, 28, 28)
    y = fm.predict(net, z)  # clean accuracy 1
    mask, history = fm.fit_dataset_mask(net, z, y, _dataset_cfg(max_epochs=4, lr=0.1))
    assert len(history) == 4 and history[-1]["mean_mask"] < history[0]["mean_mask"] < 1
    kept = [h for h in history if h["kept"]]
    expected = fm.agreement(net, z, y, mask)
    assert expected >= 0.99 * history[0]["clean_acc"]
    if kept:
        assert fm.sparsity(mask, 28).item() == pytest.approx(kept[-1]["mean_mask"], abs=1e-6)
    # an unreachable requirement keeps the initial (identity) mask, and flat epochs that fail the
    # accuracy rule do not count towards stopping
    mask, history = fm.fit_dataset_mask(net, z, y, _dataset_cfg(max_epochs=5, acc_ratio=1.5, lr=1e-9, patience=2))
    assert len(history) == 5
    assert not any(h["kept"] for h in history) and torch.equal(mask, torch.ones(28, 15))


def test_class_masks_shape_and_missing_class():
    net = _net()
    torch.manual_seed(11)
    z, y = torch.randn(12, 1, 28, 28), torch.tensor([0, 1, 2] * 4)
    masks, histories = fm.fit_class_masks(net, z, y, 3, _dataset_cfg(max_epochs=1, kind="full"))
    assert masks.shape == (3, 28, 28) and len(histories) == 3
    with pytest.raises(ValueError, match="class 3 has no images"):
        fm.fit_class_masks(net, z, y, 4, _dataset_cfg(max_epochs=1))


def test_class_masks_of_an_absent_class_are_nan_on_request():
    net = _net()
    torch.manual_seed(11)
    z, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 2] * 4)
    masks, histories = fm.fit_class_masks(net, z, y, 3, _dataset_cfg(max_epochs=1), absent="nan")
    assert masks.shape == (3, 28, 15) and [len(h) for h in histories] == [1, 0, 1]
    assert masks[1].isnan().all() and masks[[0, 2]].isfinite().all()


def test_single_masks_of_no_image_are_empty():
    result = fm.fit_single_masks(_net(), torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), _single_cfg())
    assert result.masks.shape == (0, 28, 15) and result.steps_used.shape == result.kept.shape == (0,)
    assert result.mean_mask.shape == (0,)


# ---- ground truth: the planted band ----------------------------------------------------------

def test_dataset_mask_finds_the_planted_band():
    """A few seconds: 1024 planted images, 2 training epochs, a 6-epoch mask fit on 384 images."""
    from freqbias.data import make_planted, planted_band, to_float

    torch.manual_seed(0)
    x, y = make_planted(1024, 28, 4, seed=0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.25])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    z_all = model.normalize(to_float(x))
    for _ in range(2):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(model.net(z_all[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    z, yf = z_all[:384], y[:384]
    clean = fm.agreement(model.net, z, yf)
    assert clean > 0.9
    cfg = _dataset_cfg(lr=0.05, batch_size=32, max_epochs=6)
    mask, history = fm.fit_dataset_mask(model.net, z, yf, cfg)
    band = planted_band(28, "rfft")
    outside = ~band
    outside[0, 0] = False  # the zero-frequency bin carries the mean, not the class
    inside_mean, outside_mean = mask[band].mean().item(), mask[outside].mean().item()
    assert inside_mean >= 5 * outside_mean, (inside_mean, outside_mean)
    assert fm.agreement(model.net, z, yf, mask) >= 0.99 * clean
    assert history[-1]["mean_mask"] < 0.5
