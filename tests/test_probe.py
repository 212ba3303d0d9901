"""Tests of freqbias.probe: the cross-validated linear probe and its permuted-label control."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from freqbias import probe as pb
from freqbias.na import NA
from freqbias.stage_aggregate import AggregateConfig

pytestmark = pytest.mark.usefixtures("one_thread")

def test_near_constant_columns_cannot_explode_held_out_outputs():
    """Masks that are ~0 at most frequencies, except one image each that keeps one of them: standardising
    with the training images' std (~1e-8 there) turned a held-out 1.0 into ~1e8 (logits ~1e7, the
    committed probe.png). Plain features keep every output on the scale of the data."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    informative = np.clip(0.5 + 0.3 * (np.arange(3)[y, None] == np.arange(3)) + 0.2 * rng.normal(size=(60, 3)), 0, 1)
    quiet = 1e-8 * rng.random((60, 30))                         # near-constant columns
    spiked = rng.choice(60, 30, replace=False)
    quiet[spiked, np.arange(30)] = 1.0                          # each column kept by one image only
    x = np.concatenate([informative, quiet], axis=1)
    out = pb.linear_probe(x, y, seed=0)
    assert out["finite"] and np.abs(out["test_logits"]).max() < 50
    assert np.ptp(out["embedding"], axis=0).max() < 100
    assert out["test_acc"] > 0.6


def test_probe_random_features_and_permuted_labels_near_chance():
    torch.manual_seed(0)
    x = torch.randn(400, 20)
    y = torch.randint(0, 4, (400,))
    out = pb.linear_probe(x, y, folds=5, seed=0, permutations=3)
    assert 0.15 < out["test_acc"] < 0.4 and 0.15 < out["permuted_test_acc"] < 0.4
    assert out["chance"] == pytest.approx(np.bincount(y.numpy()).max() / 400)
    assert out["train_acc"] > out["test_acc"]           # it does fit its training folds


def test_probe_separable_features_every_image_tested_once_and_permuted_control_spread():
    rng = np.random.default_rng(0)
    k, per_class, d = 5, 12, 10
    centres = rng.normal(0, 1, (k, d)) * 4
    y = np.repeat(np.arange(k), per_class)
    x = centres[y] + rng.normal(0, 1, (k * per_class, d))
    out = pb.linear_probe(x, y, folds=4, seed=1, weight_decay=0.05, permutations=3)
    assert out["train_acc"] == 1.0 and out["test_acc"] >= 0.97 and out["chance"] == pytest.approx(0.2)
    # every image is a test image exactly once; folds stratified (3 images of each class per fold)
    np.testing.assert_array_equal(out["index"], np.arange(len(y)))
    assert all(np.bincount(y[out["fold"] == f], minlength=k).tolist() == [3] * k for f in range(4))
    assert out["test_logits"].shape == (60, k) and out["embedding"].shape == (60, 2)
    np.testing.assert_array_equal(out["test_logits"].argmax(1) == y, out["test_correct"])
    assert out["test_correct"].mean() == out["test_acc"] and out["fits"] == 4 * 4 == out["converged_fits"]
    # the control: three permutations (two here score alike), each scored on every image; their spread
    assert out["permuted_test_correct"].shape == (3, 60)
    np.testing.assert_allclose(out["permuted_accs"], out["permuted_test_correct"].mean(1))
    assert out["permuted_test_acc"] < 0.45 and out["permuted_sd"] == pytest.approx(np.std(out["permuted_accs"], ddof=1))
    assert len(set(out["permuted_accs"].tolist())) > 1                  # different permutations
    # deterministic given the seed
    again = pb.linear_probe(x, y, folds=4, seed=1, weight_decay=0.05, permutations=3)
    np.testing.assert_array_equal(again["permuted_test_correct"], out["permuted_test_correct"])
    np.testing.assert_allclose(again["embedding"], out["embedding"])


def test_classes_with_fewer_images_than_folds_are_left_out_and_counted():
    rng = np.random.default_rng(0)
    y = np.array([0] * 6 + [1] * 6 + [2] * 2 + [3] * 5)
    x = rng.random((len(y), 8))
    out = pb.linear_probe(x, y, folds=5, permutations=2)
    assert out["left_out"] == {2: 2} and out["classes"].tolist() == [0, 1, 3]
    np.testing.assert_array_equal(y[out["index"]], out["test_labels"])
    assert len(out["index"]) == 17 and out["chance"] == pytest.approx(6 / 17)
    assert out["test_logits"].shape == (17, 3)
    with pytest.raises(ValueError, match="need 2 classes with 7"):
        pb.linear_probe(x, y, folds=7)


def test_probe_precondition_needs_two_classes_with_folds_images_each():
    assert pb.probe_precondition(np.zeros(0, dtype=int), 5) == "no single-image masks (0 images)"
    assert "per class {0: 5, 1: 4}" in pb.probe_precondition(np.array([0] * 5 + [1] * 4), 5)
    assert "needs 2 classes with 5+" in pb.probe_precondition(np.full(8, 2), 5)         # one class only
    assert pb.probe_precondition(np.array([0, 0, 1, 1, 2]), 2) == ""
    out = pb.linear_probe(np.eye(5), np.array([0, 0, 1, 1, 2]), folds=2, permutations=1)  # what it allows runs
    assert out["left_out"] == {2: 1} and len(out["index"]) == 4


def test_probe_records_convergence():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 6)), rng.integers(0, 3, 120)
    out = pb.linear_probe(x, y, max_iter=300, permutations=2)
    assert out["converged"] and out["converged_fits"] == out["fits"] == 15
    capped = pb.linear_probe(x, y, max_iter=2, permutations=2)
    assert not capped["converged"] and capped["converged_fits"] == 0 and capped["finite"]
    huge = np.array([[1e300, 0.0], [-1e300, 1.0], [0.0, 0.0]])        # the SVD sees rows scaled to magnitude 1
    assert np.isfinite(pb._pca2(huge)).all()


def test_probe_of_a_record_is_na_with_the_reason_or_leaves_out_non_finite_masks():
    cfg = AggregateConfig(probe_max_iter=30, probe_folds=3, probe_permutations=2)
    masks, y = torch.rand(12, 4, 3), torch.arange(12) % 3
    result = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert result["excluded"] == 0 and len(result["index"]) == 12
    masks[0, 0, 0] = np.nan
    result = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert result["excluded"] == 1 and len(result["index"]) == 11
    masks[:8] = np.nan                                               # four images left: too few per class
    na = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert isinstance(na, NA) and na.reason.startswith("too few images per class") and "8 of 12" in na.reason
