"""The study's reference numbers and the claims' smallest effects (Karantzas et al. 2022; docs/study.md).

:data:`REFERENCE` holds every number the study reports (as published, in %); the report prints it next to this
run's values, and the ``study`` column of claims 1, 5, 6 and 8 (:mod:`freqbias.claim_registry`) is written from it.
The ``*_DELTA`` values are the claims' smallest effects of interest (:class:`Delta`, a number with its reason; each
claim's entry names its own): a part whose whole interval lies within its threshold +- delta is "negligible"
(:mod:`freqbias.verdicts`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One number of the study, as published (%): VGG11-BN's and ResNet-18's ("" when not reported), and ``key``,
    where this run's value is: ``("val_clean_all" | "val_masked_all", variant)`` (accuracy table),
    ``("single", metric)`` (N's single-image table) or ``("probe", column)`` (N's probe table)."""

    quantity: str
    vgg: str
    resnet: str
    key: tuple[str, str]


_VAL_CLEAN = {"N": "89.56", "A": "79.62", "S": "86.62", "T": "85.86", "R": "68.47"}   # VGG11-BN, Imagenette val
_VAL_MASKED = {"N": "89.20", "A": "78.97", "S": "86.72", "T": "85.35", "R": "68.17"}

REFERENCE: tuple[Reference, ...] = (
    *(Reference(f"clean val accuracy, {v}", a, "", ("val_clean_all", v)) for v, a in _VAL_CLEAN.items()),
    *(Reference(f"dataset-masked val accuracy, {v}", a, "", ("val_masked_all", v)) for v, a in _VAL_MASKED.items()),
    Reference("single-image: masked image keeps the prediction (N)", "100", "100", ("single", "masked")),
    Reference("single-image: complement keeps the prediction (N)", "55.5", "58.3", ("single", "complement")),
    Reference("single-image: PGD image keeps the prediction (N)", "0", "0", ("single", "pgd")),
    Reference("single-image: clean mask restores it on the PGD image (N)", "58.7", "74.3", ("single", "restored")),
    Reference("probe test accuracy on N's masks, true labels", "82.2", "78.4", ("probe", "test_acc")),
    Reference("probe test accuracy on N's masks, permuted labels", "about 20", "about 20",
              ("probe", "permuted_test_acc")),
    Reference("probe chance level", "20", "20", ("probe", "chance")),
)


def reference(table: str, field: str) -> Reference:
    """The :data:`REFERENCE` entry of ``key == (table, field)``."""
    return next(r for r in REFERENCE if r.key == (table, field))


def both(table: str, field: str) -> str:
    """``"<VGG>% / <ResNet>%"`` of one reference number."""
    r = reference(table, field)
    return f"{r.vgg}% / {r.resnet}%"


def ratio_range() -> str:
    """Claim 1's study value: the range over VGG11-BN's variants of masked / clean val accuracy."""
    ratios = {v: float(reference("val_masked_all", v).vgg) / float(reference("val_clean_all", v).vgg)
              for v in _VAL_CLEAN}
    low, high = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
    return (f"VGG11-BN val: masked / clean from {ratios[low]:.3f} ({low}) to {ratios[high]:.3f} ({high}), "
            f"min {ratios[low]:.3f}; fitted and scored on the same images")


_SINGLE_NAMES = {"masked": "masked", "complement": "complement", "pgd": "PGD", "restored": "restored"}


def single_outcomes_study() -> str:
    """Claim 5's study value: N's single-image outcomes, VGG / ResNet."""
    return ", ".join(f"{name} {both('single', k)}" for k, name in _SINGLE_NAMES.items()) + " (VGG / ResNet)"

@dataclass(frozen=True)
class Delta:
    """A claim part's smallest effect of interest, in the unit of its statistic, with the reason for the number: a
    part whose whole interval lies within ``threshold +- value`` is "negligible" (no effect of that size either
    way; :meth:`freqbias.verdicts.Direction.judge`)."""

    value: float
    reason: str


_MASKED_LOSS = sorted(float(_VAL_CLEAN[v]) - float(_VAL_MASKED[v]) for v in _VAL_CLEAN)

ACCURACY_DELTA = Delta(0.01, "one point of accuracy or agreement: the study's own dataset masks lost at "
                       f"most {_MASKED_LOSS[-1]:.2f} points of val accuracy (REFERENCE) and "
                       "it reads that as keeping the accuracy, so a difference under one point is below anything it "
                       "calls an effect")
RATIO_DELTA = Delta(0.01, "one point of the clean accuracy: the study's masked / clean ratios lie within one point "
                    "of 1 (REFERENCE); a ratio within 0.01 of the threshold is at the claim's margin")
ENERGY_DELTA = Delta(0.01, "a band-energy difference under 0.01 cannot be told from what size alone leaves after "
                     "size-matching: two budgets of one set of masks (the same network, only the size differs) "
                     "differ size-matched by about 0.01 in the low rings (tests/test_size_matched.py, docs/study.md "
                     "'Band statistics at equal size'); about 3 % of a mask's squared energy moved between thirds of "
                     "the rings at a typical ring energy of 0.3")
SHARE_DELTA = Delta(0.05, "a share within 0.45-0.55 is no majority worth the name 'most images' (one image in "
                    "twenty beyond a coin flip); the project's choice")
SSIM_DELTA = Delta(0.05, "a tenth of the SSIM threshold 0.5; the project's choice, no perceptual study behind it")
MEAN_DELTA = Delta(0.01, "one percent of the plane's frequencies (8 of 784 at 28 x 28): below the difference between "
                   "two fold masks of one network")
CORRELATION_DELTA = Delta(0.05, "0.05 on Spearman's scale: about 11 swaps of neighbouring rings in the ranking of "
                          "14 band energies (one swap moves it by 12 / (14 x 195) = 0.0044); the project's choice")
