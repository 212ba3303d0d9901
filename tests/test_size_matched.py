"""Size-matched band statistics (freqbias.size_null) on planted data: a negative control (one set of masks at two
budgets, differing only in size: the raw low-ring difference is clear, the size-matched one far smaller) and a positive
control (a network whose class information sits at lower frequencies than another's: the size-matched difference
stays clearly positive). Image size, rings and bands are ones no other test uses. A last test shows the claims take
their verdict from the size-matched source: replacing it by the raw one changes the verdict."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from conftest import train_small_cnn
from freqbias import shared_masks as sm
from freqbias.band_geometry import band_profiles, band_thirds
from freqbias.bootstrap import nested_interval
from freqbias.claims import claim_radial
from freqbias.data import to_float
from freqbias.parametrisation import Rfft
from freqbias.planted import PlantedBand, make_planted
from freqbias.runs import AggregateConfig
from freqbias.size_null import twin_profiles

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, RINGS, WEDGES = 34, 11, 6
LOW_RING = PlantedBand(r_min=2.5, r_max=4.0, angle=0.2)     # cycles per image
HIGH_RING = PlantedBand(r_min=9.0, r_max=12.0, angle=0.2)
# stopped early (patience 3, tol 0.005, at most 150 steps of 8 images; 384 training images, folds of 64): the planted
# difference is 0.25 [0.22, 0.29] against the 0.05 asserted, 16 s of fits on one core (with 16 images a step, up to 400
# steps, 512 training images and folds of 96: 0.33 [0.25, 0.40], 44 s; to convergence at patience 8, 1024 training
# images: 0.31 [0.28, 0.33])
FIT = sm.SharedMaskConfig(lam=0.2, lam_factor=1.2, lr=0.02, lr_cuts=1, batch_size=8, max_steps=150,
                          check_every=10, acc_ratio=0.99, tol=0.005, patience=3)
N_TRAIN, FOLD = 384, 64


@functools.cache
def _folds(band: PlantedBand) -> torch.Tensor:
    """small_cnn trained for 2 epochs on N_TRAIN planted images of ``band``; its dataset masks (4, SIZE, SIZE//2+1;
    rfft, unshifted) on 4 disjoint folds of FOLD held-out images each."""
    x, y = make_planted(N_TRAIN + 4 * FOLD, SIZE, 4, seed=2, band=band)
    model = train_small_cnn(to_float(x[:N_TRAIN]), y[:N_TRAIN], 4, seed=0)
    z = model.normalize(to_float(x))
    groups = [N_TRAIN + torch.arange(k * FOLD, (k + 1) * FOLD) for k in range(4)]
    fit = sm.fit_shared_masks(model.net, z, y, groups, FIT)
    assert all(r["met"] for r in fit.records)
    return fit.masks


def _low(masks: torch.Tensor, sized: bool) -> np.ndarray:
    """Per mask, the mean energy over the low third of the rings: raw, or minus its radial twin's (size-matched)."""
    par = Rfft(SIZE, SIZE)
    low, _ = band_thirds(RINGS)
    e = band_profiles(masks.double(), par, RINGS, WEDGES)[0].numpy()
    if sized:
        e = e - twin_profiles(masks.double(), par, RINGS, WEDGES)[0].numpy()
    return e[:, low].mean(axis=1)


def _smooth_masks(seed: int = 0, r0: float = 6.0, noise: float = 0.4) -> torch.Tensor:
    """4 masks (rfft layout, unshifted) whose values fall with frequency as the run's masks do: exp(-r / r0)
    times log-normal noise (sigma ``noise``), r in cycles per image; capped at 1."""
    g = torch.Generator().manual_seed(seed)
    fy, fx = torch.fft.fftfreq(SIZE) * SIZE, torch.fft.rfftfreq(SIZE) * SIZE
    r = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    return (torch.exp(-r / r0) * torch.exp(noise * torch.randn(4, *r.shape, generator=g))).clamp(max=1)


def _top(masks: torch.Tensor, share: float) -> torch.Tensor:
    """Each mask with all but its largest ``share`` of entries set to 0: the same ranking at a smaller budget."""
    q = torch.quantile(masks.flatten(1).double(), 1 - share, dim=1).to(masks.dtype)
    return torch.where(masks >= q[:, None, None], masks, torch.zeros_like(masks))


def test_two_budgets_of_one_mask_differ_raw_and_hardly_at_equal_size():
    """Negative control: one set of masks kept at its largest 60 % and 20 % of entries (a size difference only).
    Raw, the smaller masks hold more low-ring energy (about +0.03, an interval clear of 0); size-matched, the
    difference is 3-4x smaller (asserted: under half). Not zero: the noise makes the values non-monotone in
    frequency, and cutting to the top entries removes some of that non-monotonicity, which the radial twin
    (matched in size and value histogram, not in shape) does not reproduce. (The planted-ring networks' masks
    are too sparse for this: a few dozen entries, all on the ring or all below the low third.)"""
    masks = _smooth_masks()
    big, small = _top(masks, 0.60), _top(masks, 0.20)
    raw = _low(small, False) - _low(big, False)
    sized = _low(small, True) - _low(big, True)
    est, lo, _ = nested_interval([raw], None, 0.05)
    assert lo > 0 and est > 0.02, raw
    assert abs(sized.mean()) < est / 2, (raw, sized)


def test_lower_class_information_shows_at_equal_size():
    """Positive control: the low-ring network's masks hold more low-ring energy than the high-ring network's,
    beyond what their sizes give: the size-matched difference is positive with a t interval over the 4 folds."""
    low, high = _folds(LOW_RING), _folds(HIGH_RING)
    sized = _low(low, True) - _low(high, True)
    est, lo, hi = nested_interval([sized], None, 0.05)
    assert lo > 0 and est > 0.05, (est, lo, hi, sized)


def test_claim_2_takes_its_verdict_from_the_size_matched_source():
    """With A's masks the top 20 % and N's the top 60 % of one set of masks (a size difference only), raw
    claim 2's low-ring part holds, while the size-matched headline does not: were the raw source the verdict,
    the claim would hold."""
    smooth = _smooth_masks()
    n_masks, a_masks = _top(smooth, 0.60), _top(smooth, 0.20)
    par = Rfft(SIZE, SIZE)

    def energies(sized: bool) -> dict:
        out = {}
        for v, m in (("N", n_masks), ("A", a_masks)):
            e = band_profiles(m.double(), par, RINGS, WEDGES)[0].numpy()
            out[v] = [e - twin_profiles(m.double(), par, RINGS, WEDGES)[0].numpy() if sized else e]
        return out
    cfg = AggregateConfig(radial_bands=RINGS, angular_bands=WEDGES)
    claim = claim_radial({"folds, size-matched": energies(True), "folds": energies(False)}, cfg)
    raw_low = claim["secondary"][0]
    assert raw_low["verdict"] == "holds", raw_low
    assert claim["parts"][0]["verdict"] != "holds" and claim["verdict"] != "holds", claim["parts"]
    swapped = claim_radial({"folds": energies(False)}, cfg)
    assert swapped["parts"][0]["verdict"] == "holds"
