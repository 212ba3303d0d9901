"""Linear probe: do single-image masks carry class information?

One linear layer (multinomial logistic regression) from flattened masks to the true class, scored on
held-out images, against a control with permuted labels; :func:`probe` runs it on one model's
single-image masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from .aggregate import AggregateConfig
    from .measures import ModelRecord


def _stratified_split(labels: np.ndarray, train_frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test): per class, a ``train_frac`` share (at least one image each side
    when the class has two or more) goes to train."""
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(train_frac * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                  max_iter: int) -> nn.Linear:
    """Multinomial logistic regression, full batch, L-BFGS from zero weights (convex: unique optimum).

    Loss: mean cross-entropy + ``weight_decay / 2 * ||W||^2`` (bias not penalised)."""
    layer = nn.Linear(x.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(layer(x), y) + 0.5 * weight_decay * layer.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def _pca2(z: np.ndarray) -> np.ndarray:
    """First two principal-component scores of the rows of z (n, d) -> (n, 2), zero-padded when d < 2.
    Signs are fixed (largest loading positive) so the embedding is deterministic."""
    centred = z - z.mean(axis=0)
    vt = np.linalg.svd(centred, full_matrices=False)[2][:2]
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    scores = centred @ vt.T
    return np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))


def linear_probe(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, train_frac: float = 0.7,
                 seed: int = 0, weight_decay: float = 1e-3, max_iter: int = 500, permute: bool = True) -> dict:
    """One linear layer (multinomial logistic regression) from features to labels, scored on held-out images.

    ``features`` (N, D) (e.g. flattened single-image masks), ``labels`` int (N,) in [0, K). The split is
    stratified by class (``train_frac`` to train, seeded); features are standardised with the train
    split's mean and std. The permuted control refits on the same split with the labels permuted once
    by a seeded random permutation of all N labels.

    Returns a dict with ``train_acc``, ``test_acc``, ``chance`` (test accuracy of always predicting the
    most frequent train label), ``train_index``/``test_index`` (N_train,)/(N_test,), ``test_labels``,
    ``test_correct`` bool (N_test,) (for a bootstrap CI), ``test_logits`` (N_test, K) and ``embedding``
    (N_test, 2) = PCA of the test logits; with ``permute`` also ``permuted_train_acc``,
    ``permuted_test_acc``, ``permuted_test_correct`` (scored against the permuted labels)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"need features (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    rng = np.random.default_rng(seed)
    train, test = _stratified_split(y, train_frac, rng)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("split left the train or the test set empty; need more images")
    num_classes = int(y.max()) + 1
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    z = torch.from_numpy((x - mean) / np.where(std > 0, std, 1.0))

    def fit_and_score(target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        t = torch.from_numpy(target)
        layer = _fit_logistic(z[train], t[train], num_classes, weight_decay, max_iter)
        with torch.no_grad():
            pred = layer(z).argmax(dim=1).numpy()
            logits = layer(z[test]).numpy()
        return float((pred[train] == target[train]).mean()), pred[test] == target[test], logits

    train_acc, correct, logits = fit_and_score(y)
    majority = np.bincount(y[train], minlength=num_classes).argmax()
    result = {
        "train_acc": train_acc, "test_acc": float(correct.mean()), "chance": float((y[test] == majority).mean()),
        "train_index": train, "test_index": test, "test_labels": y[test], "test_correct": correct,
        "test_logits": logits, "embedding": _pca2(logits),
    }
    if permute:
        p_train_acc, p_correct, _ = fit_and_score(y[rng.permutation(len(y))])
        result.update(permuted_train_acc=p_train_acc, permuted_test_acc=float(p_correct.mean()),
                      permuted_test_correct=p_correct)
    return result


def probe(record: ModelRecord, cfg: AggregateConfig) -> dict | None:
    """Linear probe (:func:`linear_probe`) from the flattened single-image masks to the
    true class, with the permuted-label control; None when too few images to split."""
    s = record.single
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small float64 problem: extra OpenMP threads only contend (10x slower when busy)
    try:
        return linear_probe(s.masks.flatten(1).numpy(), s.y.numpy(), cfg.probe_train_frac,
                                     cfg.seed, cfg.probe_weight_decay, cfg.probe_max_iter)
    except ValueError:
        return None
    finally:
        torch.set_num_threads(threads)
