"""Tests for freqbias.fitting: configs, loss, stopping rule, single-image fitting.

Shared (dataset, fold, class) masks and the planted ground truth: tests/test_shared_masks.py."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from freqbias import fitting as mf
from freqbias import fourier as fm
from freqbias.frozen import fitting_copy, pool_before_relu
from freqbias.models import build_model
from freqbias.parametrisation import Full, Rfft
from test_fourier import _negate, _net

RFFT = Rfft(28, 28)


def _single_cfg(**kw) -> mf.SingleMaskConfig:
    base = dict(lam=0.07, lr=0.2, pct_start=0.1, max_steps=40, tol=1e-4, tol_gap=1e-4, patience=5, chunk_size=4)
    return mf.SingleMaskConfig(**{**base, **kw})


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="pct_start"):
        _single_cfg(pct_start=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        _single_cfg(max_steps=0)
    with pytest.raises(ValueError, match="mask parametrisation"):
        _single_cfg(parametrisation="dct")
    with pytest.raises(ValueError, match="chunk_size"):
        _single_cfg(chunk_size=0)


# ---- loss and stopping rule ------------------------------------------------------------------

def test_loss_terms_at_identity_and_per_image():
    net = _net()
    torch.manual_seed(5)
    z, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    ce0, _ = mf.clean_ce(net, z, y)
    with torch.no_grad():
        shared = RFFT.init(1)[0]
        gap_sq, l1 = mf.loss_terms(net(RFFT.apply(z, shared)), y, ce0, shared, RFFT)
        assert gap_sq.shape == (4,) and l1.shape == ()
        assert gap_sq.abs().max().item() == pytest.approx(0.0, abs=1e-10) and l1.item() == pytest.approx(1.0)
        assert mf.mask_loss(gap_sq, l1, 0.2).mean().item() == pytest.approx(1.2)
        half = 0.5 * shared
        gap_half, _ = mf.loss_terms(net(RFFT.apply(z, half)), y, ce0, half, RFFT)
    ce_half = F.cross_entropy(net(RFFT.apply(z, half)), y, reduction="none").detach()
    # a shared mask is scored per image (the batch-1 loss averaged), not on the batch-mean CE
    torch.testing.assert_close(gap_half, (ce_half - ce0) ** 2)
    with torch.no_grad():
        per = 0.5 * RFFT.init(4)
        gap_sq, l1 = mf.loss_terms(net(RFFT.apply(z, per)), y, ce0, per, RFFT)
    ce = F.cross_entropy(net(RFFT.apply(z, per)), y, reduction="none").detach()
    assert gap_sq.shape == l1.shape == (4,)
    torch.testing.assert_close(gap_sq, (ce - ce0) ** 2)
    torch.testing.assert_close(l1, torch.full((4,), 0.5))
    torch.testing.assert_close(mf.mask_loss(gap_sq, l1, 0.07), torch.exp((ce - ce0) ** 2) + 0.035)


def test_plateau_counts_consecutive_small_changes():
    p = mf.Plateau(1, tol=0.1, patience=3)
    seq = [1.0, 0.95, 0.9, 0.5, 0.45, 0.42, 0.41]
    stops = [p.update(torch.tensor([[v]])).item() for v in seq]
    # changes: -, .05, .05, .4 (reset), .05, .03, .01 -> third small change in a row at the last step
    assert stops == [False, False, False, False, False, False, True]


def test_plateau_per_run_with_ok_flag_and_subset():
    p = mf.Plateau(3, tol=0.0, patience=2)
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
    p = mf.Plateau(1, tol=(1e-6, 1e-2), patience=1)
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
    target[0] = (target[0] + 1) % 4  # never given: the identity comes back, not kept
    cfg = _single_cfg(chunk_size=3, patience=4)
    batched = mf.fit_single_masks(net, z, target, cfg)
    alone = [mf.fit_single_masks(net, z[i : i + 1], target[i : i + 1], cfg) for i in range(len(z))]
    torch.testing.assert_close(batched.masks, torch.cat([r.masks for r in alone]), atol=1e-9, rtol=0)
    assert torch.equal(batched.steps_used, torch.cat([r.steps_used for r in alone]))
    assert torch.equal(batched.kept, torch.cat([r.kept for r in alone]))
    # the stopping differs per image; image 0's target was never given: its mask is the identity, not kept
    assert len(set(batched.steps_used.tolist())) > 1
    assert not batched.kept[0] and torch.equal(batched.masks[0], torch.ones_like(batched.masks[0]))
    assert batched.kept[1:].all()  # the sparsest mask that gave the target
    assert batched.masks.shape == (5, 28, 15) and batched.mean_mask.shape == (5,)
    assert ((batched.masks >= 0) & (batched.masks <= 1)).all()
    assert (batched.mean_mask[1:] < 0.5).all()  # the L1 term made them sparse


def test_single_masks_are_the_sparsest_that_gave_the_target(monkeypatch):
    """Each returned mask's L1 ratio is the smallest among the fit's steps at which the mask gave the target,
    whatever the last step gave (one image per fit, so that every recorded step is that image's)."""
    net = _net()
    torch.manual_seed(7)
    z = torch.randn(6, 1, 28, 28)
    target = fm.predict(net, z)
    loss_terms = mf.loss_terms
    lost = 0
    for i in range(len(z)):
        seen = []

        def spy(logits, y, ce0, m, par):
            gap_sq, l1 = loss_terms(logits, y, ce0, m, par)
            seen.append((bool(logits.argmax(dim=1) == y), float(l1.detach())))
            return gap_sq, l1

        monkeypatch.setattr(mf, "loss_terms", spy)
        cfg = _single_cfg(chunk_size=1, patience=4, lam=0.5, fast_net=False)
        res = mf.fit_single_masks(net, z[i:i + 1], target[i:i + 1], cfg)
        best = min(l1 for ok, l1 in seen if ok)
        lost += not seen[-1][0]
        assert res.kept.all() and abs(RFFT.l1_ratio(res.masks).item() - best) < 1e-6
        assert res.steps_used.item() == len(seen) - 1 or res.steps_used.item() == 40
    assert lost > 0  # with a heavy L1 weight some fits end past the decision boundary: the test sees both cases

def test_rfft_gradients_are_the_full_gradients_summed_over_mirror_pairs():
    """Same loss for an rfft mask and its full equivalent; each rfft entry off the DC / Nyquist
    columns stands for two full entries, so its gradient is exactly twice theirs (Adam's steps match)."""
    net = _net().double()
    torch.manual_seed(7)
    z = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    target = fm.predict(net, z)
    ce0, _ = mf.clean_ce(net, z, target)
    m = (0.5 + 0.5 * torch.rand(3, 28, 15, dtype=torch.float64)).requires_grad_()
    full = RFFT.to_full(m.detach()).requires_grad_()
    totals = []
    for p, par in [(m, RFFT), (full, Full(28, 28))]:
        loss = mf.mask_loss(*mf.loss_terms(net(par.apply(z, p)), target, ce0, p, par), 0.07)
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
    rfft = mf.fit_single_masks(net, z, target, _single_cfg(parametrisation=Rfft, **common))
    full = mf.fit_single_masks(net, z, target, _single_cfg(parametrisation=Full, **common))
    assert (rfft.steps_used == 10).all()
    assert full.masks.shape == (3, 28, 28)
    assert (rfft.mean_mask < 0.9).all()
    torch.testing.assert_close(RFFT.to_full(rfft.masks), full.masks, atol=1e-5, rtol=0)
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
    fast, plain = fitting_copy(net, fast=True), fitting_copy(net, fast=False)
    assert fast is not net and not any(p.requires_grad for p in fast.parameters())
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert has_bn == (make is _ShapeDependent)  # folded into the convs where fx can trace the net
    torch.manual_seed(12)
    z = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast(z), net(z), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(plain(z), net(z))


def test_fitting_copy_runs_in_its_devices_layout():
    """Channels-last on a CPU (oneDNN's fast path); the default layout on other devices (a meta-device
    copy stands in for a GPU here), as training does (runtime.fast_layout)."""
    conv = lambda n: [m for m in n.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight  # noqa: E731
    cpu = fitting_copy(_net().eval(), fast=True)
    assert conv(cpu).is_contiguous(memory_format=torch.channels_last) and not conv(cpu).is_contiguous()
    meta = fitting_copy(_net().eval().to("meta"), fast=True)
    assert conv(meta).is_contiguous()


def test_fitting_leaves_the_net_untouched():
    net = _net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(8)
    z = torch.randn(2, 1, 28, 28)
    mf.fit_single_masks(net, z, torch.tensor([0, 1]), _single_cfg(max_steps=3))
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_single_masks_of_no_image_are_empty():
    result = mf.fit_single_masks(_net(), torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), _single_cfg())
    assert result.masks.shape == (0, 28, 15) and result.steps_used.shape == result.kept.shape == (0,)
    assert result.mean_mask.shape == (0,)



@pytest.mark.parametrize("arch,size", [("small_cnn", 28), ("vgg11_bn", 32)])
def test_pool_before_relu_gives_the_same_outputs_and_gradients_bit_for_bit(arch, size):
    """Every ReLU followed by a max-pool now runs after it; outputs and input gradients are unchanged."""
    torch.manual_seed(0)
    net = build_model(arch, 1, 5, size, [0.0], [1.0]).net.eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):   # eval-mode BN with statistics that make some maxima negative
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    swapped = pool_before_relu(copy.deepcopy(net))
    kinds = lambda n: [type(m).__name__ for m in n.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d))]  # noqa: E731
    assert sorted(kinds(swapped)) == sorted(kinds(net)) and kinds(swapped) != kinds(net)
    for seq in (m for m in swapped.modules() if isinstance(m, torch.nn.Sequential)):
        layers = list(seq)
        assert not any(isinstance(a, torch.nn.ReLU) and isinstance(b, torch.nn.MaxPool2d)
                       for a, b in zip(layers, layers[1:]))
    z = torch.randn(4, 1, size, size, requires_grad=True)
    out, out_swapped = net(z), swapped(z)
    grad, = torch.autograd.grad(out.square().sum(), z)
    grad_swapped, = torch.autograd.grad(out_swapped.square().sum(), z)
    assert torch.equal(out, out_swapped) and torch.equal(grad, grad_swapped) and grad.abs().sum() > 0


def test_mask_adam_under_the_one_cycle_schedule_is_torch_adam_with_one_cycle_lr():
    """Single-image masks step with MaskAdam, lr and beta1 from loops.one_cycle_*: the same path as
    torch.optim.Adam under OneCycleLR (what they used before), up to float rounding, with the clamp."""
    from freqbias.loops import one_cycle, one_cycle_lr, one_cycle_momentum

    torch.manual_seed(0)
    ours = torch.rand(3, 6, 4)
    theirs = ours.clone().requires_grad_()
    adam = mf.MaskAdam(ours, 0.2, warmup=1)
    opt = torch.optim.Adam([theirs], lr=0.2)
    sched = one_cycle(opt, 0.2, 60, 0.1)
    for t in range(60):
        grad = torch.randn(3, 6, 4)
        adam.lr[:] = one_cycle_lr(t + 1, 60, 0.2, 0.1)
        adam.step(grad, torch.arange(3), b1=one_cycle_momentum(t + 1, 60, 0.1))
        theirs.grad = grad
        opt.step()
        sched.step()
        with torch.no_grad():
            theirs.clamp_(0, 1)
    assert torch.allclose(ours, theirs, atol=1e-4) and not torch.equal(ours, torch.rand(3, 6, 4))


def test_mask_fits_use_no_torch_optimiser(monkeypatch):
    """torch.optim's step imports torch._dynamo (about 1 s per process): the masks stage's fits do without."""
    def refuse(*args, **kwargs):
        raise AssertionError("a mask fit built a torch.optim optimiser")

    monkeypatch.setattr(torch.optim, "Adam", refuse)
    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", refuse)
    net = _net()
    torch.manual_seed(0)
    z = torch.randn(4, 1, 28, 28)
    cfg = mf.SingleMaskConfig(lam=0.07, lr=0.2, pct_start=0.1, max_steps=5, tol=1e-4, tol_gap=1e-6, patience=2)
    assert mf.fit_single_masks(net, z, fm.predict(net, z), cfg).masks.shape == (4, 28, 15)


def test_stable_exp_is_exp_below_the_cap_and_finite_above():
    u = torch.tensor([0.0, 3.0, 19.5, 20.0, 25.0, 150.0, 1e6], requires_grad=True)
    out = mf.stable_exp(u)
    (grad,) = torch.autograd.grad(out.sum(), u)
    assert torch.equal(out[:4], torch.exp(u[:4].detach()))  # bit for bit where the study's loss is finite
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    assert torch.all(out[3:].diff() > 0) and torch.all(grad[3:] >= torch.exp(torch.tensor(mf.EXP_CAP)) * 0.999)


def test_a_ce_gap_above_ten_nats_gives_a_finite_mask(monkeypatch):
    """A net so steep that the first steps' dimming moves the CE by > 10 nats: exp(gap^2) overflows float32 there
    and, unguarded, the mask turns NaN; with the guarded loss it is finite and keeps the prediction."""
    torch.manual_seed(0)
    z = torch.randn(1, 1, 28, 28)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2)).eval()
    with torch.no_grad():  # class 0: 2000 x the image's projection on itself; class 1: a constant 0.2 % below it
        net[1].weight.copy_(torch.stack([z.flatten(), torch.zeros(28 * 28)]) * 2000 / z.square().sum())
        net[1].bias.copy_(torch.tensor([0.0, 2000 * 0.998]))
    target = fm.predict(net, z)
    cfg = mf.SingleMaskConfig(lam=0.07, lr=0.2, pct_start=0.1, max_steps=40, tol=1e-4, tol_gap=1e-6, patience=5,
                              fast_net=False)
    gaps, finite = [], []
    loss_terms, step = mf.loss_terms, mf.MaskAdam.step

    def spy(*args, **kw):
        gap_sq, l1 = loss_terms(*args, **kw)
        gaps.append(gap_sq.detach().max().item())
        return gap_sq, l1

    def spy_step(self, *args, **kw):  # the masks as the optimiser leaves them, before any is chosen to return
        step(self, *args, **kw)
        finite.append(bool(torch.isfinite(self.param).all()))

    monkeypatch.setattr(mf, "loss_terms", spy)
    monkeypatch.setattr(mf.MaskAdam, "step", spy_step)
    res = mf.fit_single_masks(net, z, target, cfg)
    assert max(gaps) > 100  # a CE gap above 10 nats happened
    assert all(finite) and torch.isfinite(res.masks).all()
    finite.clear()
    monkeypatch.setattr(mf, "stable_exp", torch.exp)  # the unguarded loss: the test can fail
    mf.fit_single_masks(net, z, target, cfg)
    assert not all(finite)
