"""The evaluate stage's metrics of a trained model (``metrics/evaluate/<model>.json``): clean test accuracy and PGD
robustness at fixed eps. Images: uint8 (N, C, H, W) test split, labels (N,)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from .attacks import RobustEval
from .frozen import fitting_copy
from .training import accuracy, robust_accuracy


def evaluate_model(model: nn.Module, variant: str, seed: int, cfg: RobustEval, test: tuple[torch.Tensor, torch.Tensor],
                   log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Test accuracy of ``model`` (a :class:`~freqbias.models.Classifier`, eval mode) on all of the ``test`` split
    (x uint8 (N, C, H, W), y (N,)); PGD accuracy (:meth:`RobustEval.attack`: L-inf, ``cfg.steps`` steps of eps / 4,
    random start) on its first ``cfg.n`` images at every ``cfg.eps`` (pixel units), against the net's frozen fast
    copy (:func:`freqbias.frozen.fitting_copy`: the same function up to float rounding, about twice as fast on a
    CPU). The attacks are ``train.eval``'s own, not A's training attack, so that every model, in every experiment
    of a sweep over A's settings, is measured with the same yardstick (and an eps experiment re-evaluates A alone).
    Returns the evaluate stage's metrics (``pgd_acc``: ``{f"{eps:g}": accuracy}``)."""
    x_test, y_test = test
    test_acc = accuracy(model, x_test, y_test)
    x_rob, y_rob = x_test[:cfg.n], y_test[:cfg.n]
    t0 = time.perf_counter()
    fast = nn.Sequential(model.normalize, fitting_copy(model.net, fast=True))  # the same function, twice as fast
    robust = {f"{eps:g}": robust_accuracy(fast, x_rob, y_rob, cfg.attack(eps), seed=seed) for eps in cfg.eps}
    log(f"test acc {test_acc:.4f}; PGD acc ({cfg.steps} steps, {len(y_rob)} images, "
        f"{time.perf_counter() - t0:.0f}s): {robust}")
    return {"variant": variant, "seed": seed, "test_acc": test_acc, "pgd_acc": robust,
            "pgd_eval_n": len(y_rob), "pgd_eval_steps": cfg.steps}
