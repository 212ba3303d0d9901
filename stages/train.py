"""train: train one model variant with one seed (its test and PGD accuracy: stages/evaluate.py).

Usage: ``python stages/train.py --variant N --seed 0``. Reads params ``model`` and ``train``'s shared
settings, ``train.augment`` and ``train.variant.<variant>``; writes
``models/<variant>-s<seed>.pt``, ``metrics/train/<variant>-s<seed>.json`` and the per-epoch
``metrics/train/<variant>-s<seed>.csv``."""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

import torch

from freqbias import paths, runtime
from freqbias.artifacts import save_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import ParamError, load_params
from freqbias.data import load_splits
from freqbias.io import load_json, save_csv, save_json
from freqbias.models import build_model, count_parameters
from freqbias.stage_train import train_metrics
from freqbias.training import TrainConfig, train_model


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    name = paths.model_name(args.variant, args.seed)
    log = setup_logging(f"train {name}")
    cfg = TrainConfig.from_params(load_params())
    if args.variant not in cfg.variants:
        raise ParamError(f"train.variants: {args.variant!r} is not listed ({cfg.variants})")

    train, val = load_splits("train", "val").values()
    manifest = load_json(paths.manifest_file(), "manifest", dict)
    device = runtime.device()
    torch.manual_seed(args.seed)
    meta = {k: manifest[k] for k in ("in_channels", "num_classes", "image_size", "mean", "std")}
    model = build_model(cfg.arch, **meta).to(device)
    log.info(f"{cfg.arch} ({count_parameters(model):,} params) on {device}, {len(train[1])} train images, "
             f"{cfg.epochs} epochs")

    result = train_model(model, args.variant, cfg, args.seed, train, val, std=manifest["std"][0], log=log.info)
    metrics = train_metrics(args.variant, args.seed, cfg, result)

    save_checkpoint(result.model, {**meta, "arch": cfg.arch, "variant": args.variant, "seed": args.seed,
                                   "best_epoch": result.best_epoch}, paths.checkpoint(name))
    save_csv(result.history, paths.train_history(name))
    save_json(metrics, paths.train_metrics(name))


if __name__ == "__main__":
    main()
