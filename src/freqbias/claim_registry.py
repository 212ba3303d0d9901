"""The claims, one entry each: what every module that measures, judges or renders a claim reads.

A :class:`Claim` holds everything about a claim but its numbers: its number (its place in the report), a stable
``key``, the text this project tests, what the study reports, its smallest effect of interest
(:class:`~freqbias.study.Delta`), its headline statistic and short title in words, the study question it answers
(the report's opening, :mod:`freqbias.headline`), whether it is a control, which of the report's extra routes apply
(``energy``: its parts are band energies with size-matched twins, :mod:`freqbias.size_null`; ``routes``: its fold
parts are compared raw / size-matched / at equal budget, :mod:`freqbias.budget_report`) and its ``measure``: how the
aggregate stage computes its row from the run's :class:`Evidence`.

**Adding a claim is one entry** in :data:`CLAIMS`: a measure that returns :func:`freqbias.claims.claim_row` of the
new claim's parts, and the claims table, the figure, the metrics, the opening bullets and the appendix render it
(tests/test_claim_registry.py adds one). A claim is found by its entry (:func:`claim_of`), never by its number.

A claim's row (:class:`ClaimRow`) and its parts (:class:`Part`) cross from the aggregate stage to the report as
``results/claims.json``; they are typed dicts, so that the JSON is the type (:func:`freqbias.na.to_json` makes a
row strict JSON).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TypedDict

from .study import (
    ACCURACY_DELTA,
    CORRELATION_DELTA,
    ENERGY_DELTA,
    MEAN_DELTA,
    RATIO_DELTA,
    SHARE_DELTA,
    Delta,
    both,
    ratio_range,
    reference,
    single_outcomes_study,
)


class SeedPart(TypedDict, total=False):
    """One seed's value of a part: ``estimate``, ``lo``, ``hi`` (its interval over its own images or folds),
    ``verdict`` and ``n`` (images or folds)."""

    estimate: float
    lo: float
    hi: float
    verdict: str
    n: int


class Part(TypedDict, total=False):
    """One judged statistic of a claim (:func:`freqbias.claims.part`): ``statistic`` (words; its last parenthesis
    names the mask source), ``estimate`` / ``lo`` / ``hi`` (NaN when not measured), ``threshold``, ``direction``
    ("above" / "below"), ``verdict``, ``reason`` (why not measured), ``delta`` / ``delta_reason`` (the smallest
    effect of interest), ``half_width``; with per-seed values also ``per_seed``, ``seeds_holding``, ``seeds``,
    ``alpha`` and, when inconclusive, ``seeds_to_settle`` with ``variance_between`` / ``variance_within``."""

    statistic: str
    estimate: float
    lo: float
    hi: float
    threshold: float
    direction: str
    verdict: str
    reason: str
    delta: float | None
    delta_reason: str
    half_width: float
    per_seed: list[SeedPart]
    seeds_holding: int
    seeds: int
    alpha: float
    seeds_to_settle: int | None
    variance_between: float
    variance_within: float


class ClaimRow(TypedDict, total=False):
    """A claim as measured (:func:`freqbias.claims.claim_row`): its registry ``key`` and ``claim`` number, ``text``,
    ``study``, the headline part's fields (``statistic`` ... ``half_width``, ``reason``), the combined ``verdict``,
    a ``note``, its ``parts`` (the verdict's) and ``secondary`` parts (a second line, not in the verdict), ``info``
    (extra values) and ``seeds_holding`` / ``seeds``."""

    key: str
    claim: int
    title: str
    text: str
    study: str
    statistic: str
    estimate: float
    lo: float
    hi: float
    threshold: float
    direction: str
    delta: float | None
    half_width: float
    reason: str
    verdict: str
    note: str
    parts: list[Part]
    secondary: list[Part]
    info: dict[str, Any]
    seeds_holding: int
    seeds: int


@dataclass
class Evidence:
    """What the aggregate stage has measured, as the claims' measures read it (docs of each field's producer):
    ``cfg`` (:class:`freqbias.runs.AggregateConfig`); ``acc``: split -> (clean, masked) correctness (images, models)
    of ``models``, ``masked_na``: models without a masked score, with the reason; ``sources``: "radial" /
    "angular" -> mask source label -> per seed band energies (claims 2-4); ``radial_single`` / ``radial_twins``:
    the single-image masks' radial energies and their twins' per variant and seed (claim 7); ``outcomes``: N's
    single-image outcomes per seed (claims 5, 8); ``probes``: per variant, the probe per seed (claim 6);
    ``controls``: claim key -> the row the controls measured (claims 9-11; :mod:`freqbias.control_claims`);
    ``ladder``: every model's budget ladder (:func:`freqbias.budget_results.ladder_frame`; claim 12)."""

    cfg: Any
    acc: Mapping[str, Any] = field(default_factory=dict)
    models: Sequence[str] = ()
    masked_na: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    radial_single: Mapping[str, Any] = field(default_factory=dict)
    radial_twins: Mapping[str, Any] = field(default_factory=dict)
    outcomes: Sequence[Mapping[str, Any]] = ()
    probes: Mapping[str, Any] = field(default_factory=dict)
    controls: Mapping[str, ClaimRow] = field(default_factory=dict)
    ladder: Any = None


def metric(number: int) -> str:
    """A claim's key in ``results/metrics.json``: ``claim_<number>``."""
    return f"claim_{number}"


def _measure(path: str) -> Callable[..., ClaimRow]:
    """The function ``freqbias.<module>.<name>`` of ``path = "<module>.<name>"``, imported when a claim is measured
    (the measuring modules import this one)."""
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"freqbias.{module}"), name)


@dataclass(frozen=True)
class Claim:
    """One claim (module doc). ``measure(evidence)`` returns its :class:`ClaimRow`, or None when the run has nothing
    for it (it is then left out of the report)."""

    number: int
    key: str
    title: str
    text: str
    study: str
    delta: Delta
    statistic: str
    question: str
    measure: Callable[[Evidence], ClaimRow | None]
    control: bool = False
    energy: bool = False
    routes: bool = False

    @property
    def metric(self) -> str:
        """Its key in ``results/metrics.json`` (``dvc metrics`` / ``dvc exp show`` columns)."""
        return metric(self.number)


_KEEP = "Do the masks keep the networks' accuracy?"
_SINGLE = "What do single-image masks show?"
_CONTROLS = "Do the controls support reading the masks as the network's frequency use?"

CLAIMS: tuple[Claim, ...] = (
    Claim(1, "accuracy", "masks keep accuracy",
          ("Masked accuracy >= the masks' rule x clean accuracy for every model, on held-out images too (the "
           "rule: aggregate.claims.ratio_min = masks.dataset.acc_ratio; the study's 0.99)"), ratio_range(),
          RATIO_DELTA, "masked / clean test accuracy of the dataset masks, per variant", _KEEP,
          lambda ev: _measure("claims.claim_accuracy")(ev.acc, ev.cfg, ev.models, ev.masked_na)),
    Claim(2, "radial", "A - N by radius",
          "A - N radial energy is positive in the low bands and negative in the mid bands.",
          "positive in the low rings, negative in the mid rings (dataset masks, 64 rings, 128 x 128 Imagenette)",
          ENERGY_DELTA, "A - N mean band energy in the low and the mid thirds of the rings",
          "Does adversarial training move the dataset masks' energy from mid to low frequencies?",
          lambda ev: _measure("claims.claim_radial")(ev.sources["radial"], ev.cfg), energy=True, routes=True),
    Claim(3, "angular", "A - N by direction",
          "The A - N angular difference is not flat and changes sign with angle.",
          "not flat; changes sign with angle (dataset masks, 64 wedges)",
          ENERGY_DELTA, "A - N band energy in the most positive and most negative wedges (cross-fitted)",
          "Does the difference depend on direction?",
          lambda ev: _measure("claims.claim_angular")(ev.sources["angular"], ev.cfg), energy=True, routes=True),
    Claim(4, "augmentations", "other augmentations",
          "Other augmentations do not necessarily show it: R - N has the opposite sign; T - N is small; "
          "S - N has A's shape but is smaller.", "R - N opposite to A - N; T - N small; S - N like A - N, smaller",
          ENERGY_DELTA, "X - N low-ring energy against A - N's, per augmentation",
          "Do the other augmentations differ from A as the study says?",
          lambda ev: _measure("claims.claim_augmentations")(ev.sources["radial"], ev.cfg), energy=True, routes=True),
    Claim(5, "complement", "complement and restoration",
          "The complement of a single-image mask loses most of the agreement; a clean image's mask partly "
          "restores the prediction on its PGD version.", single_outcomes_study(),
          ACCURACY_DELTA, "N's single-image agreement: complement, PGD, restored", _SINGLE,
          lambda ev: _measure("claims.claim_complement")(ev.outcomes, ev.cfg)),
    Claim(6, "probe", "class information",
          "Single-image masks carry class information: probe accuracy well above the permuted-label control.",
          f"probe test accuracy {both('probe', 'test_acc')} vs {reference('probe', 'permuted_test_acc').vgg}% with "
          f"permuted labels (chance {reference('probe', 'chance').vgg}%)",
          ACCURACY_DELTA, "linear probe test accuracy minus the permuted-label control, per variant", _SINGLE,
          lambda ev: _measure("claims.claim_probe")(ev.probes, ev.cfg)),
    Claim(7, "low_share", "low bands per image",
          "Per image, the adversarial model's mask has more low-band energy than the standard one for most images.",
          "most images (per-band shares shown as a figure; no single number)",
          SHARE_DELTA, "share of images whose A mask has more low-ring energy than N's (size-matched)", _SINGLE,
          lambda ev: _measure("claims.claim_low_share")(ev.radial_single, ev.cfg, ev.radial_twins), energy=True),
    Claim(8, "texture", "texture-like",
          "Images seen through their masks are not recognisable (texture-like) yet are classified the same.",
          f"masked images keep the prediction {both('single', 'masked')}; they look texture-like (shown, not "
          "measured)", ACCURACY_DELTA, "masked-image agreement and SSIM to the clean image", _SINGLE,
          lambda ev: _measure("claims.claim_texture")(ev.outcomes, ev.cfg)),
    Claim(9, "disc", "mask vs low-pass disc",
          "Control: the frequencies a mask keeps give more test accuracy than a low-pass disc of the same size.",
          "not measured by the study (no control)", ACCURACY_DELTA,
          "fold masks' support minus a disc of its size, test accuracy, per variant", _CONTROLS,
          lambda ev: ev.controls.get("disc"), control=True),
    Claim(10, "isotropic", "free vs isotropic mask",
          "Control: the free mask is sparser than the sparsest isotropic (one value per ring) mask.",
          "not measured by the study (masks differ by direction, shown as angular curves)", MEAN_DELTA,
          "isotropic minus free fold mask size, per variant", _CONTROLS,
          lambda ev: ev.controls.get("isotropic"), control=True),
    Claim(11, "randomisation", "masks vs re-initialised network",
          "Control: the masks depend on the trained weights (Adebayo et al. 2018's randomisation check).",
          "not measured by the study (no sanity check)", CORRELATION_DELTA,
          "N's seed-to-seed minus re-initialised mask rank correlation", _CONTROLS,
          lambda ev: ev.controls.get("randomisation"), control=True),
    Claim(12, "budget_needed", "A needs fewer frequencies",
          "The adversarial network needs fewer frequencies than the standard one: a smaller budget keeps 0.9 of its "
          "clean accuracy.",
          "A's dataset mask keeps a disc of radius about half the plane's half-width, N's a region of about two thirds "
          "(figures, not measured)", MEAN_DELTA,
          "N - A budget needed for 0.9 of clean accuracy (held-out, budget ladder), paired by seed",
          "How many frequencies does each network need?",
          lambda ev: None if ev.ladder is None else _measure("budget_results.claim_needed")(
              ev.ladder, ev.cfg.budget_needed, ev.cfg.alpha)),
)


def by_key(key: str) -> Claim:
    """The entry of ``key`` (KeyError naming the known keys)."""
    for c in CLAIMS:
        if c.key == key:
            return c
    raise KeyError(f"no claim {key!r}; known: {', '.join(c.key for c in CLAIMS)}")


def claim_of(row: Mapping[str, Any]) -> Claim | None:
    """The entry a claims.json row was measured for: by its ``key``, or for a row written before keys, by its
    number; None for a claim the registry does not hold."""
    for c in CLAIMS:
        if c.key == row.get("key") or ("key" not in row and c.number == row.get("claim")):
            return c
    return None


def find(rows: Sequence[Mapping[str, Any]], claim: Claim) -> Mapping[str, Any] | None:
    """The row of ``claim`` among ``rows`` (claims.json), or None."""
    return next((r for r in rows if claim_of(r) == claim), None)


def questions() -> list[tuple[str, list[Claim]]]:
    """The study's questions in reading order (first appearance in :data:`CLAIMS`), each with its claims."""
    out: dict[str, list[Claim]] = {}
    for c in CLAIMS:
        out.setdefault(c.question, []).append(c)
    return list(out.items())


def measure_all(evidence: Evidence) -> list[ClaimRow]:
    """Every claim's row (registry order), those with nothing measured on this run left out."""
    return [row for c in CLAIMS if (row := c.measure(evidence)) is not None]
