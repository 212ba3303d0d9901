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
