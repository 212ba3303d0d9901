"""Frequency bands of Fourier masks: ring / wedge geometry, band energies, and their statistics over models.

Conventions (shared with :mod:`freqbias.fourier`):

- Masks are stored UNSHIFTED (zero frequency at ``[0, 0]``) in a parametrisation (rfft (H, W//2+1), full
  (H, W), isotropic (R,)); its ``to_full`` (:mod:`freqbias.parametrisation`) gives the full plane.
- Band geometry lives on the SHIFTED full plane (``torch.fft.fftshift``): the zero frequency sits at
  pixel ``(H//2, W//2)`` and pixel ``(i, j)`` holds the integer frequency ``(ky, kx) = (i - H//2, j - W//2)``
  in cycles per image.
- Angles are measured counter-clockwise *as displayed* by ``imshow`` (row 0 at the top), starting
  from the +kx axis (pointing right): ``theta = atan2(-ky, kx)`` in [0, 2 pi).

Statistics: single-image masks of all models of one seed are fitted on the same test images, so every
comparison X - N is paired by image (intervals from :mod:`freqbias.bootstrap`). The dataset mask of
every model is refitted on the same disjoint folds of its fit images, so dataset-mask differences are
paired by fold and get intervals over folds (and seeds); the class masks' X - N have intervals over
seeds only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import torch

from .bootstrap import Estimate, defined_estimate, seed_interval
from .na import NA, NO_IMAGES

if TYPE_CHECKING:
    from .aggregate import AggregateConfig, Run
    from .measures import ModelRecord
    from .parametrisation import Parametrisation

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


def band_profiles(mask: torch.Tensor, par: Parametrisation, n_radial: int,
                  n_angular: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial and angular band energies of masks (..., *shape) in parametrisation ``par``
    -> (radial (..., n_radial), angular (..., n_angular))."""
    full = torch.fft.fftshift(par.to_full(mask), dim=(-2, -1))
    return (band_energies(full, radial_band_index(par.h, par.w, n_radial), n_radial),
            band_energies(full, angular_band_index(par.h, par.w, n_angular), n_angular))


def mask_issue(mask: torch.Tensor) -> str:
    """Why a mask (*shape) has no band energies (NaN / inf entries, none finite: not fitted, or all
    zero), or "" when it has them. Reasons avoid the word NaN: reports flag it as a raw value."""
    if not torch.isfinite(mask).all():
        return "non-finite entries in the mask" if torch.isfinite(mask).any() else "mask not fitted (no finite entry)"
    return "all-zero mask (no band energies)" if not mask.any() else ""


def shifted_full(mask: torch.Tensor, par: Parametrisation) -> torch.Tensor:
    """Masks (..., *shape) in parametrisation ``par`` -> shifted full planes (..., H, W), float32 CPU."""
    return torch.fft.fftshift(par.to_full(mask), dim=(-2, -1)).float().cpu()


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
                      alpha: float | None = None, what: str = "single-image masks", unit: str = "image"
                      ) -> dict[str, Estimate]:
    """Mean paired difference X - N per band with its interval, for every variant X != N.

    ``per_seed[V]``: one (n_s, bands) energy array per seed, rows = the seed's images (or folds) in the same
    order for every variant; ``what`` names the rows' masks and ``unit`` a row in n/a reasons. Returns
    ``{V: (estimate, lo,
    hi)}``, each (bands,)."""
    out = {}
    for v, arrays in per_seed.items():
        if v == "N":
            continue
        diffs = [np.subtract(*paired(a, n)) for a, n in zip(arrays, per_seed["N"])]
        out[v] = defined_estimate(diffs, None, cfg.n_boot, cfg.alpha if alpha is None else alpha, cfg.seed,
                                  empty=_no_pairs(arrays, what, unit))
    return out


def pair_reasons(what: str = "single-image masks", unit: str = "image") -> tuple[str, str]:
    """Why no row (image or fold) pairs a variant's energies with N's: (no rows at all, no row with energies)."""
    return f"no {what} (0 {unit}s)", f"no {unit} on which both {what} have band energies (all-zero or non-finite masks)"


def _no_pairs(arrays: Sequence[np.ndarray], what: str = "single-image masks", unit: str = "image") -> str:
    """The reason of :func:`pair_reasons` that applies to ``arrays``."""
    empty, undefined = pair_reasons(what, unit)
    return empty if not sum(len(a) for a in arrays) else undefined


def share_curves(per_seed: Mapping[str, Sequence[np.ndarray]], cfg: AggregateConfig) -> dict[str, Estimate]:
    """Share of images whose mask has more energy than N's mask, per band, with its interval
    (``{V: (share, lo, hi)}``, each (bands,); ties count as not greater)."""
    out = {}
    for v, arrays in per_seed.items():
        if v != "N":
            greater = [np.greater(*paired(a, n)).astype(np.float64) for a, n in zip(arrays, per_seed["N"])]
            out[v] = defined_estimate(greater, None, cfg.n_boot, cfg.alpha, cfg.seed, empty=_no_pairs(arrays))
    return out


@dataclass
class BandStats:
    """Band statistics, each ``[profile]["radial" | "angular"][variant]``: single-image energies per seed
    (list of (n_s, bands)), the mean paired differences X - N with intervals over images (and seeds),
    the fold masks' energies per seed (list of (F, bands)), the dataset masks' X - N (bands,) with
    intervals over folds (and seeds), the class masks' X - N (K, bands) with intervals over seeds, and the
    per-band shares X > N."""

    per_seed: dict[str, dict[str, list[np.ndarray]]]
    diffs: dict[str, dict[str, Estimate]]
    fold_per_seed: dict[str, dict[str, list[np.ndarray]]]
    dataset_diffs: dict[str, dict[str, Estimate]]
    class_diffs: dict[str, dict[str, Estimate]]
    shares: dict[str, dict[str, Estimate]]


def mask_energies(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Radial and angular band energies of every mask: ``[model]["dataset" | "class" | "single"]`` ->
    (radial (..., rings), angular (..., wedges)); NaN rows for all-zero masks."""
    def profiles(mask: torch.Tensor, par: Parametrisation) -> tuple[np.ndarray, np.ndarray]:
        r, a = band_profiles(mask.double(), par, run.cfg.radial_bands, run.cfg.angular_bands)
        return r.numpy(), a.numpy()

    return {r.name: {"dataset": profiles(r.dataset_mask, r.par), "folds": profiles(r.fold_masks, r.par),
                     "class": profiles(r.class_masks, r.par), "single": profiles(r.single.masks, r.par)}
            for r in run.records}


def _single_mean(e: np.ndarray) -> tuple[np.ndarray | NA, str]:
    """Mean band energies (bands,) over the single-image masks (n, bands) that have them, and a note
    when some were left out; NA with the reason when none has."""
    ok = np.isfinite(e).all(axis=1)
    if not len(e):
        return NA(NO_IMAGES), ""
    if not ok.any():
        return NA("every single-image mask is all-zero or non-finite (no band energies)"), ""
    note = f"mean over the {ok.sum()} of {len(e)} single-image masks with band energies" if not ok.all() else ""
    return e[ok].mean(axis=0), note


def energy_table(run: Run, energies: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> list[dict]:
    """Long table of band energies: the dataset mask, every class mask and the mean single-image mask
    energy; an energy a mask does not have (all-zero or NaN) is n/a with the reason."""
    rows = []
    for r in run.records:
        for mask, (rad, ang) in energies[r.name].items():
            for profile, e, centres in (("radial", rad, run.centres[0]), ("angular", ang, run.centres[1])):
                if mask == "dataset":
                    named = {"dataset": (e, mask_issue(r.dataset_mask), "")}
                elif mask == "folds":
                    named = {f"fold:{k}": (e[k], mask_issue(r.fold_masks[k]), "") for k in range(len(e))}
                elif mask == "class":
                    named = {f"class:{run.class_names[k]}": (e[k], mask_issue(r.class_masks[k]), "")
                             for k in range(len(e))}
                else:
                    mean, note = _single_mean(e)
                    named = {"single:mean": (mean, "", note)}
                for label, (vals, issue, note) in named.items():
                    for b, c in enumerate(centres):
                        energy = vals if isinstance(vals, NA) else float(vals[b])
                        if not isinstance(energy, NA) and not math.isfinite(energy):
                            energy = NA(issue or "not a finite number")
                        rows.append({"model": r.name, "variant": r.variant, "seed": r.seed, "mask": label,
                                     "profile": profile, "band": b, "centre": float(c), "energy": energy,
                                     "reason": note})
    return rows


def band_statistics(run: Run, energies: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> BandStats:
    """Differences from N and shares per band (see :class:`BandStats`)."""
    stats = BandStats({}, {}, {}, {}, {}, {})
    for i, p in enumerate(("radial", "angular")):
        stats.per_seed[p] = {v: [energies[run.by[v, s].name]["single"][i] for s in run.seeds] for v in run.variants}
        stats.diffs[p] = difference_curves(stats.per_seed[p], run.cfg)
        stats.shares[p] = share_curves(stats.per_seed[p], run.cfg)
        stats.fold_per_seed[p] = {v: [energies[run.by[v, s].name]["folds"][i] for s in run.seeds]
                                  for v in run.variants}
        stats.dataset_diffs[p] = difference_curves(stats.fold_per_seed[p], run.cfg, what="fold masks", unit="fold")
        stats.class_diffs[p] = {}
        for v in run.others:
            per = [energies[run.by[v, s].name]["class"][i] - energies[run.by["N", s].name]["class"][i]
                   for s in run.seeds]
            stats.class_diffs[p][v] = (np.mean(per, axis=0), *seed_interval(per, **run.boot))
    return stats


def _mask_reasons(run: Run, v: str, get: Callable[[ModelRecord], torch.Tensor]) -> str:
    """Why the mask difference V - N of one kind (``get``: the mask of a record) is n/a: the issues of
    the masks involved, per model ("" when every mask has band energies)."""
    issues = [f"{rec.name}: {issue}" for s in run.seeds for rec in (run.by[v, s], run.by["N", s])
              if (issue := mask_issue(get(rec)))]
    return ", ".join(dict.fromkeys(issues))


def _cells(keys: Sequence[str], values: Sequence, b: int, reason: str) -> dict:
    """``{key: value of band b}`` from (bands,) arrays, NAs or None (not computed); a missing or
    non-finite value is NA(``reason``)."""
    out = {}
    for key, x in zip(keys, values):
        x = x if isinstance(x, NA) or x is None else float(np.asarray(x)[b])
        out[key] = x if isinstance(x, NA) else NA(reason) if x is None or not math.isfinite(x) else x
    return out


DIFF, SEED = ("diff", "diff_lo", "diff_hi"), ("seed_lo", "seed_hi")
ONE_MASK = "one mask per model: no interval over images"
UNDEFINED = "not a finite number"


def _seed_ci(per_seed: Mapping[str, Sequence[np.ndarray]], v: str, run: Run) -> tuple:
    """Interval over seeds of the per-seed mean paired difference V - N (None, None with < 2 seeds)."""
    pairs = [np.subtract(*paired(a, n)) for a, n in zip(per_seed[v], per_seed["N"])]
    seed_means = [d.mean(axis=0) for d in pairs if len(d)]
    return seed_interval(seed_means, **run.boot) if len(seed_means) > 1 else (None, None)


def band_tables(run: Run, stats: BandStats) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
    """Rows of band_differences.csv (X - N of the single-image, dataset and class masks; ``diff_lo/hi``:
    interval over images (single-image masks) or folds (dataset masks), n/a for the class masks (one mask
    per model); ``seed_lo/hi``: over seeds, n/a with one seed) and shares.csv, and the curves for ``dvc
    plots``. Every missing value is an NA with its reason."""
    diff_rows, share_rows, curves = [], [], {}
    one_seed = ("one seed: no interval over seeds" if len(run.seeds) < 2
                else "fewer than 2 seeds with the masks this needs")
    for p, centres in zip(("radial", "angular"), run.centres):
        axis = "radius" if p == "radial" else "angle"
        for v in run.others:
            seed_ci, fold_seed_ci = _seed_ci(stats.per_seed[p], v, run), _seed_ci(stats.fold_per_seed[p], v, run)
            single, dataset, share = stats.diffs[p][v], stats.dataset_diffs[p][v], stats.shares[p][v]
            dataset_why = _mask_reasons(run, v, lambda rec: rec.fold_masks)
            class_why = [_mask_reasons(run, v, lambda rec, k=k: rec.class_masks[k])
                         for k in range(len(run.class_names))]
            for b, c in enumerate(centres):
                base = {"variant": v, "profile": p, "band": b, "centre": float(c)}
                single_cells = _cells(DIFF, single, b, UNDEFINED)
                dataset_cells = _cells(DIFF, dataset, b, dataset_why or UNDEFINED)
                diff_rows.append({**base, "source": "single", **single_cells, **_cells(SEED, seed_ci, b, one_seed)})
                diff_rows.append({**base, "source": "dataset", **dataset_cells,
                                  **_cells(SEED, fold_seed_ci, b, dataset_why or one_seed)})
                for k, name in enumerate(run.class_names):
                    est = tuple(x[k] for x in stats.class_diffs[p][v])
                    why = class_why[k]
                    diff_rows.append({**base, "source": f"class:{name}",
                                      **_cells(DIFF, (est[0], NA(ONE_MASK), NA(ONE_MASK)), b, why or UNDEFINED),
                                      **_cells(SEED, est[1:], b, why or one_seed)})
                share_cells = _cells(("share", "share_lo", "share_hi"), share, b, UNDEFINED)
                share_rows.append({**base, **share_cells})
                curves.setdefault(f"{p}_diff/{v}", []).append(
                    {"band": b, axis: round(float(c), 4), "diff": single_cells["diff"], "lo": single_cells["diff_lo"],
                     "hi": single_cells["diff_hi"], "dataset_diff": dataset_cells["diff"],
                     "dataset_lo": dataset_cells["diff_lo"], "dataset_hi": dataset_cells["diff_hi"]})
                if p == "radial":
                    curves.setdefault(f"shares_radial/{v}", []).append(
                        {"band": b, axis: round(float(c), 4), "share": share_cells["share"],
                         "lo": share_cells["share_lo"], "hi": share_cells["share_hi"]})
    return diff_rows, share_rows, curves
