"""masks: fit the dataset-, class- and single-image Fourier masks of one trained model.

Usage: ``python stages/masks.py --model A-s0 --seed 0`` (or ``--model external/<name>`` for a fetched
checkpoint). The single-image masks use the images chosen with the standard and adversarial models
of ``--seed`` (``models/N-s<seed>.pt``, ``models/A-s<seed>.pt``). Reads params ``masks`` (and
``train.attack`` for the PGD images); writes ``masks/<model>/{dataset,class,single}.pt`` and
``metrics/masks/<model>.json`` (see :mod:`freqbias.mask_run`).
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import load_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import load_split
from freqbias.io import load_json, save_json
from freqbias.mask_run import MasksConfig, fit_model_masks
from freqbias.training import TrainConfig


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model name, e.g. N-s0 (models/<name>.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the N and A models that choose the images")
    args = parser.parse_args()
    log = setup_logging(f"masks {args.model}")
    params = load_params()
    cfg = MasksConfig.from_params(params)
    attack = TrainConfig.from_params(params).attack.build(load_json(paths.manifest_file(), "manifest", dict)["std"][0])
    device = runtime.device()

    standard_name = paths.model_name("N", args.seed)
    model, meta = load_checkpoint(paths.checkpoint(args.model), map_location=device)
    standard, _ = load_checkpoint(paths.checkpoint(standard_name), map_location=device)
    adversarial, _ = load_checkpoint(paths.checkpoint(paths.model_name("A", args.seed)), map_location=device)
    splits = {s: load_split(s) for s in ("val", "test")}
    out = fit_model_masks(args.model, model, meta, standard, adversarial, splits, cfg, attack, args.seed,
                          adv_masks=args.model == standard_name, log=log.info)

    out.dataset.save(paths.mask_file(args.model, "dataset"))
    out.classes.save(paths.mask_file(args.model, "class"))
    out.single.save(paths.mask_file(args.model, "single"))
    save_json(out.metrics, paths.mask_metrics(args.model))


if __name__ == "__main__":
    main()
