"""Linear probe: do single-image masks carry class information?

One linear layer (multinomial logistic regression) from flattened masks to the true class, scored on
held-out images, against a control with permuted labels; :func:`probe` runs it on one model's
single-image masks, or says why it cannot (:class:`~freqbias.na.NA`): too few images per class, or a
fit whose outputs are not finite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .na import NA

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
                  max_iter: int) -> tuple[nn.Linear, bool]:
    """Multinomial logistic regression, full batch, L-BFGS from zero weights (convex: unique optimum).

    Loss: mean cross-entropy + ``weight_decay / 2 * ||W||^2`` (bias not penalised). Returns the layer
    and whether it converged: a finite loss, and L-BFGS stopped on its own tolerances before
    ``max_iter`` iterations and its evaluation budget."""
    layer = nn.Linear(x.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def objective() -> torch.Tensor:
        return nn.functional.cross_entropy(layer(x), y) + 0.5 * weight_decay * layer.weight.square().sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    state, budget = opt.state[layer.weight], opt.param_groups[0]["max_eval"]
    stopped_early = state.get("n_iter", 0) < max_iter and state.get("func_evals", 0) < budget
    with torch.no_grad():
        finite = bool(torch.isfinite(objective()))
    return layer, finite and stopped_early


def _pca2(z: np.ndarray) -> np.ndarray:
    """First two principal-component scores of the rows of finite z (n, d) -> (n, 2), zero-padded when
    d < 2. Signs are fixed (largest loading positive) so the embedding is deterministic. The SVD runs on
    the centred rows scaled to a largest magnitude of 1 (same directions; huge outputs cannot overflow it)."""
    centred = z - z.mean(axis=0)
    scale = np.abs(centred).max() if centred.size else 0.0
    vt = np.linalg.svd(centred / (scale if scale > 0 else 1.0), full_matrices=False)[2][:2]
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
    ``test_correct`` bool (N_test,) (for a bootstrap CI), ``test_logits`` (N_test, K), ``finite`` (every
    logit finite), ``embedding`` (N_test, 2) = PCA of the test logits (NaN unless ``finite``) and
    ``converged`` (see :func:`_fit_logistic`); with ``permute`` also ``permuted_train_acc``,
    ``permuted_test_acc``, ``permuted_test_correct`` (scored against the permuted labels) and
    ``permuted_converged``."""
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

    def fit_and_score(target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, bool]:
        t = torch.from_numpy(target)
        layer, converged = _fit_logistic(z[train], t[train], num_classes, weight_decay, max_iter)
        with torch.no_grad():
            pred = layer(z).argmax(dim=1).numpy()
            logits = layer(z[test]).numpy()
        return float((pred[train] == target[train]).mean()), pred[test] == target[test], logits, converged

    train_acc, correct, logits, converged = fit_and_score(y)
    majority = np.bincount(y[train], minlength=num_classes).argmax()
    finite = bool(np.isfinite(logits).all())
    result = {
        "train_acc": train_acc, "test_acc": float(correct.mean()), "chance": float((y[test] == majority).mean()),
        "train_index": train, "test_index": test, "test_labels": y[test], "test_correct": correct,
        "test_logits": logits, "finite": finite, "converged": converged,
        "embedding": _pca2(logits) if finite else np.full((len(test), 2), np.nan),
    }
    if permute:
        p_train_acc, p_correct, _, p_converged = fit_and_score(y[rng.permutation(len(y))])
        result.update(permuted_train_acc=p_train_acc, permuted_test_acc=float(p_correct.mean()),
                      permuted_test_correct=p_correct, permuted_converged=p_converged)
    return result


def probe_precondition(labels: np.ndarray) -> str:
    """Why the probe cannot run on images with these labels (n,), or "" when it can: it needs at least
    two classes with two or more images each, so that the stratified split puts images of two classes
    on both sides (fewer leave nothing to tell apart, or no test image of another class)."""
    if not len(labels):
        return "no single-image masks (0 images)"
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    if int((counts >= 2).sum()) < 2:
        present = {int(c): int(n) for c, n in enumerate(counts) if n}
        return (f"too few images per class: needs 2 classes with 2+ single-image masks each, has "
                f"{len(labels)} image(s), per class {present}")
    return ""


def probe(record: ModelRecord, cfg: AggregateConfig) -> dict | NA:
    """Linear probe (:func:`linear_probe`) from the flattened single-image masks to the true class, with
    the permuted-label control; masks with a NaN / inf entry are left out (``excluded``: how many).
    An :class:`~freqbias.na.NA` with the reason when too few images remain (:func:`probe_precondition`)
    or when the fit's outputs are not finite."""
    s = record.single
    features, labels = s.masks.flatten(1).double().numpy(), s.y.numpy()
    finite = np.isfinite(features).all(axis=1)
    features, labels = features[finite], labels[finite]
    excluded = int((~finite).sum())
    left_out = f" ({excluded} of {len(finite)} masks with non-finite entries left out)" if excluded else ""
    if reason := probe_precondition(labels):
        return NA(reason + left_out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small float64 problem: extra OpenMP threads only contend (10x slower when busy)
    try:
        result = linear_probe(features, labels, cfg.probe_train_frac, cfg.seed, cfg.probe_weight_decay,
                              cfg.probe_max_iter)
    finally:
        torch.set_num_threads(threads)
    if not result["finite"]:
        return NA("probe fit diverged: non-finite outputs" + left_out)
    return {**result, "excluded": excluded}
