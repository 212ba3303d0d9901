"""fetch: prepare the dataset's fixed train / val / test splits and fetch external checkpoints.

Reads params ``data`` and ``fetch``; writes ``data/prepared/{train,val,test}.pt``,
``data/prepared/manifest.json`` and ``models/external/<name>.pt``."""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
from freqbias import paths
from freqbias.checkpoints import checkpoints_from_params, fetch_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import DataConfig, build_manifest, load_raw, make_splits
from freqbias.io import save_json, save_torch


@run_stage
def main() -> None:
    log = setup_logging("fetch")
    params = load_params()
    cfg = DataConfig.from_params(params)
    specs = checkpoints_from_params(params)

    log.info(f"loading {cfg.dataset}")
    raw = load_raw(cfg, cache_dir=paths.CACHE)
    splits = make_splits(raw, cfg)
    manifest = build_manifest(raw, splits, cfg)
    for split, (x, y) in splits.items():
        save_torch({"x": x, "y": y}, paths.split_file(split))
    save_json(manifest, paths.manifest_file())
    log.info(f"{cfg.dataset}: {manifest['counts']} images of {cfg.image_size}x{cfg.image_size}, "
             f"mean {manifest['mean']} std {manifest['std']}")

    paths.EXTERNAL.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        path = fetch_checkpoint(spec, paths.EXTERNAL)
        log.info(f"checkpoint {spec.name} ({spec.arch}) -> {path}")


if __name__ == "__main__":
    main()
