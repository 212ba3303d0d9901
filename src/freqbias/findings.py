"""The report's "What the masks show, and what they do not" section: the controls' verdicts and numbers in plain
words (claims 9-11 and the controls' tables, :mod:`freqbias.control_claims`). Every sentence is chosen by a
number or a verdict of this run; nothing here is a hand-written conclusion. docs/study.md, "Controls", says why
each control is there.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .claim_registry import by_key, find
from .claims import CLASS_PUSH_LIMIT, variant_seed
from .frequency_orders import order_label
from .na import NA, cell
from .textfmt import FIXED, PERCENT, PLAIN, SIGNED, markdown_table
from .verdicts import Verdict


def _part_model(statistic: str) -> str:
    return statistic.split(":", 1)[0]


def _by_verdict(claim: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in claim.get("parts", []):
        out.setdefault(p["verdict"], []).append(_part_model(p["statistic"]))
    return out


def _list(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _compact(models: Sequence[str]) -> str:
    """Model names grouped by variant: ``["N-s0", "N-s1", "A-s2"]`` -> ``"N x2, A-s2"``; "none" when empty."""
    groups: dict[str, list[str]] = {}
    for m in models:
        groups.setdefault(variant_seed(m)[0], []).append(m)
    return ", ".join(f"{g} x{len(ms)}" if len(ms) > 1 else ms[0] for g, ms in groups.items()) or "none"


def _parts_table(parts: Sequence[Mapping[str, Any]], what: str) -> str:
    """One row per part: the statistic, its estimate [interval] and verdict (a claim's parts as a table)."""
    return markdown_table([what, "estimate [95% interval]", "verdict"],
                          [[p["statistic"], SIGNED.judged(p), p["verdict"]] for p in parts]) if parts else ""


def _verdict_sentence(claim: Mapping[str, Any], holds: str, fails: str, open_: str,
                      negligible: str = "no difference beyond the smallest of interest (negligible)") -> str:
    groups = _by_verdict(claim)
    parts = []
    for verdict, text in ((Verdict.HOLDS, holds), (Verdict.DOES_NOT_HOLD, fails), (Verdict.NEGLIGIBLE, negligible),
                          (Verdict.INCONCLUSIVE, open_), (Verdict.NOT_MEASURED, str(Verdict.NOT_MEASURED))):
        if groups.get(verdict):
            parts.append(f"{text} for {_list(groups[verdict])}")
    return "; ".join(parts) + "." if parts else "Not measured on this run."


def equal_budget_words(claim: Mapping[str, Any]) -> str:
    """Claim 9 in words, and its parts (support - disc of the fold masks, per variant) as a table; the per-model
    accuracies are in the Controls appendix's equal-budget table."""
    return ("**Equal budget (claim 9).** The frequencies a mask keeps, compared with a low-pass disc keeping as many: "
            + _verdict_sentence(claim, "the learned set keeps more test accuracy than the disc",
                                "the learned set keeps less than the disc", "no difference shown")
            + " Where the learned set is no better than the disc, a mask's size says as much as its shape: the mask "
            "is a low-pass filter of that size.\n\n" + _parts_table(claim.get("parts", []), "support - disc"))


def _compare(m: Mapping[str, Any], rad: Mapping[str, Any]) -> str | None:
    """"better" / "worse" / "mixed" / "same": the mask order against the radial one, insertion higher and deletion
    lower being better, each decided by non-overlapping intervals; None when an area is n/a."""
    vals = {f"{who}_{k[:3]}": [cell(r, f"{k}_lo"), cell(r, f"{k}_hi")]
            for who, r in (("m", m), ("r", rad)) for k in ("insertion", "deletion")}
    if any(isinstance(v, NA) for pair in vals.values() for v in pair):
        return None
    ins = 1 if vals["m_ins"][0] > vals["r_ins"][1] else -1 if vals["m_ins"][1] < vals["r_ins"][0] else 0
    dele = 1 if vals["m_del"][1] < vals["r_del"][0] else -1 if vals["m_del"][0] > vals["r_del"][1] else 0
    if ins >= 0 and dele >= 0 and ins + dele > 0:
        return "better"
    if ins <= 0 and dele <= 0 and ins + dele < 0:
        return "worse"
    return "mixed" if ins * dele < 0 else "same"


def order_words(rows: Sequence[Mapping[str, Any]]) -> str:
    """Faithfulness: does the mask's own ranking of frequencies beat the radial (low first) ranking? A table of the
    models by outcome, per mask source; the areas are in the Controls appendix's faithfulness table."""
    outcomes = ("better", "worse", "mixed", "same")
    table = []
    for source, label in (("dataset", "dataset masks"), ("single", "single-image masks")):
        by_model: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in rows:
            if r.get("source") == source and r.get("order"):
                by_model.setdefault(r["model"], {})[r["order"]] = r
        models: dict[str, list[str]] = {o: [] for o in outcomes}
        for model, orders in by_model.items():
            outcome = _compare(orders["mask"], orders["radius"]) if {"mask", "radius"} <= set(orders) else None
            if outcome is not None:
                models[outcome].append(model)
        table.append([label, *(_compact(models[o]) for o in outcomes)])
    return ("**Order (faithfulness).** Keeping frequencies in the order of the mask's values, against keeping the "
            "lowest first (insertion area, higher is better; deletion area, lower is better; a difference counts "
            "when the intervals do not overlap). Where the radial order is as good or better, the values inside a "
            "mask's support rank frequencies no better than their distance from the origin does. Models (x: how "
            "many seeds) by outcome:\n\n"
            + markdown_table(["masks", "mask order better", "worse", "better on one curve, worse on the other",
                              "not distinguishable"], table))


def isotropic_words(claim: Mapping[str, Any]) -> str:
    detail = "; ".join(f"{_part_model(p['statistic'])} {SIGNED.judged(p)}" for p in claim.get("parts", []))
    return ("**Direction (claim 10).** The sparsest mask with one value per ring (fitted with the same method and "
            "rule) against the free mask: " + _verdict_sentence(
                claim, "the free mask is sparser: which frequencies matter depends on their direction",
                "the isotropic mask is sparser", "no difference shown (direction adds nothing measurable)")
            + f" Isotropic minus free mean: {detail or 'n/a'}.")


def randomisation_words(claim: Mapping[str, Any]) -> str:
    """Claim 11 in words: seed-to-seed against re-initialised similarity, per seed, and what the cascade shows."""
    head = (claim.get("parts") or [{}])[0]
    info = claim.get("info", {})
    seeds = (f" (holds in {head['seeds_holding']} of {head['seeds']} seeds on their own images)"
             if "seeds" in head else "")
    modal = info.get("re_initialised_modal_class_share")
    modal_words = (f" The re-initialised network (BatchNorm recalibrated on val images) gives its most frequent "
                   f"class to {PERCENT(float(modal))} of the images." if isinstance(modal, (int, float)) else "")
    levels = (f" Mean rank correlation with another trained seed {PLAIN(info['seed_to_seed'])}, with the "
              f"re-initialised network {PLAIN(info['re_initialised'])}."
              if all(isinstance(info.get(k), (int, float)) for k in ("seed_to_seed", "re_initialised")) else "")
    return ("**Model randomisation (claim 11).** Per image, the rank correlation of the radial band energies of "
            "N's mask with another trained seed's mask (the yardstick) and with a re-initialised network's: "
            + _verdict_sentence(claim, "the masks depend on the trained weights (a random network's masks are "
                                "less alike than another trained network's)", "a random network's masks are as "
                                "alike as another trained network's", "not settled")
            + f" Seed-to-seed minus re-initialised: {SIGNED.judged(head)}{seeds}.{levels}{modal_words}"
            + " The cascade figure shows the similarity as the layers are re-initialised from the top down."
            + ("\n\n" + _parts_table(claim.get("secondary", []), "other variants: N seed-to-seed - X re-initialised")
               if claim.get("secondary") else ""))


def size_words(rows: Sequence[Mapping[str, Any]]) -> str:
    """Claims 2, 3, 4 and 7 at equal size (results/size_matched.csv): per statistic and source, the raw value,
    the size-matched one (energy minus the radial twin's) and the share of the raw value size alone gives."""
    table, survive, lost = [], [], []
    for r in rows:
        raw, sized, share = cell(r, "raw"), cell(r, "size_matched"), cell(r, "size_share")
        if isinstance(raw, NA) or isinstance(sized, NA):
            table.append([r["claim"], r["statistic"], str(NA(r.get("reason") or "not measured")), "", "", "", ""])
            continue
        table.append([r["claim"], r["statistic"], SIGNED.column(r, "raw"), r.get("raw_verdict", ""),
                      SIGNED.column(r, "size_matched"), r.get("size_matched_verdict", ""), PERCENT(share)])
        if r.get("raw_verdict") == Verdict.HOLDS:
            (survive if r.get("size_matched_verdict") == Verdict.HOLDS else lost).append(f"claim {r['claim']}")
    if not rows:
        return "**Size (claims 2-4, 7).** n/a (no size-matched statistics in this run)."
    return ("**Size (claims 2-4, 7).** A mask that keeps fewer frequencies, all near the origin, has more of its "
            "normalised energy in the low rings whatever the network needs; size-matched energies (a mask's minus "
            "its radial twin's) cannot be moved by size alone, and they give the verdict. Raw parts that hold and "
            f"still hold at equal size: {_list(sorted(set(survive)))}; that hold raw but not at equal size (size "
            f"explains them): {_list(sorted(set(lost)))}.\n\n"
            + markdown_table(["claim", "statistic (raw source)", "raw [95%]", "raw verdict", "size-matched [95%]",
                              "size-matched verdict", "share given by size"], table))


def class_words(rows: Sequence[Mapping[str, Any]]) -> str:
    flagged = [f"{r['model']} {r['class']} ({PERCENT(cell(r, 'into_masked'))})" for r in rows
               if str(r.get("flagged")).lower() == "true"]
    defaults = sorted({f"{r['model']}: {r['class']}" for r in rows if str(r.get("default")).lower() == "true"})
    worst = [cell(r, "into_masked") for r in rows]
    worst_n = [v for v in worst if not isinstance(v, NA)]
    return ("**Class masks.** A class mask must keep its class and must not send other classes' images into it. "
            f"Largest share of other-class test images sent into a mask's class: "
            f"{PERCENT(max(worst_n)) if worst_n else 'n/a'}; masks above {CLASS_PUSH_LIMIT:.0%}: {_list(flagged)}. "
            f"Default class (what an image reduced to its zero frequency becomes): {_list(defaults)}.")


def controls_section(claims: Sequence[Mapping[str, Any]], tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The section's markdown; "not measured" when the run has no controls (claims 9-11 absent)."""
    disc, isotropic, weights = (find(claims, by_key(k)) for k in ("disc", "isotropic", "randomisation"))
    if disc is None or isotropic is None or weights is None:
        return "Not measured: this run has no controls (claims 9-11)."
    return "\n\n".join([
        "Each statement below is chosen by this run's numbers (the controls' claims and tables; docs/study.md, "
        "\"Controls\", says why each control is there and how a positive control on planted data shows it can "
        "fail).",
        equal_budget_words(disc),
        order_words(tables.get("faithfulness", [])),
        size_words(tables.get("size_matched", [])),
        isotropic_words(isotropic),
        randomisation_words(weights),
        class_words(tables.get("class_specificity", [])),
    ])


def controls_tables(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The controls' tables for the report: equal budget (dataset masks), faithfulness areas, the isotropic
    masks and the class masks that push (all rows: results/*.csv)."""
    shares = ("fit_mask", "fit_support", "fit_disc", "test_mask", "test_support", "test_disc", "test_random")
    budget = [[r["model"], PLAIN(cell(r, "budget")), *(PERCENT(cell(r, k)) for k in shares)]
              for r in tables.get("equal_budget", []) if r.get("mask") == "dataset"]
    faith = [[r["model"], r["source"], order_label(r.get("order", "")),
              FIXED.column(r, "insertion"), FIXED.column(r, "deletion")]
             for r in tables.get("faithfulness", []) if r.get("order")]
    iso = [[r["model"], r.get("fold", ""), PLAIN(cell(r, "free_mean")), PLAIN(cell(r, "isotropic_mean")),
            r.get("isotropic_met", ""), r.get("isotropic_converged", "")]
           for r in tables.get("isotropic", []) if r.get("fold")]
    pushes = ("own_clean", "own_masked", "into_clean", "into_masked")
    cls = [[r["model"], r.get("class", ""), *(PERCENT(cell(r, k)) for k in pushes),
            "**yes**" if str(r.get("flagged")) == "True" else "no"]
           for r in tables.get("class_specificity", []) if r.get("class")]
    def table(header: Sequence[str], rows: Sequence[Sequence[Any]], name: str) -> str:
        if rows:
            return markdown_table(header, rows)
        reasons = sorted({str(r.get("reason") or "no rows") for r in tables.get(name, [])}) or ["no rows"]
        return f"n/a ({'; '.join(reasons)})"

    return "\n\n".join([
        "### Equal budget\n\nDataset masks: accuracy of the learned mask, of its binary support, of a centred "
        "low-pass disc keeping as many frequencies and of random supports of that size (mean of the draws), on "
        "the fit images and on held-out test images (results/equal_budget.csv has the fold masks).\n\n"
        + table(["model", "budget (plane share)", "fit: mask", "fit: support", "fit: disc", "test: mask",
                 "test: support", "test: disc", "test: random"], budget, "equal_budget"),
        "### Faithfulness\n\nArea under the insertion curve (keep the first k of the plane in the order; higher "
        "= the order finds what the model needs) and the deletion curve (remove them; lower is better), with "
        "bootstrap intervals over images.\n\n"
        + table(["model", "masks", "order", "insertion [95%]", "deletion [95%]"], faith, "faithfulness"),
        "### Isotropic masks\n\nThe sparsest isotropic mask (one value per ring) of each fold, fitted with the "
        "free masks' method and rule, beside the free fold mask (full-plane means).\n\n"
        + table(["model", "fold", "free mean", "isotropic mean", "met the rule", "converged"], iso, "isotropic"),
        "### Class masks\n\nEach class mask on the test images: its class's accuracy clean / masked and the share of "
        f"the other classes' images predicted as its class, clean / masked; flagged above {CLASS_PUSH_LIMIT:.0%}.\n\n"
        + table(["model", "class", "own clean", "own masked", "others into class: clean", "masked", "flagged"], cls,
                "class_specificity"),
    ])
