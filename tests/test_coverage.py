"""The claims' intervals cover at the run's own design (issue: verdicts over training seeds).

Simulated data with the committed params.yaml's numbers of seeds, folds and images per seed, a seed effect
larger than the spread within a seed, and a known recipe mean: :func:`freqbias.bootstrap.nested_interval` (the
claims' interval) must cover the recipe mean in >= 93 % of simulations at nominal 95 %, and a plain percentile
bootstrap over the 4 folds of one network, or over seeds then folds, must not (what the claims used before).

Images: each seed fits its single-image masks on its own images (``stage_selection.seed_shard``: disjoint shards of
the test split). An image has an effect of its own (some images are easier for every network), so with images
shared by the seeds (the crossed design the run had before: the first eligible images in split order, 87 of 96 in
all three selections) the seeds' means share that effect's sampling error and a t interval over seed means misses
it: the crossed design must fall short, the run's own must cover.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import REPO
from freqbias.bootstrap import bootstrap_ci, cluster_bootstrap, nested_interval

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SEEDS = len(PARAMS["train"]["seeds"])
FOLDS = PARAMS["masks"]["dataset"]["folds"]
IMAGES = PARAMS["masks"]["select"]["n_images"]
ALPHA = PARAMS["aggregate"]["alpha"]
SIMS = 2000
BETWEEN, WITHIN = 1.0, 0.5   # sd of the seed effect and of a fold / image within a seed: between > within


def _design(rng: np.random.Generator, rows: int, seeds: int = SEEDS) -> list[np.ndarray]:
    """One simulated run: per seed, ``rows`` values (n, 1) around that seed's mean; the recipe mean is 0."""
    return [rng.normal(rng.normal(0, BETWEEN), WITHIN, size=(rows, 1)) for _ in range(seeds)]


def _coverage(interval, rows: int, seeds: int = SEEDS, sims: int = SIMS) -> float:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(sims):
        _, lo, hi = interval(_design(rng, rows, seeds))
        hits += float(np.ravel(lo)[0]) <= 0.0 <= float(np.ravel(hi)[0])
    return hits / sims


def test_the_default_run_has_several_seeds():
    assert SEEDS >= 3, "params.yaml: train.seeds must list >= 3 seeds (a verdict is about the recipe)"


@pytest.mark.parametrize("rows", [FOLDS, IMAGES], ids=["folds", "images"])
def test_nested_interval_covers_at_the_run_s_design(rows):
    coverage = _coverage(lambda g: nested_interval(g, None, ALPHA), rows)
    assert coverage >= 0.93, f"nested interval covers {coverage:.3f} at {SEEDS} seeds x {rows} rows"


IMAGE_SD = BETWEEN * np.sqrt(IMAGES)   # an image effect whose mean over a seed's images varies as much as a seed


def _images(rng: np.random.Generator, crossed: bool, seeds: int = SEEDS) -> list[np.ndarray]:
    """One simulated run of single-image values: per seed, a seed effect + each image's own effect + noise; the
    images are the same for every seed (``crossed``) or each seed's own (the run's design). Recipe mean 0."""
    shared = rng.normal(0, IMAGE_SD, IMAGES)
    return [(rng.normal(0, BETWEEN) + (shared if crossed else rng.normal(0, IMAGE_SD, IMAGES))
             + rng.normal(0, WITHIN, IMAGES))[:, None] for _ in range(seeds)]


@pytest.mark.parametrize("crossed", [False, True], ids=["own images per seed", "images shared by the seeds"])
def test_the_run_s_image_design_covers_and_the_crossed_one_does_not(crossed):
    """2,000 simulated runs: Monte Carlo standard error about 0.5 points at 95 % coverage (0.8 at 85 %). Own images:
    >= 93 % (measured 95.0 %); shared images: < 90 % (measured 84.1 %: the seeds' means share the images'
    sampling error, which the spread of the seed means does not show)."""
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(SIMS):
        _, lo, hi = nested_interval(_images(rng, crossed), None, ALPHA)
        hits += float(np.ravel(lo)[0]) <= 0.0 <= float(np.ravel(hi)[0])
    coverage = hits / SIMS
    if crossed:
        assert coverage < 0.90, f"the crossed design covers {coverage:.3f}: it should fall short"
    else:
        assert coverage >= 0.93, f"own images per seed cover {coverage:.3f} at {SEEDS} seeds x {IMAGES} images"


def test_the_selections_of_the_run_s_seeds_share_no_image():
    """The run's design: each seed of params.yaml screens its own shard of the test split."""
    from freqbias.stage_selection import seed_shard

    seeds = PARAMS["train"]["seeds"]
    shards = [set(seed_shard(seeds, s, 10_000).tolist()) for s in seeds]
    assert all(not (a & b) for i, a in enumerate(shards) for b in shards[i + 1:])


def test_nested_interval_is_the_t_interval_of_the_seed_means():
    """For a mean, the jackknife-t interval over seeds is exactly the t interval of the per-seed means."""
    from scipy import stats

    groups = _design(np.random.default_rng(3), FOLDS)
    means = np.array([g.mean() for g in groups])
    interval = nested_interval(groups, None, ALPHA)
    est, lo, hi = interval
    half = stats.t.ppf(1 - ALPHA / 2, SEEDS - 1) * means.std(ddof=1) / np.sqrt(SEEDS)
    assert est == pytest.approx(means.mean()) and lo == pytest.approx(means.mean() - half)
    assert hi == pytest.approx(means.mean() + half)
    assert len(interval.per_seed) == SEEDS   # each seed's own estimate and interval over its folds
    for g, (e, lo_s, hi_s, n_s) in zip(groups, interval.per_seed):
        half_s = stats.t.ppf(1 - ALPHA / 2, FOLDS - 1) * g.std(ddof=1) / np.sqrt(FOLDS)
        assert e == pytest.approx(g.mean()) and hi_s - lo_s == pytest.approx(2 * half_s) and n_s == FOLDS


def _side_by_side(rows: int, sims: int, seeds: int = SEEDS) -> list[np.ndarray]:
    """The ``sims`` simulated runs of :func:`_coverage` (same generator, same order) as columns: per seed an array
    (rows, sims) whose column j is run j's values."""
    rng = np.random.default_rng(1)
    runs = [_design(rng, rows, seeds) for _ in range(sims)]
    return [np.concatenate([run[s] for run in runs], axis=1) for s in range(seeds)]


def _covers(interval: tuple) -> np.ndarray:
    """(sims,) bool: which columns' intervals ``(estimate, lo, hi)`` (arrays (sims,)) hold the recipe mean 0."""
    _, lo, hi = interval
    return (np.asarray(lo) <= 0.0) & (0.0 <= np.asarray(hi))


def test_a_percentile_bootstrap_over_folds_does_not_cover():
    """What the claims did with one network: a percentile bootstrap over its 4 folds (the seed effect is not in it),
    and with several seeds a percentile bootstrap over seeds then folds (too narrow with few seeds).

    The simulations are the columns of one call (samples along axis 0, one column per simulation): the resampled
    indices depend on the seed and the sizes only, so each column gets the interval a call of its own with seed 0
    gives (the same coverage as one call per simulation), for the cost of one call. Measured: 27.5 % (one network,
    400 runs, Monte Carlo standard error 2.2 points), 79 % (own mean, 2,000 runs, s.e. 0.9 points), 74 % (seeds then
    folds, 400 runs, s.e. 2.2 points)."""
    one_network = _covers(bootstrap_ci(_side_by_side(FOLDS, 400)[0], np.mean, 400, ALPHA, 0)).mean()
    assert one_network < 0.6, one_network
    rng = np.random.default_rng(2)   # even for one network's own mean it is too narrow at 4 folds (about 80 %)
    own = _covers(bootstrap_ci(rng.normal(size=(4, 2000)), np.mean, 400, ALPHA, 0)).mean()
    assert own < 0.9, own
    nested_percentile = _covers(cluster_bootstrap(_side_by_side(FOLDS, 400), None, 400, ALPHA, 0)).mean()
    assert nested_percentile < 0.9, nested_percentile
