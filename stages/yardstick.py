"""yardstick: claim 11's yardstick, the standard model of one seed on the images the next seed was selected on.

Usage: ``python stages/yardstick.py --seed 0``. The standard model ``N-s<seed>`` fits its single-image masks
(params ``masks.kind``, ``masks.single``) on the next seed's selected images (``train.seeds``, cyclically:
``selections/s<next>.pt``), where that seed's own standard model has its masks from the masks stage: two
trained networks of one recipe on the same images (docs/study.md "Controls"). Writes
``controls/yardstick-s<seed>.pt``; with one seed, the reason there is none.
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import load_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import Section, load_params
from freqbias.data import load_split
from freqbias.stage_masks import MasksConfig
from freqbias.stage_selection import load_selection
from freqbias.stage_yardstick import yardstick


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="seed of the standard model (models/N-s<seed>.pt)")
    args = parser.parse_args()
    log = setup_logging(f"yardstick s{args.seed}")
    params = load_params()
    masks_cfg = MasksConfig.from_params(params)
    seeds = Section(params, "train").numbers("seeds", integer=True, min=0)
    later = [s for s in seeds if s > args.seed] or [s for s in seeds if s != args.seed]  # the next, cyclically
    model, _ = load_checkpoint(paths.checkpoint(paths.model_name("N", args.seed)), map_location=runtime.device())
    selection = (load_selection(paths.selection_file(min(later)), load_split("test")[0]) if later else None)
    out = yardstick(model, min(later) if later else args.seed, selection, masks_cfg.single,
                    reason="one trained seed (train.seeds): no other seed's images")
    out.save(paths.yardstick_file(args.seed))
    log.info(f"N-s{args.seed} on seed {min(later)}'s {len(selection.index)} images: "
             f"{float(out.converged.float().mean()):.0%} stopped by their rule" if later else out.na)


if __name__ == "__main__":
    main()
