"""The aggregate stage's result tables (``results/<table>.csv``): dataset-mask accuracy, single-image
outcomes, the linear probe and the frequency baselines, one row per model (and per seed-pooled variant).
A value that cannot be measured is :class:`freqbias.na.NA` with its reason (:mod:`freqbias.na`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from .bootstrap import Estimate, bootstrap_ci, ci_row, cluster_bootstrap, finite_rows, nested_interval
from .claims import (
    ratio,
)
from .measures import (
    dataset_correct,
    finite_masks,
)
from .na import NA, NO_IMAGES, na_estimate, number

if TYPE_CHECKING:
    from .runs import Run


def to_tensor(a: Any) -> torch.Tensor:
    """A float32 tensor of ``a`` (numbers, arrays, NA values as NaN)."""
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).float()


PGD_PREFIX = "pgd_acc_"  # accuracy.csv's robust accuracy columns: pgd_acc_<eps> (pixel units, the evaluate stage's)


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
    """Dataset masks on the first ``accuracy_n`` images of each split (the masks stage's per-image
    correctness, re-scored only for files without it): rows of accuracy.csv
    (clean, masked and masked / clean with intervals over images; the masks stage's full-split values as
    ``*_all``), per split the (clean, masked) correctness matrices (n_images, n_models) for claim 1, and
    per model whose masked accuracy is n/a (a NaN in its dataset mask; its masked column is NaN) why."""
    rows = {r.name: {"model": r.name, "variant": r.variant, "seed": r.seed} for r in run.records}
    mask_na = {r.name: "non-finite entries in the dataset mask" for r in run.records
               if not torch.isfinite(r.dataset_mask).all()}
    resampled = "masked / clean undefined in some bootstrap resamples (clean accuracy 0 there)"
    acc = {}
    for split, (x, y) in splits.items():
        cols = [dataset_correct(r, x, y, split, run.cfg.accuracy_n) for r in run.records]
        y = y[:run.cfg.accuracy_n]
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
            float(r.par.sparsity(r.dataset_mask)), float(r.par.support(r.dataset_mask)))
        where = f"metrics/evaluate/{r.name}.json"
        robust = r.train_metrics.get("pgd_acc") if isinstance(r.train_metrics.get("pgd_acc"), dict) else {}
        rows[r.name].update({"dataset_fit_n": r.mask_metrics.get("dataset_fit_n"), "mask_mean": mean,
                             "mask_support": supp,
                             **{f"{PGD_PREFIX}{eps}": logged(robust, eps, where) for eps in robust}})
    return list(rows.values()), acc, mask_na


FIT_COLUMNS = ("n_images", "clean_acc", "masked_acc", "met", "converged", "steps", "mean", "support", "min", "lam",
               "budget", "rounds_converged", "floor")
NOT_THIS_METHOD = "not a quantity of this fit method (lam: the penalised fit's; budget, rounds: the budget search's)"


def fit_table(run: Run) -> list[dict]:
    """Rows of mask_fits.csv: one per shared mask of every model (``mask``: dataset, fold:<k>, class:<name>)
    with its fitting record (:class:`freqbias.shared_masks.SharedMasks`: ``converged`` False = hit the step
    cap), and one per model for its single-image masks (``steps``: mean steps; ``converged``: share that
    stopped by their rule before ``max_steps``). A class without images is n/a with the reason."""
    rows = []
    for r in run.records:
        rec = r.fit_records
        named = [("dataset", rec.dataset)] + [(f"fold:{k}", f) for k, f in enumerate(rec.folds)] + [
            (f"class:{run.class_names[k]}", c) for k, c in enumerate(rec.classes)]
        for label, f in named:
            absent = NA(NOT_THIS_METHOD if f.get("n_images") else "no images of this class in the fit set")
            cells = {k: absent if f.get(k) is None else f[k] for k in FIT_COLUMNS}
            if f.get("converged") is None:
                cells["converged"] = NA("no images of this class in the fit set")
            rows.append({"model": r.name, "variant": r.variant, "seed": r.seed, "mask": label, **cells})
        n = len(r.single)
        none = NA(NO_IMAGES)
        rows.append({"model": r.name, "variant": r.variant, "seed": r.seed, "mask": "single (mean)",
                     **{k: NA("shared masks only") for k in FIT_COLUMNS}, "n_images": n,
                     "converged": logged(r.mask_metrics, "single_converged", f"metrics/masks/{r.name}.json")
                     if n else none, "steps": float(r.single.steps.double().mean()) if n else none,
                     "mean": float(r.par.sparsity(r.single.masks).mean()) if n else none})
    return rows


STORED = {"masked": "single_masked_agreement", "complement": "single_complement_agreement",
          "pgd": "single_adv_agreement", "restored": "single_adv_restored_continuous",
          "restored_binary": "single_adv_restored_binary", "adv_masked": "single_adv_masked_agreement"}
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
    return ci_row("value", nested_interval(kept, None, boot["alpha"])), n, note


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


PROBE_COLUMNS = ("n", "folds", "train_acc", "test_acc", "test_acc_lo", "test_acc_hi", "permutations",
                 "permuted_test_acc", "permuted_test_acc_lo", "permuted_test_acc_hi", "permuted_sd", "chance",
                 "converged")


def probe_table(run: Run, probes: Mapping[str, Sequence[dict | NA]]) -> list[dict]:
    """Rows of probe.csv: the cross-validated probe on ``n`` images (each a test image once): mean
    training accuracy of the folds' fits, test accuracy with true labels and with permuted labels
    (per image the mean over the permutations; intervals: bootstrap over images), the standard
    deviation of the permuted accuracy over the permutations, chance (majority-class share) and whether
    every L-BFGS fit converged; every value NA with the reason when the model could not be probed."""
    rows = []
    for v in run.variants:
        for s, p in zip(run.seeds, probes[v]):
            row = {"model": run.by[v, s].name, "variant": v, "seed": s}
            if isinstance(p, NA):
                rows.append({**row, **dict.fromkeys(PROBE_COLUMNS, p), "reason": ""})
                continue
            stopped = p["fits"] - p["converged_fits"]
            left_out = ", ".join(f"class {c} ({n} images)" for c, n in p["left_out"].items())
            notes = ([f"{p['excluded']} single-image masks with non-finite entries left out"] * bool(p["excluded"]) +
                     [f"left out with fewer images than aggregate.probe.folds: {left_out}"] * bool(left_out) +
                     [f"{stopped} of {p['fits']} L-BFGS fits stopped at aggregate.probe.max_iter before "
                      "converging"] * bool(stopped))
            permuted = p["permuted_test_correct"].astype(float).mean(axis=0)
            rows.append({**row, "n": len(p["index"]), "folds": int(p["fold"].max()) + 1, "train_acc": p["train_acc"],
                         **ci_row("test_acc", bootstrap_ci(p["test_correct"].astype(float), **run.boot)),
                         "permutations": len(p["permuted_accs"]),
                         **ci_row("permuted_test_acc", bootstrap_ci(permuted, **run.boot)),
                         "permuted_sd": p["permuted_sd"] if len(p["permuted_accs"]) > 1 else NA("one permutation"),
                         "chance": p["chance"], "converged": not stopped, "reason": "; ".join(notes)})
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
