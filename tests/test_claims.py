"""Tests of freqbias.claims: the verdict rule, and claims on synthetic masks and outcomes with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqbias import bands as bd
from freqbias import claims as cl
from freqbias import probe as pb
from freqbias import stage_aggregate as ag
from freqbias.claim_registry import by_key
from freqbias.na import NA
from freqbias.parametrisation import Rfft

H = W = 28

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = ag.AggregateConfig(n_boot=300, probe_max_iter=100)


# ----------------------------------------------------------------------------- verdict


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
    assert cl.verdict(est, lo, hi, thr, direction) == expected


def test_verdict_rejects_bad_input():
    for args in [(0.0, 0.1, 0.2), (float("nan"), 0.0, 1.0), (0.5, 0.0, float("inf"))]:
        with pytest.raises(ValueError):
            cl.verdict(*args)
    with pytest.raises(ValueError):
        cl.verdict(0.5, 0.0, 1.0, direction=">=")


def test_part_and_combined_verdicts():
    assert cl.part("s", 0.5, 0.2, 0.8, 0.0, ">")["verdict"] == "holds"
    assert cl.part("s", 0.5, -0.2, 0.8, 0.0, ">")["verdict"] == "inconclusive"
    assert cl.part("s", -0.5, -0.8, 0.0, 0.0, ">")["verdict"] == "does not hold"
    assert cl.part("s", math.nan, 0.0, 1.0, 0.0, ">")["verdict"] == "not measured"
    widened = cl.part("s", 5.0, 0.1, 3.0, 0.0, ">")            # a percentile interval that misses its estimate
    assert (widened["lo"], widened["hi"], widened["verdict"]) == (0.1, 5.0, "holds")
    assert cl.Verdict.combine(["holds", "holds"]) == "holds"
    assert cl.Verdict.combine(["holds", "inconclusive"]) == "inconclusive"
    assert cl.Verdict.combine(["inconclusive", "does not hold"]) == "does not hold"
    assert cl.Verdict.combine(["holds", "not measured"]) == "inconclusive"
    assert cl.Verdict.combine([]) == cl.Verdict.combine(["not measured"]) == "not measured"
    row = cl.claim_row("complement", [cl.part("a", 0.5, 0.2, 0.8, 0.0, ">"), cl.part("b", 0.1, -0.1, 0.3, 0.0, ">")])
    assert row["verdict"] == "inconclusive" and row["statistic"] == "a"
    assert row["note"] == "Not settled by this run (interval contains the threshold): b."
    assert row["study"] == by_key("complement").study


def test_sign_changes_on_a_circle():
    assert cl.sign_changes(np.array([1.0, -1.0, 1.0, -1.0])) == 4
    assert cl.sign_changes(np.array([1.0, 0.0, 2.0])) == 0
    assert cl.sign_changes(np.array([1.0, 1.0, -1.0, -1.0])) == 2


# ----------------------------------------------------------------------------- synthetic masks with a known answer


def _low_disc(radius: float) -> torch.Tensor:
    """rfft-layout bool (H, W//2+1): frequencies within ``radius`` of zero."""
    ky = torch.fft.fftfreq(H, 1 / H)[:, None]
    kx = torch.arange(W // 2 + 1)[None, :]
    return (ky ** 2 + kx ** 2).sqrt() <= radius


def _energies(masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r, a = bd.band_profiles(masks.double(), Rfft(H, W), CFG.radial_bands, CFG.angular_bands)
    return r.numpy(), a.numpy()


def _masks(n: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, H, W // 2 + 1, generator=g)


def test_more_low_band_energy_in_A_makes_claims_2_and_7_hold():
    n_masks = _masks()
    a_masks = torch.where(_low_disc(6), (n_masks * 2.5).clamp(max=1), n_masks * 0.6)
    radial = {"N": [_energies(n_masks)[0]], "A": [_energies(a_masks)[0]]}
    c2, c7 = cl.claim_radial({"masks": radial}, CFG), cl.claim_low_share(radial, CFG)
    assert c2["verdict"] == "holds" and [p["verdict"] for p in c2["parts"]] == ["holds", "holds"]
    assert c2["estimate"] > 0 and c2["parts"][1]["estimate"] < 0 and c2["note"] == ""
    assert c7["verdict"] == "holds" and c7["estimate"] == 1.0


def test_identical_masks_do_not_show_the_bias():
    masks = _masks()
    radial, angular = _energies(masks)
    rad, ang = {"N": [radial], "A": [radial.copy()]}, {"N": [angular], "A": [angular.copy()]}
    c2 = cl.claim_radial({"masks": rad}, CFG)
    assert c2["verdict"] == "does not hold" and (c2["estimate"], c2["lo"], c2["hi"]) == (0, 0, 0)
    assert c2["note"].startswith("This run disagrees with the study: A - N mean energy over low rings")
    assert cl.claim_low_share(rad, CFG)["verdict"] == "does not hold"      # ties are not "greater"
    assert cl.claim_angular({"masks": ang}, CFG)["verdict"] == "does not hold"        # a flat (zero) curve has range 0


def test_noise_alone_does_not_make_claim_2_hold():
    radial = {"N": [_energies(_masks(seed=1))[0]], "A": [_energies(_masks(seed=2))[0]]}
    assert cl.claim_radial({"masks": radial}, CFG)["verdict"] != "holds"


def test_direction_dependent_masks_make_claim_3_hold():
    n_masks = _masks()
    ky = torch.fft.fftfreq(H, 1 / H)[:, None]
    horizontal = (ky.abs() <= 1).expand(H, W // 2 + 1)            # frequencies along the kx axis
    a_masks = torch.where(horizontal, torch.ones_like(n_masks), n_masks * 0.5)
    angular = {"N": [_energies(n_masks)[1]], "A": [_energies(a_masks)[1]]}
    c3 = cl.claim_angular({"masks": angular}, CFG)
    assert c3["verdict"] == "holds", c3
    assert c3["info"]["sign_changes"] >= 2
    est, lo, hi = c3["estimate"], c3["lo"], c3["hi"]
    assert 0 < lo <= est <= hi


def _angular_run(rng: np.random.Generator, amplitude: float, seeds: int = 3, folds: int = 4, between: float = 0.02,
                 within: float = 0.02) -> dict:
    """Angular energies of one simulated run over 16 wedges (360 degrees, point symmetric: wedge w = w + 8): A - N =
    ``amplitude`` x cos(2 theta) (flat when 0) + a per-seed, per-wedge effect (sd ``between``) + a per-fold one."""
    theta = (np.arange(16) + 0.5) * 2 * np.pi / 16
    angular = {"N": [], "A": []}
    for _ in range(seeds):
        sym = lambda x: np.concatenate([x, x], axis=-1)   # noqa: E731  (the same energy at theta and theta + 180)
        n = rng.uniform(0.2, 0.3, (folds, 16))
        angular["N"].append(n)
        angular["A"].append(n + amplitude * np.cos(2 * theta) + sym(rng.normal(0, between, 8))
                            + sym(rng.normal(0, within, (folds, 8))))
    return angular


def test_claim_3_on_a_flat_difference_holds_in_at_most_5_percent_of_runs():
    """A flat A - N curve (seed and fold noise only): the claim holds in <= 5 % of simulated runs, and the "not flat"
    part, a one-sided test at 2.5 %, in <= 6 %. 300 runs: Monte Carlo standard error about 1 point at 2.5-5 %."""
    rng = np.random.default_rng(0)
    runs = [cl.claim_angular({"folds": _angular_run(rng, 0.0)}, CFG) for _ in range(300)]
    held = np.mean([r["verdict"] == "holds" for r in runs])
    not_flat = np.mean([r["parts"][0]["verdict"] == "holds" for r in runs])
    assert held <= 0.05 and not_flat <= 0.06, (held, not_flat)
    c3 = runs[0]
    assert c3["info"]["distinct_wedges"] == 8 and len(c3["info"]["curve"].split("; ")) == 8
    assert len(c3["info"]["tested_wedges (top / bottom per unit)"].split(", ")) == 3
    assert "of 8 wedges over 180 degrees" in c3["statistic"]
    assert all("per_seed" in p and p["seeds"] == 3 for p in c3["parts"])


def test_claim_3_on_a_planted_oriented_difference_holds():
    """A - N = 0.25 cos(2 theta) (more energy along one axis, less along the other) over the same noise: holds in
    every one of 20 runs (at 20 runs a true rate under 86 % would show a miss with probability > 95 %)."""
    rng = np.random.default_rng(1)
    runs = [cl.claim_angular({"folds": _angular_run(rng, 0.25)}, CFG) for _ in range(20)]
    assert all(r["verdict"] == "holds" for r in runs), [r["note"] for r in runs if r["verdict"] != "holds"]
    assert np.median([r["info"]["sign_changes"] for r in runs]) == 2   # each change counted once on the half-plane


def test_half_plane_folds_point_symmetric_wedges():
    e = np.arange(16, dtype=float)[None]
    assert cl.half_plane(e).tolist() == [[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]]
    with pytest.raises(ValueError):
        cl.half_plane(np.ones((2, 15)))
    odd = cl.claim_angular({"folds": {"N": [np.ones((4, 15))], "A": [np.ones((4, 15))]}}, CFG)
    assert odd["verdict"] == "not measured" and "odd number of wedges" in odd["note"]


def test_claim_4_signs_and_sizes():
    n_masks = _masks()
    low = _low_disc(6)
    a_masks = torch.where(low, (n_masks * 2).clamp(max=1), n_masks * 0.7)        # A: more low energy
    r_masks = torch.where(low, n_masks * 0.4, n_masks)                             # R: less (opposite sign)
    s_masks = torch.where(low, (n_masks * 1.3).clamp(max=1), n_masks * 0.95)       # S: like A, smaller
    t_masks = n_masks + 0.01                                                       # T: barely different
    radial = {v: [_energies(m)[0]] for v, m in (("N", n_masks), ("A", a_masks), ("R", r_masks),
                                                  ("S", s_masks), ("T", t_masks))}
    c4 = cl.claim_augmentations({"masks": radial}, CFG)
    assert [p["verdict"] for p in c4["parts"]] == ["holds"] * 4 and c4["verdict"] == "holds"
    c4_missing = cl.claim_augmentations({"masks": {k: radial[k] for k in ("N", "A", "R")}}, CFG)
    assert len(c4_missing["parts"]) == 1 and "T, S not trained" in c4_missing["note"]


def test_claims_pool_several_seeds():
    low = _low_disc(6)
    per = [(_masks(seed=s), None) for s in range(3)]
    radial = {"N": [], "A": []}
    for n_masks, _ in per:
        radial["N"].append(_energies(n_masks)[0])
        radial["A"].append(_energies(torch.where(low, (n_masks * 2).clamp(max=1), n_masks))[0])
    c2 = cl.claim_radial({"masks": radial}, CFG)
    assert c2["verdict"] == "holds" and c2["secondary"] == []


def test_the_first_source_decides_and_the_second_is_a_labelled_line():
    """Claims 2-4 take energies by source: the dataset masks' folds decide the verdict, the single-image
    masks are reported beside it."""
    n_masks = _masks()
    a_masks = torch.where(_low_disc(6), (n_masks * 2.5).clamp(max=1), n_masks * 0.6)
    shows = {"N": [_energies(n_masks)[0]], "A": [_energies(a_masks)[0]]}
    flat = {"N": [_energies(n_masks)[0]], "A": [_energies(n_masks)[0].copy()]}
    c2 = cl.claim_radial({"dataset masks, 4 folds": flat, "single-image masks": shows}, CFG)
    assert c2["verdict"] == "does not hold" and all("(dataset masks, 4 folds)" in p["statistic"] for p in c2["parts"])
    assert [p["verdict"] for p in c2["secondary"]] == ["holds", "holds"]
    assert all("(single-image masks)" in p["statistic"] for p in c2["secondary"])
    swapped = cl.claim_radial({"single-image masks": shows, "dataset masks, 4 folds": flat}, CFG)
    assert swapped["verdict"] == "holds"


# ----------------------------------------------------------------------------- other claims


def test_claim_1_accuracy_ratio():
    """Per variant, masked / clean on the held-out test split with a t interval over seeds (val beside); the claim
    holds when every variant's part holds."""
    rng = np.random.default_rng(0)
    models = [f"{v}-s{s}" for v in "NA" for s in range(3)]
    clean = (rng.random((400, 6)) < 0.8).astype(float)
    same = cl.claim_accuracy({"val": (clean, clean), "test": (clean, clean)}, CFG, models)
    assert same["verdict"] == "holds" and same["estimate"] == 1.0 and len(same["parts"]) == 2
    assert [p["statistic"] for p in same["parts"]] == ["N: masked / clean accuracy (test, held out)",
                                                       "A: masked / clean accuracy (test, held out)"]
    assert [p["seeds"] for p in same["parts"]] == [3, 3] and len(same["secondary"]) == 2
    assert "intersection-union" in same["info"]["multiplicity"]
    worse = clean.copy()
    worse[:150, 3:] = 0                                   # A loses many correct answers under its mask, every seed
    c1 = cl.claim_accuracy({"val": (clean, clean), "test": (clean, worse)}, CFG, models)
    assert c1["verdict"] == "does not hold" and [p["verdict"] for p in c1["parts"]] == ["holds", "does not hold"]
    assert c1["parts"][1]["estimate"] < 0.9 and [p["verdict"] for p in c1["secondary"]] == ["holds", "holds"]
    one_seed = worse.copy()
    one_seed[:, 4] = clean[:, 4]                          # A fine in seed 1 only: 3 seeds cannot tell
    mixed = cl.claim_accuracy({"test": (clean, one_seed)}, CFG, models)
    assert mixed["parts"][1]["verdict"] == "inconclusive" and mixed["parts"][1]["seeds_holding"] == 1
    unnamed = cl.claim_accuracy({"test": (clean[:, :2], clean[:, :2])}, CFG)   # no names: each model its own variant
    assert len(unnamed["parts"]) == 2 and unnamed["verdict"] == "holds"


def test_claims_5_and_8_from_outcomes():
    n = 100
    good = {"masked": np.ones(n), "complement": np.r_[np.ones(20), np.zeros(80)], "pgd": np.zeros(n),
            "restored": np.r_[np.ones(60), np.zeros(40)], "restored_binary": np.ones(n),
            "ssim": np.full(n, 0.2), "corr": np.full(n, 0.3)}
    assert cl.claim_complement([good], CFG)["verdict"] == "holds"
    c8 = cl.claim_texture([good], CFG)
    assert c8["verdict"] == "holds" and c8["info"]["pixel_correlation"] == pytest.approx(0.3)
    bad = {**good, "complement": np.ones(n), "ssim": np.full(n, 0.9)}
    assert cl.claim_complement([bad], CFG)["verdict"] == "does not hold"
    assert cl.claim_texture([bad], CFG)["verdict"] == "does not hold"


def _probe_on(features: np.ndarray, labels: np.ndarray) -> dict:
    return pb.linear_probe(features, labels, CFG.probe_folds, 0, CFG.probe_weight_decay, 100, permutations=3)


def test_probe_on_random_masks_stays_at_chance():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 160)
    result = _probe_on(_masks(160).flatten(1).numpy(), labels)
    assert abs(result["permuted_test_acc"] - 0.25) < 0.2 and abs(result["test_acc"] - 0.25) < 0.2
    assert cl.claim_probe({"N": [result]}, CFG)["verdict"] != "holds"


def test_probe_on_class_carrying_masks_beats_the_permuted_control():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 160)
    masks = _masks(160).flatten(1).numpy()
    for k in range(4):                                    # each class keeps its own block of frequencies
        masks[labels == k, 10 * k:10 * k + 10] += 0.5
    result = _probe_on(masks, labels)
    c6 = cl.claim_probe({"N": [result], "A": [NA("too few images per class")]}, CFG)
    assert c6["parts"][0]["verdict"] == "holds" and result["test_acc"] > 0.8
    assert c6["verdict"] == "holds" and "Not probed: A (too few images per class)." in c6["note"]


def test_an_inconclusive_part_says_how_many_seeds_would_settle_it():
    """At the run's own between- and within-seed variances (read back from the per-seed intervals) and the estimate
    as measured: the fewest seeds whose t interval would lie clear of the threshold (or within +- delta)."""
    from freqbias.bootstrap import nested_interval, seeds_to_settle, t_quantile

    rng = np.random.default_rng(0)
    groups = [rng.normal(m, 0.02, (4, 1)) for m in (0.005, 0.03, 0.015)]   # 3 seeds x 4 folds
    est = nested_interval(groups, lambda m: float(m[0]), CFG.alpha)
    p = cl.judge("x", est, 0.0, ">", delta=0.001)
    assert p["verdict"] == "inconclusive" and p["alpha"] == CFG.alpha
    s, var = p["seeds_to_settle"], p["variance_between"] + p["variance_within"]
    assert s > 3 and p["variance_within"] > 0
    assert t_quantile(1 - CFG.alpha / 2, s - 1) * np.sqrt(var / s) < p["estimate"]            # settles at s
    assert t_quantile(1 - CFG.alpha / 2, s - 2) * np.sqrt(var / (s - 1)) >= p["estimate"]     # not one seed fewer
    assert seeds_to_settle(0.0, 0.0, None, 1.0, 1.0, 0.05) is None                            # no effect, no delta
    assert seeds_to_settle(0.0, 0.0, 0.5, 1.0, 1.0, 0.05) == 34                               # negligible at 34
    assert "seeds_to_settle" not in cl.judge("x", est, 0.0, ">", delta=1.0)                   # already settled
