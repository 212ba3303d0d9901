"""The train stage's metrics of a trained model (``metrics/train/<model>.json``: best epoch, val accuracy, time);
the evaluate stage's are :mod:`freqbias.stage_evaluate`'s."""

from __future__ import annotations

from typing import Any

from .training import TrainConfig, TrainResult


def train_metrics(variant: str, seed: int, cfg: TrainConfig, result: TrainResult) -> dict[str, Any]:
    """The train stage's metrics: ``result``'s best epoch, val accuracy and training time."""
    return {"variant": variant, "seed": seed, "arch": cfg.arch, "val_acc": result.best_val_acc,
            "best_epoch": result.best_epoch, "epochs": cfg.epochs, "train_seconds": round(result.seconds, 1)}
