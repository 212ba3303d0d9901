"""The controls in the aggregate stage: tables, claims 9-11 and the plain-words findings of the report's
"What the masks show" section (docs/study.md, "Controls"). Measurements come from the controls stage
(:mod:`freqbias.stage_controls`, one ``controls/<model>.pt`` per model).

- Claim 9, *equal budget*: per model, the test accuracy of the fold masks' binary support minus that of a
  low-pass disc keeping as many frequencies (interval over folds and seeds); the learned mask itself beside.
- Claim 10, *direction*: per model, the full-plane mean of the sparsest isotropic fold mask minus the free fold
  mask's (> 0: the free mask is sparser, the frequencies it keeps depend on direction).
- Claim 11, *model randomisation*: per image, the rank correlation of the radial band energies of a trained
  model's single-image mask with those of the re-initialised model's mask on the same image, against the same
  between two trained seeds (:mod:`freqbias.randomisation`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .artifacts import ControlsData, YardstickData
from .bootstrap import defined_estimate
from .claim_registry import ClaimRow
from .claims import CLASS_PUSH_LIMIT, control_row, judge
from .randomisation import randomisation_results
from .runs import AggregateConfig, Run
from .verdicts import ABOVE  # every control claim: the difference is > 0

NO_CONTROLS = "no controls measured (the controls stage did not run for these models)"


def _boot(cfg: AggregateConfig) -> dict:
    return dict(n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)


def _fold_values(controls: Sequence[Mapping], key: str) -> list[np.ndarray]:
    """Per seed, the fold masks' values of ``key`` (the rows after the dataset mask's; NaN where n/a)."""
    return [np.array([r.get(key, math.nan) if r.get(key) is not None else math.nan for r in c.equal_budget[1:]],
                     dtype=np.float64) for c in controls]


def equal_budget_table(controls: Mapping[str, ControlsData]) -> list[dict]:
    """One row per model and mask (dataset, fold k): budget and accuracies (fit, test) of the learned mask,
    its support, the disc and random supports (mean of the draws)."""
    rows = []
    for name, c in controls.items():
        for r in c.equal_budget:
            label = "dataset" if r["mask"] == 0 else f"fold {r['mask']}"
            row = {"model": name, "mask": label}
            if "na" in r:
                rows.append({**row, "reason": r["na"]})
                continue
            row["budget"] = r["budget"]
            for split in ("fit", "test"):
                for v in ("mask", "support", "disc", "random"):
                    row[f"{split}_{v}"] = r[f"{split}_{v}"]
            rows.append(row)
    return rows


FULL_SUPPORT = 1 - 1e-6   # a fold mask whose support's share of the plane reaches this keeps every frequency
WHOLE_PLANE = ("every fold mask keeps the whole plane (no exact zero): its support and a disc of its size are both "
               "the identity, so there is nothing to compare")


def _difference(by_variant: Mapping[str, Sequence[ControlsData]], a: str, b: str,
                cfg: AggregateConfig) -> dict[str, tuple]:
    """Per variant, ``a - b`` of the fold masks' test accuracies: estimate and interval over folds (and seeds). A
    fold mask whose support is the whole plane is left out (NaN): the disc of its size is the identity, and its
    difference would be a 0 that says nothing; n/a (:data:`WHOLE_PLANE`) when every fold is such."""
    out = {}
    for v, controls in by_variant.items():
        raw = [x - y for x, y in zip(_fold_values(controls, a), _fold_values(controls, b))]
        budgets = _fold_values(controls, "budget")
        diffs = [np.where(budget < FULL_SUPPORT, d, math.nan) for d, budget in zip(raw, budgets)]
        out[v] = defined_estimate([d[:, None] for d in diffs], lambda m: float(m[0]), **_boot(cfg),
                                  empty="no fold masks", undefined=WHOLE_PLANE if any(np.isfinite(d).any() for d in raw)
                                  else "no fold mask with a finite accuracy")
    return out


def claim_equal_budget(by_variant: Mapping[str, Sequence[ControlsData]], cfg: AggregateConfig) -> dict:
    """Claim 9: every model's learned frequencies keep more test accuracy than a low-pass disc of their size."""
    support = _difference(by_variant, "test_support", "test_disc", cfg)
    learned = _difference(by_variant, "test_mask", "test_disc", cfg)
    parts = [judge(f"{v}: support - disc test accuracy (fold masks)", est, 0.0, ABOVE) for v, est in support.items()]
    secondary = [judge(f"{v}: learned mask - disc test accuracy", est, 0.0, ABOVE) for v, est in learned.items()]
    return control_row("disc", parts, secondary=secondary)


def claim_isotropic(by_variant: Mapping[str, Sequence[ControlsData]], free: Mapping[str, Sequence[np.ndarray]],
                    cfg: AggregateConfig) -> dict:
    """Claim 10: every model's free fold masks are sparser than the sparsest isotropic masks of the same folds.
    ``free[V]``: per seed, the free fold masks' full-plane means (F,)."""
    parts = []
    for v, controls in by_variant.items():
        diffs = []
        for c, f in zip(controls, free[v]):
            records = c.isotropic["records"]
            iso = np.array([r["mean"] if r.get("n_images") and r.get("met") else math.nan for r in records])
            diffs.append((iso - np.asarray(f, dtype=np.float64))[:, None])
        est = defined_estimate(diffs, lambda m: float(m[0]), **_boot(cfg), empty="no fold masks",
                               undefined="no isotropic mask met the rule")
        parts.append(judge(f"{v}: isotropic - free mean (fold masks)", est, 0.0, ABOVE))
    records = [r for cs in by_variant.values() for c in cs for r in c.isotropic["records"] if r.get("n_images")]
    stuck = sum(not r["converged"] for r in records)
    info = {"isotropic_not_converged": f"{stuck} of {len(records)}" if stuck else "none"}
    return control_row("isotropic", parts, info=info,
                        missing=f"{stuck} of {len(records)} isotropic masks hit the step cap (their mean is an upper "
                                "bound on the sparsest isotropic mask's)" if stuck else "")


def isotropic_table(controls: Mapping[str, ControlsData], free: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per model and fold: the free and isotropic masks' means, and whether each met its rule and
    converged."""
    rows = []
    for name, c in controls.items():
        for k, r in enumerate(c.isotropic["records"]):
            row = {"model": name, "fold": k + 1, "free_mean": float(free[name][k])}
            if not r.get("n_images"):
                rows.append({**row, "reason": "no fit images"})
                continue
            rows.append({**row, "isotropic_mean": r["mean"], "isotropic_met": bool(r["met"]),
                         "isotropic_converged": bool(r["converged"]), "isotropic_steps": r["steps"]})
    return rows


def _area_estimate(values: Sequence[float], cfg: AggregateConfig) -> tuple:
    a = np.asarray(values, dtype=np.float64)
    return defined_estimate([a[:, None]], lambda m: float(m[0]), **_boot(cfg), empty="no images",
                            undefined="no finite area")


def faithfulness_table(controls: Mapping[str, ControlsData], cfg: AggregateConfig) -> list[dict]:
    """One row per model, source (dataset mask / single-image masks) and order: insertion and deletion areas
    with bootstrap intervals over images (higher insertion and lower deletion = the order finds what matters)."""
    rows = []
    for name, c in controls.items():
        for source in ("dataset", "single"):
            per = c.faithfulness.get(source)
            if per is None:
                rows.append({"model": name, "source": source, "reason": "no finite mask to order"})
                continue
            for order, areas in per["areas"].items():
                row = {"model": name, "source": source, "order": order}
                for kind in ("insertion", "deletion"):
                    est = _area_estimate(areas[kind], cfg)
                    row.update({kind: est[0], f"{kind}_lo": est[1], f"{kind}_hi": est[2]})
                rows.append(row)
    return rows


def class_table(controls: Mapping[str, ControlsData], class_names: Sequence[str]) -> list[dict]:
    """One row per model and class mask: the class's accuracy clean / masked, the share of other classes'
    images predicted as the class clean / masked, and whether the mask pushes (``flagged``); the model's
    default class (that of images reduced to their zero frequency) beside."""
    rows = []
    for name, c in controls.items():
        default = c.default_class
        for r in c.class_specificity:
            k = r["class"]
            row = {"model": name, "class": class_names[k] if k < len(class_names) else str(k),
                   "default": k == default["dc_class"], "dc_share": default["dc_share"][k]}
            if "na" in r:
                rows.append({**row, "reason": r["na"]})
                continue
            rows.append({**row, **{key: r[key] for key in ("own_clean", "own_masked", "into_clean", "into_masked",
                                                            "pushed")},
                         "flagged": r["into_masked"] > CLASS_PUSH_LIMIT})
    return rows


def controls_results(run: Run, controls: Mapping[str, ControlsData | YardstickData]
                     ) -> tuple[dict[str, list[dict]], dict[str, ClaimRow], dict]:
    """The controls' tables (``equal_budget``, ``isotropic``, ``faithfulness``, ``class_specificity``,
    ``randomisation``, ``randomisation_cascade``), claims 9-11 (key -> row) and the cascade's figure data for the
    models of ``run`` (:class:`freqbias.stage_aggregate.Run`) whose controls were measured (``controls``: model name
    -> the controls stage's data)."""
    cfg = run.cfg
    have = {v: [controls[run.by[v, s].name] for s in run.seeds] for v in run.variants
            if all(run.by[v, s].name in controls for s in run.seeds)}
    ordered = {r.name: controls[r.name] for r in run.records if r.name in controls}
    free = {v: [np.array([f["mean"] if f.get("n_images") else math.nan for f in run.by[v, s].fit_records.folds])
                for s in run.seeds] for v in have}
    free_by_name = {r.name: np.array([f["mean"] if f.get("n_images") else math.nan for f in r.fit_records.folds])
                    for r in run.records if r.name in controls}
    tables = {"equal_budget": equal_budget_table(ordered), "isotropic": isotropic_table(ordered, free_by_name),
              "faithfulness": faithfulness_table(ordered, cfg),
              "class_specificity": class_table(ordered, run.class_names)}
    rand_tables, claim_11, figure = randomisation_results(run, controls)
    tables.update(rand_tables)
    for name, rows_ in tables.items():  # a table with no row says why (an empty CSV cannot)
        if not rows_:
            tables[name] = [{"model": "", "reason": NO_CONTROLS if not controls else "nothing to measure on this run"}]
    rows = [claim_equal_budget(have, cfg), claim_isotropic(have, free, cfg), claim_11]
    return tables, {row["key"]: row for row in rows}, figure
