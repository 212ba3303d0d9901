"""Tests of freqbias.probe: the linear probe and its permuted-label control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqbias import probe as pb


def test_probe_random_features_and_permuted_labels_near_chance():
    torch.manual_seed(0)
    x = torch.randn(400, 20)
    y = torch.randint(0, 4, (400,))
    out = pb.linear_probe(x, y, train_frac=0.7, seed=0)
    assert 0.15 < out["test_acc"] < 0.4 and 0.15 < out["permuted_test_acc"] < 0.4
    assert 0.2 <= out["chance"] <= 0.32
    assert out["train_acc"] > out["test_acc"]           # it does fit its training split


def test_probe_separable_features_near_perfect_but_not_with_permuted_labels():
    rng = np.random.default_rng(0)
    k, per_class, d = 5, 60, 30
    centres = rng.normal(0, 1, (k, d)) * 4
    y = np.repeat(np.arange(k), per_class)
    x = centres[y] + rng.normal(0, 1, (k * per_class, d))
    out = pb.linear_probe(x, y, train_frac=0.6, seed=1)
    assert out["train_acc"] == 1.0 and out["test_acc"] >= 0.97
    assert out["permuted_test_acc"] < 0.4
    assert out["chance"] == pytest.approx(0.2)
    # split: stratified, disjoint, covers everything; outputs aligned with the test split
    train, test = out["train_index"], out["test_index"]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    assert np.all(np.bincount(y[train]) == 36)
    n_test = len(test)
    assert out["test_logits"].shape == (n_test, k) and out["embedding"].shape == (n_test, 2)
    np.testing.assert_array_equal(out["test_labels"], y[test])
    assert out["test_correct"].mean() == out["test_acc"]
    np.testing.assert_array_equal(out["test_logits"].argmax(1) == y[test], out["test_correct"])
    # deterministic given the seed; no permuted keys without the control
    again = pb.linear_probe(x, y, train_frac=0.6, seed=1, permute=False)
    assert again["test_acc"] == out["test_acc"] and "permuted_test_acc" not in again
    np.testing.assert_allclose(again["embedding"], out["embedding"])


def test_probe_precondition_needs_two_classes_with_two_images_each():
    assert pb.probe_precondition(np.zeros(0, dtype=int)) == "no single-image masks (0 images)"
    assert "per class {0: 2, 1: 1}" in pb.probe_precondition(np.array([0, 0, 1]))     # one test image at most
    assert "per class {2: 5}" in pb.probe_precondition(np.full(5, 2))                   # one class only
    assert pb.probe_precondition(np.array([0, 0, 1, 1])) == ""
    out = pb.linear_probe(np.eye(4), np.array([0, 0, 1, 1]), train_frac=0.5)           # what it allows runs
    assert len(out["train_index"]) == len(out["test_index"]) == 2


def test_probe_reports_convergence_and_a_finite_embedding_of_huge_outputs():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 6)), rng.integers(0, 3, 120)
    assert pb.linear_probe(x, y, max_iter=300)["converged"]
    capped = pb.linear_probe(x, y, max_iter=2)
    assert not capped["converged"] and not capped["permuted_converged"] and capped["finite"]
    huge = np.array([[1e300, 0.0], [-1e300, 1.0], [0.0, 0.0]])        # the SVD sees rows scaled to magnitude 1
    assert np.isfinite(pb._pca2(huge)).all()


def test_probe_of_a_record_is_na_with_the_reason_or_leaves_out_non_finite_masks():
    from types import SimpleNamespace

    from freqbias.aggregate import AggregateConfig
    from freqbias.na import NA

    cfg = AggregateConfig(probe_max_iter=30)
    masks, y = torch.rand(12, 4, 3), torch.arange(12) % 3
    result = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert result["excluded"] == 0 and len(result["test_index"]) >= 3
    masks[0, 0, 0] = np.nan
    result = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert result["excluded"] == 1 and len(result["train_index"]) + len(result["test_index"]) == 11
    masks[:10] = np.nan                                              # two images left: too few per class
    na = pb.probe(SimpleNamespace(single=SimpleNamespace(masks=masks, y=y)), cfg)
    assert isinstance(na, NA) and na.reason.startswith("too few images per class") and "10 of 12" in na.reason
