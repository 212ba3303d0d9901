"""The claims of docs/study.md, each judged on this run's measurements with an interval.

Claims (the ``claim_*`` functions) are rows ``{claim, text, statistic, estimate, lo, hi, threshold,
direction, reason, verdict, study, note, parts, info}``. A claim has one or more *parts*, each a statistic with
an interval judged by :func:`~freqbias.verdicts.verdict` in a :class:`~freqbias.verdicts.Direction`; the row shows
its first part, and its verdict is :meth:`~freqbias.verdicts.Verdict.combine` of its parts' (NOT_MEASURED when
the run lacks what a part needs: the part's ``reason`` says what, and the claim's ``note`` repeats it). The
claims' texts, the study's values and their smallest effects of interest are in :mod:`freqbias.claim_registry`.
Energies are band energies of UNSHIFTED masks (:mod:`freqbias.bands`), per seed (n_images, bands),
paired by image across variants; images whose energies or outcomes are undefined are left out.

Energies ``radial[V]`` / ``angular[V]`` always hold N and A: params validation
(:meth:`freqbias.training.TrainConfig.from_params`, run by every stage) requires both in ``train.variants``,
so a claim on A - N is never without its models. Other variants (S, T, R for claim 4) may be absent.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .bands import band_thirds, low_energy, pair_reasons
from .bootstrap import (
    Estimate,
    defined_estimate,
    finite_rows,
    nested_interval,
    seeds_to_settle,
    variance_components,
)
from .claim_registry import Claim, ClaimRow, Part, by_key
from .na import NA, NO_IMAGES, first_na
from .study import SSIM_DELTA, Delta
from .verdicts import ABOVE, BELOW, Direction, Verdict, verdict

if TYPE_CHECKING:
    from .runs import AggregateConfig

CLASS_PUSH_LIMIT = 0.2  # a class mask sending more than this share of other classes' test images into its class is
#                        flagged (control_claims' class specificity table; the report's "Class masks")


UNDEFINED = "the statistic or its interval is undefined on this run's data (not a finite number)"


def _judged(estimate: float | NA, lo: float | NA, hi: float | NA, threshold: float, direction: Direction,
            delta: float | None = None) -> tuple[list[float], Verdict]:
    """``[estimate, lo, hi]`` as floats (the interval widened to include the estimate, which a non-linear
    statistic's interval can miss) and the verdict, NOT_MEASURED when a value is not finite."""
    values = [float(v) for v in (estimate, lo, hi)]
    if not all(math.isfinite(v) for v in values):
        return values, Verdict.NOT_MEASURED
    values[1], values[2] = min(values[1], values[0]), max(values[2], values[0])
    return values, verdict(*values, threshold, direction, delta)


def _delta(delta: Delta | float | None) -> tuple[float | None, str]:
    """(value, reason) of a part's smallest effect of interest."""
    if delta is None or isinstance(delta, Delta):
        return (delta.value, delta.reason) if delta else (None, "")
    return float(delta), ""


def part(statistic: str, estimate: float | NA, lo: float | NA, hi: float | NA, threshold: float,
         direction: Direction | str, undefined: str = UNDEFINED, per_seed: Sequence[tuple] = (),
         delta: Delta | float | None = None, alpha: float | None = None) -> Part:
    """One judged statistic: ``verdict`` from :func:`verdict`, or NOT_MEASURED when a value is missing,
    with its ``reason``: that of an :class:`~freqbias.na.NA` value, else ``undefined`` (a non-finite
    number). ``per_seed``: each seed's ``(estimate, lo, hi[, n])`` (interval over its own n folds or images), judged
    the same way: the part lists them and counts the seeds in which it holds (``seeds_holding`` of ``seeds``).
    ``delta``: the part's smallest effect of interest (:class:`~freqbias.study.Delta`, or a number): NEGLIGIBLE
    when the interval lies within ``threshold +- delta``; when None, :func:`claim_row` gives the part its claim's
    (its registry entry's ``delta``). The part carries ``delta``, ``delta_reason`` and ``half_width`` (half the
    interval's width). ``alpha`` (the level of the per-seed intervals): an inconclusive part with per-seed values
    also says how many seeds would settle it (``seeds_to_settle``, :func:`_power`)."""
    na = first_na((estimate, lo, hi))
    direction = Direction(direction)
    value, why = _delta(delta)
    values, judged = _judged(estimate, lo, hi, threshold, direction, value)
    out = {"statistic": statistic, "estimate": values[0], "lo": values[1], "hi": values[2],
           "threshold": threshold, "direction": direction, "verdict": judged,
           "reason": "" if judged is not Verdict.NOT_MEASURED else na.reason if na else undefined,
           "delta": value, "delta_reason": why,
           "half_width": (values[2] - values[1]) / 2 if judged is not Verdict.NOT_MEASURED else math.nan}
    if per_seed:
        seeds = [dict(zip(("estimate", "lo", "hi"), v), verdict=j, **({"n": int(p[3])} if len(p) > 3 else {}))
                 for p in per_seed for v, j in [_judged(*p[:3], threshold, direction, value)]]
        out.update(per_seed=seeds, seeds_holding=sum(s["verdict"] is Verdict.HOLDS for s in seeds), seeds=len(seeds))
        if alpha is not None:
            out["alpha"] = alpha
        if judged is Verdict.INCONCLUSIVE and alpha is not None:
            out.update(_power(values[0], threshold, value, per_seed, alpha))
    return out


def _power(estimate: float, threshold: float, delta: float | None, per_seed: Sequence[tuple], alpha: float) -> dict:
    """For an inconclusive part: how many seeds would settle it at the run's own between- and within-seed variances
    of a seed's estimate (:func:`~freqbias.bootstrap.variance_components`), its estimate as measured
    (:func:`~freqbias.bootstrap.seeds_to_settle`; None: not within 100 seeds)."""
    split = variance_components([tuple(p) for p in per_seed], alpha)
    if split is None:
        return {}
    return {"variance_between": split[0], "variance_within": split[1],
            "seeds_to_settle": seeds_to_settle(estimate, threshold, delta, *split, alpha)}


def with_delta(p: Part, delta: Delta | float) -> Part:
    """The part ``p`` (:func:`part`) judged again with the smallest effect of interest ``delta``, and its seeds."""
    value, why = _delta(delta)
    per_seed = [(s["estimate"], s["lo"], s["hi"], *([s["n"]] if "n" in s else [])) for s in p.get("per_seed", [])]
    values = (p["estimate"], p["lo"], p["hi"]) if p["verdict"] is not Verdict.NOT_MEASURED else (math.nan,) * 3
    new = part(p["statistic"], *values, p["threshold"], p["direction"], p["reason"] or UNDEFINED, per_seed,
               Delta(value, why), p.get("alpha"))
    out = {**p, **{k: new[k] for k in new if k not in ("reason",)}, "reason": p["reason"]}
    return out if new["verdict"] is Verdict.INCONCLUSIVE else {
        k: v for k, v in out.items() if k not in ("seeds_to_settle", "variance_between", "variance_within")}


def part_variant(statistic: str) -> str | None:
    """The variant a part's ``statistic`` is about: its label before ": " when that is one word ("A: support -
    disc ..." -> "A"), else None (a comparison such as "A - N mean energy ...")."""
    head, sep, _ = statistic.partition(": ")
    return head if sep and head and " " not in head else None


def judge(statistic: str, est: Estimate, threshold: float, direction: Direction | str,
          undefined: str = UNDEFINED, delta: Delta | float | None = None) -> Part:
    """:func:`part` of an :class:`~freqbias.bootstrap.Estimate`, with its per-seed estimates."""
    return part(statistic, *est, threshold, direction, undefined, getattr(est, "per_seed", ()), delta,
                getattr(est, "alpha", None))


def claim_row(claim: Claim | str, parts: list[Part], info: dict | None = None, missing: str = "",
              secondary: list[Part] | None = None) -> ClaimRow:
    """A claims.json row: the first part as headline, the combined verdict, the study's value and a plain
    note when this run does not reproduce the claim. ``secondary``: parts of a second, labelled line
    (the same statistics on other masks), reported beside the claim but not in its verdict. ``claim``: its
    registry entry (or key)."""
    claim = by_key(claim) if isinstance(claim, str) else claim
    parts = [p if p.get("delta") is not None else with_delta(p, claim.delta) for p in parts]
    secondary = [p if p.get("delta") is not None else with_delta(p, claim.delta) for p in secondary or []]
    combined = Verdict.combine(p["verdict"] for p in parts)
    if not parts and not missing:
        missing = "nothing this run could measure"
    head = parts[0] if parts else {"statistic": "n/a", "estimate": math.nan, "lo": math.nan, "hi": math.nan,
                                   "threshold": math.nan, "direction": "", "reason": missing}
    failed = [p["statistic"] for p in parts if p["verdict"] == Verdict.DOES_NOT_HOLD]
    open_ = [p["statistic"] for p in parts if p["verdict"] == Verdict.INCONCLUSIVE]
    small = [f"{p['statistic']} (within +-{p['delta']:g})" for p in parts if p["verdict"] == Verdict.NEGLIGIBLE]
    unmeasured = [f"{p['statistic']} ({p['reason']})" for p in parts if p["verdict"] == Verdict.NOT_MEASURED]
    notes = ([f"This run disagrees with the study: {'; '.join(failed)} (interval on the wrong side of the threshold)."]
             if failed else [])
    notes += [f"No effect beyond the smallest of interest (interval within the threshold +- delta): "
              f"{'; '.join(small)}."] if small else []
    notes += [f"Not settled by this run (interval contains the threshold): {'; '.join(open_)}."] if open_ else []
    notes += [f"Not measured: {'; '.join(unmeasured)}."] if unmeasured else []
    notes += [f"{missing[0].upper()}{missing[1:]}."] if missing else []
    return {"key": claim.key, "claim": claim.number, "title": claim.title, "text": claim.text,
            "statistic": head["statistic"], "estimate": head["estimate"],
            "lo": head["lo"], "hi": head["hi"], "threshold": head["threshold"], "direction": head["direction"],
            "delta": head.get("delta"), "half_width": head.get("half_width", math.nan),
            "reason": head["reason"] or (missing if combined is Verdict.NOT_MEASURED else ""),
            "verdict": combined, "study": claim.study, "note": " ".join(notes), "parts": parts,
            "secondary": secondary, "info": info or {}, **seeds_holding(parts)}


def seeds_holding(parts: Sequence[dict]) -> dict:
    """``{"seeds_holding": k, "seeds": S}``: in how many of the S seeds every part holds on that seed's own
    interval (:func:`part`'s ``per_seed``); empty when a part has no per-seed values or the counts differ."""
    per = [p.get("per_seed") for p in parts]
    if not parts or not all(per) or len({len(x) for x in per}) != 1:
        return {}
    return {"seeds_holding": sum(all(x[i]["verdict"] == Verdict.HOLDS for x in per) for i in range(len(per[0]))),
            "seeds": len(per[0])}


def control_row(claim: Claim | str, parts: list[Part], **kw: Any) -> ClaimRow:
    """:func:`claim_row` for a control, which the study never measured: its note says where the control fails,
    not that the study is contradicted."""
    row = claim_row(claim, parts, **kw)
    row["note"] = row["note"].replace("This run disagrees with the study:", "The control is not passed:")
    return row


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def variant_seed(name: str) -> tuple[str, str]:
    """A model name's (variant, seed): ``"N-s0"`` -> ``("N", "0")``; any other name (a fetched checkpoint) is a
    variant of its own with one seed."""
    match = re.fullmatch(r"(.+)-s(\d+)", name)
    return (match.group(1), match.group(2)) if match else (name, "")


def claim_accuracy(acc: Mapping[str, tuple[np.ndarray, np.ndarray]], cfg: AggregateConfig,
                   models: Sequence[str] = (), masked_na: Mapping[str, str] | None = None) -> dict:
    """Claim 1. ``acc[split] = (clean, masked)``, each (n_images, n_models) 1.0 / 0.0 correctness of every
    model (named ``models``, ``<V>-s<seed>``) on the same images. Per variant, the ratio masked / clean accuracy of
    the dataset masks on the held-out test split (the masks never saw it) with its t interval over the seeds
    (:func:`~freqbias.bootstrap.nested_interval`: jackknife-t over the seeds' mean correctness; each seed's own
    interval over its images), claimed > ``ratio_min``; the same on val (where the masks were fitted on
    ``fit_n`` of the images) is the second line. The claim holds when every variant's part holds: an
    intersection-union test, so each part at level ``alpha`` gives the claim's "holds" level ``alpha`` with no
    correction for the number of variants; "does not hold" needs one variant's interval below, whose chance under a
    ratio at the threshold grows with the variants (up to V x alpha / 2: the note names the variant). A model whose
    ratio is undefined on a split (clean accuracy 0 there, or a masked accuracy n/a: its column NaN,
    ``masked_na[model]`` = why) is left out of that split, and the note says so."""
    names = list(models) or [f"model {i}" for i in range(next(iter(acc.values()))[0].shape[1])]
    by_variant: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        by_variant.setdefault(variant_seed(name)[0], []).append(j)
    left_out: list[str] = []
    undefined = "masked / clean undefined (clean accuracy 0 in a seed or a jackknife subsample)"

    def ratio_parts(split: str) -> list[dict]:
        clean, masked = acc[split]
        parts = []
        for v, cols in by_variant.items():
            groups = []
            for j in cols:
                if not np.isfinite(masked[:, j]).all():
                    left_out.append(f"{names[j]} on {split} ({(masked_na or {}).get(names[j], 'masked accuracy n/a')})")
                elif not len(clean) or not clean[:, j].mean() > 0:
                    if len(clean):
                        left_out.append(f"{names[j]} on {split} (clean accuracy 0, masked / clean undefined)")
                else:
                    groups.append(np.stack([clean[:, j], masked[:, j]], axis=1))
            statistic = f"{v}: masked / clean accuracy ({split}{', held out' if split == 'test' else ''})"
            if not groups:
                why = NA(f"no {split} images" if not len(clean) else f"no seed of {v} with a defined ratio on {split}")
                parts.append(part(statistic, why, why, why, cfg.ratio_min, ABOVE))
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                est = nested_interval(groups, lambda m: m[1] / m[0] if m[0] > 0 else math.nan, cfg.alpha)
            parts.append(judge(statistic, est, cfg.ratio_min, ABOVE, undefined=undefined))
        return parts

    headline = "test" if "test" in acc else next(iter(acc))
    parts = ratio_parts(headline)
    secondary = [p for split in acc if split != headline for p in ratio_parts(split)]
    info = {"variants": len(by_variant), "multiplicity": "intersection-union: holds when every variant's part "
            "holds, each at level alpha, no correction"}
    missing = f"left out where masked / clean is undefined: {'; '.join(left_out)}" if left_out else ""
    return claim_row("accuracy", parts, info, missing=missing, secondary=secondary)


def _low_mid_diffs(radial: Mapping[str, Sequence[np.ndarray]], v: str, bands: np.ndarray) -> list[np.ndarray]:
    """Per seed, per row (image or fold): mean over ``bands`` of the energy difference V - N (n_s,); NaN where
    either mask is all zero (no energies), so that vectors of different variants stay aligned by row."""
    return [(a - n)[:, bands].mean(axis=1) for a, n in zip(radial[v], radial["N"])]


SINGLE = "single-image masks"
NO_ENERGY = pair_reasons()[1]


def _rows(label: str) -> tuple[str, str]:
    """What the rows of the source ``label`` are, for n/a reasons: (their masks, one row)."""
    return ("fold masks", "fold") if "fold" in label else (label, "image")

Sources = Mapping[str, Mapping[str, Sequence[np.ndarray]]]
"""Band energies by source: ``{label: {V: per seed (n_s, bands)}}``, rows paired across variants (images of
the single-image masks, folds of the dataset masks). The first source is a claim's headline, the second
(if any) its secondary line."""


def _energy_estimate(groups: Sequence[np.ndarray], cfg: AggregateConfig, f=None, label: str = SINGLE) -> Estimate:
    """Bootstrap estimate over the rows (of the source ``label``) with defined band energies (n/a with the
    reason when none)."""
    empty, undefined = pair_reasons(*_rows(label))
    return defined_estimate(groups, f, cfg.n_boot, cfg.alpha, cfg.seed, empty=empty, undefined=undefined)


def _by_source(claim: str, sources: Sources, make_parts, info=None, missing: str = "") -> dict:
    """A claim row whose parts come from ``make_parts(energies, label)`` on the first source (the verdict)
    and, as the secondary line, on the second; ``info(energies)`` of the first source."""
    labels = list(sources)
    parts = make_parts(sources[labels[0]], labels[0])
    secondary = [p for label in labels[1:] for p in make_parts(sources[label], label)]
    return claim_row(claim, parts, info(sources[labels[0]]) if info else {}, missing, secondary)


def claim_radial(sources: Sources, cfg: AggregateConfig) -> dict:
    """Claim 2 from radial energies (:data:`Sources`, per seed (n, rings)): mean paired A - N difference over
    the low third of the rings > 0 and over the mid third < 0."""
    def make(radial, label):
        low, mid = band_thirds(radial["N"][0].shape[1])
        return [judge(f"A - N mean energy over low rings {low[0]}-{low[-1]} ({label})",
                      _energy_estimate(_low_mid_diffs(radial, "A", low), cfg, label=label), 0.0, ABOVE),
                judge(f"A - N mean energy over mid rings {mid[0]}-{mid[-1]} ({label})",
                      _energy_estimate(_low_mid_diffs(radial, "A", mid), cfg, label=label), 0.0, BELOW)]
    return _by_source("radial", sources, make)


def sign_changes(curve: np.ndarray) -> int:
    """Sign changes of a closed (circular) curve, zeros skipped; on a half-plane's wedges (:func:`half_plane`: wedge
    W / 2 - 1 is next to wedge 0 again) each change of direction is counted once."""
    signs = np.sign(curve[curve != 0])
    return int(np.sum(signs != np.roll(signs, 1))) if len(signs) > 1 else 0


def half_plane(energies: np.ndarray) -> np.ndarray:
    """Wedge energies over 360 degrees (..., W), W even, folded onto the W / 2 distinct wedges of a half-plane: the
    mean of wedge w and w + W / 2. A real image's spectrum, and so every mask, is point symmetric (``M(-k) =
    M(k)``): the two wedges carry the same energy (up to the even plane's unpaired Nyquist row and column), so the
    360-degree curve counts each direction twice. Linear, so it folds energy differences (size-matched ones too)."""
    e = np.asarray(energies, dtype=np.float64)
    w = e.shape[-1]
    if w % 2:
        raise ValueError(f"an odd number of wedges ({w}) has no point-symmetric pairs to fold")
    return (e[..., : w // 2] + e[..., w // 2:]) / 2


def held_out_wedges(groups: Sequence[np.ndarray]) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """The claim-3 test values with each unit's wedges chosen without that unit's data (cross-fitting).

    ``groups``: per seed, (n_s, wedges) differences with finite rows. With >= 2 seeds the unit is the seed: seed s's
    most positive and most negative wedges are those of the previous seed's mean curve (cyclically, as claim 11's
    yardstick pairs seeds); with one seed the unit is the row (fold or image), its wedges chosen on the previous row.
    Choosing on one other unit, not on all others, keeps the units' test values uncorrelated under a flat curve:
    unit u's value depends on units u and u - 1 only, and has mean 0 given u - 1 whatever was chosen, so the t
    interval over units keeps its level (choosing on all other seeds made the held-out values correlated: 5-10 % of
    flat curves held at a nominal 2.5 % per side, against 2-4.5 % this way; docs/study.md, 'Claim 3'). Returns per seed
    ``(values (n_s, 3), chosen)``: per row [top - bottom, top, bottom] at its unit's wedges, and the ``(top,
    bottom)`` wedges of each unit (one per seed, or one per row)."""
    def at(g: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        rows = np.arange(len(g))
        return np.stack([g[rows, top] - g[rows, bottom], g[rows, top], g[rows, bottom]], axis=1)

    if len(groups) >= 2:
        means = np.stack([g.mean(axis=0) for g in groups])
        out = []
        for s, g in enumerate(groups):
            top, bottom = int(np.argmax(means[s - 1])), int(np.argmin(means[s - 1]))
            out.append((at(g, np.full(len(g), top), np.full(len(g), bottom)), [(top, bottom)]))
        return out
    g = groups[0]
    previous = np.roll(g, 1, axis=0)
    tops, bottoms = previous.argmax(axis=1), previous.argmin(axis=1)
    return [(at(g, tops, bottoms), [(int(t), int(b)) for t, b in zip(tops, bottoms)])]


def claim_angular(sources: Sources, cfg: AggregateConfig) -> dict:
    """Claim 3 from angular energies (:data:`Sources`, per seed (n, wedges) over 360 degrees).

    The A - N difference is folded onto the W / 2 distinct wedges of a half-plane (:func:`half_plane`), and the
    wedges a part tests are chosen without the data they are tested on (:func:`held_out_wedges`: on the previous
    seed, tested on the seed; with one seed, on the previous fold or image). Parts, each a t interval over
    the seeds of the held-out values (with one seed over its rows): the contrast most positive minus most negative
    wedge > 0 (not flat: under a flat curve the held-out contrast has mean 0 whichever wedges were chosen), the most
    positive wedge > 0 and the most negative wedge < 0 (changes sign). One pair of wedges is tested per unit, so no
    part needs a correction for the wedges; a claim holds when all three parts hold (an intersection-union test,
    each part at level ``alpha``). ``info``: the folded headline curve with simultaneous intervals over its W / 2
    wedges (Bonferroni, level ``1 - alpha / (W / 2)``), its sign changes over the half-plane's circle (each change
    counted once) and the wedges each unit tested."""
    names = ("A - N, most positive minus most negative of {k} wedges over 180 degrees, chosen on another {unit}",
             "A - N in the most positive of {k} wedges over 180 degrees, chosen on another {unit}",
             "A - N in the most negative of {k} wedges over 180 degrees, chosen on another {unit}")

    def differences(angular) -> list[np.ndarray]:
        return [half_plane(a) - half_plane(n) for a, n in zip(angular["A"], angular["N"])]

    def make(angular, label):
        wedges = angular["N"][0].shape[1]
        unit = "seed" if len(angular["N"]) >= 2 else _rows(label)[1]
        labels = [f"{n.format(k=wedges // 2, unit=unit)} ({label})" for n in names]
        empty, undefined = pair_reasons(*_rows(label))
        if wedges % 2:
            why = NA(f"an odd number of wedges ({wedges}) cannot be folded onto a half-plane")
            return [part(n, why, why, why, 0.0, d) for n, d in zip(labels, (ABOVE, ABOVE, BELOW))]
        kept = finite_rows(differences(angular))
        if len(kept) < 2 and (not kept or len(kept[0]) < 2):
            why = NA(undefined if sum(len(a) for a in angular["N"]) else empty)
            if kept:
                why = NA(f"one seed with one {_rows(label)[1]}: nothing to choose the wedges on")
            return [part(n, why, why, why, 0.0, d) for n, d in zip(labels, (ABOVE, ABOVE, BELOW))]
        est = nested_interval([v for v, _ in held_out_wedges(kept)], None, cfg.alpha)
        return [part(name, e, lo, hi, 0.0, d, per_seed=[(p[0][i], p[1][i], p[2][i], p[3]) for p in est.per_seed],
                     alpha=cfg.alpha)
                for i, (name, e, lo, hi, d) in enumerate(zip(labels, *est, (ABOVE, ABOVE, BELOW)))]

    def info(angular):
        wedges = angular["N"][0].shape[1]
        if wedges % 2:
            return {"wedges": wedges}
        kept = finite_rows(differences(angular))
        curve = (nested_interval(kept, None, cfg.alpha / (wedges // 2)) if kept else None)
        extra = {"sign_changes": sign_changes(np.asarray(curve[0])),
                 "curve": "; ".join(f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]" for e, lo, hi in zip(*map(np.ravel, curve))),
                 "tested_wedges (top / bottom per unit)": ", ".join(
                     f"{t} / {b}" for _, chosen in held_out_wedges(kept) for t, b in chosen)} if curve else {}
        return {**extra, "wedges": wedges, "distinct_wedges": wedges // 2, "simultaneous_level": 1 - cfg.alpha}
    return _by_source("angular", sources, make, info)


def claim_augmentations(sources: Sources, cfg: AggregateConfig) -> dict:
    """Claim 4 on the low-third mean difference d_V = mean over low rings of V - N (paired by row), from
    radial energies (:data:`Sources`). Parts, for the variants present: R: sign(d_A) d_R < 0 (opposite
    sign); T: ``small_ratio`` |d_A| - |d_T| > 0 (small next to A); S: sign(d_A) d_S > 0 (same sign) and
    |d_A| - |d_S| > 0 (smaller). The sign of d_A is that of its estimate; A's and V's differences are
    resampled together (same rows)."""
    def sign_of(radial) -> float:
        low, _ = band_thirds(radial["N"][0].shape[1])
        defined = finite_rows(_low_mid_diffs(radial, "A", low))
        return float(np.sign(np.mean([d.mean() for d in defined]))) if defined else math.nan

    def make(radial, label):
        low, _ = band_thirds(radial["N"][0].shape[1])
        d_a = _low_mid_diffs(radial, "A", low)
        sign = sign_of(radial)

        def smaller(v: str, factor: float) -> Estimate:
            both = [np.stack([dv, da], axis=1) for dv, da in zip(_low_mid_diffs(radial, v, low), d_a)]
            return _energy_estimate(both, cfg, lambda m: factor * abs(m[1]) - abs(m[0]), label)

        def signed(v: str) -> Estimate:
            if not math.isfinite(sign):  # no sign of A - N to compare with
                return _energy_estimate(d_a, cfg, label=label)
            return _energy_estimate([sign * d for d in _low_mid_diffs(radial, v, low)], cfg, label=label)

        parts = []
        if "R" in radial:
            parts.append(judge(f"sign(A - N) x (R - N), low rings ({label})", signed("R"), 0.0, BELOW))
        if "T" in radial:
            parts.append(judge(f"{cfg.small_ratio:g} x |A - N| - |T - N|, low rings ({label})",
                               smaller("T", cfg.small_ratio), 0.0, ABOVE))
        if "S" in radial:
            parts.append(judge(f"sign(A - N) x (S - N), low rings ({label})", signed("S"), 0.0, ABOVE))
            parts.append(judge(f"|A - N| - |S - N|, low rings ({label})", smaller("S", 1.0), 0.0, ABOVE))
        return parts

    def info(radial):
        sign = sign_of(radial)
        return {"sign_of_A_minus_N_low": sign} if math.isfinite(sign) else {}
    absent = [v for v in "RTS" if v not in next(iter(sources.values()))]
    return _by_source("augmentations", sources, make, info,
                      missing=f"variant(s) {', '.join(absent)} not trained in this run" if absent else "")


def claim_complement(outcomes: Sequence[Mapping[str, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 5 on N's single-image outcomes (one dict per seed, see :func:`single_outcomes`): masked minus
    complement agreement > 0, and agreement on PGD images under the clean mask minus without it > 0
    (both paired per image)."""
    parts = [judge("masked - complement agreement (N)",
                   _outcome_estimate([o["masked"] - o["complement"] for o in outcomes], cfg), 0.0, ABOVE)]
    if all("restored" in o for o in outcomes):
        parts.append(judge("PGD image: clean-mask restored - unmasked agreement (N)",
                           _outcome_estimate([o["restored"] - o["pgd"] for o in outcomes], cfg), 0.0, ABOVE))
    means = _outcome_means(outcomes, ("masked", "complement", "pgd", "restored", "restored_binary"))
    return claim_row("complement", parts, means)


def _outcome_estimate(groups: Sequence[np.ndarray], cfg: AggregateConfig) -> Estimate:
    """Bootstrap estimate over the images with a defined outcome (n/a with the reason when none)."""
    return defined_estimate(groups, None, cfg.n_boot, cfg.alpha, cfg.seed, empty=NO_IMAGES,
                            undefined="undefined on every image (non-finite single-image masks?)")


def _outcome_means(outcomes: Sequence[Mapping[str, np.ndarray]], keys: Sequence[str]) -> dict:
    """Per outcome present: mean over seeds of the per-seed mean over the images where it is defined;
    an "n/a (<reason>)" text when no image has it."""
    info: dict = {}
    for k in (k for k in keys if all(k in o for o in outcomes)):
        defined = [v[np.isfinite(v)] for v in (o[k] for o in outcomes)]
        means = [float(v.mean()) for v in defined if len(v)]
        empty = not any(len(o[k]) for o in outcomes)
        info[k] = float(np.mean(means)) if means else f"n/a ({NO_IMAGES if empty else 'undefined on every image'})"
    return info


def claim_probe(probes: Mapping[str, Sequence[dict | NA]], cfg: AggregateConfig) -> dict:
    """Claim 6: for every variant, cross-validated probe test accuracy minus permuted-label test accuracy
    > 0, paired over the probed images (each a test image once; per image, the permuted-label
    correctness is averaged over the permutations). ``probes[V]``: one
    :func:`freqbias.probe.linear_probe` result per seed, or the :class:`~freqbias.na.NA` saying why that
    seed has none: that seed is left out (the variant, when no seed has a probe), and the note says why."""
    parts, skipped = [], []
    for v, results in probes.items():
        for s, r in enumerate(results):
            if isinstance(r, NA):
                which = v if len(results) == 1 else f"{v}, seed {s + 1} of {len(results)}"
                skipped.append(f"{which} ({r.reason})")
        probed = [r for r in results if not isinstance(r, NA)]
        if not probed:
            continue
        diffs = [r["test_correct"].astype(float) - r["permuted_test_correct"].astype(float).mean(axis=0)
                 for r in probed]
        parts.append(judge(f"probe test - permuted test accuracy ({v})",
                           nested_interval(diffs, None, cfg.alpha), 0.0, ABOVE))
    return claim_row("probe", parts, missing=f"not probed: {'; '.join(skipped)}" if skipped else "")


def claim_low_share(radial: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig,
                    twin: Mapping[str, Sequence[np.ndarray]] | None = None) -> dict:
    """Claim 7: share of images whose A mask has more energy in the low third of the rings than N's mask on
    the same image, claimed > 0.5. Raw: ``sqrt(sum e_b^2)`` over the low rings. Size-matched (with the masks'
    radial twins' energies ``twin``, :mod:`freqbias.size_null`; then the verdict, the raw share beside): the
    low rings' share of the squared energy minus the twin's, a difference in mask size alone makes it equal."""
    low, _ = band_thirds(radial["N"][0].shape[1])

    def share(score: Callable[[str, int], np.ndarray]) -> list[np.ndarray]:
        return [np.where(np.isfinite(score("A", s)) & np.isfinite(score("N", s)),
                         (score("A", s) > score("N", s)).astype(float), np.nan) for s in range(len(radial["N"]))]

    def raw(v: str, s: int) -> np.ndarray:
        e = radial[v][s]
        return np.where(np.isfinite(e).all(axis=1), low_energy(e, low), np.nan)

    raw_part = judge("share of images with A low-ring energy > N's", _energy_estimate(share(raw), cfg), 0.5, ABOVE)
    if twin is None:
        return claim_row("low_share", [raw_part])

    def excess(v: str, s: int) -> np.ndarray:
        e, t = radial[v][s], twin[v][s]
        ok = np.isfinite(e).all(axis=1) & np.isfinite(t).all(axis=1)
        return np.where(ok, np.square(e[:, low]).sum(axis=1) - np.square(t[:, low]).sum(axis=1), np.nan)

    sized = judge(f"share of images with A low-ring energy > N's ({SINGLE}, size-matched)",
                  _energy_estimate(share(excess), cfg), 0.5, ABOVE)
    return claim_row("low_share", [sized], secondary=[raw_part])


def claim_texture(outcomes: Sequence[Mapping[str, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 8 on N's single-image outcomes: masked agreement > ``agreement_min`` (classified the same)
    and mean SSIM between x and the masked x (pixels) < ``ssim_max`` (unlike the original)."""
    parts = [judge("masked agreement (N)", _outcome_estimate([o["masked"] for o in outcomes], cfg),
                  cfg.agreement_min, ABOVE),
             judge("SSIM(x, masked x) (N)",
                   _outcome_estimate([o["ssim"] for o in outcomes], cfg), cfg.ssim_max, BELOW, delta=SSIM_DELTA)]
    corr = defined_estimate([o["corr"] for o in outcomes], None, cfg.n_boot, cfg.alpha, cfg.seed, empty=NO_IMAGES,
                            undefined="constant masked images: pixel correlation undefined")
    if isinstance(corr[0], NA):
        return claim_row("texture", parts, {"pixel_correlation": str(corr[0])})
    keys = ("pixel_correlation", "pixel_correlation_lo", "pixel_correlation_hi")
    return claim_row("texture", parts, dict(zip(keys, corr)))
