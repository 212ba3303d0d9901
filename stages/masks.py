"""masks: fit the dataset-, class- and single-image Fourier masks of one trained model.

Usage: ``python stages/masks.py --model A-s0 --seed 0`` (or ``--model external/<name>`` for a fetched
checkpoint). The single-image masks use the images chosen with the standard and adversarial models
of ``--seed`` (``models/N-s<seed>.pt``, ``models/A-s<seed>.pt``). Reads params ``masks`` (and
``train.attack`` for the PGD images); writes ``masks/<model>/{dataset,class,single}.pt`` and
``metrics/masks/<model>.json``.
"""

import argparse
import time
from pathlib import Path

import torch

from freqbias import runtime
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import load_split, to_float
from freqbias.fitting import MasksConfig, fit_class_masks, fit_dataset_mask, fit_single_masks
from freqbias.fourier import agreement, predict, sparsity, support
from freqbias.io import load_json, save_json, save_torch
from freqbias.models import load_checkpoint
from freqbias.single_image import evaluate_single_masks, select_images
from freqbias.training import TrainConfig

DATA = Path("data/prepared")


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model name, e.g. N-s0 (models/<name>.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the N and A models that choose the images")
    args = parser.parse_args()
    log = setup_logging(f"masks {args.model}")
    params = load_params()
    cfg = MasksConfig.from_params(params)
    attack = TrainConfig.from_params(params).attack
    seed = args.seed
    device = runtime.device()
    std = load_json(DATA / "manifest.json")["std"][0]

    is_standard = args.model == f"N-s{seed}"
    model, meta = load_checkpoint(Path("models") / f"{args.model}.pt", map_location=device)
    standard, _ = load_checkpoint(Path("models") / f"N-s{seed}.pt", map_location=device)
    adversarial, _ = load_checkpoint(Path("models") / f"A-s{seed}.pt", map_location=device)
    (x_val, y_val), (x_te, y_te) = load_split(DATA, "val"), load_split(DATA, "test")
    net, norm = model.net, lambda x: model.normalize(to_float(x).to(device))
    z_val, z_te = norm(x_val), norm(x_te)
    y_val, y_te = y_val.to(device), y_te.to(device)
    t0 = time.perf_counter()

    # Dataset mask: fit on part of val, score on all of val and on the untouched test split.
    n_fit = min(cfg.dataset_fit_n or len(y_val), len(y_val))
    torch.manual_seed(seed)
    mask, history = fit_dataset_mask(net, z_val[:n_fit], y_val[:n_fit], cfg.dataset)
    scores = {f"{split}_{what}": agreement(net, z, y, m, cfg.kind)
              for split, z, y in (("val", z_val, y_val), ("test", z_te, y_te))
              for what, m in (("clean_acc", None), ("masked_acc", mask))}
    log.info(f"dataset mask: mean {sparsity(mask, z_val.shape[-1], cfg.kind):.4f}, {len(history)} epochs, {scores}")

    # Class masks: one per class, on that class's first class_fit_n val images.
    pick = torch.cat([(y_val == k).nonzero().squeeze(1)[:cfg.class_fit_n] for k in range(meta["num_classes"])])
    class_masks, class_hist = fit_class_masks(net, z_val[pick], y_val[pick], meta["num_classes"], cfg.dataset)
    log.info(f"class masks: mean values {[round(float(v), 3) for v in sparsity(class_masks, z_val.shape[-1], cfg.kind)]}")

    # Single-image masks on the study's images; target = the model's own prediction on each input.
    sel = select_images(standard, adversarial, x_te, y_te.cpu(), attack.build(std), cfg.single_n, seed=seed)
    z, z_adv = model.normalize(sel.x.to(device)), model.normalize(sel.x_adv.to(device))
    target = predict(net, z)
    single_cfg = cfg.single_for(net, tuple(z.shape[1:]), chunk_size=runtime.chunk_size(),
                                memory_mb=runtime.memory_mb())
    clean = fit_single_masks(net, z, target, single_cfg)
    single = {"index": sel.index, "y": sel.y, "x_adv": sel.x_adv.cpu(), "target": target.cpu(), "masks": clean.masks.cpu(),
              "steps": clean.steps_used, "kept": clean.kept, "pool": sel.pool}
    evaluation = evaluate_single_masks(net, z, target, clean.masks, cfg.kind,
                                       z_adv=z_adv if is_standard else None)
    if is_standard:  # the study's third mask: the standard model on the PGD image
        target_adv = predict(net, z_adv)
        adv = fit_single_masks(net, z_adv, target_adv, single_cfg)
        single.update(masks_adv=adv.masks.cpu(), target_adv=target_adv.cpu(), steps_adv=adv.steps_used,
                      kept_adv=adv.kept)
        evaluation["adv_masked_agreement"] = float(adv.kept.float().mean())
    log.info(f"single-image masks on {len(target)} images (of {sel.pool} screened): {evaluation}")

    out = Path("masks") / args.model
    save_torch({"mask": mask.cpu(), "history": history, "kind": cfg.kind, "meta": meta}, out / "dataset.pt")
    save_torch({"masks": class_masks.cpu(), "index": pick.cpu(), "kind": cfg.kind}, out / "class.pt")
    save_torch({**single, "kind": cfg.kind}, out / "single.pt")
    width = z_val.shape[-1]
    save_json({
        "model": args.model, "variant": meta.get("variant", "external"), "seed": meta.get("seed", seed), "kind": cfg.kind, **scores,
        "val_ratio": scores["val_masked_acc"] / scores["val_clean_acc"],
        "test_ratio": scores["test_masked_acc"] / scores["test_clean_acc"],
        "dataset_mask_mean": float(sparsity(mask, width, cfg.kind)),
        "dataset_mask_support": float(support(mask, width, cfg.kind)),
        "dataset_epochs": len(history), "dataset_fit_n": n_fit,
        "class_mask_mean": float(sparsity(class_masks, width, cfg.kind).mean()),
        "class_epochs_mean": sum(len(h) for h in class_hist) / len(class_hist),
        "single_n": len(target), "single_steps_mean": float(clean.steps_used.float().mean()),
        "single_mask_mean": float(clean.mean_mask.mean()), **{f"single_{k}": v for k, v in evaluation.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }, Path("metrics/masks") / f"{args.model}.json")


if __name__ == "__main__":
    main()
