"""Linear probe: do single-image masks carry class information?

One linear layer (multinomial logistic regression) from flattened masks to the true class, cross-validated
(stratified k-fold: every image is a test image exactly once), against a control with permuted labels
(several permutations, so the control's spread is known); :func:`probe` runs it on one model's
single-image masks, or says why it cannot (:class:`~freqbias.na.NA`): too few images per class, or a
fit whose outputs are not finite.

Features are the mask values as they are (in [0, 1]): no standardisation, so a frequency that is almost
constant on the training images cannot blow up a held-out image's feature. (The bias is not penalised,
so centring the features would not change the fit either.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .na import NA, NO_IMAGES

if TYPE_CHECKING:
    from .measures import ModelRecord
    from .runs import AggregateConfig


def stratified_folds(labels: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each image, int (N,) in [0, folds): per class, its images in a seeded random order are
    dealt to the folds in turn (continuing where the previous class stopped, so the folds' sizes differ
    by at most one). A class with at least ``folds`` images has an image in every fold."""
    fold = np.empty(len(labels), dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold[idx] = (start + np.arange(len(idx))) % folds
        start += len(idx)
    return fold


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                 max_iter: int) -> tuple[nn.Linear, bool]:
    """Multinomial logistic regression, full batch, L-BFGS from zero weights (convex: unique optimum).

    ``x`` float64 (n, d), ``y`` int (n,) in [0, num_classes). Loss: mean cross-entropy +
    ``weight_decay / 2 * ||W||^2`` (bias not penalised); this is scikit-learn's
    ``LogisticRegression(C=1 / (n * weight_decay))``. Returns the layer and whether it converged: a
    finite loss, and L-BFGS stopped on its own tolerances before ``max_iter`` iterations and its
    evaluation budget (L-BFGS itself stops silently either way)."""
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


def cross_validate(x: torch.Tensor, y: np.ndarray, fold: np.ndarray, num_classes: int, weight_decay: float,
                   max_iter: int) -> tuple[np.ndarray, float, int]:
    """Out-of-fold logits (N, num_classes): each image's from the fit on the other folds; the mean
    accuracy of the fits on their own training images; and how many of the fits converged."""
    logits = np.empty((len(y), num_classes))
    train_acc, converged = [], 0
    target = torch.from_numpy(y)
    for k in range(int(fold.max()) + 1):
        train, test = fold != k, fold == k
        layer, ok = fit_logistic(x[train], target[train], num_classes, weight_decay, max_iter)
        with torch.no_grad():
            logits[test] = layer(x[test]).numpy()
            train_acc.append(float((layer(x[train]).argmax(1) == target[train]).double().mean()))
        converged += ok
    return logits, float(np.mean(train_acc)), converged


def linear_probe(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, folds: int = 5,
                 seed: int = 0, weight_decay: float = 1e-3, max_iter: int = 200, permutations: int = 5) -> dict:
    """Cross-validated multinomial logistic regression from features to labels, with a permuted-label control.

    ``features`` (N, D) (e.g. flattened single-image masks, used as they are), ``labels`` int (N,).
    Classes with fewer than ``folds`` images are left out (they cannot have an image in every fold);
    the others are probed: split into ``folds`` stratified folds (seeded), each image is scored once,
    by the fit on the other folds. The control repeats this ``permutations`` times with the probed
    labels permuted (seeded; folds stratified by the permuted labels), scored against them.

    Returns a dict with ``index`` (N',) (the probed images, positions in the input), ``classes`` (K',)
    (their classes; logits are over these), ``left_out`` ({class: images} of the classes left out),
    ``fold`` (N',), ``test_labels`` (N',), ``test_logits`` (N', K') (out of fold), ``test_correct``
    bool (N',), ``test_acc``, ``train_acc`` (mean over the folds' fits on their training images),
    ``chance`` (majority-class share of the probed images), ``finite`` (every logit finite),
    ``embedding`` (N', 2) = PCA of the logits (NaN unless ``finite``), ``fits`` / ``converged_fits``
    (L-BFGS fits in all, and how many converged: see :func:`fit_logistic`), ``converged`` (all of the
    true-label fits); with ``permutations`` > 0 also ``permuted_test_correct`` bool (P, N'),
    ``permuted_accs`` (P,), ``permuted_test_acc`` (their mean), ``permuted_sd`` (their standard
    deviation, ddof 1; NaN for P = 1).
    ValueError when fewer than two classes have ``folds`` images."""
    x_all = np.asarray(features, dtype=np.float64)
    y_all = np.asarray(labels, dtype=np.int64)
    if x_all.ndim != 2 or y_all.shape != (x_all.shape[0],):
        raise ValueError(f"need features (N, D) and labels (N,), got {x_all.shape} and {y_all.shape}")
    if folds < 2 or permutations < 0:
        raise ValueError(f"need folds >= 2 and permutations >= 0, got {folds} and {permutations}")
    present, counts = np.unique(y_all, return_counts=True)
    classes = present[counts >= folds]
    if len(classes) < 2:
        raise ValueError(f"need 2 classes with {folds}+ images each, got per class {dict(zip(present, counts))}")
    index = np.flatnonzero(np.isin(y_all, classes))
    x, y = torch.from_numpy(x_all[index]), np.searchsorted(classes, y_all[index])
    rng = np.random.default_rng(seed)
    fold = stratified_folds(y, folds, rng)
    logits, train_acc, converged = cross_validate(x, y, fold, len(classes), weight_decay, max_iter)
    correct = logits.argmax(1) == y
    finite = bool(np.isfinite(logits).all())
    result = {
        "index": index, "classes": classes, "fold": fold, "test_labels": y_all[index], "test_logits": logits,
        "left_out": {int(c): int(n) for c, n in zip(present, counts) if n < folds},
        "test_correct": correct, "test_acc": float(correct.mean()), "train_acc": train_acc,
        "chance": float(np.bincount(y).max() / len(y)), "finite": finite, "converged": converged == folds,
        "embedding": _pca2(logits) if finite else np.full((len(y), 2), np.nan),
        "fits": folds * (1 + permutations), "converged_fits": converged,
    }
    if permutations:
        permuted = []
        for _ in range(permutations):
            target = y[rng.permutation(len(y))]
            p_logits, _, p_converged = cross_validate(x, target, stratified_folds(target, folds, rng), len(classes),
                                                      weight_decay, max_iter)
            permuted.append(p_logits.argmax(1) == target)
            result["converged_fits"] += p_converged
        accs = np.mean(permuted, axis=1)
        result.update(permuted_test_correct=np.stack(permuted), permuted_accs=accs,
                      permuted_test_acc=float(accs.mean()),
                      permuted_sd=float(accs.std(ddof=1)) if permutations > 1 else float("nan"))
    return result


def probe_precondition(labels: np.ndarray, folds: int) -> str:
    """Why the probe cannot run on images with these labels (n,), or "" when it can: it needs at least
    two classes with ``folds`` or more images each (a class with fewer cannot have an image in every
    fold and is left out; fewer than two classes leave nothing to tell apart)."""
    if not len(labels):
        return NO_IMAGES
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    if int((counts >= folds).sum()) < 2:
        present = {int(c): int(n) for c, n in enumerate(counts) if n}
        return (f"too few images per class: needs 2 classes with {folds}+ single-image masks each "
                f"(aggregate.probe.folds), has {len(labels)} image(s), per class {present}")
    return ""


def probe(record: ModelRecord, cfg: AggregateConfig) -> dict | NA:
    """Cross-validated linear probe (:func:`linear_probe`) from the flattened single-image masks to the
    true class, with the permuted-label control; masks with a NaN / inf entry are left out
    (``excluded``: how many). An :class:`~freqbias.na.NA` with the reason when too few images remain
    (:func:`probe_precondition`) or when the fit's outputs are not finite."""
    s = record.single
    features, labels = s.masks.flatten(1).double().numpy(), s.y.numpy()
    finite = np.isfinite(features).all(axis=1)
    features, labels = features[finite], labels[finite]
    excluded = int((~finite).sum())
    left_out = f" ({excluded} of {len(finite)} masks with non-finite entries left out)" if excluded else ""
    if reason := probe_precondition(labels, cfg.probe_folds):
        return NA(reason + left_out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small float64 problem: extra OpenMP threads only contend (10x slower when busy)
    try:
        result = linear_probe(features, labels, cfg.probe_folds, cfg.seed, cfg.probe_weight_decay,
                              cfg.probe_max_iter, cfg.probe_permutations)
    finally:
        torch.set_num_threads(threads)
    if not result["finite"]:
        return NA("probe fit diverged: non-finite outputs" + left_out)
    return {**result, "excluded": excluded}
