"""The claims of docs/study.md, each judged on this run's measurements with an interval.

Claims (the ``claim_*`` functions) are rows ``{claim, text, statistic, estimate, lo, hi, threshold,
direction, verdict, study, note, parts, info}``. A claim has one or more *parts*, each a statistic with
an interval judged by :func:`verdict`; the row shows its first part, and its verdict is "holds" when
every part holds, "does not hold" when any part does not, else "inconclusive" ("not measured" when
the run lacks what a part needs). Energies are band energies of UNSHIFTED masks (:mod:`freqbias.bands`),
per seed (n_images, bands), paired by image across variants.

Energies ``radial[V]`` / ``angular[V]`` always hold N and A: params validation
(:meth:`freqbias.training.TrainConfig.from_params`, run by every stage) requires both in ``train.variants``,
so a claim on A - N is never without its models. Other variants (S, T, R for claim 4) may be absent.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .bands import band_thirds, difference_curves, low_energy, paired
from .bootstrap import Estimate, cluster_bootstrap, strata_bootstrap

if TYPE_CHECKING:
    from .aggregate import AggregateConfig


def verdict(estimate: float, lo: float, hi: float, threshold: float = 0.0, direction: str = ">") -> str:
    """Verdict on the claim ``quantity <direction> threshold`` from its estimate and interval [lo, hi].

    "holds" when the whole interval is on the claimed side (``lo > threshold`` for ">",
    ``hi < threshold`` for "<"), "does not hold" when it is all on the other side (touching the
    threshold included), else "inconclusive". The verdict depends on the interval; the estimate is
    checked to lie in it. Non-finite inputs raise ValueError (a claim nobody could measure)."""
    if direction not in (">", "<"):
        raise ValueError(f"direction must be '>' or '<', got {direction!r}")
    if not all(math.isfinite(v) for v in (estimate, lo, hi, threshold)):
        raise ValueError(f"non-finite input: estimate={estimate}, lo={lo}, hi={hi}, threshold={threshold}")
    if not lo <= estimate <= hi:
        raise ValueError(f"need lo <= estimate <= hi, got {lo} <= {estimate} <= {hi}")
    if direction == ">":
        return "holds" if lo > threshold else "does not hold" if hi <= threshold else "inconclusive"
    return "holds" if hi < threshold else "does not hold" if lo >= threshold else "inconclusive"


CLAIMS: dict[int, tuple[str, str]] = {
    1: ("Masked accuracy >= 0.99 x clean accuracy for every model, on held-out images too.",
        "VGG11-BN val: masked / clean from 0.992 (A) to 1.001 (S), min 0.992; fitted and scored on the same images"),
    2: ("A - N radial energy is positive in the low bands and negative in the mid bands.",
        "positive in the low rings, negative in the mid rings (dataset masks, 64 rings, 128 x 128 Imagenette)"),
    3: ("The A - N angular difference is not flat and changes sign with angle.",
        "not flat; changes sign with angle (dataset masks, 64 wedges)"),
    4: ("Other augmentations do not necessarily show it: R - N has the opposite sign; T - N is small; "
        "S - N has A's shape but is smaller.", "R - N opposite to A - N; T - N small; S - N like A - N, smaller"),
    5: ("The complement of a single-image mask loses most of the agreement; a clean image's mask partly "
        "restores the prediction on its PGD version.",
        "masked 100% / 100%, complement 55.5% / 58.3%, PGD 0% / 0%, restored 58.7% / 74.3% (VGG / ResNet)"),
    6: ("Single-image masks carry class information: probe accuracy well above the permuted-label control.",
        "probe test accuracy 82.2% / 78.4% vs about 20% with permuted labels (chance 20%)"),
    7: ("Per image, the adversarial model's mask has more low-band energy than the standard one for most images.",
        "most images (per-band shares shown as a figure; no single number)"),
    8: ("Images seen through their masks are not recognisable (texture-like) yet are classified the same.",
        "masked images keep the prediction 100% / 100%; they look texture-like (shown, not measured)"),
}


VERDICT_RULE = ("A part holds when its whole {level}% interval lies on the claimed side of the threshold, does "
                "not hold when the interval lies entirely on the other side (touching the threshold included), "
                "and is inconclusive otherwise (claims.verdict). A claim holds when all its parts hold, does not "
                "hold when any part does not hold, and is inconclusive otherwise; 'not measured' when this run "
                "lacks a model or images a part needs.")


def part(statistic: str, estimate: float, lo: float, hi: float, threshold: float, direction: str) -> dict:
    """One judged statistic: ``verdict`` from :func:`verdict`, or "not measured" when
    a value is not finite. An interval that misses the estimate is widened to include it."""
    values = [float(v) for v in (estimate, lo, hi)]
    measured = all(math.isfinite(v) for v in values)
    if measured:  # a percentile interval of a non-linear statistic can miss its estimate: widen it to cover
        values[1], values[2] = min(values[1], values[0]), max(values[2], values[0])
    return {"statistic": statistic, "estimate": values[0], "lo": values[1], "hi": values[2],
            "threshold": threshold, "direction": direction,
            "verdict": verdict(*values, threshold, direction) if measured else "not measured"}


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """All hold -> "holds"; any "does not hold" -> "does not hold"; none measured -> "not measured";
    else "inconclusive"."""
    measured = [v for v in verdicts if v != "not measured"]
    if not verdicts or not measured:
        return "not measured"
    if "does not hold" in measured:
        return "does not hold"
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "inconclusive"


def claim_row(number: int, parts: list[dict], info: dict | None = None, missing: str = "") -> dict:
    """A claims.json row: the first part as headline, the combined verdict, the study's value and a plain
    note when this run does not reproduce the claim."""
    text, study = CLAIMS[number]
    verdict = combine_verdicts([p["verdict"] for p in parts])
    head = parts[0] if parts else {"statistic": "n/a", "estimate": math.nan, "lo": math.nan, "hi": math.nan,
                                   "threshold": math.nan, "direction": ""}
    failed = [p["statistic"] for p in parts if p["verdict"] == "does not hold"]
    open_ = [p["statistic"] for p in parts if p["verdict"] == "inconclusive"]
    notes = ([f"This run disagrees with the study: {'; '.join(failed)} (interval on the wrong side of the threshold)."]
             if failed else [])
    notes += [f"Not settled by this run (interval contains the threshold): {'; '.join(open_)}."] if open_ else []
    notes += [f"{missing[0].upper()}{missing[1:]}."] if missing else []
    return {"claim": number, "text": text, "statistic": head["statistic"], "estimate": head["estimate"],
            "lo": head["lo"], "hi": head["hi"], "threshold": head["threshold"], "direction": head["direction"],
            "verdict": verdict, "study": study, "note": " ".join(notes), "parts": parts,
            "info": info or {}}


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def claim_accuracy(acc: Mapping[str, tuple[np.ndarray, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 1. ``acc[split] = (clean, masked)``, each (n_images, n_models) 1.0 / 0.0 correctness of every
    model on the same images. Statistic: min over models (and over splits for the headline) of masked /
    clean accuracy; the splits' images are resampled independently (:func:`strata_bootstrap`)."""
    def min_ratio(means: list[np.ndarray]) -> float:
        return float(np.min([ratio(masked, clean) for m in means
                             for clean, masked in zip(m[:m.size // 2], m[m.size // 2:])]))  # NaN propagates

    arrays = {split: np.concatenate([clean, masked], axis=1) for split, (clean, masked) in acc.items()}
    parts = [part("min over models and splits of masked / clean accuracy",
                  *strata_bootstrap(list(arrays.values()), min_ratio, cfg.n_boot, cfg.alpha, cfg.seed),
                  cfg.ratio_min, ">")]
    for split, arr in arrays.items():
        parts.append(part(f"min over models of masked / clean accuracy ({split})",
                          *strata_bootstrap([arr], min_ratio, cfg.n_boot, cfg.alpha, cfg.seed), cfg.ratio_min, ">"))
    return claim_row(1, parts)


def _low_mid_diffs(radial: Mapping[str, Sequence[np.ndarray]], v: str, bands: np.ndarray) -> list[np.ndarray]:
    """Per seed, per image: mean over ``bands`` of the energy difference V - N (n_s,); NaN where either
    mask is all zero (no energies), so that vectors of different variants stay aligned by image."""
    return [(a - n)[:, bands].mean(axis=1) for a, n in zip(radial[v], radial["N"])]


def _finite(diffs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Rows without NaN, per seed (for (n,) and (n, k) arrays)."""
    return [d[np.isfinite(d).reshape(len(d), -1).all(axis=1)] for d in diffs]


def claim_radial(radial: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig,
                 dataset_diff: np.ndarray | None = None) -> dict:
    """Claim 2 from single-image radial energies ``radial[V]`` (per seed (n, rings)): mean paired A - N
    difference over the low third of the rings > 0 and over the mid third < 0. ``dataset_diff`` (rings,),
    the dataset masks' A - N (mean over seeds), is reported as a point value."""
    low, mid = band_thirds(radial["N"][0].shape[1])
    boot = dict(n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
    parts = [part(f"A - N mean energy over low rings {low[0]}-{low[-1]}",
                  *cluster_bootstrap(_finite(_low_mid_diffs(radial, "A", low)), **boot), 0.0, ">"),
             part(f"A - N mean energy over mid rings {mid[0]}-{mid[-1]}",
                  *cluster_bootstrap(_finite(_low_mid_diffs(radial, "A", mid)), **boot), 0.0, "<")]
    info = {}
    if dataset_diff is not None:
        info = {"dataset_mask_low": float(np.mean(dataset_diff[low])), "dataset_mask_mid": float(np.mean(dataset_diff[mid]))}
    return claim_row(2, parts, info)


def sign_changes(curve: np.ndarray) -> int:
    """Sign changes of a closed (circular) curve, zeros skipped."""
    signs = np.sign(curve[curve != 0])
    return int(np.sum(signs != np.roll(signs, 1))) if len(signs) > 1 else 0


def claim_angular(angular: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 3 from single-image angular energies (per seed (n, wedges)).

    The per-wedge mean A - N curve gets simultaneous intervals (Bonferroni: level ``1 - alpha / wedges``).
    Parts: the range max - min of the curve, interval ``[max lo - min hi, max hi - min lo]`` (covers the
    true range whenever all wedge intervals cover), claimed > 0 (not flat); the most positive wedge > 0
    and the most negative wedge < 0 (changes sign)."""
    n_wedges = angular["N"][0].shape[1]
    est, lo, hi = difference_curves({"N": angular["N"], "A": angular["A"]}, cfg, cfg.alpha / n_wedges)["A"]
    top, bottom = int(np.argmax(est)), int(np.argmin(est))
    parts = [part("range (max - min over wedges) of the A - N angular curve",
                  est.max() - est.min(), max(lo.max() - hi.min(), 0.0), hi.max() - lo.min(), 0.0, ">"),
             part(f"A - N in the most positive wedge ({top})", est[top], lo[top], hi[top], 0.0, ">"),
             part(f"A - N in the most negative wedge ({bottom})", est[bottom], lo[bottom], hi[bottom], 0.0, "<")]
    return claim_row(3, parts, {"sign_changes": sign_changes(est), "wedges": n_wedges,
                                "simultaneous_level": 1 - cfg.alpha})


def claim_augmentations(radial: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 4 on the low-third mean difference d_V = mean over low rings of V - N (paired by image).
    Parts, for the variants present: R: sign(d_A) d_R < 0 (opposite sign); T: ``small_ratio`` |d_A| - |d_T|
    > 0 (small next to A); S: sign(d_A) d_S > 0 (same sign) and |d_A| - |d_S| > 0 (smaller). The sign of
    d_A is that of its estimate; A's and V's differences are resampled together (same images)."""
    low, _ = band_thirds(radial["N"][0].shape[1])
    boot = dict(n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
    d_a = _low_mid_diffs(radial, "A", low)
    sign = float(np.sign(np.mean([d.mean() for d in _finite(d_a)])))

    def smaller(v: str, factor: float) -> Estimate:
        both = _finite([np.stack([dv, da], axis=1) for dv, da in zip(_low_mid_diffs(radial, v, low), d_a)])
        return cluster_bootstrap(both, lambda m: factor * abs(m[1]) - abs(m[0]), **boot)

    def signed(v: str) -> Estimate:
        return cluster_bootstrap(_finite([sign * d for d in _low_mid_diffs(radial, v, low)]), **boot)

    parts = []
    if "R" in radial:
        parts.append(part("sign(A - N) x (R - N), low rings", *signed("R"), 0.0, "<"))
    if "T" in radial:
        parts.append(part(f"{cfg.small_ratio:g} x |A - N| - |T - N|, low rings", *smaller("T", cfg.small_ratio), 0.0, ">"))
    if "S" in radial:
        parts.append(part("sign(A - N) x (S - N), low rings", *signed("S"), 0.0, ">"))
        parts.append(part("|A - N| - |S - N|, low rings", *smaller("S", 1.0), 0.0, ">"))
    absent = [v for v in "RTS" if v not in radial]
    return claim_row(4, parts, {"sign_of_A_minus_N_low": sign},
                     missing=f"variant(s) {', '.join(absent)} not trained in this run" if absent else "")


def claim_complement(outcomes: Sequence[Mapping[str, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 5 on N's single-image outcomes (one dict per seed, see :func:`single_outcomes`): masked minus
    complement agreement > 0, and agreement on PGD images under the clean mask minus without it > 0
    (both paired per image)."""
    boot = dict(n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
    parts = [part("masked - complement agreement (N)",
                  *cluster_bootstrap([o["masked"] - o["complement"] for o in outcomes], **boot), 0.0, ">")]
    if all("restored" in o for o in outcomes):
        parts.append(part("PGD image: clean-mask restored - unmasked agreement (N)",
                          *cluster_bootstrap([o["restored"] - o["pgd"] for o in outcomes], **boot), 0.0, ">"))
    info = {k: float(np.mean([o[k].mean() for o in outcomes]))
            for k in ("masked", "complement", "pgd", "restored", "restored_binary") if k in outcomes[0]}
    return claim_row(5, parts, info)


def claim_probe(probes: Mapping[str, Sequence[dict | None]], cfg: AggregateConfig) -> dict:
    """Claim 6: for every variant, probe test accuracy minus permuted-label test accuracy > 0, paired over
    the probe's test images (``probes[V]``: one :func:`freqbias.probe.linear_probe` result per seed)."""
    parts, skipped = [], []
    for v, results in probes.items():
        if any(r is None for r in results):
            skipped.append(v)
            continue
        diffs = [r["test_correct"].astype(float) - r["permuted_test_correct"].astype(float) for r in results]
        parts.append(part(f"probe test - permuted test accuracy ({v})",
                          *cluster_bootstrap(diffs, None, cfg.n_boot, cfg.alpha, cfg.seed), 0.0, ">"))
    return claim_row(6, parts, missing=f"too few images to probe {', '.join(skipped)}" if skipped else "")


def claim_low_share(radial: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 7: share of images whose A mask has more energy in the low third of the rings
    (``sqrt(sum e_b^2)``) than N's mask on the same image, claimed > 0.5."""
    low, _ = band_thirds(radial["N"][0].shape[1])
    greater = [(low_energy(a, low) > low_energy(n, low)).astype(float)
               for a, n in (paired(a, n) for a, n in zip(radial["A"], radial["N"]))]
    return claim_row(7, [part("share of images with A low-ring energy > N's",
                              *cluster_bootstrap(greater, None, cfg.n_boot, cfg.alpha, cfg.seed), 0.5, ">")])


def claim_texture(outcomes: Sequence[Mapping[str, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 8 on N's single-image outcomes: masked agreement > ``agreement_min`` (classified the same)
    and mean SSIM between x and the masked x (pixels) < ``ssim_max`` (unlike the original)."""
    boot = dict(n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed)
    parts = [part("masked agreement (N)", *cluster_bootstrap([o["masked"] for o in outcomes], **boot),
                  cfg.agreement_min, ">"),
             part("SSIM(x, masked x) (N)", *cluster_bootstrap([o["ssim"] for o in outcomes], **boot),
                  cfg.ssim_max, "<")]
    corr = cluster_bootstrap([np.nan_to_num(o["corr"]) for o in outcomes], **boot)
    return claim_row(8, parts, dict(zip(("pixel_correlation", "pixel_correlation_lo", "pixel_correlation_hi"), corr)))
