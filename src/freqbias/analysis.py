"""The aggregate stage: from the masks of every model to tables, figure data and the claims of docs/study.md.

Inputs (written by ``stages/masks.py``), per model ``<V>-s<seed>``: the dataset mask (H, Wm), the class
masks (K, H, Wm) and the single-image masks (n, H, Wm), all UNSHIFTED, acting on the *normalised* image
(see :mod:`freqbias.fourier`). Band statistics and figures use the SHIFTED full plane
(``fftshift(as_full_plane(mask))``, zero frequency in the centre). Pixels are in [0, 1].

Single-image masks of all models of one seed are fitted on the same test images, so every comparison
X - N is paired by image. Uncertainty: single-image quantities are bootstrapped over images; with
several seeds the bootstrap has two levels (seeds, then images within a seed:
:func:`cluster_bootstrap`). A dataset mask is one value per model: its interval is over seeds (none
with a single seed).

Claims (the ``claim_*`` functions) are rows ``{claim, statistic, estimate, lo, hi, threshold, direction,
verdict, study, note, parts, info}``. A claim has one or more *parts*, each a statistic with an
interval judged by :func:`freqbias.spectral.verdict`; the row shows its first part, and its verdict
is "holds" when every part holds, "does not hold" when any part does not, else "inconclusive"
("not measured" when the run lacks what a part needs).

Sections: params; bootstrap helpers; per-model measurements; band statistics; claims; the stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from . import spectral
from .attacks import PGD
from .config import DataError, ParamError, Section
from .fourier import apply_mask, binary_complement, predict, sparsity, support
from .io import load_json, save_csv, save_json, save_torch
from .models import Classifier, load_checkpoint
from .single_image import select_images

# ----------------------------------------------------------------------------- params


@dataclass(frozen=True)
class AggregateConfig:
    """The ``aggregate`` section of params.yaml (see the comments there)."""

    radial_bands: int = 14
    angular_bands: int = 16
    n_boot: int = 2000
    alpha: float = 0.05
    seed: int = 0
    accuracy_n: int | None = 1000
    probe_train_frac: float = 0.7
    probe_weight_decay: float = 1e-3
    probe_max_iter: int = 200
    filter_n: int = 300
    filter_radii: tuple[float, ...] = (1, 2, 4, 6, 9, 14)
    heatmap_n: int = 100
    heatmap_grid: int = 7
    heatmap_norm: float = 3.0
    figure_images: int = 8
    ratio_min: float = 0.99
    small_ratio: float = 0.5
    agreement_min: float = 0.9
    ssim_max: float = 0.5

    @classmethod
    def from_params(cls, params: Mapping[str, Any], image_size: tuple[int, int]) -> "AggregateConfig":
        """Read and validate ``aggregate``; band counts must leave no band empty on an ``image_size`` plane."""
        sec = Section(params, "aggregate")
        probe, filt, heat, claims = sec.sub("probe"), sec.sub("filtered"), sec.sub("heatmap"), sec.sub("claims")
        cfg = cls(
            radial_bands=sec.integer("radial_bands", min=3), angular_bands=sec.integer("angular_bands", min=2),
            n_boot=sec.integer("n_boot", min=10), alpha=sec.number("alpha", min=0, max=0.5, strict_min=True),
            seed=sec.integer("seed", min=0), accuracy_n=sec.integer("accuracy_n", None, min=1, optional=True),
            probe_train_frac=probe.number("train_frac", min=0, max=0.95, strict_min=True),
            probe_weight_decay=probe.number("weight_decay", min=0), probe_max_iter=probe.integer("max_iter", min=1),
            filter_n=filt.integer("n", min=1), filter_radii=tuple(filt.numbers("radii", min=0)),
            heatmap_n=heat.integer("n", min=1), heatmap_grid=heat.integer("grid", min=1),
            heatmap_norm=heat.number("norm", min=0, strict_min=True),
            figure_images=sec.integer("figure_images", min=1),
            ratio_min=claims.number("ratio_min", min=0), small_ratio=claims.number("small_ratio", min=0),
            agreement_min=claims.number("agreement_min", min=0, max=1), ssim_max=claims.number("ssim_max", max=1),
        )
        if not cfg.filter_radii:
            raise ParamError("aggregate.filtered.radii: must list at least one radius")
        h, w = image_size
        empty = spectral.empty_bands(h, w, cfg.radial_bands, cfg.angular_bands)
        for key, n in (("radial", cfg.radial_bands), ("angular", cfg.angular_bands)):
            if empty[key]:
                raise ParamError(f"aggregate.{key}_bands: {n} bands leave band(s) {empty[key]} empty on a "
                                 f"{h}x{w} spectrum; use fewer")
        return cfg


# ----------------------------------------------------------------------------- bootstrap helpers

Estimate = tuple[Any, Any, Any]


def _as_out(a: Any) -> Any:
    return float(a) if np.ndim(a) == 0 else np.asarray(a, dtype=np.float64)


def cluster_bootstrap(groups: Sequence[np.ndarray], f: Callable[[np.ndarray], Any] | None = None,
                      n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """``(estimate, lo, hi)`` of ``f(mean)`` with a percentile ``1 - alpha`` interval.

    ``groups``: one array (n_s, ...) per seed (rows = images). The mean is the mean over seeds of
    the per-seed means over images; ``f`` (identity by default) maps it to the statistic. One group:
    an ordinary bootstrap over images (:func:`freqbias.spectral.bootstrap_ci`). Several groups: each
    replicate resamples the seeds with replacement, then the images within each drawn seed."""
    f = f or (lambda m: m)
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("cluster_bootstrap needs at least one non-empty group")
    if len(groups) == 1:
        return spectral.bootstrap_ci(groups[0], lambda d, axis=0: f(d.mean(axis=axis)), n_boot, alpha, seed)
    rng = np.random.default_rng(seed)
    estimate = f(np.mean([g.mean(axis=0) for g in groups], axis=0))
    replicates = []
    for _ in range(n_boot):
        drawn = rng.integers(0, len(groups), len(groups))
        means = [groups[s][rng.integers(0, len(groups[s]), len(groups[s]))].mean(axis=0) for s in drawn]
        replicates.append(f(np.mean(means, axis=0)))
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2, 1 - alpha / 2], axis=0)
    return _as_out(estimate), _as_out(lo), _as_out(hi)


def strata_bootstrap(arrays: Sequence[np.ndarray], f: Callable[[list[np.ndarray]], float], n_boot: int = 2000,
                     alpha: float = 0.05, seed: int = 0) -> Estimate:
    """``(estimate, lo, hi)`` of ``f([column means of each array])``; each array (n_i, k) is its own
    stratum (e.g. the val and the test images) whose rows are resampled independently."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    estimate = f([a.mean(axis=0) for a in arrays])
    replicates = [f([a[rng.integers(0, len(a), len(a))].mean(axis=0) for a in arrays]) for _ in range(n_boot)]
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    return float(estimate), float(lo), float(hi)


def seed_interval(values: Sequence[np.ndarray], n_boot: int, alpha: float, seed: int) -> tuple[Any, Any]:
    """Bootstrap interval over seeds of per-seed values (S, ...): ``(lo, hi)``; NaN with fewer than 2 seeds."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        nan = np.full(arr.shape[1:], np.nan)
        return _as_out(nan), _as_out(nan)
    _, lo, hi = spectral.bootstrap_ci(arr, np.mean, n_boot, alpha, seed)
    return lo, hi


# ----------------------------------------------------------------------------- per-model measurements


@dataclass
class ModelRecord:
    """One trained model and its masks. ``dataset_mask`` (H, Wm), ``class_masks`` (K, H, Wm) and the
    single-image dict (``index, y, target, masks (n, H, Wm), ...``, see ``stages/masks.py``), all
    unshifted, on the CPU; ``model`` in eval mode on the stage's device."""

    name: str
    variant: str
    seed: int
    model: Classifier
    kind: str
    dataset_mask: torch.Tensor
    class_masks: torch.Tensor
    single: dict
    train_metrics: dict
    mask_metrics: dict


def load_records(variants: Sequence[str], seeds: Sequence[int], device: torch.device,
                 root: Path = Path(".")) -> list[ModelRecord]:
    """Load ``models/<V>-s<seed>.pt``, ``masks/<V>-s<seed>/*.pt`` and both metrics JSONs of every model.

    Raise :class:`ParamError` when N (the reference of every difference) is not a variant and
    :class:`DataError` when a file is missing."""
    if "N" not in variants:
        raise ParamError("train.variants: the aggregate stage compares every variant with N; add N")
    records = []
    for seed in seeds:
        for variant in variants:
            name = f"{variant}-s{seed}"
            paths = [root / "masks" / name / f"{k}.pt" for k in ("dataset", "class", "single")]
            paths += [root / "metrics" / s / f"{name}.json" for s in ("train", "masks")]
            missing = [str(p) for p in paths if not p.exists()]
            if missing:
                raise DataError(f"{missing[0]}: not found (run the train and masks stages first)")
            model, _ = load_checkpoint(root / "models" / f"{name}.pt", map_location=device)
            dataset, classes, single = (torch.load(p, map_location="cpu", weights_only=True) for p in paths[:3])
            records.append(ModelRecord(
                name=name, variant=variant, seed=seed, model=model,
                kind=single["kind"], dataset_mask=dataset["mask"], class_masks=classes["masks"], single=single,
                train_metrics=load_json(paths[3]), mask_metrics=load_json(paths[4])))
    return records


@dataclass
class SeedImages:
    """The single-image selection of one seed: test-split ``index`` (n,), true labels ``y`` (n,), clean
    images ``x`` and their PGD versions ``x_adv`` (against N), pixels in [0, 1] (n, C, H, W)."""

    index: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    x_adv: torch.Tensor


def seed_images(standard: ModelRecord, adversarial: ModelRecord, x_test: torch.Tensor, y_test: torch.Tensor,
                attack: PGD, device: torch.device) -> SeedImages:
    """Rebuild the images the masks of one seed were fitted on.

    ``single.pt`` stores the test indices; PGD images are taken from it when stored (key ``x_adv``),
    else regenerated with the masks stage's rule and seed (:func:`freqbias.single_image.select_images`)
    and checked against the stored indices (:class:`DataError` on a mismatch)."""
    single = standard.single
    index = single["index"]
    if not torch.equal(adversarial.single["index"], index):
        raise DataError(f"masks/{adversarial.name}/single.pt: images differ from masks/{standard.name}; rerun masks")
    x = x_test[index].float().div(255).to(device)
    if "x_adv" in single:
        return SeedImages(index, single["y"], x, single["x_adv"].to(device))
    sel = select_images(standard.model, adversarial.model, x_test.to(device), y_test.to(device), attack,
                        len(index), seed=standard.seed)
    if not torch.equal(sel.index.cpu(), index):
        raise DataError(f"masks/{standard.name}/single.pt: regenerated PGD selection differs from the stored one "
                        "(different device or params?); rerun the masks stage")
    return SeedImages(index, single["y"], x, sel.x_adv.to(device))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity of image pairs (N, C, H, W) -> (N,), uniform ``window`` x ``window``
    windows (valid positions only), constants of Wang et al. 2004 for pixels spanning ``data_range``."""
    a, b = a.double(), b.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    mu_a, mu_b = pool(a), pool(b)
    var_a, var_b = pool(a * a) - mu_a ** 2, pool(b * b) - mu_b ** 2
    cov = pool(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return score.flatten(1).mean(dim=1)


def pixel_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the pixels of image pairs (N, ...) -> (N,); NaN for a constant image."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))


def masked_pixels(model: Classifier, x: torch.Tensor, masks: torch.Tensor, kind: str) -> torch.Tensor:
    """Images ``x`` (pixels in [0, 1], (N, C, H, W)) seen through their masks, back in pixel units
    (not clipped): ``apply_mask(normalize(x)) * std + mean``."""
    z = apply_mask(model.normalize(x), masks.to(x), kind)
    return z * model.normalize.std + model.normalize.mean


@torch.no_grad()
def single_outcomes(record: ModelRecord, images: SeedImages) -> dict[str, np.ndarray]:
    """Per-image outcomes (n,) of one model's stored single-image masks, re-evaluated.

    Agreement with the stored target (the model's clean prediction), 1.0 / 0.0: ``target_ok`` (clean
    image), ``masked``, ``complement`` (binary complement ``1 - 1[M > 0]``); similarity of x and the
    masked x in pixels: ``ssim``, ``corr``; and for N (which also has masks of the PGD images): ``pgd``
    (PGD image, no mask), ``restored`` / ``restored_binary`` (PGD image under the clean image's mask,
    continuous / ``1[M > 0]``), ``adv_masked`` (PGD image under its own mask vs its own target)."""
    s, model, kind = record.single, record.model, record.kind
    if not torch.equal(s["index"], images.index):
        raise DataError(f"masks/{record.name}/single.pt: fitted on other images than N of seed {record.seed}; rerun masks")
    net, x = model.net, images.x
    z = model.normalize(x)
    masks, target = s["masks"].to(z), s["target"].to(z.device)
    out = {"target_ok": predict(net, z, None, kind) == target,
           "masked": predict(net, z, masks, kind) == target,
           "complement": predict(net, z, binary_complement(masks), kind) == target}
    seen = masked_pixels(model, x, masks, kind)
    out["ssim"], out["corr"] = ssim(x, seen), pixel_correlation(x, seen)
    if "masks_adv" in s:
        z_adv = model.normalize(images.x_adv)
        out["pgd"] = predict(net, z_adv, None, kind) == target
        out["restored"] = predict(net, z_adv, masks, kind) == target
        out["restored_binary"] = predict(net, z_adv, (masks > 0).to(masks.dtype), kind) == target
        out["adv_masked"] = predict(net, z_adv, s["masks_adv"].to(z), kind) == s["target_adv"].to(z.device)
    return {k: v.double().cpu().numpy() for k, v in out.items()}


@torch.no_grad()
def dataset_correct(record: ModelRecord, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness (N,) 1.0 / 0.0 of the model on images ``x`` (uint8 or [0, 1]) without and
    with its dataset mask."""
    model = record.model
    device = next(model.parameters()).device
    z = model.normalize((x.float() / 255 if x.dtype == torch.uint8 else x).to(device))
    y = y.to(device)
    clean = predict(model.net, z, None, record.kind) == y
    masked = predict(model.net, z, record.dataset_mask.to(z), record.kind) == y
    return clean.double().cpu().numpy(), masked.double().cpu().numpy()


def probe(record: ModelRecord, cfg: AggregateConfig) -> dict | None:
    """Linear probe (:func:`freqbias.spectral.linear_probe`) from the flattened single-image masks to the
    true class, with the permuted-label control; None when too few images to split."""
    s = record.single
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small float64 problem: extra OpenMP threads only contend (10x slower when busy)
    try:
        return spectral.linear_probe(s["masks"].flatten(1).numpy(), s["y"].numpy(), cfg.probe_train_frac,
                                     cfg.seed, cfg.probe_weight_decay, cfg.probe_max_iter)
    except ValueError:
        return None
    finally:
        torch.set_num_threads(threads)


def frequency_baselines(record: ModelRecord, x: torch.Tensor, y: torch.Tensor, cfg: AggregateConfig) -> dict:
    """Low- and high-pass filtered accuracy over ``cfg.filter_radii`` (first ``filter_n`` images), the
    Fourier heat map (first ``heatmap_n`` images, ``heatmap_grid`` frequencies per axis) and its
    Spearman correlation with the model's dataset mask (shifted full plane)."""
    xf, yf = x[:cfg.filter_n], y[:cfg.filter_n]
    xh, yh = x[:cfg.heatmap_n], y[:cfg.heatmap_n]
    w = x.shape[-1]
    heat = spectral.fourier_heatmap(record.model, xh, yh, cfg.heatmap_norm, cfg.heatmap_grid, seed=cfg.seed)
    full = torch.fft.fftshift(spectral.as_full_plane(record.dataset_mask, w), dim=(-2, -1))
    return {"low": spectral.filtered_accuracy(record.model, xf, yf, cfg.filter_radii, "low"),
            "high": spectral.filtered_accuracy(record.model, xf, yf, cfg.filter_radii, "high"),
            "heatmap": heat, "heatmap_corr": spectral.heatmap_mask_correlation(heat, full)}


# ----------------------------------------------------------------------------- band statistics


def shifted_full(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Unshifted masks (..., H, Wm) in either layout -> shifted full planes (..., H, W), float32 CPU."""
    return torch.fft.fftshift(spectral.as_full_plane(mask, width), dim=(-2, -1)).float().cpu()


def band_centres(h: int, w: int, n_radial: int, n_angular: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre of every ring (cycles per image) and every wedge (degrees), matching
    :func:`freqbias.spectral.radial_band_index` / :func:`angular_band_index`."""
    corner = math.hypot(h // 2, w // 2)
    return (np.arange(n_radial) + 0.5) * corner / n_radial, (np.arange(n_angular) + 0.5) * 360.0 / n_angular


def band_thirds(n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the low and mid thirds of ``n_bands`` rings (``np.array_split`` into three)."""
    low, mid, _ = np.array_split(np.arange(n_bands), 3)
    return low, mid


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
    (``{V: (share, lo, hi)}``, each (bands,); ties count as not greater, as in
    :func:`freqbias.spectral.share_greater`)."""
    out = {}
    for v, arrays in per_seed.items():
        if v != "N":
            greater = [np.greater(*paired(a, n)).astype(np.float64) for a, n in zip(arrays, per_seed["N"])]
            out[v] = cluster_bootstrap(greater, None, cfg.n_boot, cfg.alpha, cfg.seed)
    return out


# ----------------------------------------------------------------------------- claims

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
                "and is inconclusive otherwise (spectral.verdict). A claim holds when all its parts hold, does not "
                "hold when any part does not hold, and is inconclusive otherwise; 'not measured' when this run "
                "lacks a model or images a part needs.")


def part(statistic: str, estimate: float, lo: float, hi: float, threshold: float, direction: str) -> dict:
    """One judged statistic: ``verdict`` from :func:`freqbias.spectral.verdict`, or "not measured" when
    a value is not finite. An interval that misses the estimate is widened to include it."""
    values = [float(v) for v in (estimate, lo, hi)]
    measured = all(math.isfinite(v) for v in values)
    if measured:  # a percentile interval of a non-linear statistic can miss its estimate: widen it to cover
        values[1], values[2] = min(values[1], values[0]), max(values[2], values[0])
    return {"statistic": statistic, "estimate": values[0], "lo": values[1], "hi": values[2],
            "threshold": threshold, "direction": direction,
            "verdict": spectral.verdict(*values, threshold, direction) if measured else "not measured"}


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


def claim_accuracy(acc: Mapping[str, tuple[np.ndarray, np.ndarray]], cfg: AggregateConfig) -> dict:
    """Claim 1. ``acc[split] = (clean, masked)``, each (n_images, n_models) 1.0 / 0.0 correctness of every
    model on the same images. Statistic: min over models (and over splits for the headline) of masked /
    clean accuracy; the splits' images are resampled independently (:func:`strata_bootstrap`)."""
    def min_ratio(means: list[np.ndarray]) -> float:
        return float(np.min([_ratio(masked, clean) for m in means
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
    if "A" not in radial:
        return claim_row(2, [], missing="no adversarial model A")
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
    if "A" not in angular:
        return claim_row(3, [], missing="no adversarial model A")
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
    if "A" not in radial:
        return claim_row(4, [], missing="no adversarial model A")
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
    the probe's test images (``probes[V]``: one :func:`freqbias.spectral.linear_probe` result per seed)."""
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
    if "A" not in radial:
        return claim_row(7, [], missing="no adversarial model A")
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


# ----------------------------------------------------------------------------- the stage


@dataclass
class Run:
    """The models of one aggregation with their context: ``by[(variant, seed)]`` -> record, the seeds
    and variants in order (N included), the class names and the image size (H, W)."""

    records: list[ModelRecord]
    cfg: AggregateConfig
    class_names: list[str]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.seeds = sorted({r.seed for r in self.records})
        self.variants = list(dict.fromkeys(r.variant for r in self.records))
        self.others = [v for v in self.variants if v != "N"]
        self.by = {(r.variant, r.seed): r for r in self.records}
        self.centres = band_centres(*self.image_size, self.cfg.radial_bands, self.cfg.angular_bands)
        self.boot = dict(n_boot=self.cfg.n_boot, alpha=self.cfg.alpha, seed=self.cfg.seed)


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


@dataclass
class AggregateResult:
    """What the aggregate stage writes: CSV ``tables`` (name -> rows) and per-series ``curves``
    ("<plot>/<series>" -> rows) under results/, ``claims`` and ``summary`` (JSON) and ``figdata``
    (tensors and plain values only, loadable with ``weights_only=True``)."""

    tables: dict[str, list[dict]] = field(default_factory=dict)
    curves: dict[str, list[dict]] = field(default_factory=dict)
    claims: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    figdata: dict = field(default_factory=dict)


def _ci_row(prefix: str, est: Estimate) -> dict:
    return {prefix: est[0], f"{prefix}_lo": est[1], f"{prefix}_hi": est[2]}


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).float()


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def mask_energies(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Radial and angular band energies of every mask: ``[model]["dataset" | "class" | "single"]`` ->
    (radial (..., rings), angular (..., wedges)); NaN rows for all-zero masks."""
    def profiles(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        r, a = spectral.band_profiles(mask.double(), run.image_size[1], run.cfg.radial_bands, run.cfg.angular_bands)
        return r.numpy(), a.numpy()

    return {r.name: {"dataset": profiles(r.dataset_mask), "class": profiles(r.class_masks),
                     "single": profiles(r.single["masks"])} for r in run.records}


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
                diff_rows.append({**base, "source": "single", **_ci_row("diff", tuple(x[b] for x in single)),
                                  "seed_lo": float(seed_lo[b]), "seed_hi": float(seed_hi[b])})
                diff_rows.append({**base, "source": "dataset", **_ci_row("diff", (dataset[0][b], math.nan, math.nan)),
                                  "seed_lo": float(dataset[1][b]), "seed_hi": float(dataset[2][b])})
                diff_rows += [{**base, "source": f"class:{name}", **_ci_row("diff", (stats.class_diffs[p][v][0][k, b],
                                                                                  math.nan, math.nan)),
                               "seed_lo": float(stats.class_diffs[p][v][1][k, b]),
                               "seed_hi": float(stats.class_diffs[p][v][2][k, b])}
                              for k, name in enumerate(run.class_names)]
                share_rows.append({**base, **_ci_row("share", tuple(x[b] for x in share))})
                curves.setdefault(f"{p}_diff/{v}", []).append(
                    {"band": b, axis: round(float(c), 4), "diff": float(single[0][b]), "lo": float(single[1][b]),
                     "hi": float(single[2][b]), "dataset_diff": float(dataset[0][b])})
                if p == "radial":
                    curves.setdefault(f"shares_radial/{v}", []).append(
                        {"band": b, axis: round(float(c), 4), "share": float(share[0][b]), "lo": float(share[1][b]),
                         "hi": float(share[2][b])})
    return diff_rows, share_rows, curves


def accuracy_table(run: Run, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[list[dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Dataset masks re-scored on the first ``accuracy_n`` images of each split: rows of accuracy.csv
    (clean, masked and masked / clean with intervals over images; the masks stage's full-split values as
    ``*_all``) and, per split, the (clean, masked) correctness matrices (n_images, n_models) for claim 1."""
    w = run.image_size[1]
    rows = {r.name: {"model": r.name, "variant": r.variant, "seed": r.seed} for r in run.records}
    acc = {}
    for split, (x, y) in splits.items():
        x, y = x[:run.cfg.accuracy_n], y[:run.cfg.accuracy_n]
        cols = [dataset_correct(r, x, y) for r in run.records]
        acc[split] = (np.stack([c for c, _ in cols], axis=1), np.stack([m for _, m in cols], axis=1))
        for r, (clean, masked) in zip(run.records, cols):
            rows[r.name].update({
                f"{split}_n": len(y), **_ci_row(f"{split}_clean", spectral.bootstrap_ci(clean, **run.boot)),
                **_ci_row(f"{split}_masked", spectral.bootstrap_ci(masked, **run.boot)),
                **_ci_row(f"{split}_ratio", cluster_bootstrap([np.stack([masked, clean], 1)],
                                                              lambda m: _ratio(m[0], m[1]), **run.boot)),
                f"{split}_clean_all": r.mask_metrics.get(f"{split}_clean_acc", math.nan),
                f"{split}_masked_all": r.mask_metrics.get(f"{split}_masked_acc", math.nan)})
    for r in run.records:
        rows[r.name].update({"dataset_fit_n": r.mask_metrics.get("dataset_fit_n"),
                             "mask_mean": float(sparsity(r.dataset_mask, w, r.kind)),
                             "mask_support": float(support(r.dataset_mask, w, r.kind)),
                             "pgd_acc_train_eps": r.train_metrics.get("pgd_acc_train_eps", math.nan)})
    return list(rows.values()), acc


STORED = {"masked": "single_masked_agreement", "complement": "single_complement_agreement",
          "pgd": "single_adv_agreement", "restored": "single_adv_restored_continuous",
          "restored_binary": "single_adv_restored_binary", "adv_masked": "single_adv_masked_agreement"}


def single_image_table(run: Run, outcomes: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """Rows of single_image.csv: every per-image outcome's mean with its interval, per model and (with
    several seeds) pooled per variant; ``stored`` = the value the masks stage logged."""
    rows = []
    for v in run.variants:
        group = [outcomes[run.by[v, s].name] for s in run.seeds]
        for metric in group[0]:
            for s, o in zip(run.seeds, group):
                r = run.by[v, s]
                rows.append({"model": r.name, "variant": v, "seed": s, "metric": metric, "n": len(o[metric]),
                             **_ci_row("value", cluster_bootstrap([np.nan_to_num(o[metric])], **run.boot)),
                             "stored": r.mask_metrics.get(STORED.get(metric, ""), math.nan)})
            if len(run.seeds) > 1:
                rows.append({"model": f"{v}-all", "variant": v, "seed": "all", "metric": metric,
                             "n": sum(len(o[metric]) for o in group),
                             **_ci_row("value", cluster_bootstrap([np.nan_to_num(o[metric]) for o in group], **run.boot)),
                             "stored": math.nan})
    return rows


def probe_table(run: Run, probes: Mapping[str, Sequence[dict | None]]) -> list[dict]:
    """Rows of probe.csv: train / test accuracy with true and permuted labels (intervals over test images)."""
    rows = []
    for v in run.variants:
        for s, p in zip(run.seeds, probes[v]):
            row = {"model": run.by[v, s].name, "variant": v, "seed": s}
            if p is not None:
                row.update({"n_train": len(p["train_index"]), "n_test": len(p["test_index"]), "train_acc": p["train_acc"],
                            **_ci_row("test_acc", spectral.bootstrap_ci(p["test_correct"].astype(float), **run.boot)),
                            **_ci_row("permuted_test_acc",
                                      spectral.bootstrap_ci(p["permuted_test_correct"].astype(float), **run.boot)),
                            "chance": p["chance"]})
            rows.append(row)
    return rows


def baseline_tables(run: Run, baselines: Mapping[str, dict]) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
    """Rows of filtered_accuracy.csv and heatmaps.csv, and the filtered-accuracy curves per model."""
    filtered, curves = [], {}
    for r in run.records:
        b = baselines[r.name]
        series = [{"radius": rad, "low_pass": float(b["low"][i]), "high_pass": float(b["high"][i])}
                  for i, rad in enumerate(run.cfg.filter_radii)]
        curves[f"filtered/{r.name}"] = series
        filtered += [{"model": r.name, "variant": r.variant, "seed": r.seed, **row} for row in series]
    heat = [{"model": r.name, "variant": r.variant, "seed": r.seed, "mean_error": float(baselines[r.name]["heatmap"].mean()),
             "max_error": float(baselines[r.name]["heatmap"].max()),
             "corr_with_dataset_mask": baselines[r.name]["heatmap_corr"]} for r in run.records]
    return filtered, heat, curves


def run_aggregate(records: Sequence[ModelRecord], cfg: AggregateConfig,
                  splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]], attack: PGD | None,
                  class_names: Sequence[str], log: Callable[[str], None] = lambda m: None) -> AggregateResult:
    """All measurements of the aggregate stage. ``splits``: ``{"val": (x, y), "test": (x, y)}``, uint8
    images (N, C, H, W) and labels; ``attack``: the masks stage's PGD, to rebuild the PGD images (unused
    when N's single.pt stores them). Leaves the records' models in channels-last memory format."""
    x_te, y_te = splits["test"]
    run = Run(list(records), cfg, list(class_names), tuple(x_te.shape[-2:]))
    device = next(records[0].model.parameters()).device
    res, timings = AggregateResult(), {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 2)
        clock[0] = now

    # PGD images first, with the models as the masks stage ran them; channels-last (faster on CPU) after.
    images = {s: seed_images(run.by["N", s], run.by["A", s], x_te, y_te, attack, device) for s in run.seeds}
    for r in records:
        r.model.to(memory_format=torch.channels_last)
    lap("pgd_images")
    energies = mask_energies(run)
    res.tables["band_energies"] = energy_table(run, energies)
    bands = band_statistics(run, energies)
    res.tables["band_differences"], res.tables["shares"], res.curves = band_tables(run, bands)
    lap("bands")
    res.tables["accuracy"], acc = accuracy_table(run, {"val": splits["val"], "test": splits["test"]})
    lap("accuracy")
    outcomes = {r.name: single_outcomes(r, images[r.seed]) for r in records}
    res.tables["single_image"] = single_image_table(run, outcomes)
    lap("single_image")
    probes = {v: [probe(run.by[v, s], cfg) for s in run.seeds] for v in run.variants}
    res.tables["probe"] = probe_table(run, probes)
    lap("probe")
    baselines = {r.name: frequency_baselines(r, x_te, y_te, cfg) for r in records}
    res.tables["filtered_accuracy"], res.tables["heatmaps"], curves = baseline_tables(run, baselines)
    res.curves.update(curves)
    lap("baselines")

    n_outcomes = [outcomes[run.by["N", s].name] for s in run.seeds]
    res.claims = [
        claim_accuracy(acc, cfg),
        claim_radial(bands.per_seed["radial"], cfg, bands.dataset_diffs["radial"].get("A", (None,))[0]),
        claim_angular(bands.per_seed["angular"], cfg),
        claim_augmentations(bands.per_seed["radial"], cfg),
        claim_complement(n_outcomes, cfg),
        claim_probe(probes, cfg),
        claim_low_share(bands.per_seed["radial"], cfg),
        claim_texture(n_outcomes, cfg),
    ]
    lap("claims")
    res.figdata = figure_data(run, images[run.seeds[0]], outcomes, probes, baselines, bands, res.tables["accuracy"])
    lap("figdata")
    res.summary = {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in records], "kind": records[0].kind,
        "image_size": list(run.image_size), "classes": run.class_names,
        "single_n": {s: len(images[s].index) for s in run.seeds},
        "accuracy_n": {k: int(v[0].shape[0]) for k, v in acc.items()},
        "train_seconds": sum(r.train_metrics.get("train_seconds", 0.0) for r in records),
        "masks_seconds": sum(r.mask_metrics.get("seconds", 0.0) for r in records),
        "aggregate_seconds": timings,
        "verdict_rule": VERDICT_RULE.format(level=f"{100 * (1 - cfg.alpha):g}"),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
    }
    log(f"aggregate timings (s): {timings}")
    return res


def figure_data(run: Run, img: SeedImages, outcomes: Mapping[str, Mapping[str, np.ndarray]],
                probes: Mapping[str, Sequence[dict | None]], baselines: Mapping[str, dict], bands: BandStats,
                accuracy_rows: Sequence[Mapping]) -> dict:
    """Arrays the report's figures need, as tensors: masks as shifted full planes (dataset and mean
    single-image masks averaged over seeds; class masks and example images of the first seed), band
    curves (3, bands) = estimate / lo / hi, accuracies, probe embeddings, filtered accuracy, heat maps."""
    w, s0 = run.image_size[1], run.seeds[0]
    std_rec, adv_rec = run.by["N", s0], run.by["A", s0]
    k = min(run.cfg.figure_images, len(img.index))
    x, x_adv = img.x[:k], img.x_adv[:k]
    m_n, m_adv = std_rec.single["masks"][:k], std_rec.single["masks_adv"][:k]
    comp = binary_complement(m_n)
    with torch.no_grad():
        panel = {
            "x": x.cpu(), "x_adv": x_adv.cpu(), "mask": shifted_full(m_n, w), "mask_adv": shifted_full(m_adv, w),
            "mask_A": shifted_full(adv_rec.single["masks"][:k], w),
            "masked_x": masked_pixels(std_rec.model, x, m_n, std_rec.kind).cpu(),
            "masked_x_adv": masked_pixels(std_rec.model, x_adv, m_adv, std_rec.kind).cpu(),
            "complement": shifted_full(comp, w),
            "complement_x": masked_pixels(std_rec.model, x, comp, std_rec.kind).cpu(),
            "y": img.y[:k].cpu(), "target": std_rec.single["target"][:k], "target_adv": std_rec.single["target_adv"][:k],
            "outcomes": {m: _t(outcomes[std_rec.name][m][:k]) for m in ("masked", "complement", "restored")},
        }
        through = {f"seen_{v}": masked_pixels(run.by[v, s0].model, x, run.by[v, s0].single["masks"][:k],
                                              run.by[v, s0].kind).cpu() for v in run.variants}

    def mean_over_seeds(get: Callable[[ModelRecord], torch.Tensor]) -> dict[str, torch.Tensor]:
        return {v: torch.stack([get(run.by[v, s]) for s in run.seeds]).mean(0) for v in run.variants}

    def curves(d: Mapping[str, Estimate]) -> dict[str, torch.Tensor]:
        return {v: torch.stack([_t(a) for a in est]) for v, est in d.items()}

    acc = {key: _t([row[key] for row in accuracy_rows])
           for key in accuracy_rows[0] if key.startswith(("val_", "test_")) and not key.endswith("_n")}
    probe_data = {}
    for r in run.records:
        p = probes[r.variant][run.seeds.index(r.seed)]
        if p is not None:
            probe_data[r.name] = {"embedding": _t(p["embedding"]), "labels": torch.as_tensor(p["test_labels"]),
                                  "test_acc": p["test_acc"], "permuted_test_acc": p["permuted_test_acc"],
                                  "chance": p["chance"]}
    return {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in run.records],
        "class_names": run.class_names, "radial_centres": _t(run.centres[0]), "angular_centres": _t(run.centres[1]),
        "dataset_masks": mean_over_seeds(lambda r: shifted_full(r.dataset_mask, w)),
        "single_mean_masks": mean_over_seeds(lambda r: shifted_full(r.single["masks"], w).mean(0)),
        "class_masks": {v: shifted_full(run.by[v, s0].class_masks, w) for v in run.variants},
        "diffs": {p: curves(d) for p, d in bands.diffs.items()},
        "dataset_diffs": {p: {v: _t(est[0]) for v, est in d.items()} for p, d in bands.dataset_diffs.items()},
        "shares": {p: curves(d) for p, d in bands.shares.items()},
        "accuracy": {"models": [row["model"] for row in accuracy_rows], **acc},
        "panel": panel, "through": {"x": x.cpu(), **through},
        "probe": probe_data,
        "filtered": {"radii": _t(run.cfg.filter_radii),
                     **{r.name: {"low": _t(baselines[r.name]["low"]), "high": _t(baselines[r.name]["high"])}
                        for r in run.records}},
        "heatmaps": {"freqs": spectral.heatmap_frequencies(w, run.cfg.heatmap_grid),
                     **{r.name: {"map": _t(baselines[r.name]["heatmap"]), "corr": baselines[r.name]["heatmap_corr"]}
                        for r in run.records}},
    }


def _json_safe(obj: Any) -> Any:
    """NaN / inf -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _rounded(rows: list[dict], digits: int = 6) -> list[dict]:
    """Floats rounded to ``digits`` significant digits (readable, stable committed tables)."""
    return [{k: float(f"{v:.{digits}g}") if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def write_results(res: AggregateResult, folder: Path = Path("results")) -> None:
    """Write every output atomically: ``<table>.csv``, ``curves/<plot>/<series>.csv`` (stale series
    removed), ``claims.json``, ``metrics.json`` (headline of every claim, for ``dvc metrics``),
    ``summary.json`` and ``figdata.pt``."""
    for name, rows in res.tables.items():
        save_csv(_rounded(rows), folder / f"{name}.csv")
    wanted = {folder / "curves" / f"{name}.csv" for name in res.curves}
    for stale in set((folder / "curves").glob("*/*.csv")) - wanted:
        stale.unlink()
    for name, rows in res.curves.items():
        save_csv(_rounded(rows), folder / "curves" / f"{name}.csv")
    save_json(_json_safe(res.claims), folder / "claims.json")
    save_json(_json_safe({f"claim_{c['claim']}": {k: c[k] for k in ("estimate", "lo", "hi", "verdict")}
                          for c in res.claims}), folder / "metrics.json")
    save_json(_json_safe(res.summary), folder / "summary.json")
    save_torch(res.figdata, folder / "figdata.pt")
