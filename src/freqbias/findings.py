"""The report's "What the masks show, and what they do not" section: the controls' verdicts and numbers in plain
words (claims 9-11 and the controls' tables, :mod:`freqbias.control_claims`). Every sentence is chosen by a
number or a verdict of this run; nothing here is a hand-written conclusion. docs/study.md, "Controls", says why
each control is there.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .na import NA, cell

PUSH_LIMIT = 0.2  # the share of other classes' images a class mask may send into its class (control_claims)


def _pct(v: float | NA) -> str:
    return str(v) if isinstance(v, NA) else f"{100 * v:.1f}%"


def _num(v: float | NA) -> str:
    return str(v) if isinstance(v, NA) else f"{v:.3g}"


def _part_model(statistic: str) -> str:
    return statistic.split(":", 1)[0]


def _by_verdict(claim: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in claim.get("parts", []):
        out.setdefault(p["verdict"], []).append(_part_model(p["statistic"]))
    return out


def _estimate(p: Mapping[str, Any]) -> str:
    values = [p.get(k) for k in ("estimate", "lo", "hi")]
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return f"n/a ({p.get('reason') or 'not measured'})"
    return f"{float(values[0]):+.3f} [{float(values[1]):+.3f}, {float(values[2]):+.3f}]"


def _list(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _verdict_sentence(claim: Mapping[str, Any], holds: str, fails: str, open_: str) -> str:
    groups = _by_verdict(claim)
    parts = []
    for verdict, text in (("holds", holds), ("does not hold", fails), ("inconclusive", open_)):
        if groups.get(verdict):
            parts.append(f"{text} for {_list(groups[verdict])}")
    if groups.get("not measured"):
        parts.append(f"not measured for {_list(groups['not measured'])}")
    return "; ".join(parts) + "." if parts else "Not measured on this run."


def equal_budget_words(claim: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """Claim 9 in words, with each model's support / disc / random test accuracies of its dataset mask."""
    numbers = []
    for r in rows:
        if r.get("mask") != "dataset":
            continue
        numbers.append(f"{r['model']} {_pct(cell(r, 'test_support'))} vs disc {_pct(cell(r, 'test_disc'))} "
                       f"(random {_pct(cell(r, 'test_random'))})")
    detail = "; ".join(f"{_part_model(p['statistic'])} {_estimate(p)}" for p in claim.get("parts", []))
    return ("**Equal budget (claim 9).** The frequencies a mask keeps, compared with a low-pass disc keeping as many: "
            + _verdict_sentence(claim, "the learned set keeps more test accuracy than the disc",
                                "the learned set keeps less than the disc", "no difference shown")
            + f" Support minus disc, fold masks: {detail or 'n/a'}. Dataset masks, test accuracy: "
            + ("; ".join(numbers) or "n/a") + ". Where the learned set is no better than the disc, a mask's "
            "size says as much as its shape: the mask is a low-pass filter of that size.")


def order_words(rows: Sequence[Mapping[str, Any]]) -> str:
    """Faithfulness: does the mask's own ranking of frequencies beat the radial (low first) ranking?"""
    lines, better, worse, same = [], [], [], []
    for source, label in (("dataset", "dataset masks"), ("single", "single-image masks")):
        by_model: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in rows:
            if r.get("source") == source and r.get("order"):
                by_model.setdefault(r["model"], {})[r["order"]] = r
        for model, orders in by_model.items():
            if "mask" not in orders or "radius" not in orders:
                continue
            m, rad = orders["mask"], orders["radius"]
            lo, hi = cell(m, "insertion_lo"), cell(m, "insertion_hi")
            r_lo, r_hi = cell(rad, "insertion_lo"), cell(rad, "insertion_hi")
            if any(isinstance(v, NA) for v in (lo, hi, r_lo, r_hi)):
                continue
            key = f"{model} ({label})"
            (better if lo > r_hi else worse if hi < r_lo else same).append(key)
            lines.append(f"{key}: insertion {_num(cell(m, 'insertion'))} vs {_num(cell(rad, 'insertion'))}, "
                         f"deletion {_num(cell(m, 'deletion'))} vs {_num(cell(rad, 'deletion'))}")
    return ("**Order (faithfulness).** Keeping frequencies in the order of the mask's values, against keeping the "
            f"lowest first (insertion area, higher is better; deletion area, lower is better): the mask's order is "
            f"better for {_list(better)}; worse for {_list(worse)}; not distinguishable for {_list(same)}. "
            + ("; ".join(lines) + "." if lines else "")
            + " Where the radial order wins, the values inside a mask's support rank frequencies no better than their "
              "distance from the origin.")


def isotropic_words(claim: Mapping[str, Any]) -> str:
    detail = "; ".join(f"{_part_model(p['statistic'])} {_estimate(p)}" for p in claim.get("parts", []))
    return ("**Direction (claim 10).** The sparsest mask with one value per ring (fitted with the same method and "
            "rule) against the free mask: " + _verdict_sentence(
                claim, "the free mask is sparser: which frequencies matter depends on their direction",
                "the isotropic mask is sparser", "no difference shown (direction adds nothing measurable)")
            + f" Isotropic minus free mean: {detail or 'n/a'}.")


def randomisation_words(claim: Mapping[str, Any]) -> str:
    detail = "; ".join(f"{_part_model(p['statistic'])} {_estimate(p)}" for p in claim.get("parts", []))
    ref = claim.get("secondary") or []
    scale = f" For scale, two trained models (N and A) on the same images: {_estimate(ref[0])}." if ref else ""
    groups = _by_verdict(claim)
    tail = ""
    if groups.get("does not hold"):
        tail = (" A re-initialised network gives masks with the same radial profile: for those models the masks' "
                "low-frequency picture reflects the images' spectra and the mask method, not what training taught.")
    return ("**Model randomisation (claim 11).** Rank correlation of the radial band energies of each image's mask "
            "with the mask of the same architecture with re-initialised weights: "
            + _verdict_sentence(claim, "the masks depend on the trained weights",
                                "the masks look the same with random weights", "not settled")
            + f" {detail or 'n/a'}.{scale}{tail}")


def class_words(rows: Sequence[Mapping[str, Any]]) -> str:
    flagged = [f"{r['model']} {r['class']} ({_pct(cell(r, 'into_masked'))})" for r in rows
               if str(r.get("flagged")).lower() == "true"]
    defaults = sorted({f"{r['model']}: {r['class']}" for r in rows if str(r.get("default")).lower() == "true"})
    worst = [cell(r, "into_masked") for r in rows]
    worst_n = [v for v in worst if not isinstance(v, NA)]
    return ("**Class masks.** A class mask must keep its class and must not send other classes' images into it. "
            f"Largest share of other-class test images sent into a mask's class: "
            f"{_pct(max(worst_n)) if worst_n else 'n/a'}; masks above {PUSH_LIMIT:.0%}: {_list(flagged)}. "
            f"Default class (what an image reduced to its zero frequency becomes): {_list(defaults)}.")


def controls_section(claims: Sequence[Mapping[str, Any]], tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The section's markdown; "not measured" when the run has no controls (claims 9-11 absent)."""
    by = {c["claim"]: c for c in claims}
    if not all(k in by for k in (9, 10, 11)):
        return "Not measured: this run has no controls (claims 9-11)."
    return "\n\n".join([
        "Each statement below is chosen by this run's numbers (the controls' claims and tables; docs/study.md, "
        "\"Controls\", says why each control is there and how a positive control on planted data shows it can "
        "fail).",
        equal_budget_words(by[9], tables.get("equal_budget", [])),
        order_words(tables.get("faithfulness", [])),
        isotropic_words(by[10]),
        randomisation_words(by[11]),
        class_words(tables.get("class_specificity", [])),
    ])
