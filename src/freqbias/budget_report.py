"""The report's budget section: accuracy against budget, band statistics at equal budget, and where the routes of
claims 2-4 agree (raw, size-matched, equal budget); its two figures, one panel per variant.

Reads the aggregate's ``budget_accuracy_pooled`` and ``budget_bands`` tables (:mod:`freqbias.budget_results`) and the
claims' parts; draws with matplotlib (imported by the report stage only).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .claim_registry import claim_of
from .na import NA, number
from .textfmt import PLAIN, SIGNED, markdown_table

ROUTES = (("raw", ""), ("size-matched", ", size-matched"), ("equal budget", ", equal budget"))


def _value(row: Mapping[str, Any], key: str) -> float:
    v = number(row.get(key))
    return math.nan if isinstance(v, NA) or v is None else float(v)


def _interval(row: Mapping[str, Any], key: str, style=PLAIN, bounds: tuple[str, str] | None = None) -> str:
    """``est [lo, hi]`` of ``row[key]`` with its bounds ``<key>_lo`` / ``<key>_hi`` (or the columns ``bounds``)."""
    est, lo, hi = (_value(row, k) for k in (key, *(bounds or (f"{key}_lo", f"{key}_hi"))))
    if not math.isfinite(est):
        return f"n/a ({row.get('reason') or 'not measured'})"
    return f"{style(est)} [{style(lo)}, {style(hi)}]" if math.isfinite(lo) else style(est)


def _settled(row: Mapping[str, Any]) -> str:
    """`` (67% of fits settled)`` when some of the fits behind ``row`` hit their step cap; "" when all settled or the
    row has no such share."""
    share = _value(row, "converged")
    return f" ({share:.0%} of fits settled)" if math.isfinite(share) and share < 1 else ""


def accuracy_table(pooled: Sequence[Mapping[str, Any]]) -> str:
    """Per variant (rows) and budget (columns): masked / clean test accuracy of the budgeted mask with its t
    interval over seeds, and the low-pass disc's of the same budget after "disc"; a fit that did not settle is
    flagged."""
    budgets = sorted({_value(r, "budget") for r in pooled if math.isfinite(_value(r, "budget"))})
    variants = list(dict.fromkeys(r["variant"] for r in pooled))
    cells = {(r["variant"], _value(r, "budget")): r for r in pooled}
    rows = []
    for v in variants:
        line = [v]
        for b in budgets:
            r = cells.get((v, b))
            if r is None:
                line.append("n/a (not fitted)")
                continue
            line.append(f"{_interval(r, 'masked_ratio')}; disc {PLAIN(_value(r, 'disc_ratio'))}{_settled(r)}")
        rows.append(line)
    return markdown_table(["variant"] + [f"budget {b:g}" for b in budgets], rows)


def bands_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per variant and ring third (rows) and budget (columns): X - N mean band energy of the ladder's dataset masks,
    with its t interval over seeds."""
    budgets = sorted({_value(r, "budget") for r in rows})
    keys = list(dict.fromkeys((r["variant"], r["rings"]) for r in rows))
    cells = {(r["variant"], r["rings"], _value(r, "budget")): r for r in rows}
    body = [[f"{v} - N", rings] + [_interval(cells[v, rings, b], "difference", SIGNED, ("lo", "hi"))
                                   if (v, rings, b) in cells
                                   else "n/a" for b in budgets] for v, rings in keys]
    return markdown_table(["difference", "rings"] + [f"budget {b:g}" for b in budgets], body)


def _route(statistic: str) -> tuple[str, str]:
    """A claim part's statistic without its route, and the route ("raw", "size-matched" or "equal budget")."""
    label = re.sub(r"wedge \d+", "wedge", statistic)
    if ", size-matched" in label:
        return label.replace(", size-matched", ""), "size-matched"
    match = re.search(r", equal budget [0-9.]+", label)
    if match:
        return label.replace(match.group(0), ""), "equal budget"
    return label, "raw"


def routes_table(claims: Sequence[Mapping[str, Any]]) -> str:
    """Claims 2-4 on the dataset masks' folds by route: one row per statistic, its verdict raw, size-matched and at
    equal budget, and whether the routes that measured it agree."""
    rows = []
    for c in claims:
        known = claim_of(c)
        if known is None or not known.routes:
            continue
        by: dict[str, dict[str, str]] = {}
        for p in [*c.get("parts", []), *c.get("secondary", [])]:
            if "fold" not in p["statistic"]:
                continue
            name, route = _route(p["statistic"])
            by.setdefault(name, {})[route] = p["verdict"]
        for name, verdicts in by.items():
            seen = {verdicts[r] for r, _ in ROUTES if r in verdicts and verdicts[r] != "not measured"}
            rows.append([c["claim"], name] + [verdicts.get(r, "n/a") for r, _ in ROUTES]
                        + ["yes" if len(seen) == 1 else "no" if seen else "n/a"])
    return markdown_table(["claim", "statistic (dataset masks, folds)", *(r for r, _ in ROUTES), "routes agree"], rows)


def needed_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The budget each variant needs for a share of its clean accuracy (``results/budget_needed.csv``): a sentence
    and a table (learned mask and low-pass disc, mean [95% t interval over seeds] and per seed); n/a with the
    reasons."""
    if not rows:
        return "Budget needed: n/a (no results/budget_needed.csv in this run)."
    share = _value(rows[0], "share")
    body = [[r["variant"], _interval(r, "mask") + _settled(r), r.get("mask_per_seed") or "n/a",
             _interval(r, "disc"), r.get("disc_per_seed") or "n/a"] for r in rows]
    return (f"**Budget needed.** The budget at which held-out masked / clean accuracy first reaches {share:g} "
            "(interpolated in log-budget on the ladder; `aggregate.budget_needed`), mean [95% t interval over seeds]: "
            "how many frequencies each network needs, read where the curve is steep. (Near the study's 0.99 the "
            "curve is flat, and where a sparsest mask crosses 0.99 did not reproduce: docs/budget_reliability.md; "
            "this crossing is tested in docs/ladder_reliability.md.)\n\n"
            + markdown_table(["variant", "learned mask", "per seed", "low-pass disc", "per seed"], body))


def section(tables: Mapping[str, Sequence[Mapping[str, Any]]], claims: Sequence[Mapping[str, Any]]) -> str:
    """The report's "Masks at equal budget" section (markdown)."""
    pooled = [r for r in tables.get("budget_accuracy_pooled") or [] if math.isfinite(_value(r, "budget"))]
    bands = [r for r in tables.get("budget_bands") or [] if math.isfinite(_value(r, "budget"))]
    if not pooled:
        return "No budget ladder in this run (the budgets stage has not run)."
    return "\n\n".join([
        "A budgeted mask has its size fixed by construction (its full-plane mean, the *budget*) and keeps the "
        "model's loss best at that size (docs/study.md, \"Budgeted masks\"). How many frequencies does each network "
        "need? Held-out masked / clean test accuracy of each model's budgeted mask, pooled over seeds (mean and 95% "
        "t interval over seeds), with a low-pass disc of the same budget (\"disc\") beside it:",
        accuracy_table(pooled),
        needed_table(tables.get("budget_needed") or []),
        "Band energies at equal budget: X - N mean energy of the same masks over the low and mid thirds of the rings "
        "(95% t interval over seeds, seeds paired by number). Size cannot produce these differences: every mask "
        "has the same size.",
        bands_table(bands) if bands else "n/a (no variant besides N)",
        "Claims 2-4 by route (the verdict is the size-matched route's; the raw and the equal-budget routes are the "
        "second lines of each claim):",
        routes_table(claims),
    ])


def rule_level(claims: Sequence[Mapping[str, Any]]) -> float | None:
    """Claim 1's threshold in ``claims`` (claims.json): the masked / clean accuracy the masks' rule keeps; None
    without that row."""
    from .claim_registry import by_key, find

    row = find(claims, by_key("accuracy"))
    parts = (row or {}).get("parts") or []
    return _value(parts[0], "threshold") if parts else None


def draw_accuracy(pooled: Sequence[Mapping[str, Any]], path: Path, dpi: int = 110,
                  ratio_min: float | None = None) -> Path:
    """One panel per variant: masked / clean test accuracy against budget (log scale) of the budgeted masks (solid,
    interval shaded) and of the low-pass disc (dashed, interval shaded), the claim-1 threshold ``ratio_min`` dotted
    (none when None)."""
    import matplotlib.pyplot as plt

    from .plots import _color, _na_panel, _save

    variants = list(dict.fromkeys(r["variant"] for r in pooled))
    cols = min(3, len(variants))
    rows = math.ceil(len(variants) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, v in zip(axes.flat, variants):
        own = sorted((r for r in pooled if r["variant"] == v), key=lambda r: _value(r, "budget"))
        x = [_value(r, "budget") for r in own]
        if not any(math.isfinite(_value(r, k)) for r in own for k in ("masked_ratio", "disc_ratio")):
            _na_panel(ax, next((r["reason"] for r in own if r.get("reason")), "no ratio measured"), v)
            continue
        for key, ls, label in (("masked_ratio", "-", "budgeted mask"), ("disc_ratio", "--", "low-pass disc")):
            est, lo, hi = ([_value(r, k) for r in own] for k in (key, f"{key}_lo", f"{key}_hi"))
            ax.plot(x, est, ls=ls, marker="o", ms=3, color=_color(v) if key == "masked_ratio" else "gray", label=label)
            ax.fill_between(x, lo, hi, color=_color(v) if key == "masked_ratio" else "gray", alpha=0.2, lw=0)
        if ratio_min is not None:
            ax.axhline(ratio_min, color="black", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(v, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(variants):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("budget (full-plane mean)")
    for ax in axes[:, 0]:
        ax.set_ylabel("masked / clean test acc.")
    dotted = "" if ratio_min is None else f"dotted: {ratio_min:g}; "
    fig.suptitle(f"Accuracy against budget ({dotted}shaded: 95% interval over seeds)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def draw_bands(rows: Sequence[Mapping[str, Any]], path: Path, dpi: int = 110) -> Path:
    """One panel per variant X: X - N mean band energy at equal budget against budget, low rings (solid) and mid
    rings (dashed), with 95% intervals over seeds (error bars)."""
    import matplotlib.pyplot as plt

    from .plots import _color, _save

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    cols = min(3, max(1, len(variants)))
    nrows = max(1, math.ceil(len(variants) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), sharex=True, sharey=True, squeeze=False)
    for ax, v in zip(axes.flat, variants):
        for third, ls in (("low", "-"), ("mid", "--")):
            own = sorted((r for r in rows if r["variant"] == v and r["rings"].startswith(third)),
                         key=lambda r: _value(r, "budget"))
            x = [_value(r, "budget") for r in own]
            est, lo, hi = ([_value(r, k) for r in own] for k in ("difference", "lo", "hi"))
            err = [[e - a for e, a in zip(est, lo)], [b - e for e, b in zip(est, hi)]]
            ax.errorbar(x, est, yerr=err, ls=ls, marker="o", ms=3, capsize=2, color=_color(v),
                        label=own[0]["rings"] if own else third)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{v} - N", fontsize=9)
        ax.legend(fontsize=6, loc="best")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(variants):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("budget (full-plane mean)")
    for ax in axes[:, 0]:
        ax.set_ylabel("energy difference")
    fig.suptitle("Band energy X - N at equal budget (dataset masks; bars: 95% interval over seeds)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)
