"""The aggregate stage: from the masks of every model to tables, figure data and the claims of docs/study.md.

Inputs (written by ``stages/masks.py``), per model ``<V>-s<seed>``: the dataset mask (H, Wm), the class
masks (K, H, Wm) and the single-image masks (n, H, Wm), all UNSHIFTED, acting on the *normalised* image
(see :mod:`freqbias.fourier`). Band statistics and figures use the SHIFTED full plane
(:func:`freqbias.bands.shifted_full`, zero frequency in the centre). Pixels are in [0, 1]. Measurements
come from :mod:`freqbias.measures`, :mod:`freqbias.bands`, :mod:`freqbias.probe` and
:mod:`freqbias.baselines`, verdicts from :mod:`freqbias.claims`, tables from :mod:`freqbias.tables` and figure
data from :mod:`freqbias.figdata`; this module runs them in order and writes ``results/``. Its params and
the :class:`Run` the measurements share are in :mod:`freqbias.runs`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from . import paths
from .attacks import PGD
from .bands import band_statistics, band_tables, energy_table, mask_energies, twin_energies
from .baselines import filtered_accuracy, fourier_heatmap, heatmap_mask_correlation
from .budget_results import band_rows, curve_rows, equal_budget_source, ladder_frame, needed_rows, pooled_rows
from .claim_registry import Evidence, measure_all, metric
from .claims import SINGLE, part_variant
from .control_claims import controls_results
from .figdata import faithfulness_curves, figure_data
from .io import save_csv, save_json, save_torch
from .measures import (
    ModelRecord,
    seed_images,
    single_outcomes,
)
from .na import NA, csv_rows, to_json
from .probe import probe
from .runs import AggregateConfig, Run
from .size_null import size_table
from .tables import accuracy_table, baseline_tables, fit_table, probe_table, single_image_table
from .verdicts import VERDICT_RULE, Verdict

# ----------------------------------------------------------------------------- results


@dataclass
class AggregateResult:
    """What the aggregate stage writes: CSV ``tables`` (name -> rows) and per-series ``curves``
    ("<plot>/<series>" -> rows) under results/, ``claims`` and ``summary`` (JSON) and ``figdata``
    (tensors and plain values only, loadable with ``weights_only=True``)."""

    tables: dict[str, list[dict]] = field(default_factory=dict)
    curves: dict[str, list[dict]] = field(default_factory=dict)
    claims: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    figdata: dict = field(default_factory=dict)


def frequency_baselines(record: ModelRecord, x: torch.Tensor, y: torch.Tensor, cfg: AggregateConfig) -> dict:
    """Low- and high-pass filtered accuracy over ``cfg.filter_radii`` (first ``filter_n`` images), the
    Fourier heat map (``cfg.heatmap``: first ``n`` images, ``grid`` frequencies per axis) and its
    Spearman correlation with the model's dataset mask (shifted full plane), an :class:`~freqbias.na.NA`
    with the reason when undefined (a NaN in the mask, or either side constant)."""
    xf, yf = x[:cfg.filter_n], y[:cfg.filter_n]
    heat_cfg = cfg.heatmap
    xh, yh = x[:heat_cfg.n], y[:heat_cfg.n]
    heat = fourier_heatmap(record.model, xh, yh, heat_cfg.norm, heat_cfg.grid, seed=cfg.seed)
    full = torch.fft.fftshift(record.par.to_full(record.dataset_mask), dim=(-2, -1))
    if not torch.isfinite(full).all():
        corr: float | NA = NA("non-finite entries in the dataset mask")
    else:
        corr = heatmap_mask_correlation(heat, full)
        if not math.isfinite(corr):
            why = ["constant heat map (the same error at every frequency)"] * bool(np.ptp(heat) == 0)
            why += ["dataset mask constant at the heat map's frequencies (e.g. all zero or all one)"] * (
                not why or bool(full.max() == full.min()))
            corr = NA(f"{' and '.join(why)}: rank correlation undefined")
    return {"low": filtered_accuracy(record.model, xf, yf, cfg.filter_radii, "low"),
            "high": filtered_accuracy(record.model, xf, yf, cfg.filter_radii, "high"),
            "heatmap": heat, "heatmap_corr": corr}


def run_aggregate(records: Sequence[ModelRecord], cfg: AggregateConfig,
                  splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]], attack: PGD | None,
                  class_names: Sequence[str], log: Callable[[str], None] = lambda m: None,
                  controls: Mapping[str, Mapping] | None = None) -> AggregateResult:
    """All measurements of the aggregate stage. ``splits``: ``{"val": (x, y), "test": (x, y)}``, uint8
    images (N, C, H, W) and labels; ``attack``: the masks stage's PGD, to rebuild the PGD images (unused
    when N's single.pt stores them); ``controls``: the controls stage's measurements per model name, and the
    yardstick stage's per ``yardstick-s<seed>`` (claims 9-11, :mod:`freqbias.control_claims`; left out when None).
    Leaves the records' models in channels-last memory
    format."""
    x_te, y_te = splits["test"]
    run = Run(list(records), cfg, list(class_names), tuple(x_te.shape[-2:]))
    device = next(records[0].model.parameters()).device
    res, timings = AggregateResult(), {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 2)
        clock[0] = now

    # PGD images first, with the models as the masks stage ran them; channels-last (faster on CPU) after.
    images = {s: seed_images(run.by["N", s], run.by["A", s], x_te, y_te, attack, device) for s in run.seeds}
    for r in records:
        r.model.to(memory_format=torch.channels_last)
    lap("pgd_images")
    energies = mask_energies(run)
    res.tables["band_energies"] = energy_table(run, energies)
    bands = band_statistics(run, energies, twin_energies(run))
    res.tables["band_differences"], res.tables["shares"], res.curves = band_tables(run, bands)
    lap("bands")
    res.tables["accuracy"], acc, masked_na = accuracy_table(run, {"val": splits["val"], "test": splits["test"]})
    res.tables["mask_fits"] = fit_table(run)
    lap("accuracy")
    outcomes = {r.name: single_outcomes(r, images[r.seed]) for r in records}
    res.tables["single_image"] = single_image_table(run, outcomes)
    lap("single_image")
    probes = {v: [probe(run.by[v, s], cfg) for s in run.seeds] for v in run.variants}
    res.tables["probe"] = probe_table(run, probes)
    lap("probe")
    baselines = {r.name: frequency_baselines(r, x_te, y_te, cfg) for r in records}
    res.tables["filtered_accuracy"], res.tables["heatmaps"], curves = baseline_tables(run, baselines)
    res.curves.update(curves)
    lap("baselines")

    n_outcomes = [outcomes[run.by["N", s].name] for s in run.seeds]
    n_folds = len(records[0].fold_masks)
    # the verdict on size-matched energies (mask minus its radial twin: size_null), the raw ones beside
    by_source = {p: {f"dataset masks, {n_folds} folds, size-matched": bands.excess(p, folds=True),
                     f"dataset masks, {n_folds} folds": bands.fold_per_seed[p],
                     f"{SINGLE}, size-matched": bands.excess(p, folds=False), SINGLE: bands.per_seed[p]}
                 for p in ("radial", "angular")}
    equal = equal_budget_source(run)   # the fold masks at one budget: size cannot differ (budget_results)
    if equal is not None:
        for p in by_source:
            by_source[p][equal[0]] = equal[1][p]
    ladder = ladder_frame(run)
    res.tables["budget_accuracy"] = ladder.to_dict("records")
    res.tables["budget_accuracy_pooled"] = pooled_rows(ladder, cfg.alpha)
    res.tables["budget_needed"] = needed_rows(ladder, cfg.budget_needed, cfg.alpha)
    res.tables["budget_bands"] = band_rows(run)
    res.curves.update({"budget_accuracy": c} if (c := curve_rows(res.tables["budget_accuracy_pooled"])) else {})
    lap("budgets")
    control_tables, control_rows, cascade_figure = controls_results(run, controls or {})
    res.claims = measure_all(Evidence(
        cfg=cfg, acc=acc, models=[r.name for r in records], masked_na=masked_na, sources=by_source,
        radial_single=bands.per_seed["radial"], radial_twins=bands.twin_per_seed["radial"], outcomes=n_outcomes,
        probes=probes, controls=control_rows, ladder=ladder))
    res.tables["size_matched"] = size_table(res.claims)
    res.tables.update(control_tables)
    lap("claims")
    res.figdata = figure_data(run, images[run.seeds[0]], outcomes, probes, baselines, bands, res.tables["accuracy"])
    measured = controls or {}
    res.figdata["faithfulness"], faith_na = faithfulness_curves({r.name: measured[r.name] for r in records
                                                                 if r.name in measured})
    res.figdata["na"].update(faith_na)
    res.figdata["cascade"] = cascade_figure
    if "na" in cascade_figure:
        res.figdata["na"]["cascade"] = cascade_figure["na"]
    lap("figdata")
    res.summary = {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in records], "kind": records[0].par.kind,
        "image_size": list(run.image_size), "classes": run.class_names,
        "single_n": {s: len(images[s].index) for s in run.seeds},
        "accuracy_n": {k: int(v[0].shape[0]) for k, v in acc.items()},
        "train_seconds": round(sum(r.train_metrics.get("train_seconds", 0.0) for r in records), 1),
        "masks_seconds": round(sum(r.mask_metrics.get("seconds", 0.0) for r in records), 1),
        "aggregate_seconds": timings,
        "verdict_rule": VERDICT_RULE.format(level=f"{100 * (1 - cfg.alpha):g}"),
        "config": asdict(cfg),  # the aggregate params as read (nested like params.yaml)
    }
    log(f"aggregate timings (s): {timings}")
    return res


def _rounded(rows: list[dict], digits: int = 6) -> list[dict]:
    """Floats rounded to ``digits`` significant digits (readable, stable committed tables); NAs kept."""
    return [{k: float(f"{v:.{digits}g}") if isinstance(v, float) and math.isfinite(v) else v for k, v in row.items()}
            for row in rows]


def claim_metrics(claims: Sequence[Mapping[str, Any]]) -> dict:
    """``metrics.json`` (``dvc metrics`` / ``dvc exp show`` columns): per claim its headline ``estimate``, ``lo``,
    ``hi``, ``verdict``, ``reason``, ``seeds_holding`` and a numeric ``verdict_code`` (:attr:`Verdict.code`,
    sortable; None when not measured), and every further part of its headline source as ``part_<i>`` (i from 2; claim 2:
    ``part_2`` is the mid rings) and every secondary part as ``secondary_<i>`` (i from 1), each with ``estimate``,
    ``lo``, ``hi``, ``seeds_holding``, ``verdict_code`` and the ``variant`` it is about (None for a comparison)."""
    out = {}
    for c in claims:
        row = {k: c[k] for k in ("estimate", "lo", "hi", "verdict", "reason")}
        row["verdict_code"] = Verdict(c["verdict"]).code
        row["seeds_holding"] = c.get("seeds_holding")   # in how many seeds every part holds (None: not per seed)
        for key, p in [*((f"part_{i}", p) for i, p in enumerate(c.get("parts", [])[1:], start=2)),
                       *((f"secondary_{i}", p) for i, p in enumerate(c.get("secondary", []), start=1))]:
            row[key] = {**{k: p.get(k) for k in ("estimate", "lo", "hi", "seeds_holding")},
                        "verdict_code": Verdict(p["verdict"]).code, "variant": part_variant(p["statistic"])}
        out[metric(c["claim"])] = row
    return out


def write_results(res: AggregateResult, folder: Path = paths.RESULTS) -> None:
    """Write every output atomically: ``<table>.csv``, ``curves/<plot>/<series>.csv`` (stale series
    removed), ``claims.json``, ``metrics.json`` (headline of every claim, for ``dvc metrics``),
    ``summary.json`` and ``figdata.pt``. In the CSVs a missing value is an empty cell and the row's
    ``reason`` column says why (:func:`freqbias.na.csv_rows`)."""
    for name, rows in res.tables.items():
        save_csv(csv_rows(_rounded(rows)), folder / f"{name}.csv")
    wanted = {folder / "curves" / f"{name}.csv" for name in res.curves}
    for stale in {*(folder / "curves").glob("*.csv"), *(folder / "curves").glob("*/*.csv")} - wanted:
        stale.unlink()
    for name, rows in res.curves.items():
        save_csv(csv_rows(_rounded(rows)), folder / "curves" / f"{name}.csv")
    save_json(to_json(res.claims), folder / "claims.json")
    save_json(to_json(claim_metrics(res.claims)), folder / "metrics.json")
    save_json(to_json(res.summary), folder / "summary.json")
    save_torch(res.figdata, folder / "figdata.pt")
