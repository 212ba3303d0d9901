"""Frequency bands of Fourier masks: band energies of every model's masks and their statistics over models.

The ring / wedge geometry and the energies of one mask live in :mod:`freqbias.band_geometry` (re-exported
here: ``bands.radial_band_index`` etc.).

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import torch

from .band_geometry import angular_band_index as angular_band_index
from .band_geometry import band_centres as band_centres
from .band_geometry import band_energies as band_energies
from .band_geometry import band_profiles as band_profiles
from .band_geometry import band_thirds as band_thirds
from .band_geometry import empty_bands as empty_bands
from .band_geometry import mask_issue as mask_issue
from .band_geometry import radial_band_index as radial_band_index
from .band_geometry import shifted_full as shifted_full
from .bootstrap import Estimate, defined_estimate, seed_interval
from .na import NA, NO_IMAGES
from .size_null import twin_profiles

if TYPE_CHECKING:
    from .measures import ModelRecord
    from .parametrisation import Parametrisation
    from .runs import AggregateConfig, Run

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
    (list of (n_s, bands)), the mean paired differences X - N with intervals over seeds (then images),
    the fold masks' energies per seed (list of (F, bands)), the dataset masks' X - N (bands,) with
    intervals over seeds (then folds), the class masks' X - N (K, bands) with intervals over seeds, and the
    per-band shares X > N. ``twin_per_seed`` / ``twin_fold_per_seed``: the same energies of the masks' radial
    twins (:mod:`freqbias.size_null`), so that energy minus twin is the size-matched excess;
    ``excess_dataset_diffs``: the fold masks' X - N of the excess."""

    per_seed: dict[str, dict[str, list[np.ndarray]]]
    diffs: dict[str, dict[str, Estimate]]
    fold_per_seed: dict[str, dict[str, list[np.ndarray]]]
    dataset_diffs: dict[str, dict[str, Estimate]]
    class_diffs: dict[str, dict[str, Estimate]]
    shares: dict[str, dict[str, Estimate]]
    twin_per_seed: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    twin_fold_per_seed: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    excess_dataset_diffs: dict[str, dict[str, Estimate]] = field(default_factory=dict)

    def excess(self, profile: str, folds: bool) -> dict[str, list[np.ndarray]]:
        """Size-matched energies (mask minus its radial twin) per variant and seed, of the fold masks or the
        single-image masks."""
        raw, twin = ((self.fold_per_seed, self.twin_fold_per_seed) if folds else (self.per_seed, self.twin_per_seed))
        return {v: [a - b for a, b in zip(raw[profile][v], twin[profile][v])] for v in raw[profile]}


def twin_energies(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Radial and angular band energies of the radial twins (:func:`freqbias.size_null.radial_twin`) of every
    model's fold and single-image masks: ``[model]["folds" | "single"]`` -> (radial, angular)."""
    def profiles(mask: torch.Tensor, par: Parametrisation) -> tuple[np.ndarray, np.ndarray]:
        r, a = twin_profiles(mask.double(), par, run.cfg.radial_bands, run.cfg.angular_bands)
        return r.numpy(), a.numpy()

    return {r.name: {"folds": profiles(r.fold_masks, r.par), "single": profiles(r.single.masks, r.par)}
            for r in run.records}


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


def band_statistics(run: Run, energies: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                    twins: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None) -> BandStats:
    """Differences from N and shares per band (see :class:`BandStats`); ``twins``: :func:`twin_energies`."""
    stats = BandStats({}, {}, {}, {}, {}, {})
    for i, p in enumerate(("radial", "angular")):
        if twins is not None:
            stats.twin_per_seed[p] = {v: [twins[run.by[v, s].name]["single"][i] for s in run.seeds]
                                      for v in run.variants}
            stats.twin_fold_per_seed[p] = {v: [twins[run.by[v, s].name]["folds"][i] for s in run.seeds]
                                           for v in run.variants}
        stats.per_seed[p] = {v: [energies[run.by[v, s].name]["single"][i] for s in run.seeds] for v in run.variants}
        stats.diffs[p] = difference_curves(stats.per_seed[p], run.cfg)
        stats.shares[p] = share_curves(stats.per_seed[p], run.cfg)
        stats.fold_per_seed[p] = {v: [energies[run.by[v, s].name]["folds"][i] for s in run.seeds]
                                  for v in run.variants}
        stats.dataset_diffs[p] = difference_curves(stats.fold_per_seed[p], run.cfg, what="fold masks", unit="fold")
        if twins is not None:
            stats.excess_dataset_diffs[p] = difference_curves(stats.excess(p, folds=True), run.cfg,
                                                              what="fold masks", unit="fold")
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
            excess = stats.excess_dataset_diffs.get(p, {}).get(v)
            excess_seed_ci = _seed_ci(stats.excess(p, folds=True), v, run) if excess is not None else None
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
                excess_cells = _cells(DIFF, excess, b, dataset_why or UNDEFINED) if excess is not None else {}
                if excess is not None:  # the same, size-matched: energy minus the radial twin's (size_null)
                    diff_rows.append({**base, "source": "dataset_size_matched", **excess_cells,
                                      **_cells(SEED, excess_seed_ci, b, dataset_why or one_seed)})
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
                     "dataset_lo": dataset_cells["diff_lo"], "dataset_hi": dataset_cells["diff_hi"],
                     **{f"size_matched_{k}": excess_cells[c] for k, c in zip(("diff", "lo", "hi"), DIFF)
                        if excess_cells}})
                if p == "radial":
                    curves.setdefault(f"shares_radial/{v}", []).append(
                        {"band": b, axis: round(float(c), 4), "share": share_cells["share"],
                         "lo": share_cells["share_lo"], "hi": share_cells["share_hi"]})
    return diff_rows, share_rows, curves
