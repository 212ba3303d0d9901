"""Tests of freqbias.bootstrap: percentile intervals over images, over seeds and images, over strata."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from freqbias import bootstrap as bs

# ----------------------------------------------------------------------------- bootstrap over images


def test_bootstrap_mean_of_normal_samples():
    rng = np.random.default_rng(1)
    mu, sigma, n = 1.5, 2.0, 400
    values = rng.normal(mu, sigma, n)
    est, lo, hi = bs.bootstrap_ci(values, n_boot=2000, seed=0)
    assert isinstance(est, float) and est == pytest.approx(values.mean())
    assert lo < mu < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * sigma / math.sqrt(n), rel=0.15)
    assert bs.bootstrap_ci(values, n_boot=500, seed=3) == bs.bootstrap_ci(values, n_boot=500, seed=3)


def test_bootstrap_coverage_and_vector_case():
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(100):
        _, lo, hi = bs.bootstrap_ci(rng.normal(0.0, 1.0, 60), n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += lo < 0.0 < hi
    assert 85 <= covered <= 100
    # per-band: (n, k) values, k independent means; alpha widens/narrows the interval
    values = rng.normal([0.0, 5.0, -3.0], [1.0, 0.1, 3.0], size=(300, 3))
    est, lo, hi = bs.bootstrap_ci(values, n_boot=1000)
    assert est.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo < [0.0, 5.0, -3.0]) and np.all(hi > [0.0, 5.0, -3.0])
    assert np.argsort(hi - lo).tolist() == [1, 0, 2]
    _, lo90, hi90 = bs.bootstrap_ci(values, n_boot=1000, alpha=0.1)
    assert np.all(hi90 - lo90 < hi - lo)
    est_t, _, _ = bs.bootstrap_ci(torch.from_numpy(values).T, n_boot=10, axis=1, stat=np.median)
    np.testing.assert_allclose(est_t, np.median(values, axis=0))


# ----------------------------------------------------------------------------- over seeds and strata


def test_cluster_bootstrap_one_group_is_the_image_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=(200, 3))
    ours = bs.cluster_bootstrap([x], None, 500, 0.05, 7)
    ref = bs.bootstrap_ci(x, np.mean, 500, 0.05, 7)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b)
    est, lo, hi = bs.cluster_bootstrap([x[:, 0]], lambda m: 2 * m, 500, 0.05, 7)
    assert isinstance(est, float) and lo < est < hi and abs(est - 2 * x[:, 0].mean()) < 1e-12


def test_cluster_bootstrap_over_seeds_carries_the_seed_to_seed_spread():
    rng = np.random.default_rng(1)
    offsets = [-1.0, 0.0, 1.0, 0.5]                     # seeds disagree far more than images within a seed
    groups = [rng.normal(o, 0.1, size=100) for o in offsets]
    est, lo, hi = bs.cluster_bootstrap(groups, None, 1000, 0.05, 0)
    assert est == pytest.approx(np.mean([g.mean() for g in groups]))
    _, plo, phi = bs.bootstrap_ci(np.concatenate(groups), np.mean, 1000, 0.05, 0)   # seeds ignored
    assert hi - lo > 5 * (phi - plo)                     # the seed level dominates the interval
    assert lo < est < hi and lo > -1.0 and hi < 1.0
    slo, shi = bs.seed_interval([g.mean() for g in groups], 500, 0.05, 0)
    assert slo < est < shi
    assert all(math.isnan(v) for v in bs.seed_interval([groups[0].mean()], 500, 0.05, 0))


def test_strata_bootstrap_resamples_each_stratum():
    a = np.ones((50, 1))
    b = np.r_[np.zeros(25), np.ones(25)][:, None]
    est, lo, hi = bs.strata_bootstrap([a, b], lambda means: float(min(m[0] for m in means)), 500, 0.05, 0)
    assert est == 0.5 and 0.3 < lo < 0.5 < hi < 0.7


def test_defined_estimate_leaves_out_undefined_images_and_says_why_when_none_is_left():
    from freqbias.bootstrap import defined_estimate, finite_rows
    from freqbias.na import NA

    groups = [np.array([1.0, np.nan, 0.0, 1.0]), np.zeros(0), np.array([np.nan])]
    assert [len(g) for g in finite_rows(groups)] == [3]                      # rows with NaN and empty groups dropped
    est, lo, hi = defined_estimate(groups, n_boot=50)
    assert est == pytest.approx(2 / 3) and lo <= est <= hi
    assert defined_estimate([np.zeros(0)], empty="no images")[0] == NA("no images")
    assert defined_estimate([np.array([np.nan])], undefined="all undefined") == (NA("all undefined"),) * 3
