"""Frequency bands of Fourier masks: ring / wedge geometry, band energies, and their statistics over models.

Conventions (shared with :mod:`freqbias.fourier`):

- Masks are stored UNSHIFTED (zero frequency at ``[0, 0]``), either in ``rfft`` layout (H, W//2+1) or
  ``full`` layout (H, W). :func:`freqbias.fourier.to_full` turns either into the full plane.
- Band geometry lives on the SHIFTED full plane (``torch.fft.fftshift``): the zero frequency sits at
  pixel ``(H//2, W//2)`` and pixel ``(i, j)`` holds the integer frequency ``(ky, kx) = (i - H//2, j - W//2)``
  in cycles per image.
- Angles are measured counter-clockwise *as displayed* by ``imshow`` (row 0 at the top), starting
  from the +kx axis (pointing right): ``theta = atan2(-ky, kx)`` in [0, 2 pi).

Statistics: single-image masks of all models of one seed are fitted on the same test images, so every
comparison X - N is paired by image (intervals from :mod:`freqbias.bootstrap`); the dataset and class
masks' X - N have intervals over seeds only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch

from .bootstrap import Estimate, ci_row, cluster_bootstrap, seed_interval
from .fourier import to_full

if TYPE_CHECKING:
    from .aggregate import AggregateConfig, Run

# ----------------------------------------------------------------------------- geometry, energies


def _shifted_frequencies(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer frequencies (ky, kx), each int64 (H, W), of the pixels of the shifted plane."""
    ky = torch.arange(h, dtype=torch.int64) - h // 2
    kx = torch.arange(w, dtype=torch.int64) - w // 2
    return torch.meshgrid(ky, kx, indexing="ij")


def radial_band_index(h: int, w: int, n_bands: int) -> torch.Tensor:
    """Ring of every pixel of the shifted (H, W) plane: int64 (H, W) with values in [0, n_bands).

    The radii 0 .. R, with R the distance from the centre to the farthest corner
    ``sqrt((H//2)^2 + (W//2)^2)``, are split into ``n_bands`` equal rings ``[b R/n, (b+1) R/n)``; the
    last ring is closed so that the farthest corner is in it. The zero frequency is in ring 0.
    The assignment is computed in exact integer arithmetic (no pixel flips ring on rounding)."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    ky, kx = _shifted_frequencies(h, w)
    corner2 = (h // 2) ** 2 + (w // 2) ** 2
    if corner2 == 0:  # a 1x1 plane: a single pixel, ring 0
        return torch.zeros(h, w, dtype=torch.int64)
    # ring b <=> b^2 * R^2 <= r^2 * n^2 < (b+1)^2 * R^2, i.e. b = floor(sqrt(r^2 n^2 / R^2))
    scaled = (ky ** 2 + kx ** 2) * n_bands ** 2
    band = torch.sqrt(scaled.double() / corner2).floor().long()
    band = band - (band ** 2 * corner2 > scaled).long()            # correct float rounding, both ways
    band = band + ((band + 1) ** 2 * corner2 <= scaled).long()
    return band.clamp(max=n_bands - 1)


def angular_band_index(h: int, w: int, n_bands: int) -> torch.Tensor:
    """Wedge of every pixel of the shifted (H, W) plane: int64 (H, W) with values in [0, n_bands).

    Wedge b covers angles ``[2 pi b / n, 2 pi (b+1) / n)`` with ``theta = atan2(-ky, kx)`` in [0, 2 pi):
    counter-clockwise as displayed (row 0 on top), from the +kx axis. Pixels on a wedge boundary go
    to the wedge that starts there. The zero-frequency pixel (no angle) is put in wedge 0.
    Under the mask symmetry ``M(-k) = M(k)``, wedges b and b + n/2 carry (almost) the same energy."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    ky, kx = _shifted_frequencies(h, w)
    theta = torch.atan2((-ky).double(), kx.double())
    theta = torch.where(theta < 0, theta + 2 * math.pi, theta)
    band = torch.floor(theta * n_bands / (2 * math.pi) + 1e-9).long()  # boundary pixels: wedge above
    return band % n_bands


def empty_bands(h: int, w: int, n_radial: int, n_angular: int) -> dict[str, list[int]]:
    """Bands with no pixel on an (H, W) plane: ``{"radial": [...], "angular": [...]}`` (empty lists when
    every band has pixels). Stages raise on a non-empty answer."""
    def empty(index: torch.Tensor, n: int) -> list[int]:
        counts = torch.bincount(index.flatten(), minlength=n)
        return [int(b) for b in torch.nonzero(counts == 0).flatten()]

    return {"radial": empty(radial_band_index(h, w, n_radial), n_radial),
            "angular": empty(angular_band_index(h, w, n_angular), n_angular)}


def band_energies(mask_shifted: torch.Tensor, index: torch.Tensor, n_bands: int) -> torch.Tensor:
    """Energy per band of shifted full-plane masks: (..., H, W) -> float (..., n_bands).

    Each mask is divided by its Frobenius norm; the energy of a band is the L2 norm of the normalised
    mask over the band's pixels (``index``: (H, W) band of every pixel, from :func:`radial_band_index`
    or :func:`angular_band_index`). The squared energies of a mask sum to 1. An all-zero mask has no
    direction: its energies are NaN."""
    if index.shape != mask_shifted.shape[-2:]:
        raise ValueError(f"index shape {tuple(index.shape)} does not match mask plane {tuple(mask_shifted.shape[-2:])}")
    if index.numel() and (index.min() < 0 or index.max() >= n_bands):
        raise ValueError(f"index values must lie in [0, {n_bands})")
    m = mask_shifted.double()
    norm = torch.linalg.vector_norm(m, dim=(-2, -1), keepdim=True)
    squared = (m / norm).square().flatten(-2)
    energy2 = torch.zeros(*squared.shape[:-1], n_bands, dtype=torch.float64, device=m.device)
    energy2.index_add_(-1, index.flatten().to(m.device), squared)
    dtype = mask_shifted.dtype if mask_shifted.is_floating_point() else torch.float32
    return energy2.sqrt().to(dtype)


def band_profiles(mask: torch.Tensor, width: int, n_radial: int, n_angular: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial and angular band energies of UNSHIFTED masks in either layout.

    ``mask``: (..., H, W//2+1) rfft or (..., H, W) full -> (radial (..., n_radial), angular (..., n_angular))."""
    full = torch.fft.fftshift(to_full(mask, width), dim=(-2, -1))
    h = full.shape[-2]
    return (band_energies(full, radial_band_index(h, width, n_radial), n_radial),
            band_energies(full, angular_band_index(h, width, n_angular), n_angular))


def shifted_full(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Unshifted masks (..., H, Wm) in either layout -> shifted full planes (..., H, W), float32 CPU."""
    return torch.fft.fftshift(to_full(mask, width), dim=(-2, -1)).float().cpu()


def band_centres(h: int, w: int, n_radial: int, n_angular: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre of every ring (cycles per image) and every wedge (degrees), matching
    :func:`radial_band_index` / :func:`angular_band_index`."""
    corner = math.hypot(h // 2, w // 2)
    return (np.arange(n_radial) + 0.5) * corner / n_radial, (np.arange(n_angular) + 0.5) * 360.0 / n_angular


def band_thirds(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the low and mid thirds of ``n_bands`` rings (``np.array_split`` into three)."""
    low, mid, _ = np.array_split(np.arange(n_bands), 3)
    return low, mid


# ----------------------------------------------------------------------------- band statistics


def paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of two per-image arrays (n, k) where both are finite (an all-zero mask has NaN energies)."""
    keep = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    return a[keep], b[keep]


def low_energy(energies: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Energy of the low rings together: ``sqrt(sum_b e_b^2)`` over ``low``, per image (n, bands) -> (n,)."""
    return np.sqrt(np.square(energies[:, low]).sum(axis=1))


def difference_curves(per_seed: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig,
                      alpha: float | None = None) -> dict[str, Estimate]:
    """Mean paired difference X - N per band with its interval, for every variant X != N.

    ``per_seed[V]``: one (n_s, bands) energy array per seed, rows = the seed's images in the same order
    for every variant. Returns ``{V: (estimate, lo, hi)}``, each (bands,)."""
    out = {}
    for v, arrays in per_seed.items():
        if v == "N":
            continue
        diffs = [np.subtract(*paired(a, n)) for a, n in zip(arrays, per_seed["N"])]
        out[v] = cluster_bootstrap(diffs, None, cfg.n_boot, cfg.alpha if alpha is None else alpha, cfg.seed)
    return out


def share_curves(per_seed: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig) -> dict[str, Estimate]:
    """Share of images whose mask has more energy than N's mask, per band, with its interval
    (``{V: (share, lo, hi)}``, each (bands,); ties count as not greater)."""
    out = {}
    for v, arrays in per_seed.items():
        if v != "N":
            greater = [np.greater(*paired(a, n)).astype(np.float64) for a, n in zip(arrays, per_seed["N"])]
            out[v] = cluster_bootstrap(greater, None, cfg.n_boot, cfg.alpha, cfg.seed)
    return out


@dataclass
class BandStats:
    """Band statistics, each ``[profile]["radial" | "angular"][variant]``: single-image energies per seed
    (list of (n_s, bands)), the mean paired differences X - N with intervals over images (and seeds),
    the dataset masks' X - N (bands,) and the class masks' X - N (K, bands) with intervals over seeds,
    and the per-band shares X > N."""

    per_seed: dict[str, dict[str, list[np.ndarray]]]
    diffs: dict[str, dict[str, Estimate]]
    dataset_diffs: dict[str, dict[str, Estimate]]
    class_diffs: dict[str, dict[str, Estimate]]
    shares: dict[str, dict[str, Estimate]]


def mask_energies(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Radial and angular band energies of every mask: ``[model]["dataset" | "class" | "single"]`` ->
    (radial (..., rings), angular (..., wedges)); NaN rows for all-zero masks."""
    def profiles(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        r, a = band_profiles(mask.double(), run.image_size[1], run.cfg.radial_bands, run.cfg.angular_bands)
        return r.numpy(), a.numpy()

    return {r.name: {"dataset": profiles(r.dataset_mask), "class": profiles(r.class_masks),
                     "single": profiles(r.single.masks)} for r in run.records}


def energy_table(run: Run, energies: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> list[dict]:
    """Long table of band energies: the dataset mask, every class mask and the mean single-image mask energy."""
    rows = []
    for r in run.records:
        for mask, (rad, ang) in energies[r.name].items():
            for profile, e, centres in (("radial", rad, run.centres[0]), ("angular", ang, run.centres[1])):
                if mask == "dataset":
                    named = {"dataset": e}
                elif mask == "class":
                    named = {f"class:{run.class_names[k]}": e[k] for k in range(len(e))}
                else:
                    named = {"single:mean": np.nanmean(e, axis=0)}
                rows += [{"model": r.name, "variant": r.variant, "seed": r.seed, "mask": label, "profile": profile,
                          "band": b, "centre": float(centres[b]), "energy": float(vals[b])}
                         for label, vals in named.items() for b in range(len(vals))]
    return rows


def band_statistics(run: Run, energies: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> BandStats:
    """Differences from N and shares per band (see :class:`BandStats`)."""
    stats = BandStats({}, {}, {}, {}, {})
    for i, p in enumerate(("radial", "angular")):
        stats.per_seed[p] = {v: [energies[run.by[v, s].name]["single"][i] for s in run.seeds] for v in run.variants}
        stats.diffs[p] = difference_curves(stats.per_seed[p], run.cfg)
        stats.shares[p] = share_curves(stats.per_seed[p], run.cfg)
        for kind, out in (("dataset", stats.dataset_diffs), ("class", stats.class_diffs)):
            out[p] = {}
            for v in run.others:
                per = [energies[run.by[v, s].name][kind][i] - energies[run.by["N", s].name][kind][i] for s in run.seeds]
                out[p][v] = (np.mean(per, axis=0), *seed_interval(per, **run.boot))
    return stats


def band_tables(run: Run, stats: BandStats) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
    """Rows of band_differences.csv (X - N of the single-image, dataset and class masks; ``diff_lo/hi``:
    interval over images (single-image only), ``seed_lo/hi``: over seeds, NaN with one seed) and
    shares.csv, and the curves for ``dvc plots``."""
    diff_rows, share_rows, curves = [], [], {}
    for p, centres in zip(("radial", "angular"), run.centres):
        axis = "radius" if p == "radial" else "angle"
        for v in run.others:
            per_seed_means = [np.subtract(*paired(a, n)).mean(axis=0)
                              for a, n in zip(stats.per_seed[p][v], stats.per_seed[p]["N"])]
            seed_lo, seed_hi = (np.atleast_1d(x) for x in seed_interval(per_seed_means, **run.boot))
            single, dataset, share = stats.diffs[p][v], stats.dataset_diffs[p][v], stats.shares[p][v]
            for b, c in enumerate(centres):
                base = {"variant": v, "profile": p, "band": b, "centre": float(c)}
                diff_rows.append({**base, "source": "single", **ci_row("diff", tuple(x[b] for x in single)),
                                  "seed_lo": float(seed_lo[b]), "seed_hi": float(seed_hi[b])})
                diff_rows.append({**base, "source": "dataset", **ci_row("diff", (dataset[0][b], math.nan, math.nan)),
                                  "seed_lo": float(dataset[1][b]), "seed_hi": float(dataset[2][b])})
                diff_rows += [{**base, "source": f"class:{name}", **ci_row("diff", (stats.class_diffs[p][v][0][k, b],
                                                                                  math.nan, math.nan)),
                               "seed_lo": float(stats.class_diffs[p][v][1][k, b]),
                               "seed_hi": float(stats.class_diffs[p][v][2][k, b])}
                              for k, name in enumerate(run.class_names)]
                share_rows.append({**base, **ci_row("share", tuple(x[b] for x in share))})
                curves.setdefault(f"{p}_diff/{v}", []).append(
                    {"band": b, axis: round(float(c), 4), "diff": float(single[0][b]), "lo": float(single[1][b]),
                     "hi": float(single[2][b]), "dataset_diff": float(dataset[0][b])})
                if p == "radial":
                    curves.setdefault(f"shares_radial/{v}", []).append(
                        {"band": b, axis: round(float(c), 4), "share": float(share[0][b]), "lo": float(share[1][b]),
                         "hi": float(share[2][b])})
    return diff_rows, share_rows, curves
