"""select: the test images of the single-image masks of every model of one seed.

Usage: ``python stages/selection.py --seed 0`` (not select.py: as a script's sibling it would shadow the
standard library's ``select``). The study's rule (:func:`freqbias.stage_selection.select_images`) on the seed's
own random draw: screening the seed's shard of the test split (its position in ``train.seeds`` picks one of
disjoint shards, :func:`freqbias.stage_selection.seed_shard`) in an order drawn with the seed, the first
``masks.select.n_images`` test images on which ``models/N-s<seed>.pt`` and ``models/A-s<seed>.pt``
are equally right or wrong and on which the selection's PGD (``masks.select``) flips N. Writes
``selections/s<seed>.pt``. With ``masks.select.keep`` true an existing selection is kept as it is
(``persist: true`` in dvc.yaml): a sweep over A's settings fits every model's masks on the same images
(docs/study.md, "One selection per sweep")."""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import load_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import Section, load_params
from freqbias.data import load_split
from freqbias.io import load_json
from freqbias.stage_selection import SelectConfig, save_selection, seed_shard, select_images


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    log = setup_logging(f"select s{args.seed}")
    params = load_params()
    cfg = SelectConfig.from_params(params)
    seeds = Section(params, "train").numbers("seeds", integer=True, min=0)
    out = paths.selection_file(args.seed)
    if cfg.keep and out.exists():
        log.info(f"masks.select.keep: keeping {out} as it is")
        return
    device = runtime.device()
    standard, _ = load_checkpoint(paths.checkpoint(paths.model_name("N", args.seed)), map_location=device)
    adversarial, _ = load_checkpoint(paths.checkpoint(paths.model_name("A", args.seed)), map_location=device)
    x_te, y_te = load_split("test")
    attack = cfg.attack.build(load_json(paths.manifest_file(), "manifest", dict)["std"][0])
    order = seed_shard(seeds, args.seed, len(x_te))
    sel = select_images(standard, adversarial, x_te, y_te, attack, cfg.n_images, seed=args.seed, order=order)
    if len(sel.index) < cfg.n_images:
        log.info(f"only {len(sel.index)} of the {cfg.n_images} images asked for met the selection rule in the "
                 f"{sel.pool} test images of this seed's shard")
    log.info(f"{len(sel.index)} images of the {sel.pool} screened in this seed's shard of {len(order)} -> {out}")
    save_selection(sel, out)


if __name__ == "__main__":
    main()
