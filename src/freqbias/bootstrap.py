"""Resampling: percentile bootstrap intervals over images, over seeds then images, and over strata.

Every helper gives an :data:`Estimate` ``(estimate, lo, hi)``: a statistic and its percentile
``1 - alpha`` interval, seeded (the same inputs and seed give the same interval). Samples (images or
seeds) lie along axis 0; a per-band statistic gives arrays (bands,), a scalar one floats. With
several seeds the bootstrap has two levels (:func:`cluster_bootstrap`: seeds, then images within a
seed); a quantity with one value per model (a dataset mask) only has an interval over seeds
(:func:`seed_interval`, NaN with a single seed).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from .na import na_estimate

Estimate = tuple[Any, Any, Any]


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
    """Bootstrap interval over seeds of per-seed values (S, ...): ``(lo, hi)``; NaN with fewer than 2 seeds."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        nan = np.full(arr.shape[1:], np.nan)
        return _as_out(nan), _as_out(nan)
    _, lo, hi = bootstrap_ci(arr, np.mean, n_boot, alpha, seed)
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
    """:func:`cluster_bootstrap` over the rows of ``groups`` where every value is finite (an image whose
    value is undefined is left out), or an n/a estimate (:func:`freqbias.na.na_estimate`) with the reason
    ``empty`` (no rows at all) or ``undefined`` (no finite row)."""
    if sum(len(g) for g in groups) == 0:
        return na_estimate(empty)
    kept = finite_rows(groups)
    if not kept:
        return na_estimate(undefined)
    return cluster_bootstrap(kept, f, n_boot, alpha, seed)


def ci_row(prefix: str, est: Estimate) -> dict:
    return {prefix: est[0], f"{prefix}_lo": est[1], f"{prefix}_hi": est[2]}
