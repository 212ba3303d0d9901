"""train: train one model variant with one seed, then evaluate it on the test split.

Usage: ``python stages/train.py --variant N --seed 0``. Reads params ``model`` and ``train``; writes
``models/<variant>-s<seed>.pt``, ``metrics/train/<variant>-s<seed>.json`` and the per-epoch
``metrics/train/<variant>-s<seed>.csv``."""

import argparse
import time
from pathlib import Path

import torch

from freqbias import runtime
from freqbias.attacks import PGD
from freqbias.cli import run_stage, setup_logging
from freqbias.config import ParamError, load_params
from freqbias.data import load_split
from freqbias.io import load_json, save_csv, save_json, save_torch
from freqbias.models import build_model, checkpoint_dict, count_parameters
from freqbias.training import TrainConfig, accuracy, robust_accuracy, train_model

DATA = Path("data/prepared")


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    log = setup_logging(f"train {args.variant}-s{args.seed}")
    cfg = TrainConfig.from_params(load_params())
    if args.variant not in cfg.variants:
        raise ParamError(f"train.variants: {args.variant!r} is not listed ({cfg.variants})")
    name = f"{args.variant}-s{args.seed}"

    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = (load_split(DATA, s) for s in ("train", "val", "test"))
    manifest = load_json(DATA / "manifest.json")
    device = runtime.device()
    torch.manual_seed(args.seed)
    meta = {k: manifest[k] for k in ("in_channels", "num_classes", "image_size", "mean", "std")}
    model = build_model(cfg.arch, **meta).to(device)
    log.info(f"{cfg.arch} ({count_parameters(model):,} params) on {device}, {len(y_tr)} train images, "
             f"{cfg.epochs} epochs")

    result = train_model(model, args.variant, cfg, args.seed, x_tr, y_tr, x_val, y_val,
                         std=manifest["std"][0], log=log.info)
    model = result.model
    test_acc = accuracy(model, x_te, y_te)
    x_rob, y_rob = x_te[:cfg.eval_n], y_te[:cfg.eval_n]
    t0 = time.perf_counter()
    train_attack = cfg.attack.build(manifest["std"][0])
    robust = {f"{eps:g}": robust_accuracy(model, x_rob, y_rob, PGD(eps, eps / 4, cfg.eval_steps), seed=args.seed)
              for eps in cfg.eval_eps}
    robust_train_eps = robust_accuracy(model, x_rob, y_rob, train_attack, seed=args.seed)
    log.info(f"test acc {test_acc:.4f}; PGD acc at train eps {train_attack.eps:g}: {robust_train_eps:.4f} "
             f"({time.perf_counter() - t0:.0f}s); sweep {robust}")

    save_torch(checkpoint_dict(model, {**meta, "arch": cfg.arch, "variant": args.variant, "seed": args.seed,
                                       "best_epoch": result.best_epoch}), Path("models") / f"{name}.pt")
    save_csv(result.history, Path("metrics/train") / f"{name}.csv")
    save_json({"variant": args.variant, "seed": args.seed, "arch": cfg.arch, "test_acc": test_acc,
               "val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "epochs": cfg.epochs,
               "pgd_acc_train_eps": robust_train_eps, "train_eps_pixel": train_attack.eps,
               "pgd_acc": robust, "pgd_eval_n": len(y_rob), "pgd_eval_steps": cfg.eval_steps,
               "train_seconds": round(result.seconds, 1)}, Path("metrics/train") / f"{name}.json")


if __name__ == "__main__":
    main()
