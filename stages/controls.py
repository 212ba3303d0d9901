"""controls: what the masks of one trained model show beyond a plain low-pass filter (docs/study.md, "Controls").

Usage: ``python stages/controls.py --model N-s0 --seed 0``. Reads params ``controls`` and ``masks`` (the isotropic
masks are fitted with the dataset masks' method and rule, the randomisation check's masks like the
single-image masks); reads ``models/<model>.pt``, ``masks/<model>/`` and ``data/prepared``; writes
``controls/<model>.pt`` and ``metrics/controls/<model>.json`` (see :mod:`freqbias.stage_controls`).
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import LoadedModel, MaskSet
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.controls import ControlsConfig
from freqbias.data import load_splits
from freqbias.io import save_json
from freqbias.stage_controls import run_controls
from freqbias.stage_masks import MasksConfig


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model name, e.g. N-s0 (models/<name>.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the model's fit groups (the masks stage's)")
    args = parser.parse_args()
    log = setup_logging(f"controls {args.model}")
    params = load_params()
    cfg, masks_cfg = ControlsConfig.from_params(params), MasksConfig.from_params(params)
    subject = LoadedModel.load(args.model, runtime.device())
    splits = load_splits("val", "test")
    out = run_controls(subject, MaskSet.load(args.model), splits, cfg, masks_cfg, args.seed,
                       standard=args.model == paths.model_name("N", args.seed), log=log.info)
    out.data.save(paths.controls_file(args.model))
    save_json(out.metrics, paths.controls_metrics(args.model))


if __name__ == "__main__":
    main()
