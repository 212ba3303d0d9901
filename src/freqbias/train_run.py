"""The metrics of a trained model: the train stage's (``metrics/train/<model>.json``: best epoch, val
accuracy, time) and the evaluate stage's (``metrics/evaluate/<model>.json``: clean test accuracy and PGD
robustness). Images: uint8 (N, C, H, W) test split, labels (N,)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from .attacks import PGD, AttackConfig
from .training import TrainConfig, TrainResult, accuracy, robust_accuracy


def train_metrics(variant: str, seed: int, cfg: TrainConfig, result: TrainResult) -> dict[str, Any]:
    """The train stage's metrics: ``result``'s best epoch, val accuracy and training time."""
    return {"variant": variant, "seed": seed, "arch": cfg.arch, "val_acc": result.best_val_acc,
            "best_epoch": result.best_epoch, "epochs": cfg.epochs, "train_seconds": round(result.seconds, 1)}


def evaluate_model(model: nn.Module, variant: str, seed: int, attack: AttackConfig, eval_eps: list[float],
                   eval_steps: int, eval_n: int, x_test: torch.Tensor, y_test: torch.Tensor, std: float,
                   log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Test accuracy of ``model`` (eval mode) on all of the test split; PGD accuracy on its first
    ``eval_n`` images at the training attack (``attack``, ``train.variant.A``; ``std``: the dataset's pixel
    std, for eps in normalised units) and at every ``eval_eps`` (pixel units, ``eval_steps`` steps of
    eps / 4). Returns the evaluate stage's metrics."""
    test_acc = accuracy(model, x_test, y_test)
    x_rob, y_rob = x_test[:eval_n], y_test[:eval_n]
    t0 = time.perf_counter()
    train_attack = attack.build(std)
    robust = {f"{eps:g}": robust_accuracy(model, x_rob, y_rob, PGD(eps, eps / 4, eval_steps), seed=seed)
              for eps in eval_eps}
    robust_train_eps = robust_accuracy(model, x_rob, y_rob, train_attack, seed=seed)
    log(f"test acc {test_acc:.4f}; PGD acc at train eps {train_attack.eps:g}: {robust_train_eps:.4f} "
        f"({time.perf_counter() - t0:.0f}s); sweep {robust}")
    return {"variant": variant, "seed": seed, "test_acc": test_acc,
            "pgd_acc_train_eps": robust_train_eps, "train_eps_pixel": train_attack.eps,
            "pgd_acc": robust, "pgd_eval_n": len(y_rob), "pgd_eval_steps": eval_steps}
