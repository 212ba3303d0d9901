"""aggregate: statistics over the masks of every model -> results/ (tables, curves, claims, figure data).

Usage: ``python stages/aggregate.py``. Reads params ``aggregate`` (and ``train.variants``, ``train.seeds``,
``train.variant.A``, ``model``, ``masks``); reads ``models/``, ``masks/``, ``metrics/``, ``selections/`` and
``data/prepared``; writes ``results/*.csv``, ``results/curves/`` (with the tables of ``dvc plots``,
:mod:`freqbias.plot_data`), ``results/claims.json``, ``results/summary.json`` (with this machine's fp32 matmul
peak, :mod:`freqbias.perf`) and
``results/figdata.pt`` (see :mod:`freqbias.stage_aggregate`).
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import time

from freqbias import paths, runtime
from freqbias.artifacts import ControlsData, YardstickData
from freqbias.cli import run_stage, setup_logging
from freqbias.config import Section, load_params
from freqbias.data import load_splits
from freqbias.io import load_json
from freqbias.measures import load_records
from freqbias.perf import matmul_peak
from freqbias.plot_data import load_histories, plot_tables
from freqbias.runs import AggregateConfig
from freqbias.stage_aggregate import run_aggregate, write_results
from freqbias.stage_selection import SelectConfig
from freqbias.training import TrainConfig


@run_stage
def main() -> None:
    log = setup_logging("aggregate")
    t0 = time.perf_counter()
    params = load_params()
    manifest = load_json(paths.manifest_file(), "manifest", dict)
    size = manifest["image_size"]
    cfg = AggregateConfig.from_params(params, (size, size))
    train = TrainConfig.from_params(params)
    records = load_records(train.variants, train.seeds, runtime.device())
    splits = load_splits("val", "test")
    select = SelectConfig.from_params(params).attack.build(manifest["std"][0])  # rebuilds old files' PGD images
    controls = {r.name: ControlsData.load(paths.controls_file(r.name)) for r in records}
    controls.update({paths.yardstick_file(s).stem: YardstickData.load(paths.yardstick_file(s)) for s in train.seeds})
    result = run_aggregate(records, cfg, splits, select, manifest["classes"], log.info, controls=controls)
    histories = load_histories([r.name for r in records])
    # dvc plots' tables
    result.curves.update(plot_tables(result.curves, result.tables["mask_fits"], histories, result.claims))
    result.summary.update({
        "dataset": manifest["dataset"], "source": manifest.get("source"), "counts": manifest["counts"],
        "arch": train.arch, "train": {"epochs": train.epochs, "attack": train.attack.__dict__},
        "masks": Section(params, "masks").data, "seconds": round(time.perf_counter() - t0, 1),
        "controls_seconds": round(sum(load_json(paths.controls_metrics(r.name), "metrics file", dict)
                                      .get("seconds", 0.0) for r in records), 1),  # sum over models, as train's
        "matmul_peak_gflops": round(matmul_peak(), 1)})  # the speed the run times above go with
    write_results(result, paths.RESULTS)
    for claim in result.claims:
        if claim["verdict"] == "not measured":
            log.info(f"claim {claim['claim']}: not measured ({claim['reason']})")
            continue
        log.info(f"claim {claim['claim']}: {claim['verdict']} ({claim['statistic']} = {claim['estimate']:.3g} "
                 f"[{claim['lo']:.3g}, {claim['hi']:.3g}])")
    log.info(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
