"""Tests for freqbias.shared_masks: dataset-, fold- and class-level masks fitted in one batched run,
and the planted ground truth (the mask finds the band that carries the class)."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from torch.nn import functional as F

from freqbias import fit_methods
from freqbias import fourier as fm
from freqbias import shared_masks as sm
from freqbias.data import to_float
from freqbias.loops import one_cycle_lr
from freqbias.models import build_model
from freqbias.parametrisation import Full, Parametrisation, Rfft
from freqbias.planted import PlantedBand, make_planted, planted_band
from test_fourier import _net

pytestmark = pytest.mark.usefixtures("one_thread")

RECORD_KEYS = {"n_images", "clean_acc", "masked_acc", "converged", "steps", "mean", "support", "min", "lam",
               "history"}
HISTORY_KEYS = {"step", "masked_acc", "scored", "mean", "lam", "lr", "met"}


def _cfg(**kw) -> sm.SharedMaskConfig:
    base = dict(lam=0.2, lr=0.05, batch_size=8, max_steps=60, check_every=5, acc_ratio=0.99, tol=1e-3, patience=3)
    return sm.SharedMaskConfig(**{**base, **kw})


def _data(n: int = 24, seed: int = 9) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A random small_cnn and noise images labelled with its own predictions (clean accuracy 1)."""
    net = _net()
    torch.manual_seed(seed)
    z = torch.randn(n, 1, 28, 28)
    return net, z, fm.predict(net, z)


def _correct(net: torch.nn.Module, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
             par: Parametrisation | None = None) -> int:
    return int((fm.predict(net, z, mask, par) == y).sum())


# ---- config and helpers ----------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    ({"method": "dual"}, "method"), ({"lam_factor": 1.0}, "lam_factor"), ({"lam_factor": 0.5}, "lam_factor"),
    ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"max_steps": 0}, "max_steps"),
    ({"check_every": 0}, "check_every"), ({"patience": 0}, "patience"), ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"lam": -0.1}, "lam"), ({"tol": -1e-3}, "tol"), ({"acc_ratio": -0.5}, "acc_ratio"),
    ({"pct_start": 0.0}, "pct_start"), ({"pct_start": 1.0}, "pct_start"),
    ({"parametrisation": "dct"}, "mask parametrisation"), ({"parametrisation": Rfft(28, 28)}, "mask parametrisation"),
])
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_config_defaults_and_methods():
    cfg = _cfg()
    assert cfg.method == "constrained" and cfg.lam_factor > 1 and cfg.parametrisation is Rfft
    assert _cfg(method="fixed").method == "fixed" and set(fit_methods.METHODS) == {"constrained", "fixed"}
    assert isinstance(cfg.fit_method, fit_methods.Constrained) and isinstance(_cfg(method="fixed").fit_method,
                                                                                fit_methods.Fixed)


@pytest.mark.parametrize("n,folds", [(10, 3), (12, 4), (7, 1), (3, 5)])
def test_fold_groups_are_disjoint_cover_and_balanced(n, folds):
    groups = sm.fold_groups(n, folds, seed=1)
    assert len(groups) == folds
    assert torch.equal(torch.cat(groups).sort().values, torch.arange(n))  # cover, no index twice
    sizes = [len(g) for g in groups]
    assert max(sizes) - min(sizes) <= 1
    assert all(torch.equal(g, g.sort().values) for g in groups)


def test_fold_groups_are_seeded():
    a, b, c = sm.fold_groups(40, 4, seed=0), sm.fold_groups(40, 4, seed=0), sm.fold_groups(40, 4, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not torch.equal(a[0], torch.arange(0, 40, 4))  # shuffled, not a stride over the input order
    with pytest.raises(ValueError, match="folds"):
        sm.fold_groups(10, 0)


def test_class_groups_with_an_absent_class():
    groups = sm.class_groups(torch.tensor([0, 2, 0, 2, 2]), 3)
    assert [g.tolist() for g in groups] == [[0, 2], [], [1, 3, 4]]
    assert groups[1].dtype == torch.long and groups[1].shape == (0,)


@pytest.mark.parametrize("correct,ratio,need", [
    (135, 0.995, 135), (40, 0.995, 40), (1, 0.995, 1), (0, 0.995, 0), (200, 0.995, 199), (100, 0.99, 99),
    (150, 0.99, 149), (4488, 0.99, 4444), (10, 1.0, 10), (10, 0.0, 0),
])
def test_min_correct_rounds_up_to_a_whole_image(correct, ratio, need):
    assert sm.min_correct(correct, ratio) == need
    assert need >= ratio * correct - 1e-9 and (need == 0 or need - 1 < ratio * correct)  # the ratio is kept


# ---- fitting ---------------------------------------------------------------------------------

def test_records_have_the_documented_keys_and_an_empty_group_is_nan():
    net, z, y = _data()
    res = sm.fit_shared_masks(net, z, y, [torch.arange(12), torch.tensor([], dtype=torch.long), torch.arange(12, 24)],
                              _cfg(max_steps=10, parametrisation=Full))
    assert len(res) == 3 and res.masks.shape == (3, 28, 28)
    assert res.masks[1].isnan().all() and res.masks[[0, 2]].isfinite().all()
    assert res.records[1]["n_images"] == 0 and res.records[1]["converged"] is None
    assert res.records[1]["history"] == []
    for rec in (res.records[0], res.records[2]):
        assert set(rec) >= RECORD_KEYS, RECORD_KEYS - set(rec)
        assert rec["n_images"] == 12 and rec["clean_acc"] == 1.0 and isinstance(rec["converged"], bool)
        assert len(rec["history"]) == 2 and all(set(h) >= HISTORY_KEYS for h in rec["history"])
        assert [h["step"] for h in rec["history"]] == [5, 10]
        assert 0 <= rec["min"] <= rec["mean"] <= 1 and 0 <= rec["support"] <= 1


def test_a_run_capped_by_max_steps_has_not_converged():
    net, z, y = _data()
    res = sm.fit_shared_masks(net, z, y, [torch.arange(24)], _cfg(max_steps=23, patience=100))
    rec = res.records[0]
    assert rec["converged"] is False and rec["steps"] == 23
    assert [h["step"] for h in rec["history"]] == [5, 10, 15, 20, 23]  # the cap is always checked


def test_no_sparser_mask_than_the_identity_is_no_result():
    """A tiny lr leaves the mask at ones: the fit stops on the plateau (after lr_cuts restarts) long
    before the cap, but with nothing sparser than the identity it has not converged."""
    net, z, y = _data()
    res = sm.fit_shared_masks(net, z, y, [torch.arange(24)], _cfg(lr=1e-12, max_steps=500, patience=2, lr_cuts=1))
    rec = res.records[0]
    assert rec["converged"] is False and rec["steps"] == 20  # 2 checks, a restart, 2 checks
    assert torch.equal(res.masks[0], torch.ones(28, 15)) and rec["mean"] == 1.0


def test_constrained_fit_converges_to_a_sparse_mask_that_meets_the_rule():
    net, z, y = _data()
    groups = [torch.arange(24), torch.arange(0, 24, 2)]
    # 4 images a step (half the work of 8; means 0.38 and 0.34 here, 0.23 and 0.08 with 8): patience 8 is needed,
    # the 24-image group sits near 0.6 for 4-6 checks before it sparsifies further
    cfg = _cfg(lr=0.02, batch_size=4, max_steps=600, patience=8, lr_cuts=2, acc_ratio=0.9, fast_net=False)
    res = sm.fit_shared_masks(net, z, y, groups, cfg)
    for g, rec in zip(groups, res.records):
        assert rec["converged"] is True and rec["steps"] < cfg.max_steps
        assert rec["mean"] < 0.5
    for k, (g, rec) in enumerate(zip(groups, res.records)):
        mask = res.masks[k]
        # the rule, recounted: masked correct >= acc_ratio x clean correct (rounded up)
        assert _correct(net, z[g], y[g], mask) >= sm.min_correct(_correct(net, z[g], y[g]), cfg.acc_ratio)
        assert rec["masked_acc"] == _correct(net, z[g], y[g], mask) / len(g)
        assert rec["mean"] == pytest.approx(Rfft(28, 28).sparsity(mask).item(), abs=1e-6)
        assert rec["min"] == mask.min().item() and rec["min"] == 0.0  # no floor: pruned to exactly 0
        # the path: lam x lam_factor after a check that met the rule, / otherwise; lr halved at the restart
        hist = rec["history"]
        for a, b in zip(hist, hist[1:]):
            assert b["lam"] == pytest.approx(a["lam"] * cfg.lam_factor ** (1 if a["met"] else -1), rel=1e-5)
        assert rec["lam"] == pytest.approx(hist[-1]["lam"] * cfg.lam_factor ** (1 if hist[-1]["met"] else -1),
                                           rel=1e-5)
        assert any(h["met"] for h in hist) and not all(h["met"] for h in hist)  # it found the boundary
        lrs = [h["lr"] for h in hist]  # lr_cuts restarts, each from the sparsest mask with half the lr
        assert sorted(set(lrs), reverse=True) == pytest.approx([cfg.lr, cfg.lr / 2, cfg.lr / 4])
        assert lrs == sorted(lrs, reverse=True)


def test_fixed_method_keeps_lam_and_follows_one_cycle():
    net, z, y = _data()
    cfg = _cfg(method="fixed", max_steps=30, patience=100)
    rec = sm.fit_shared_masks(net, z, y, [torch.arange(24)], cfg).records[0]
    assert len(rec["history"]) == 6 and rec["lam"] == pytest.approx(cfg.lam)
    assert all(h["lam"] == pytest.approx(cfg.lam) for h in rec["history"])
    assert [h["lr"] for h in rec["history"]] == pytest.approx(
        [one_cycle_lr(h["step"], 30, cfg.lr, cfg.pct_start) for h in rec["history"]])
    # the constrained method, same start, moves lam
    rec = sm.fit_shared_masks(net, z, y, [torch.arange(24)], dataclasses.replace(cfg, method="constrained")).records[0]
    assert len({round(h["lam"], 9) for h in rec["history"]}) > 1


def test_each_group_is_scored_on_its_own_images():
    """The records' sizes and clean accuracies are those of each group's own images."""
    net, z, y = _data()
    y = y.clone()
    y[:6] = (y[:6] + 1) % 4  # the first 6 images are misclassified: clean accuracy 0 on them
    res = sm.fit_shared_masks(net, z, y, [torch.arange(6), torch.arange(6, 24)], _cfg(max_steps=10))
    assert [r["n_images"] for r in res.records] == [6, 18]
    assert [r["clean_acc"] for r in res.records] == [0.0, 1.0]


def test_fit_leaves_the_net_untouched():
    net, z, y = _data(8)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sm.fit_shared_masks(net, z, y, [torch.arange(8)], _cfg(max_steps=5))
    assert net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_prune_keeps_the_rule_and_only_zeroes_entries():
    net, z, y = _data(32)
    torch.manual_seed(3)
    mask = 0.5 + 0.5 * torch.rand(28, 15)
    cfg = _cfg()
    correct = _correct(net, z, y, mask)
    for need in (correct, correct - 3, 0):
        pruned = sm.prune(net, z, y, mask, need, cfg)
        changed = pruned != mask
        assert (pruned[changed] == 0).all()  # only zeroes
        assert _correct(net, z, y, pruned) >= need  # never breaks the rule
        if need == 0:
            assert changed.float().mean() > 0.9  # with nothing to keep, nearly everything goes
    # a rule the mask itself misses: the mask comes back unchanged
    assert torch.equal(sm.prune(net, z, y, mask, len(z) + 1, cfg), mask)


def test_prune_spends_no_forward_pass_on_a_threshold_that_removes_nothing(monkeypatch):
    """A sparse mask's exact zeros fill its lower quantiles: thresholds there leave it unchanged, and the
    fit already found it to meet the rule, so those rounds run no forward pass (and give the same answer)."""
    net, z, y = _data(32)
    torch.manual_seed(3)
    mask = torch.rand(28, 15) * (torch.rand(28, 15) < 0.1)  # about 90 % exact zeros
    cfg, calls, need = _cfg(), [], _correct(net, z, y, mask)
    counted = sm.score_rule
    monkeypatch.setattr(sm, "score_rule", lambda *a, **k: calls.append(1) or counted(*a, **k))
    pruned = sm.prune(net, z, y, mask, need, cfg, rounds=8)
    assert 0 < len(calls) <= 6  # the first rounds (median, 3rd quartile) threshold at 0: no pass
    assert _correct(net, z, y, pruned) >= need and (pruned[pruned != mask] == 0).all()


def test_score_rule_stops_once_the_verdict_is_settled_and_agrees_with_scoring_all():
    net, z, y = _data(64)
    torch.manual_seed(4)
    early = set()
    for mask in (0.3 * torch.rand(28, 15), torch.rand(28, 15) * (torch.rand(28, 15) < 0.05)):
        wrong = len(z) - _correct(net, z, y, mask)
        assert wrong > 0  # each mask loses some images here, so that stopping early can happen
        for allowed in (0, wrong - 1, wrong, len(z)):
            correct, scored, ce = sm.score_rule(net, z, y, mask, allowed, batch_size=8)
            assert (scored - correct <= allowed) == (wrong <= allowed)  # the rule's verdict
            assert len(ce) == scored and (scored % 8 == 0 or scored == len(z))
            if scored < len(z):  # stopped at the first batch that settled it: missed, or held whatever the rest give
                before = scored - 8
                right_before = _correct(net, z[:before], y[:before], mask)
                missed = scored - correct > allowed >= before - right_before
                held = correct >= len(z) - allowed and (before == 0 or right_before < len(z) - allowed)
                assert missed != held, (scored, correct, allowed, before, right_before, len(z))
                early.add("missed" if missed else "held")
            masked = Rfft(28, 28).apply(z[:scored], mask)
            ref = torch.nn.functional.cross_entropy(net(masked), y[:scored], reduction="none")
            assert torch.allclose(ce, ref, atol=1e-5)
    assert early == {"missed", "held"}  # both ways of stopping early were exercised


def test_early_stopped_checks_change_nothing_but_the_work(monkeypatch):
    """The fit with checks that stop once their verdict is settled (missed, or held whatever the rest give) gives
    the same masks, verdicts and steps, bit for bit, as with checks that score every image (in the same order),
    and scores fewer images."""
    net, z_all, y_all = _planted(28, DEFAULT_BAND)
    z, y = z_all[-128:], y_all[-128:]
    groups = [torch.arange(128)]
    cfg = sm.SharedMaskConfig(**{**PLANTED_CFG, "max_steps": 80, "check_every": 4, "eval_batch_size": 4,
                                 "lr": 0.05, "lam_factor": 1.5, "acc_ratio": 0.95})  # at the rule's boundary
    early = sm.fit_shared_masks(net, z, y, groups, cfg)                   # within 80 steps; met checks can settle
    def full_scan(net, z, y, mask, allowed, par, batch_size):
        with torch.no_grad():
            logits = torch.cat([net(par.apply(z[s], mask)) for s in sm.batches(len(z), batch_size)])
        return int((logits.argmax(dim=1) == y).sum()), len(z), F.cross_entropy(logits, y, reduction="none")

    monkeypatch.setattr(sm, "score_rule", full_scan)
    full = sm.fit_shared_masks(net, z, y, groups, cfg)
    assert torch.equal(early.masks, full.masks)
    for a, b in zip(early.records, full.records):
        assert [h["met"] for h in a["history"]] == [h["met"] for h in b["history"]]
        assert a["steps"] == b["steps"] and a["masked_acc"] == b["masked_acc"]
    scored = [[h["scored"] for h in r["history"]] for r in (early.records + full.records)]
    assert sum(scored[0]) < sum(scored[1])
    missed = [h for h in early.records[0]["history"] if not h["met"]]
    assert missed and all((h["masked_acc"] is None) == (h["scored"] < 128) for h in early.records[0]["history"])
    assert any(h["met"] and h["scored"] < 128 for h in early.records[0]["history"])  # a met check stopped early


# ---- ground truth: the planted band ----------------------------------------------------------

@functools.cache
def _planted(size: int, band: PlantedBand, n: int = 512) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """small_cnn trained for 2 epochs on ``n`` planted images (512: about 2 s on one core); eval-mode net,
    normalised images (n, 1, size, size) and labels (n,)."""
    torch.manual_seed(0)
    x, y = make_planted(n, size, 4, seed=0, band=band)
    model = build_model("small_cnn", 1, 4, size, [0.5], [0.25])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    z = model.normalize(to_float(x))
    for _ in range(2):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(model.net(z[idx]), y[idx]).backward()
            opt.step()
    return model.net.eval(), z, y


# masks.dataset of the default profile (params.yaml), but with the study's rule 0.99 (the default's 0.9 lets a mask
# drop more of the band; 0.99 is the stricter test of where it keeps its mass)
PLANTED_CFG = dict(lam=0.2, lam_factor=1.2, lr=0.02, lr_cuts=1, batch_size=16, max_steps=2000, check_every=10,
                   acc_ratio=0.99, tol=0.002, patience=8)


DEFAULT_BAND, OTHER_BAND = PlantedBand(), PlantedBand(r_min=10.0, r_max=13.0, angle=0.3)


@pytest.mark.parametrize("size,band,other", [
    (28, DEFAULT_BAND, OTHER_BAND),   # the dataset's default band
    (32, OTHER_BAND, DEFAULT_BAND),   # another radius, orientation and image size
])
def test_dataset_mask_finds_the_planted_band(size, band, other):
    """About 10 s each: a converged dataset mask (the default profile's settings) on 128 planted images
    puts >= 80% of its L1 mass (zero frequency excluded, full plane) inside the band and keeps the accuracy
    (it puts all but < 2 % there: the margin is the band's, not the image count's)."""
    net, z_all, y_all = _planted(size, band)
    z, y = z_all[:128], y_all[:128]
    clean = _correct(net, z, y)
    assert clean > 0.9 * len(z)
    res = sm.fit_shared_masks(net, z, y, [torch.arange(len(z))], sm.SharedMaskConfig(**PLANTED_CFG))
    mask, rec = res.masks[0], res.records[0]
    assert rec["converged"] is True
    assert _correct(net, z, y, mask) >= sm.min_correct(clean, PLANTED_CFG["acc_ratio"])
    full = Rfft(size, size).to_full(mask).clone()
    full[0, 0] = 0  # the zero-frequency bin carries the mean, not the class
    inside = planted_band(size, full=True, band=band)
    share = (full[inside].sum() / full.sum()).item()
    assert share >= 0.8, (share, rec["mean"], rec["support"])
    # the test can tell the bands apart: little mass where the other band would be
    elsewhere = planted_band(size, full=True, band=other) & ~inside
    assert (full[elsewhere].sum() / full.sum()).item() < 0.1


def test_dataset_mask_does_not_depend_on_the_thread_count():
    """Issue 10, item 5: the same fit (the default profile's settings) with 1 and 2 threads gives
    full-plane means within 0.03. On a planted net whose mask is far from both 0 and 1 (a wide band,
    radius 2-12: mean ~0.17) and whose fit is well determined (seeds 0-2 give means 0.166-0.171), so
    that a difference is the thread count's. The net is trained on 1024 images and the fit has 256: with
    512 and 128 (or the old 32 images a step and 2 lr cuts) the seed alone moved the mean between 0.15 and
    0.46. A weaker band (amplitude 0.12, clean accuracy 0.75-0.96) is no test: there the rule lets the mask
    lose 1 or 2 of 256 images, and the seed alone moves the converged mean between 0.16 and 0.83."""
    band = PlantedBand(r_min=2.0, r_max=12.0, jitter=0.3, amplitude=0.25, noise=0.2)
    net, z_all, y_all = _planted(28, band, 1024)
    z, y = z_all[-256:], y_all[-256:]
    cfg = sm.SharedMaskConfig(**PLANTED_CFG)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(sm.fit_shared_masks(net, z, y, [torch.arange(len(z))], cfg).records[0])
    finally:
        torch.set_num_threads(threads)
    means = [r["mean"] for r in results]
    assert all(r["met"] and r["converged"] for r in results)
    assert 0.1 < means[0] < 0.95, means  # a mask with room to differ
    assert abs(means[0] - means[1]) <= 0.03, means


class Halving(fit_methods.FitMethod):
    """A method defined in this test: lambda halved after every check, constant lr, stop at the first plateau."""

    name = "halving"

    def after_check(self, fit, met, cfg):
        fit.lam = fit.lam / 2


@pytest.fixture
def halving():
    """:class:`Halving` registered for one test, then removed."""
    method = fit_methods.register_method(Halving())
    yield method
    del fit_methods.METHODS[method.name]


def test_a_new_fit_method_is_one_class_and_one_entry(halving):
    """Registered, a method is a valid ``method`` and drives the fit: its lambda path, the base's constant lr
    (no warm-up) and its stop at the first plateau."""
    net, z, y = _data()
    cfg = _cfg(method="halving", max_steps=60, patience=2, lr_cuts=3)
    assert cfg.fit_method is halving and "halving" in fit_methods.METHODS
    rec = sm.fit_shared_masks(net, z, y, [torch.arange(24)], cfg).records[0]
    hist = rec["history"]
    assert [h["lam"] for h in hist] == pytest.approx([cfg.lam / 2 ** k for k in range(len(hist))])
    assert rec["lam"] == pytest.approx(cfg.lam / 2 ** len(hist))
    assert all(h["lr"] == pytest.approx(cfg.lr) for h in hist)  # no OneCycle, no lr cut
    with pytest.raises(ValueError, match="new name"):
        fit_methods.register_method(Halving())
