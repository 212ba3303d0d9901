"""The hand-written statistics against reference implementations (the ``dev`` extra: scipy, scikit-learn,
scikit-image), each to a stated tolerance, on data where the plausible wrong variants differ by more.

- bootstrap.bootstrap_ci: ``scipy.stats.bootstrap(method="percentile")``; both are Monte Carlo, so they
  agree to a tolerance of 1.5% of the interval's width (40000 resamples each: about 3 Monte Carlo
  standard errors), while the basic interval or a 90% one differ by several tolerances;
- baselines.heatmap_mask_correlation (Spearman): ``scipy.stats.spearmanr``, to 1e-12, on data with many
  ties (ordinal instead of average ranks would differ);
- measures.ssim: ``skimage.metrics.structural_similarity`` with a uniform 7 x 7 window and population
  (biased) variances (``gaussian_weights=False, use_sample_covariance=False``), to 1e-10; scikit-image's
  default (sample covariance) and the Gaussian-window SSIM of Wang et al. differ on the same images;
- probe.fit_logistic: ``sklearn.linear_model.LogisticRegression(C=1 / (n * weight_decay))`` (mean loss +
  weight_decay / 2 ||W||^2 is sklearn's C * summed loss + 1/2 ||W||^2 divided by C n), to 1e-5 in the
  probabilities and 1e-4 in the weights; and the probe's out-of-fold logits against sklearn fitted on the
  same folds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from skimage.metrics import structural_similarity
from sklearn.linear_model import LogisticRegression

from freqbias import baselines as bl
from freqbias import bootstrap as bs
from freqbias import measures as ms
from freqbias import probe as pb

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_percentile_interval_matches_scipy():
    x = np.random.default_rng(3).exponential(1.0, 12)             # few, skewed samples: the variants differ
    est, lo, hi = bs.bootstrap_ci(x, n_boot=40000, alpha=0.05, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=40000, method="percentile", confidence_level=0.95,
                          random_state=1).confidence_interval
    tol = 0.015 * (hi - lo)
    assert est == pytest.approx(x.mean(), rel=1e-12)
    assert lo == pytest.approx(ref.low, abs=tol) and hi == pytest.approx(ref.high, abs=tol)
    basic = stats.bootstrap((x,), np.mean, n_resamples=40000, method="basic", random_state=1).confidence_interval
    narrow = stats.bootstrap((x,), np.mean, n_resamples=40000, method="percentile", confidence_level=0.9,
                             random_state=1).confidence_interval
    assert abs(basic.low - ref.low) > 3 * tol and abs(narrow.low - ref.low) > 3 * tol   # the test tells them apart


def test_bootstrap_per_column_matches_scipy():
    """Values (n, k): one interval per column (e.g. per band), as scipy's ``axis=0``."""
    x = np.random.default_rng(4).exponential(1.0, (15, 3)) * np.array([1.0, 3.0, 0.2])
    est, lo, hi = bs.bootstrap_ci(x, n_boot=40000, seed=0)
    ref = stats.bootstrap((x,), np.mean, axis=0, n_resamples=40000, method="percentile",
                          random_state=1).confidence_interval
    tol = 0.015 * (hi - lo)
    np.testing.assert_allclose(est, x.mean(axis=0), rtol=1e-12)
    assert (np.abs(lo - ref.low) < tol).all() and (np.abs(hi - ref.high) < tol).all()


# ----------------------------------------------------------------------------- Spearman


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(5)
    h, w = 12, 10
    heat = rng.integers(0, 4, (h, w)).astype(float) / 4         # an error rate with many ties
    mask = torch.from_numpy(rng.integers(0, 3, (h, w)) / 2 + 0.1 * heat)    # ties, and related to the heat map
    rho = bl.heatmap_mask_correlation(heat, mask)                # every frequency: the grid is the whole plane
    assert rho == pytest.approx(stats.spearmanr(heat.ravel(), mask.numpy().ravel()).statistic, abs=1e-12)
    fy, fx = torch.tensor([-6, -2, 0, 3, 5]), torch.tensor([-5, -1, 0, 4])   # a sub-grid of frequencies
    sub = heat[:5, :4]
    sampled = mask.numpy()[(fy + h // 2)[:, None], (fx + w // 2)[None, :]]
    rho = bl.heatmap_mask_correlation(sub, mask, freqs=(fy, fx))
    assert rho == pytest.approx(stats.spearmanr(sub.ravel(), sampled.ravel()).statistic, abs=1e-12)
    ordinal = stats.pearsonr(stats.rankdata(heat.ravel(), "ordinal"), stats.rankdata(mask.numpy().ravel(),
                                                                                      "ordinal")).statistic
    assert abs(ordinal - bl.heatmap_mask_correlation(heat, mask)) > 1e-3     # ties matter on these data


# ----------------------------------------------------------------------------- SSIM


def _pairs(n: int = 3, c: int = 2, h: int = 20, w: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-contrast images and noisy, shifted copies: SSIM well inside (0, 1), and the constants and the
    variance convention matter."""
    g = torch.Generator().manual_seed(6)
    a = 0.45 + 0.1 * torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
    b = (0.8 * a.roll(1, dims=-1) + 0.1 + 0.05 * torch.rand(n, c, h, w, generator=g, dtype=torch.float64))
    return a, b


def test_ssim_is_skimage_uniform_window_population_variance():
    a, b = _pairs()
    ours = ms.ssim(a, b).numpy()
    ref = [structural_similarity(x.numpy(), y.numpy(), win_size=7, data_range=1.0, channel_axis=0,
                                 gaussian_weights=False, use_sample_covariance=False) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)
    assert 0.05 < ours.min() and ours.max() < 0.95
    default = [structural_similarity(x.numpy(), y.numpy(), win_size=7, data_range=1.0, channel_axis=0)
               for x, y in zip(a, b)]
    gaussian = [structural_similarity(x.numpy(), y.numpy(), data_range=1.0, channel_axis=0, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False) for x, y in zip(a, b)]
    assert np.abs(ours - default).min() > 1e-4 and np.abs(ours - gaussian).min() > 1e-4   # other variants differ


# ----------------------------------------------------------------------------- logistic regression


def _classes(n: int = 150, d: int = 6, k: int = 3, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes: the penalty matters (the unpenalised fit is far from it)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(0, 1, (k, d))[y] + rng.normal(0, 1.5, (n, d)), y


def _sklearn(x: np.ndarray, y: np.ndarray, weight_decay: float) -> LogisticRegression:
    return LogisticRegression(C=1 / (len(y) * weight_decay), tol=1e-12, max_iter=20000).fit(x, y)


def test_logistic_regression_matches_sklearn_with_the_same_penalty():
    x, y = _classes()
    wd = 0.05
    layer, converged = pb.fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 3, wd, max_iter=1000)
    ref = _sklearn(x, y, wd)
    assert converged
    with torch.no_grad():
        proba = torch.softmax(layer(torch.from_numpy(x)), dim=1).numpy()
        weight, bias = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(proba, ref.predict_proba(x), rtol=0, atol=1e-5)
    np.testing.assert_allclose(weight, ref.coef_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(bias - bias.mean(), ref.intercept_ - ref.intercept_.mean(), rtol=0, atol=1e-4)
    loose = _sklearn(x, y, wd / 10)                                   # the data tell the penalties apart
    assert np.abs(loose.coef_ - ref.coef_).max() > 100 * 1e-4


def test_probe_out_of_fold_logits_match_sklearn_on_the_same_folds():
    x, y = _classes(n=60, d=5, seed=8)
    x = np.clip(0.5 + 0.2 * x, 0, 1)                                  # in [0, 1], like masks
    x[:, -1] = 1e-9 * np.arange(60)                                   # a near-constant column, used as it is
    wd = 0.02
    out = pb.linear_probe(x, y, folds=4, seed=2, weight_decay=wd, max_iter=1000, permutations=0)
    for k in range(4):
        train, test = out["fold"] != k, out["fold"] == k
        ref = _sklearn(x[train], y[train], wd).decision_function(x[test])
        ours = out["test_logits"][test]
        np.testing.assert_allclose(ours - ours.mean(1, keepdims=True), ref - ref.mean(1, keepdims=True),
                                   rtol=0, atol=1e-4)
