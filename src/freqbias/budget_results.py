"""The aggregate stage's budget results: accuracy against budget and band statistics at equal budget.

Reads each model's budget ladder (:func:`freqbias.budget_curve.budget_ladder`, stored in ``DatasetMask.budgets``)
and writes, with pandas:

- ``results/budget_accuracy.csv``: per model and budget the held-out masked / clean accuracy of the budgeted mask,
  of a low-pass disc of the same budget, and mask minus disc; ``results/budget_accuracy_pooled.csv``: per variant
  and budget the same pooled over seeds with a t interval over seeds: how many frequencies each network needs, and
  whether a learned mask beats a plain low-pass filter of its size (claim 9 at every budget);
- ``results/budget_needed.csv``: per variant the budget at which held-out masked / clean accuracy first reaches a
  share (``aggregate.budget_needed``) for the learned masks and for the low-pass discs, with a t interval over seeds:
  how many frequencies a network needs, read where the curve is steep (the sparsest mask at 0.99 sits where it is
  flat, and its size is not reproducible: docs/budget_reliability.md);
- ``results/budget_bands.csv``: per budget and variant X, the X - N mean band energy of the ladder's dataset masks
  over the low and the mid third of the rings, with a t interval over seeds (seeds paired by their number):
  claim 2's statistics at equal budget, where mask size cannot produce a difference;
- the equal-budget source of claims 2-4 (:func:`equal_budget_source`): the fold masks at the claims' budget.

Energies are band energies of UNSHIFTED masks (:mod:`freqbias.band_geometry`); a model without a ladder (masks
fitted without ``masks.budget``) gives n/a rows with the reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from .band_geometry import band_profiles, band_thirds
from .bootstrap import Estimate, jackknife_t
from .claim_registry import ClaimRow, Part
from .claims import claim_row, judge
from .na import NA
from .verdicts import ABOVE

if TYPE_CHECKING:
    from .runs import Run

NO_LADDER = "no budget ladder for this model (budgets/<model>.pt absent: run the budgets stage)"


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """Mean and t interval over seeds of the finite ``values`` (NaN bounds with fewer than 2)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    est, lo, hi = jackknife_t(values, None, alpha)
    return float(est), float(lo), float(hi)


def ladder_frame(run: Run) -> pd.DataFrame:
    """One row per model and ladder budget: ``model, variant, seed, budget, masked_ratio, disc_ratio,
    mask_minus_disc, converged, reason`` (masked / clean held-out accuracy; ``reason`` non-empty for n/a)."""
    rows = []
    for r in run.records:
        base = {"model": r.name, "variant": r.variant, "seed": r.seed}
        if not r.budgets:
            rows.append({**base, "budget": math.nan, "reason": NO_LADDER})
            continue
        for row in r.budgets["rows"]:
            m, d = row["masked_ratio"], row["disc_ratio"]
            undefined = m is None or d is None
            rows.append({**base, "budget": row["budget"], "masked_ratio": math.nan if m is None else m,
                         "disc_ratio": math.nan if d is None else d,
                         "mask_minus_disc": math.nan if undefined else m - d, "converged": bool(row["converged"]),
                         "reason": "clean accuracy 0: masked / clean undefined" if undefined else ""})
    return pd.DataFrame(rows)


def budget_needed(budgets: Sequence[float], ratios: Sequence[float | None], share: float) -> tuple[float, str]:
    """The budget at which a curve of masked / clean ``ratios`` (one per budget of the ascending ``budgets``) first
    reaches ``share``, interpolated linearly in log-budget between the last ladder budget below ``share`` and the
    first at or above it; NaN with the reason when the curve already reaches it at the smallest budget (the budget
    needed is at most that), never reaches it, or has an undefined ratio before it does."""
    for i, (b, r) in enumerate(zip(budgets, ratios)):
        if r is None or not math.isfinite(r):
            return math.nan, f"masked / clean undefined at budget {b:g}"
        if r >= share:
            if i == 0:
                return math.nan, f"{share:g} reached already at the smallest budget {b:g}: it needs at most that"
            b0, r0 = budgets[i - 1], ratios[i - 1]
            t = (share - r0) / (r - r0)
            return math.exp(math.log(b0) + t * (math.log(b) - math.log(b0))), ""
    return math.nan, (f"{share:g} not reached by the largest budget {budgets[-1]:g} ({ratios[-1]:.3f})" if budgets
                      else "no ladder")


def needed_per_seed(frame: pd.DataFrame, share: float, col: str = "masked_ratio"
                    ) -> dict[str, dict[int, tuple[float, str]]]:
    """Per variant and seed, the budget needed for ``share`` (:func:`budget_needed`) on the curve ``col`` of
    :func:`ladder_frame` (``masked_ratio``: the learned masks; ``disc_ratio``: the low-pass discs) and the reason when
    it is NaN."""
    out: dict[str, dict[int, tuple[float, str]]] = {}
    for (variant, seed), m in frame.dropna(subset=["budget"]).sort_values("budget").groupby(["variant", "seed"],
                                                                                            sort=False):
        out.setdefault(variant, {})[int(seed)] = budget_needed(m["budget"].tolist(), m[col].tolist(), share)
    return out


def claim_needed(frame: pd.DataFrame, share: float, alpha: float) -> ClaimRow:
    """Claim 12: A needs a smaller budget than N for ``share`` of its clean accuracy. Per seed (paired by number)
    N's budget needed minus A's (:func:`needed_per_seed`), its mean with a t interval over seeds, judged > 0; every
    other variant X's N - X beside it (a second line, not in the verdict). n/a with the reasons where fewer than two
    seeds have both values."""
    needed = needed_per_seed(frame, share)
    base = needed.get("N", {})

    def against(v: str) -> Part:
        other = needed.get(v, {})
        pairs = [(base[s][0], other[s][0]) for s in sorted(set(base) & set(other))]
        values = np.array([n - x for n, x in pairs if math.isfinite(n) and math.isfinite(x)])
        statistic = f"N - {v} budget needed for {share:g} of clean accuracy (held-out, budget ladder)"
        if len(values) < 2:
            why = "; ".join(dict.fromkeys(w for m in (base, other) for _, w in m.values() if w)) or NO_LADDER
            na = NA(f"fewer than 2 seeds with the budget needed of both N and {v}: {why}")
            return judge(statistic, Estimate(na, na, na), 0.0, ABOVE)
        return judge(statistic, Estimate(*_interval(values, alpha)), 0.0, ABOVE)

    others = [v for v in needed if v not in ("N", "A")]
    return claim_row("budget_needed", [against("A")], secondary=[against(v) for v in others],
                     info={"share": share})


def needed_rows(frame: pd.DataFrame, share: float, alpha: float) -> list[dict]:
    """Rows of ``results/budget_needed.csv`` from :func:`ladder_frame`: per variant the budget needed for ``share``
    (:func:`budget_needed`) of the learned masks (``mask``) and the low-pass discs (``disc``): the mean over seeds
    with its t interval, the per-seed values (``mask_per_seed``, ``disc_per_seed``; n/a where undefined), ``seeds``
    (how many learned masks had a defined value), ``converged`` (the share of the variant's ladder fits that settled)
    and ``reason``: why a seed's value is n/a, per ``mask`` / ``disc``."""
    curves = {name: needed_per_seed(frame, share, col) for col, name in (("masked_ratio", "mask"),
                                                                          ("disc_ratio", "disc"))}
    fitted = frame.dropna(subset=["budget"])
    rows = []
    for variant, per_seed in curves["mask"].items():
        row: dict = {"variant": variant, "share": share,
                     "converged": float(fitted.loc[fitted["variant"] == variant, "converged"].astype(bool).mean())}
        reasons: dict[str, None] = {}
        for name, by_variant in curves.items():
            per = [by_variant[variant][s] for s in sorted(per_seed)]
            values = np.array([v for v, _ in per], dtype=float)
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _interval(values, alpha)
            row[f"{name}_per_seed"] = " ".join(f"{v:.3g}" if math.isfinite(v) else "n/a" for v in values)
            reasons.update({f"{name}: {why}": None for _, why in per if why})
        row["seeds"] = int(np.isfinite([v for v, _ in per_seed.values()]).sum())
        rows.append({**row, "reason": "; ".join(reasons)})
    have = {r["variant"] for r in rows}
    return rows + [{"variant": v, "share": share, "seeds": 0, "reason": NO_LADDER}
                   for v in dict.fromkeys(frame["variant"]) if v not in have]


def pooled_rows(frame: pd.DataFrame, alpha: float) -> list[dict]:
    """Rows of ``results/budget_accuracy_pooled.csv`` from :func:`ladder_frame`: per variant and budget the mean
    over seeds of each ratio with its t interval over seeds (``seeds``: how many had the value; ``converged``: the
    share of their fits that settled)."""
    pooled = []
    for (variant, budget), g in frame.dropna(subset=["budget"]).groupby(["variant", "budget"], sort=False):
        row = {"variant": variant, "budget": budget, "seeds": int(g["masked_ratio"].notna().sum()),
               "converged": float(g["converged"].mean())}
        for col in ("masked_ratio", "disc_ratio", "mask_minus_disc"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = _interval(g[col].to_numpy(float), alpha)
        row["reason"] = "" if row["seeds"] else "no seed with a defined ratio"
        pooled.append(row)
    if not pooled:   # no model has a ladder: one n/a row per variant, with the reason
        pooled = [{"variant": v, "budget": None, "reason": NO_LADDER} for v in dict.fromkeys(frame["variant"])]
    return pooled


def _ladder_energies(run: Run) -> dict[tuple[str, int], np.ndarray]:
    """Radial band energies (B, rings) of every model's ladder masks, by (variant, seed)."""
    out = {}
    for r in run.records:
        if r.budgets:
            radial, _ = band_profiles(r.budgets["masks"].double(), r.par, run.cfg.radial_bands, run.cfg.angular_bands)
            out[r.variant, r.seed] = radial.numpy()
    return out


def band_rows(run: Run) -> list[dict]:
    """Rows of ``results/budget_bands.csv`` (module doc): per budget, variant X != N and ring third (``low`` /
    ``mid``), the X - N mean energy with its t interval over the seeds that have both ladders."""
    energies = _ladder_energies(run)
    budgets = next((r.budgets["budgets"] for r in run.records if r.budgets), [])
    low, mid = band_thirds(run.cfg.radial_bands)
    if not budgets:
        return [{"variant": v, "budget": None, "reason": NO_LADDER} for v in run.others or ["N"]]
    rows = []
    for v in run.others:
        seeds = [s for s in run.seeds if (v, s) in energies and ("N", s) in energies]
        for b, budget in enumerate(budgets):
            for third, rings in (("low", low), ("mid", mid)):
                diffs = np.array([(energies[v, s][b] - energies["N", s][b])[rings].mean() for s in seeds])
                est, lo, hi = _interval(diffs, run.cfg.alpha)
                rows.append({"budget": budget, "variant": v, "rings": f"{third} {rings[0]}-{rings[-1]}",
                             "difference": est, "lo": lo, "hi": hi, "seeds": len(seeds),
                             "per_seed": " ".join(f"{d:+.4f}" for d in diffs),
                             "reason": "" if len(seeds) else f"no seed with both {v}'s and N's ladder"})
    return rows


def equal_budget_source(run: Run) -> tuple[str, dict[str, dict[str, list[np.ndarray]]]] | None:
    """Claims 2-4's equal-budget source: its label and ``{profile: {V: per seed (F, bands)}}``, the band
    energies of the fold masks at the claims' budget (rows = folds, paired across variants); None when a model
    has no ladder."""
    if not run.records or any(not r.budgets for r in run.records):
        return None
    budget = run.records[0].budgets["claims_budget"]
    energies: dict[str, dict[str, list[np.ndarray]]] = {"radial": {}, "angular": {}}
    for v in run.variants:
        for s in run.seeds:
            r = run.by[v, s]
            radial, angular = band_profiles(r.budgets["folds"].double(), r.par, run.cfg.radial_bands,
                                            run.cfg.angular_bands)
            energies["radial"].setdefault(v, []).append(radial.numpy())
            energies["angular"].setdefault(v, []).append(angular.numpy())
    folds = len(run.records[0].budgets["folds"])
    return f"dataset masks, {folds} folds, equal budget {budget:g}", energies


def curve_rows(pooled: list[dict]) -> list[dict]:
    """``results/curves/budget_accuracy.csv`` for ``dvc plots``: per variant the pooled masked / clean accuracy
    against budget with its interval (:func:`pooled_rows`), and the low-pass disc's as the series ``<V> disc``."""
    rows = []
    for r in (r for r in pooled if r.get("budget") is not None):
        for col, suffix in (("masked_ratio", ""), ("disc_ratio", " disc")):
            rows.append({"series": f"{r['variant']}{suffix}", "budget": r["budget"], "value": r[col],
                         "lo": r[f"{col}_lo"], "hi": r[f"{col}_hi"], "reason": r["reason"]})
    return rows
