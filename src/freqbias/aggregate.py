"""The aggregate stage: from the masks of every model to tables, figure data and the claims of docs/study.md.

Inputs (written by ``stages/masks.py``), per model ``<V>-s<seed>``: the dataset mask (H, Wm), the class
masks (K, H, Wm) and the single-image masks (n, H, Wm), all UNSHIFTED, acting on the *normalised* image
(see :mod:`freqbias.fourier`). Band statistics and figures use the SHIFTED full plane
(:func:`freqbias.bands.shifted_full`, zero frequency in the centre). Pixels are in [0, 1]. Measurements
come from :mod:`freqbias.measures`, :mod:`freqbias.bands`, :mod:`freqbias.probe` and
:mod:`freqbias.baselines`, verdicts from :mod:`freqbias.claims`; this module holds the params, runs them
in order and writes ``results/``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from . import paths
from .attacks import PGD
from .bands import (
    BandStats,
    band_centres,
    band_statistics,
    band_tables,
    empty_bands,
    energy_table,
    mask_energies,
    shifted_full,
)
from .baselines import frequency_baselines, heatmap_frequencies
from .bootstrap import Estimate, bootstrap_ci, ci_row, cluster_bootstrap, finite_rows
from .claims import (
    VERDICT_RULE,
    claim_accuracy,
    claim_angular,
    claim_augmentations,
    claim_complement,
    claim_low_share,
    claim_probe,
    claim_radial,
    claim_texture,
    ratio,
)
from .config import ParamError, Section
from .fourier import binary_complement, sparsity, support
from .io import save_csv, save_json, save_torch
from .measures import (
    ModelRecord,
    SeedImages,
    dataset_correct,
    finite_masks,
    masked_pixels,
    seed_images,
    single_outcomes,
)
from .na import NA, csv_rows, na_estimate, number
from .probe import probe

# ----------------------------------------------------------------------------- params


@dataclass(frozen=True)
class AggregateConfig:
    """The ``aggregate`` section of params.yaml (see the comments there)."""

    radial_bands: int = 14
    angular_bands: int = 16
    n_boot: int = 2000
    alpha: float = 0.05
    seed: int = 0
    accuracy_n: int | None = 1000
    probe_train_frac: float = 0.7
    probe_weight_decay: float = 1e-3
    probe_max_iter: int = 200
    filter_n: int = 300
    filter_radii: tuple[float, ...] = (1, 2, 4, 6, 9, 14)
    heatmap_n: int = 100
    heatmap_grid: int = 7
    heatmap_norm: float = 3.0
    figure_images: int = 8
    ratio_min: float = 0.99
    small_ratio: float = 0.5
    agreement_min: float = 0.9
    ssim_max: float = 0.5

    @classmethod
    def from_params(cls, params: Mapping[str, Any], image_size: tuple[int, int]) -> "AggregateConfig":
        """Read and validate ``aggregate``; band counts must leave no band empty on an ``image_size`` plane."""
        sec = Section(params, "aggregate")
        probe, filt, heat, claims = sec.sub("probe"), sec.sub("filtered"), sec.sub("heatmap"), sec.sub("claims")
        cfg = cls(
            radial_bands=sec.integer("radial_bands", min=3), angular_bands=sec.integer("angular_bands", min=2),
            n_boot=sec.integer("n_boot", min=10), alpha=sec.number("alpha", min=0, max=0.5, strict_min=True),
            seed=sec.integer("seed", min=0), accuracy_n=sec.integer("accuracy_n", None, min=1, optional=True),
            probe_train_frac=probe.number("train_frac", min=0, max=0.95, strict_min=True),
            probe_weight_decay=probe.number("weight_decay", min=0), probe_max_iter=probe.integer("max_iter", min=1),
            filter_n=filt.integer("n", min=1), filter_radii=tuple(filt.numbers("radii", min=0)),
            heatmap_n=heat.integer("n", min=1), heatmap_grid=heat.integer("grid", min=1),
            heatmap_norm=heat.number("norm", min=0, strict_min=True),
            figure_images=sec.integer("figure_images", min=1),
            ratio_min=claims.number("ratio_min", min=0), small_ratio=claims.number("small_ratio", min=0),
            agreement_min=claims.number("agreement_min", min=0, max=1), ssim_max=claims.number("ssim_max", max=1),
        )
        if not cfg.filter_radii:
            raise ParamError("aggregate.filtered.radii: must list at least one radius")
        h, w = image_size
        empty = empty_bands(h, w, cfg.radial_bands, cfg.angular_bands)
        for key, n in (("radial", cfg.radial_bands), ("angular", cfg.angular_bands)):
            if empty[key]:
                raise ParamError(f"aggregate.{key}_bands: {n} bands leave band(s) {empty[key]} empty on a "
                                 f"{h}x{w} spectrum; use fewer")
        return cfg


# ----------------------------------------------------------------------------- tables


@dataclass
class Run:
    """The models of one aggregation with their context: ``by[(variant, seed)]`` -> record, the seeds
    and variants in order (N included), the class names and the image size (H, W)."""

    records: list[ModelRecord]
    cfg: AggregateConfig
    class_names: list[str]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.seeds = sorted({r.seed for r in self.records})
        self.variants = list(dict.fromkeys(r.variant for r in self.records))
        self.others = [v for v in self.variants if v != "N"]
        self.by = {(r.variant, r.seed): r for r in self.records}
        self.centres = band_centres(*self.image_size, self.cfg.radial_bands, self.cfg.angular_bands)
        self.boot = dict(n_boot=self.cfg.n_boot, alpha=self.cfg.alpha, seed=self.cfg.seed)


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


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).float()


def logged(metrics: Mapping[str, Any], key: str, where: str) -> float | NA:
    """A number an earlier stage logged in ``where`` (a metrics JSON), or NA: the stage's own reason (its
    ``na`` entry for ``key``), else that it is missing or not a finite number."""
    x = number(metrics.get(key))
    if x is not None:
        return x
    why = (metrics.get("na") or {}).get(key)
    return NA(f"{where}: {why}" if why else f"not in {where}" if key not in metrics else f"{where}: no number logged")


def _interval_or_na(est: Estimate, why: str) -> Estimate:
    """An estimate whose interval ends are NA(``why``) where they are not finite."""
    lo, hi = (x if math.isfinite(float(x)) else NA(why) for x in est[1:])
    return est[0], lo, hi


def accuracy_table(run: Run, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[list[dict], dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Dataset masks re-scored on the first ``accuracy_n`` images of each split: rows of accuracy.csv
    (clean, masked and masked / clean with intervals over images; the masks stage's full-split values as
    ``*_all``), per split the (clean, masked) correctness matrices (n_images, n_models) for claim 1, and
    per model whose masked accuracy is n/a (a NaN in its dataset mask; its masked column is NaN) why."""
    w = run.image_size[1]
    rows = {r.name: {"model": r.name, "variant": r.variant, "seed": r.seed} for r in run.records}
    mask_na = {r.name: "non-finite entries in the dataset mask" for r in run.records
               if not torch.isfinite(r.dataset_mask).all()}
    resampled = "masked / clean undefined in some bootstrap resamples (clean accuracy 0 there)"
    acc = {}
    for split, (x, y) in splits.items():
        x, y = x[:run.cfg.accuracy_n], y[:run.cfg.accuracy_n]
        cols = [dataset_correct(r, x, y) for r in run.records]
        acc[split] = (np.stack([c for c, _ in cols], axis=1), np.stack([m for _, m in cols], axis=1))
        for r, (clean, masked) in zip(run.records, cols):
            if not len(y):
                clean_est = masked_est = ratio_est = na_estimate(f"no {split} images")
            else:
                clean_est = bootstrap_ci(clean, **run.boot)
                masked_est = na_estimate(mask_na[r.name]) if r.name in mask_na else bootstrap_ci(masked, **run.boot)
                if r.name in mask_na:
                    ratio_est = masked_est
                elif not clean.mean() > 0:
                    ratio_est = na_estimate(f"{split} clean accuracy is 0: masked / clean undefined")
                else:
                    ratio_est = _interval_or_na(cluster_bootstrap([np.stack([masked, clean], 1)],
                                                                  lambda m: ratio(m[0], m[1]), **run.boot), resampled)
            metrics = f"metrics/masks/{r.name}.json"
            rows[r.name].update({
                f"{split}_n": len(y), **ci_row(f"{split}_clean", clean_est), **ci_row(f"{split}_masked", masked_est),
                **ci_row(f"{split}_ratio", ratio_est),
                f"{split}_clean_all": logged(r.mask_metrics, f"{split}_clean_acc", metrics),
                f"{split}_masked_all": logged(r.mask_metrics, f"{split}_masked_acc", metrics)})
    for r in run.records:
        mean, supp = (NA(mask_na[r.name]),) * 2 if r.name in mask_na else (
            float(sparsity(r.dataset_mask, w, r.kind)), float(support(r.dataset_mask, w, r.kind)))
        rows[r.name].update({"dataset_fit_n": r.mask_metrics.get("dataset_fit_n"), "mask_mean": mean,
                             "mask_support": supp,
                             "pgd_acc_train_eps": logged(r.train_metrics, "pgd_acc_train_eps",
                                                         f"metrics/train/{r.name}.json")})
    return list(rows.values()), acc, mask_na


STORED = {"masked": "single_masked_agreement", "complement": "single_complement_agreement",
          "pgd": "single_adv_agreement", "restored": "single_adv_restored_continuous",
          "restored_binary": "single_adv_restored_binary", "adv_masked": "single_adv_masked_agreement"}
NO_IMAGES = "no single-image masks (0 images)"
# Why an outcome is undefined on an image whose mask is finite (see measures.single_outcomes).
UNDEFINED = {"corr": "a constant masked image (no pixel correlation)"}


def _outcome_cells(values: Sequence[np.ndarray], mask_ok: Sequence[np.ndarray], metric: str,
                   boot: Mapping[str, Any]) -> tuple[dict, int, str]:
    """``value`` / ``value_lo`` / ``value_hi`` of one outcome over its images (one array (n_s,) per seed),
    the number of images it is defined on, and a note naming the images left out and why (``mask_ok``:
    per seed, which images' masks are finite); NA with the reason when no image has it."""
    total = sum(len(v) for v in values)
    bad_mask = sum(int((~np.isfinite(v) & ~ok).sum()) for v, ok in zip(values, mask_ok))
    bad_other = sum(int((~np.isfinite(v) & ok).sum()) for v, ok in zip(values, mask_ok))
    why = ", ".join([f"{bad_mask} with non-finite mask entries"] * bool(bad_mask) +
                    [f"{bad_other} with {UNDEFINED.get(metric, 'no finite value')}"] * bool(bad_other))
    kept = finite_rows(values)
    if not total:
        return ci_row("value", na_estimate(NO_IMAGES)), 0, ""
    if not kept:
        return ci_row("value", na_estimate(f"undefined on all {total} images: {why}")), 0, ""
    n = sum(len(k) for k in kept)
    note = f"value: {total - n} of {total} images left out ({why})" if n < total else ""
    return ci_row("value", cluster_bootstrap(kept, **boot)), n, note


def single_image_table(run: Run, outcomes: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """Rows of single_image.csv: every per-image outcome's mean with its interval over the images where
    it is defined, per model and (with several seeds) pooled per variant; ``n``: those images;
    ``stored`` = the value the masks stage logged."""
    rows = []
    for v in run.variants:
        recs = [run.by[v, s] for s in run.seeds]
        group = [outcomes[r.name] for r in recs]
        ok = {m: [finite_masks(r.single.masks_adv if m == "adv_masked" else r.single.masks).numpy() for r in recs]
              for m in group[0]}
        for metric in group[0]:
            for s, r, o, mask_ok in zip(run.seeds, recs, group, ok[metric]):
                cells, n, note = _outcome_cells([o[metric]], [mask_ok], metric, run.boot)
                stored = (logged(r.mask_metrics, STORED[metric], f"metrics/masks/{r.name}.json") if metric in STORED
                          else NA("not logged by the masks stage"))
                rows.append({"model": r.name, "variant": v, "seed": s, "metric": metric, "n": n, **cells,
                             "stored": stored, "reason": note})
            if len(run.seeds) > 1:
                cells, n, note = _outcome_cells([o[metric] for o in group], ok[metric], metric, run.boot)
                rows.append({"model": f"{v}-all", "variant": v, "seed": "all", "metric": metric, "n": n, **cells,
                             "stored": NA("pooled over seeds: no single logged value"), "reason": note})
    return rows


PROBE_COLUMNS = ("n_train", "n_test", "train_acc", "test_acc", "test_acc_lo", "test_acc_hi", "permuted_test_acc",
                 "permuted_test_acc_lo", "permuted_test_acc_hi", "chance", "converged")


def probe_table(run: Run, probes: Mapping[str, Sequence[dict | NA]]) -> list[dict]:
    """Rows of probe.csv: train / test accuracy with true and permuted labels (intervals over test
    images), chance, and whether both L-BFGS fits converged; every value NA with the reason when the
    model could not be probed."""
    rows = []
    for v in run.variants:
        for s, p in zip(run.seeds, probes[v]):
            row = {"model": run.by[v, s].name, "variant": v, "seed": s}
            if isinstance(p, NA):
                rows.append({**row, **dict.fromkeys(PROBE_COLUMNS, p), "reason": ""})
                continue
            converged = bool(p["converged"] and p["permuted_converged"])
            notes = ([f"{p['excluded']} single-image masks with non-finite entries left out"] * bool(p["excluded"]) +
                     ["an L-BFGS fit stopped at aggregate.probe.max_iter before converging"] * (not converged))
            rows.append({**row, "n_train": len(p["train_index"]), "n_test": len(p["test_index"]),
                         "train_acc": p["train_acc"],
                         **ci_row("test_acc", bootstrap_ci(p["test_correct"].astype(float), **run.boot)),
                         **ci_row("permuted_test_acc",
                                  bootstrap_ci(p["permuted_test_correct"].astype(float), **run.boot)),
                         "chance": p["chance"], "converged": converged, "reason": "; ".join(notes)})
    return rows


def baseline_tables(run: Run, baselines: Mapping[str, dict]) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
    """Rows of filtered_accuracy.csv and heatmaps.csv, and the filtered-accuracy curves per model."""
    filtered, curves = [], {}
    for r in run.records:
        b = baselines[r.name]
        series = [{"radius": rad, "low_pass": float(b["low"][i]), "high_pass": float(b["high"][i])}
                  for i, rad in enumerate(run.cfg.filter_radii)]
        curves[f"filtered/{r.name}"] = series
        filtered += [{"model": r.name, "variant": r.variant, "seed": r.seed, **row} for row in series]
    heat = [{"model": r.name, "variant": r.variant, "seed": r.seed,
             "mean_error": float(baselines[r.name]["heatmap"].mean()),
             "max_error": float(baselines[r.name]["heatmap"].max()),
             "corr_with_dataset_mask": baselines[r.name]["heatmap_corr"]} for r in run.records]
    return filtered, heat, curves


# ----------------------------------------------------------------------------- the stage


def run_aggregate(records: Sequence[ModelRecord], cfg: AggregateConfig,
                  splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]], attack: PGD | None,
                  class_names: Sequence[str], log: Callable[[str], None] = lambda m: None) -> AggregateResult:
    """All measurements of the aggregate stage. ``splits``: ``{"val": (x, y), "test": (x, y)}``, uint8
    images (N, C, H, W) and labels; ``attack``: the masks stage's PGD, to rebuild the PGD images (unused
    when N's single.pt stores them). Leaves the records' models in channels-last memory format."""
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
    bands = band_statistics(run, energies)
    res.tables["band_differences"], res.tables["shares"], res.curves = band_tables(run, bands)
    lap("bands")
    res.tables["accuracy"], acc, masked_na = accuracy_table(run, {"val": splits["val"], "test": splits["test"]})
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
    res.claims = [
        claim_accuracy(acc, cfg, [r.name for r in records], masked_na),
        claim_radial(bands.per_seed["radial"], cfg, bands.dataset_diffs["radial"].get("A", (None,))[0]),
        claim_angular(bands.per_seed["angular"], cfg),
        claim_augmentations(bands.per_seed["radial"], cfg),
        claim_complement(n_outcomes, cfg),
        claim_probe(probes, cfg),
        claim_low_share(bands.per_seed["radial"], cfg),
        claim_texture(n_outcomes, cfg),
    ]
    lap("claims")
    res.figdata = figure_data(run, images[run.seeds[0]], outcomes, probes, baselines, bands, res.tables["accuracy"])
    lap("figdata")
    res.summary = {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in records], "kind": records[0].kind,
        "image_size": list(run.image_size), "classes": run.class_names,
        "single_n": {s: len(images[s].index) for s in run.seeds},
        "accuracy_n": {k: int(v[0].shape[0]) for k, v in acc.items()},
        "train_seconds": sum(r.train_metrics.get("train_seconds", 0.0) for r in records),
        "masks_seconds": sum(r.mask_metrics.get("seconds", 0.0) for r in records),
        "aggregate_seconds": timings,
        "verdict_rule": VERDICT_RULE.format(level=f"{100 * (1 - cfg.alpha):g}"),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
    }
    log(f"aggregate timings (s): {timings}")
    return res


def figure_data(run: Run, img: SeedImages, outcomes: Mapping[str, Mapping[str, np.ndarray]],
                probes: Mapping[str, Sequence[dict | NA]], baselines: Mapping[str, dict], bands: BandStats,
                accuracy_rows: Sequence[Mapping]) -> dict:
    """Arrays the report's figures need, as tensors: masks as shifted full planes (dataset and mean
    single-image masks averaged over seeds; class masks and example images of the first seed), band
    curves (3, bands) = estimate / lo / hi, accuracies, probe embeddings, filtered accuracy, heat maps.
    What cannot be drawn is left out and ``na`` says why: ``na[figure]`` for a whole figure (named as in
    :func:`freqbias.report.make_figures`), ``na["<figure>/<series>"]`` for one series or panel."""
    w, s0 = run.image_size[1], run.seeds[0]
    std_rec, adv_rec = run.by["N", s0], run.by["A", s0]
    na: dict[str, str] = {}
    k = min(run.cfg.figure_images, len(img.index))
    x, x_adv = img.x[:k], img.x_adv[:k]
    panel, through = {}, {"x": x.cpu()}
    if k == 0:
        na["single_panel"] = na["seen_through_masks"] = f"{NO_IMAGES} for seed {s0}"
    else:
        m_n, m_adv = std_rec.single.masks[:k], std_rec.single.masks_adv[:k]
        comp = binary_complement(m_n)
        with torch.no_grad():
            panel = {
                "x": x.cpu(), "x_adv": x_adv.cpu(), "mask": shifted_full(m_n, w), "mask_adv": shifted_full(m_adv, w),
                "mask_A": shifted_full(adv_rec.single.masks[:k], w),
                "masked_x": masked_pixels(std_rec.model, x, m_n, std_rec.kind).cpu(),
                "masked_x_adv": masked_pixels(std_rec.model, x_adv, m_adv, std_rec.kind).cpu(),
                "complement": shifted_full(comp, w),
                "complement_x": masked_pixels(std_rec.model, x, comp, std_rec.kind).cpu(),
                "y": img.y[:k].cpu(), "target": std_rec.single.target[:k],
                "target_adv": std_rec.single.target_adv[:k],
                "outcomes": {m: _t(outcomes[std_rec.name][m][:k]) for m in ("masked", "complement", "restored")},
            }
            through.update({f"seen_{v}": masked_pixels(run.by[v, s0].model, x, run.by[v, s0].single.masks[:k],
                                                       run.by[v, s0].kind).cpu() for v in run.variants})

    def mean_over_seeds(get: Callable[[ModelRecord], torch.Tensor]) -> dict[str, torch.Tensor]:
        return {v: torch.stack([get(run.by[v, s]) for s in run.seeds]).mean(0) for v in run.variants}

    def single_mean(r: ModelRecord) -> torch.Tensor | None:
        """Mean over the images of one model's finite single-image masks (None when there is none)."""
        masks = r.single.masks[finite_masks(r.single.masks)]
        return shifted_full(masks, w).mean(0) if len(masks) else None

    single_means = {}
    for v in run.variants:
        per_seed = [m for s in run.seeds if (m := single_mean(run.by[v, s])) is not None]
        if per_seed:
            single_means[v] = torch.stack(per_seed).mean(0)
    if "N" not in single_means:
        na["mask_grid_single"] = "no finite single-image mask of the standard model N (0 images, or non-finite masks)"

    def curves(name: str, d: Mapping[str, Estimate]) -> dict[str, torch.Tensor]:
        out = {}
        for v, est in d.items():
            if isinstance(est[0], NA):
                na[f"{name}/{v}"] = est[0].reason
            else:
                out[v] = torch.stack([_t(a) for a in est])
        return out

    acc = {key: _t([float(row[key]) for row in accuracy_rows])
           for key in accuracy_rows[0] if key.startswith(("val_", "test_")) and not key.endswith("_n")}
    probe_data = {}
    for r in run.records:
        p = probes[r.variant][run.seeds.index(r.seed)]
        if isinstance(p, NA):
            na[f"probe/{r.name}"] = p.reason
        else:
            probe_data[r.name] = {"embedding": _t(p["embedding"]), "labels": torch.as_tensor(p["test_labels"]),
                                  "test_acc": p["test_acc"], "permuted_test_acc": p["permuted_test_acc"],
                                  "chance": p["chance"]}
    if not probe_data:  # no model could be probed: no figure, the reasons instead
        na["probe"] = ", ".join(f"{m}: {reason}" for m, reason in
                                ((k.split("/", 1)[1], v) for k, v in na.items() if k.startswith("probe/")))
    heat = {}
    for r in run.records:
        corr = baselines[r.name]["heatmap_corr"]
        heat[r.name] = {"map": _t(baselines[r.name]["heatmap"]), "corr": float(corr)}
        if isinstance(corr, NA):
            na[f"heatmaps/{r.name}"] = corr.reason
    return {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in run.records],
        "class_names": run.class_names, "radial_centres": _t(run.centres[0]), "angular_centres": _t(run.centres[1]),
        "dataset_masks": mean_over_seeds(lambda r: shifted_full(r.dataset_mask, w)),
        "single_mean_masks": single_means,
        "class_masks": {v: shifted_full(run.by[v, s0].class_masks, w) for v in run.variants},
        "diffs": {p: curves(f"{p}_differences", d) for p, d in bands.diffs.items()},
        "dataset_diffs": {p: {v: _t(est[0]) for v, est in d.items()} for p, d in bands.dataset_diffs.items()},
        "shares": {p: curves(f"band_shares_{p}", d) for p, d in bands.shares.items()},
        "accuracy": {"models": [row["model"] for row in accuracy_rows], **acc},
        "panel": panel, "through": through,
        "probe": probe_data,
        "filtered": {"radii": _t(run.cfg.filter_radii),
                     **{r.name: {"low": _t(baselines[r.name]["low"]), "high": _t(baselines[r.name]["high"])}
                        for r in run.records}},
        "heatmaps": {"freqs": heatmap_frequencies(w, run.cfg.heatmap_grid), **heat},
        "na": na,
    }


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> None, an NA -> its text "n/a (<reason>)" and numpy scalars -> Python, recursively
    (strict JSON)."""
    if isinstance(obj, NA):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _rounded(rows: list[dict], digits: int = 6) -> list[dict]:
    """Floats rounded to ``digits`` significant digits (readable, stable committed tables); NAs kept."""
    return [{k: float(f"{v:.{digits}g}") if isinstance(v, float) and math.isfinite(v) else v for k, v in row.items()}
            for row in rows]


def write_results(res: AggregateResult, folder: Path = paths.RESULTS) -> None:
    """Write every output atomically: ``<table>.csv``, ``curves/<plot>/<series>.csv`` (stale series
    removed), ``claims.json``, ``metrics.json`` (headline of every claim, for ``dvc metrics``),
    ``summary.json`` and ``figdata.pt``. In the CSVs a missing value is an empty cell and the row's
    ``reason`` column says why (:func:`freqbias.na.csv_rows`)."""
    for name, rows in res.tables.items():
        save_csv(csv_rows(_rounded(rows)), folder / f"{name}.csv")
    wanted = {folder / "curves" / f"{name}.csv" for name in res.curves}
    for stale in set((folder / "curves").glob("*/*.csv")) - wanted:
        stale.unlink()
    for name, rows in res.curves.items():
        save_csv(csv_rows(_rounded(rows)), folder / "curves" / f"{name}.csv")
    save_json(_json_safe(res.claims), folder / "claims.json")
    save_json(_json_safe({f"claim_{c['claim']}": {k: c[k] for k in ("estimate", "lo", "hi", "verdict", "reason")}
                          for c in res.claims}), folder / "metrics.json")
    save_json(_json_safe(res.summary), folder / "summary.json")
    save_torch(res.figdata, folder / "figdata.pt")
