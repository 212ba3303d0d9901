"""The train stage's evaluation of a trained model: clean test accuracy and PGD robustness, as the
metrics JSON ``metrics/train/<model>.json``. Images: uint8 (N, C, H, W) test split, labels (N,)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from .attacks import PGD
from .training import TrainConfig, TrainResult, accuracy, robust_accuracy


def evaluate_trained(model: nn.Module, variant: str, seed: int, cfg: TrainConfig, result: TrainResult,
                     x_test: torch.Tensor, y_test: torch.Tensor, std: float,
                     log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Test accuracy of ``model`` (eval mode) on all of the test split; PGD accuracy on its first
    ``cfg.eval_n`` images at the training attack (``cfg.attack``, ``std``: the dataset's pixel std, for
    eps in normalised units) and at every ``cfg.eval_eps`` (pixel units, ``cfg.eval_steps`` steps of
    eps / 4). Returns the train stage's metrics (with ``result``'s best epoch, val accuracy and time)."""
    test_acc = accuracy(model, x_test, y_test)
    x_rob, y_rob = x_test[:cfg.eval_n], y_test[:cfg.eval_n]
    t0 = time.perf_counter()
    train_attack = cfg.attack.build(std)
    robust = {f"{eps:g}": robust_accuracy(model, x_rob, y_rob, PGD(eps, eps / 4, cfg.eval_steps), seed=seed)
              for eps in cfg.eval_eps}
    robust_train_eps = robust_accuracy(model, x_rob, y_rob, train_attack, seed=seed)
    log(f"test acc {test_acc:.4f}; PGD acc at train eps {train_attack.eps:g}: {robust_train_eps:.4f} "
        f"({time.perf_counter() - t0:.0f}s); sweep {robust}")
    return {"variant": variant, "seed": seed, "arch": cfg.arch, "test_acc": test_acc,
            "val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "epochs": cfg.epochs,
            "pgd_acc_train_eps": robust_train_eps, "train_eps_pixel": train_attack.eps,
            "pgd_acc": robust, "pgd_eval_n": len(y_rob), "pgd_eval_steps": cfg.eval_steps,
            "train_seconds": round(result.seconds, 1)}
