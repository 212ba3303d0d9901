"""Band statistics at equal size: the radial twin of a mask, a null that keeps its size and nothing else.

A band energy is read off a mask divided by its Frobenius norm, so a mask that keeps fewer frequencies, all near
the origin, has more of its normalised energy in the low rings whatever the network needs: a difference in mask
size alone moves every X - N band statistic (docs/study.md, "Band statistics at equal size").

The **radial twin** of a mask has the same values, re-placed by distance from the origin, largest nearest (the
frequencies of equal radius share the mean of the values they receive, so the twin has no direction): the same
size, value histogram and Frobenius norm, up to that averaging. The **excess** energy of a band is the mask's
energy minus its twin's: what the mask puts in that band beyond what its size alone would put there. A
statistic of excess energies (X - N excess over the low rings, ...) cannot be produced by a difference in size
alone; the raw statistic minus the excess statistic is the part the twins reproduce (:func:`size_shares`).

Masks are given in a parametrisation (:mod:`freqbias.parametrisation`, UNSHIFTED); twins live on the SHIFTED
full plane (:func:`freqbias.band_geometry.shifted_full`), as band energies do.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Mapping, Sequence

import torch

from .band_geometry import angular_band_index, band_energies, radial_band_index
from .claim_registry import claim_of
from .parametrisation import Parametrisation


@functools.lru_cache(maxsize=8)
def _radial_order(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the shifted (h, w) plane: the flat pixel order by distance from the zero frequency (ties in index
    order), each pixel's group of equal radius (ids in that order), and the groups' sizes."""
    ky = torch.arange(h, dtype=torch.float64) - h // 2
    kx = torch.arange(w, dtype=torch.float64) - w // 2
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2).flatten()
    order = torch.argsort(radius, stable=True)
    _, group = torch.unique(torch.round(radius[order] * 1e6), return_inverse=True)
    return order, group, torch.bincount(group)


def radial_twin(full: torch.Tensor) -> torch.Tensor:
    """Radial twins of shifted full-plane masks (..., H, W): the same values sorted from largest to smallest and
    laid out by distance from the zero frequency (pixel (H//2, W//2)), equal radii sharing their mean."""
    h, w = full.shape[-2:]
    order, group, sizes = _radial_order(h, w)
    flat = full.reshape(-1, h * w).double()
    ranked = flat.sort(dim=1, descending=True).values                     # largest first = nearest first
    shared = torch.zeros(len(flat), len(sizes), dtype=torch.float64).index_add_(1, group, ranked) / sizes
    twin = torch.empty_like(flat)
    twin[:, order] = shared[:, group]
    return twin.reshape(full.shape).to(full.dtype)


def twin_profiles(mask: torch.Tensor, par: Parametrisation, n_radial: int,
                  n_angular: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial and angular band energies of the radial twins of masks (..., *shape) in ``par``, like
    :func:`freqbias.band_geometry.band_profiles` of the masks: (radial (..., n_radial), angular (..., n_angular))."""
    twin = radial_twin(torch.fft.fftshift(par.to_full(mask), dim=(-2, -1)))
    return (band_energies(twin, radial_band_index(par.h, par.w, n_radial), n_radial),
            band_energies(twin, angular_band_index(par.h, par.w, n_angular), n_angular))


def size_share(raw: float, excess: float) -> float:
    """The share of a raw statistic the twins reproduce, ``(raw - excess) / raw`` (1: all of it is size; 0: none;
    < 0 or > 1: the excess has the other sign or is larger); NaN when the raw statistic is 0 or not finite."""
    if not (math.isfinite(raw) and math.isfinite(excess)) or raw == 0:
        return math.nan
    return (raw - excess) / raw


SIZE_MATCHED = ", size-matched"   # the suffix of a source's label whose energies are mask minus twin


def size_table(claims: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``results/size_matched.csv``: for each size-matched part of the claims on band energies (their registry entry's
    ``energy``: claims 2, 3, 4 and 7) and its raw counterpart
    (the same statistic on the raw energies; the claims' parts and secondary parts): the raw and size-matched
    estimates with their intervals and verdicts, ``by_size`` = raw minus size-matched (for a mean of differences,
    exactly the same statistic of the twins: what size alone produces) and ``size_share`` (:func:`size_share`; n/a
    with its reason where the raw value's interval contains 0)."""
    rows = []
    for c in claims:
        known = claim_of(c)
        if known is None or not known.energy:
            continue
        # keyed without wedge numbers (claim 3's tested wedges are chosen per seed and may differ between raw and
        # size-matched)
        parts = {re.sub(r"wedge \d+", "wedge", p["statistic"]): p
                 for p in [*c.get("parts", []), *c.get("secondary", [])]}
        for name, sized in parts.items():
            if SIZE_MATCHED not in name or name.replace(SIZE_MATCHED, "") not in parts:
                continue
            raw = parts[name.replace(SIZE_MATCHED, "")]
            values = [p.get(k) for p in (raw, sized) for k in ("estimate", "lo", "hi")]
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
                rows.append({"claim": c["claim"], "statistic": raw["statistic"], "raw": None, "raw_lo": None,
                             "raw_hi": None, "raw_verdict": raw["verdict"], "size_matched": None,
                             "size_matched_lo": None, "size_matched_hi": None, "size_matched_verdict": sized["verdict"],
                             "by_size": None, "size_share": None,
                             "reason": sized.get("reason") or raw.get("reason") or "not measured"})
                continue
            r, s = raw["estimate"], sized["estimate"]
            share = size_share(r, s)
            why = ("size_share: the raw statistic is 0" if not math.isfinite(share) else
                   "size_share: the raw value's interval contains 0, so a share of it means nothing"
                   if raw["lo"] <= 0 <= raw["hi"] else "")
            rows.append({"claim": c["claim"], "statistic": raw["statistic"], "raw": r, "raw_lo": raw["lo"],
                         "raw_hi": raw["hi"], "raw_verdict": raw["verdict"], "size_matched": s,
                         "size_matched_lo": sized["lo"], "size_matched_hi": sized["hi"],
                         "size_matched_verdict": sized["verdict"], "by_size": r - s,
                         "size_share": None if why else share, "reason": why})
    return rows
