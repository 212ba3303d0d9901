"""masks: fit the dataset-, class- and single-image Fourier masks of one trained model.

Usage: ``python stages/masks.py --model A-s0 --seed 0`` (or ``--model external/<name>`` for a fetched
checkpoint). The single-image masks use the images the select stage chose for ``--seed``
(``selections/s<seed>.pt``). Reads params ``masks.kind``, ``masks.dataset`` and ``masks.single``; writes
``masks/<model>/{dataset,class,single}.pt`` and
``metrics/masks/<model>.json`` (see :mod:`freqbias.stage_masks`).
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import LoadedModel
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import load_splits
from freqbias.io import save_json
from freqbias.stage_masks import MasksConfig, fit_model_masks
from freqbias.stage_selection import load_selection


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model name, e.g. N-s0 (models/<name>.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the selection (selections/s<seed>.pt)")
    args = parser.parse_args()
    log = setup_logging(f"masks {args.model}")
    cfg = MasksConfig.from_params(load_params())
    device = runtime.device()

    standard_name = paths.model_name("N", args.seed)
    subject = LoadedModel.load(args.model, device)
    splits = load_splits("val", "test")
    sel = load_selection(paths.selection_file(args.seed), splits["test"][0])
    out = fit_model_masks(subject, args.seed, sel, splits, cfg, adv_masks=args.model == standard_name, log=log.info)

    out.masks.save(args.model)
    save_json(out.metrics, paths.mask_metrics(args.model))


if __name__ == "__main__":
    main()
