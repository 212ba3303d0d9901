"""Intervals: over the design's levels (seeds, then folds or images within a seed), over strata, over images.

Every helper gives an :data:`Estimate` ``(estimate, lo, hi)``: a statistic and its ``1 - alpha`` interval.
Samples (images, folds or seeds) lie along axis 0; a per-band statistic gives arrays (bands,), a scalar one
floats.

The claims' intervals are **nested** (:func:`nested_interval`): a verdict is about the training recipe, so the
unit of the interval is the top level of the design, the trained network (seed), and the images or folds of a
seed only enter through that seed's value. With S >= 2 seeds the interval is a jackknife-t interval over seeds
(estimate +- t(S - 1) x the jackknife standard error over seeds, which for a mean is the t interval over the
per-seed means: exact coverage for normal seed effects whatever the within-seed design); with one seed the same
over that seed's rows (folds, images). A percentile bootstrap over 4 folds covers about 80 % when nominally
95 %, and resampling images of one network says nothing about another (tests/test_coverage.py simulates the
run's own design). Each nested :class:`Estimate` also carries its per-seed estimates and intervals
(``per_seed``), from which a claim says in how many seeds it holds.

The percentile bootstraps (:func:`bootstrap_ci`, :func:`cluster_bootstrap`, :func:`strata_bootstrap`) remain for
per-model tables over thousands of images, where they cover.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .na import na_estimate


class Estimate(tuple):
    """``(estimate, lo, hi)`` of a statistic, unpackable as a tuple; ``per_seed``: one ``(estimate, lo, hi, n)`` per
    seed, n its folds or images (in the order of the groups given; empty when not computed per seed)."""

    per_seed: tuple
    alpha: float | None = None   # the level 1 - alpha of the intervals, where known (nested_interval)

    def __new__(cls, estimate: Any, lo: Any, hi: Any, per_seed: Sequence[tuple] = ()) -> "Estimate":
        self = super().__new__(cls, (estimate, lo, hi))
        self.per_seed = tuple(tuple(p) for p in per_seed)
        return self

    def __getnewargs__(self) -> tuple:  # pickling (figdata)
        return (*self, self.per_seed)


def _as_out(a: Any) -> Any:
    """A 0-d result as a float, anything else as a float64 array."""
    return float(a) if np.ndim(a) == 0 else np.asarray(a, dtype=np.float64)


def bootstrap_ci(values: np.ndarray | torch.Tensor | Sequence[float],
                 stat: Callable[..., np.ndarray] = np.mean, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0, axis: int = 0) -> tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap: ``(estimate, lo, hi)`` of ``stat`` with a ``1 - alpha`` interval.

    Samples (units) lie along ``axis`` and are resampled with replacement ``n_boot`` times (seeded);
    ``stat(array, axis=axis)`` reduces that axis (``np.mean``, ``np.median``, ``np.nanmean``, ...).
    For values (n,) the three results are floats; for (n, k) (e.g. per band) arrays (k,)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 0 or data.shape[axis] < 1:
        raise ValueError("bootstrap_ci needs at least one sample along the resampled axis")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    n = data.shape[axis]
    rng = np.random.default_rng(seed)
    estimate = np.asarray(stat(data, axis=axis), dtype=np.float64)
    replicates = np.stack([stat(np.take(data, rng.integers(0, n, n), axis=axis), axis=axis)
                           for _ in range(n_boot)])
    lo, hi = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
    return _as_out(estimate), _as_out(lo), _as_out(hi)


def cluster_bootstrap(groups: Sequence[np.ndarray], f: Callable[[np.ndarray], Any] | None = None,
                      n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """``(estimate, lo, hi)`` of ``f(mean)`` with a percentile ``1 - alpha`` interval.

    ``groups``: one array (n_s, ...) per seed (rows = images). The mean is the mean over seeds of
    the per-seed means over images; ``f`` (identity by default) maps it to the statistic. One group:
    an ordinary bootstrap over images (:func:`bootstrap_ci`). Several groups: each
    replicate resamples the seeds with replacement, then the images within each drawn seed."""
    f = f or (lambda m: m)
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("cluster_bootstrap needs at least one non-empty group")
    if len(groups) == 1:
        return bootstrap_ci(groups[0], lambda d, axis=0: f(d.mean(axis=axis)), n_boot, alpha, seed)
    rng = np.random.default_rng(seed)
    estimate = f(np.mean([g.mean(axis=0) for g in groups], axis=0))
    replicates = []
    for _ in range(n_boot):
        drawn = rng.integers(0, len(groups), len(groups))
        means = [groups[s][rng.integers(0, len(groups[s]), len(groups[s]))].mean(axis=0) for s in drawn]
        replicates.append(f(np.mean(means, axis=0)))
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2, 1 - alpha / 2], axis=0)
    return _as_out(estimate), _as_out(lo), _as_out(hi)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function with ``df`` > 0 degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """Student's t quantile: ``t`` with ``t_cdf(t, df) = p`` (0 < p < 1), by bisection to 1e-12 (cached: the claims
    and the coverage simulations ask for the same few quantiles many times)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p <= 0.5:  # symmetric: bisect in the upper half, where the tail is computed accurately
        return -t_quantile(1 - p, df) if p < 0.5 else 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    while hi - lo > 1e-12 * max(1.0, abs(hi)):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def jackknife_t(rows: np.ndarray, f: Callable[[np.ndarray], Any] | None, alpha: float) -> Estimate:
    """``f(mean of rows)`` with a jackknife-t ``1 - alpha`` interval over the rows (n, ...): estimate +-
    ``t(1 - alpha / 2, n - 1)`` x the jackknife standard error ``sqrt((n - 1) / n sum (f_(i) - f_(.))^2)``,
    ``f_(i)`` = f of the mean without row i. For ``f`` None (the identity) this is the t interval of the mean,
    computed directly. One row: no interval (NaN bounds)."""
    rows = np.asarray(rows, dtype=np.float64)
    n = len(rows)
    estimate = np.asarray(rows.mean(axis=0) if f is None else f(rows.mean(axis=0)), dtype=np.float64)
    if n < 2:
        nan = np.full(estimate.shape, np.nan)
        return Estimate(_as_out(estimate), _as_out(nan), _as_out(nan))
    if f is None:   # the jackknife standard error of a mean is sd / sqrt(n)
        se = rows.std(axis=0, ddof=1) / math.sqrt(n)
    else:
        loo = (rows.sum(axis=0)[None] - rows) / (n - 1)   # mean without row i, (n, ...)
        values = np.stack([np.asarray(f(m), dtype=np.float64) for m in loo])
        se = np.sqrt((n - 1) / n * np.square(values - values.mean(axis=0)).sum(axis=0))
    half = t_quantile(1 - alpha / 2, n - 1) * se
    return Estimate(_as_out(estimate), _as_out(estimate - half), _as_out(estimate + half))


def nested_interval(groups: Sequence[np.ndarray], f: Callable[[np.ndarray], Any] | None = None,
                    alpha: float = 0.05) -> Estimate:
    """``f(mean)`` with a ``1 - alpha`` interval over the design's top level, and per-seed intervals.

    ``groups``: one array (n_s, ...) per seed (rows = images or folds of that seed). The mean is the mean over
    seeds of the per-seed means over rows; ``f`` (identity by default) maps it to the statistic. Several seeds:
    a jackknife-t interval over the per-seed means (:func:`jackknife_t` on the (S, ...) per-seed means), and
    ``per_seed`` holds each seed's ``(f(its mean), lo, hi, n_s)``: a jackknife-t interval over its n_s rows. One
    seed: the jackknife-t interval over its rows (``per_seed`` that one)."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("nested_interval needs at least one non-empty group")
    per_seed = [(*jackknife_t(g, f, alpha), len(g)) for g in groups]
    if len(groups) == 1:
        out = Estimate(*per_seed[0][:3], per_seed=per_seed)
    else:
        out = Estimate(*jackknife_t(np.stack([g.mean(axis=0) for g in groups]), f, alpha), per_seed=per_seed)
    out.alpha = alpha   # the level of the per-seed intervals (claims.part reads the variances back from them)
    return out


def strata_bootstrap(arrays: Sequence[np.ndarray], f: Callable[[list[np.ndarray]], float], n_boot: int = 2000,
                     alpha: float = 0.05, seed: int = 0) -> Estimate:
    """``(estimate, lo, hi)`` of ``f([column means of each array])``; each array (n_i, k) is its own
    stratum (e.g. the val and the test images) whose rows are resampled independently."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    estimate = f([a.mean(axis=0) for a in arrays])
    replicates = [f([a[rng.integers(0, len(a), len(a))].mean(axis=0) for a in arrays]) for _ in range(n_boot)]
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    return float(estimate), float(lo), float(hi)


def seed_interval(values: Sequence[np.ndarray], n_boot: int, alpha: float, seed: int) -> tuple[Any, Any]:
    """t interval over seeds of per-seed values (S, ...) (one value per trained network, e.g. of its dataset mask):
    ``(lo, hi)``; NaN with fewer than 2 seeds. ``n_boot`` and ``seed`` are accepted for the bootstraps' keyword
    set (``Run.boot``) and unused."""
    _, lo, hi = jackknife_t(np.asarray(values, dtype=np.float64), None, alpha)
    return lo, hi


def finite_rows(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per group (n_s, ...), the rows without a NaN / inf (an undefined value for that image); groups
    left without a row are dropped."""
    out = []
    for g in groups:
        g = np.asarray(g, dtype=np.float64)
        g = g[np.isfinite(g.reshape(len(g), -1)).all(axis=1)] if len(g) else g
        if len(g):
            out.append(g)
    return out


def defined_estimate(groups: Sequence[np.ndarray], f: Callable[[np.ndarray], Any] | None = None, n_boot: int = 2000,
                     alpha: float = 0.05, seed: int = 0, empty: str = "no images",
                     undefined: str = "undefined on every image") -> Estimate:
    """:func:`nested_interval` over the rows of ``groups`` where every value is finite (an image whose
    value is undefined is left out), or an n/a estimate (:func:`freqbias.na.na_estimate`) with the reason
    ``empty`` (no rows at all) or ``undefined`` (no finite row). ``n_boot`` and ``seed`` are unused (the
    interval is analytic; kept for the bootstraps' keyword set)."""
    if sum(len(g) for g in groups) == 0:
        return Estimate(*na_estimate(empty))
    kept = finite_rows(groups)
    if not kept:
        return Estimate(*na_estimate(undefined))
    return nested_interval(kept, f, alpha)


def ci_row(prefix: str, est: Estimate) -> dict:
    return {prefix: est[0], f"{prefix}_lo": est[1], f"{prefix}_hi": est[2]}


def variance_components(per_seed: Sequence[Sequence[float]], alpha: float) -> tuple[float, float] | None:
    """``(between, within)``: the variance of one seed's estimate split into what lives inside a network and what
    between networks, from each seed's ``(estimate, lo, hi, n)`` (a t interval over its n folds or images at level
    ``1 - alpha``). within ``w = mean_s se_s^2`` (``se_s = (hi_s - lo_s) / (2 t_{n_s - 1})``); between ``b = max(0,
    var_s(e_s) - w)``. None with fewer than 2 finite seeds or a seed with n < 2 (benchmarks/seed_design.py)."""
    seeds = [s for s in per_seed if len(s) > 3 and all(math.isfinite(float(v)) for v in s[:3])]
    if len(seeds) < 2 or len(seeds) != len(per_seed) or any(int(s[3]) < 2 for s in seeds):
        return None
    e = np.array([float(s[0]) for s in seeds])
    se = np.array([(float(s[2]) - float(s[1])) / (2 * t_quantile(1 - alpha / 2, int(s[3]) - 1)) for s in seeds])
    w = float(np.mean(se ** 2))
    return max(0.0, float(np.var(e, ddof=1)) - w), w


def seeds_to_settle(estimate: float, threshold: float, delta: float | None, between: float, within: float,
                    alpha: float, max_seeds: int = 100) -> int | None:
    """The fewest seeds S (2 to ``max_seeds``) whose top-level t interval, ``estimate +- t_{S-1} sqrt((between +
    within) / S)`` (the run's own variances, the estimate as measured), would settle a part: lie clear of
    ``threshold`` (holds or does not hold) or within ``threshold +- delta`` (negligible). None when no S up to
    ``max_seeds`` would, or when the variances are 0 (then the run's own seeds already settle it)."""
    gap, var = abs(estimate - threshold), between + within
    if var <= 0 or not math.isfinite(gap):
        return None
    for s in range(2, max_seeds + 1):
        half = t_quantile(1 - alpha / 2, s - 1) * math.sqrt(var / s)
        if gap > half or (delta is not None and gap + half <= delta):
            return s
    return None
