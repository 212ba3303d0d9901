"""Statistics over Fourier masks, and frequency baselines for a trained model.

Conventions (shared with :mod:`freqbias.fourier`):

- Masks are stored UNSHIFTED (zero frequency at ``[0, 0]``), either in ``rfft`` layout (H, W//2+1) or
  ``full`` layout (H, W). :func:`as_full_plane` turns either into the full plane.
- Band geometry and heat maps live on the SHIFTED full plane (``torch.fft.fftshift``): the zero
  frequency sits at pixel ``(H//2, W//2)`` and pixel ``(i, j)`` holds the integer frequency
  ``(ky, kx) = (i - H//2, j - W//2)`` in cycles per image.
- Angles are measured counter-clockwise *as displayed* by ``imshow`` (row 0 at the top), starting
  from the +kx axis (pointing right): ``theta = atan2(-ky, kx)`` in [0, 2 pi).
- Model inputs are pixels in [0, 1], shape (B, C, H, W) (see :class:`freqbias.models.Classifier`);
  uint8 images are divided by 255.

Sections: geometry and band energies; bootstrap, shares and the claims verdict; linear probe;
frequency baselines (filtered accuracy, Fourier heat map, heat map vs mask correlation).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

# ----------------------------------------------------------------------------- geometry, energies


def as_full_plane(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Expand an rfft-layout mask (..., H, W//2+1) to the full UNSHIFTED plane (..., H, W).

    Uses Hermitian symmetry ``M(-k) = M(k)``: a column ``kx > W//2`` of the full plane is the mirror
    ``M[(-ky) mod H, W - kx]``. Columns ``0`` and (for even W) ``W//2`` are copied as they are, so the
    result is exactly symmetric when those two columns are symmetric in ky. A full-layout mask
    (last dimension ``width``) is returned unchanged. Any dtype (float or bool)."""
    h, last = mask.shape[-2], mask.shape[-1]
    if last == width:
        return mask
    if last != width // 2 + 1:
        raise ValueError(f"mask width {last} fits neither the rfft ({width // 2 + 1}) nor the full ({width}) "
                         f"layout of width {width}")
    ky = torch.arange(h, device=mask.device)[:, None]
    kx = torch.arange(width, device=mask.device)[None, :]
    mirrored = kx > width // 2
    rows = torch.where(mirrored, (-ky) % h, ky)
    cols = torch.where(mirrored, width - kx, kx)
    return mask[..., rows, cols]


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
    full = torch.fft.fftshift(as_full_plane(mask, width), dim=(-2, -1))
    h = full.shape[-2]
    return (band_energies(full, radial_band_index(h, width, n_radial), n_radial),
            band_energies(full, angular_band_index(h, width, n_angular), n_angular))


# ----------------------------------------------------------------------------- bootstrap, verdict


def bootstrap_ci(values: np.ndarray | torch.Tensor | Sequence[float],
                 stat: Callable[..., np.ndarray] = np.mean, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0, axis: int = 0) -> tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap: ``(estimate, lo, hi)`` of ``stat`` with a ``1 - alpha`` interval.

    Samples (units) lie along ``axis`` and are resampled with replacement ``n_boot`` times (seeded);
    ``stat(array, axis=axis)`` reduces that axis (``np.mean``, ``np.median``, ``np.nanmean``, ...).
    For values (n,) the three results are floats; for (n, k) (e.g. per band) arrays (k,)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 0 or data.shape[axis] < 1:
        raise ValueError("bootstrap_ci needs at least one sample along the resampled axis")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    n = data.shape[axis]
    rng = np.random.default_rng(seed)
    estimate = np.asarray(stat(data, axis=axis), dtype=np.float64)
    replicates = np.stack([stat(np.take(data, rng.integers(0, n, n), axis=axis), axis=axis)
                           for _ in range(n_boot)])
    lo, hi = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)

    def out(a: np.ndarray) -> np.ndarray | float:
        return float(a) if np.ndim(a) == 0 else np.asarray(a, dtype=np.float64)

    return out(estimate), out(lo), out(hi)


def share_greater(a: np.ndarray | torch.Tensor, n: np.ndarray | torch.Tensor, n_boot: int = 2000,
                  alpha: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share of images whose energy in mask set A exceeds that in set N, per band, with bootstrap CI.

    ``a``, ``n``: (n_images, n_bands), row i of both = the same image. Ties count as "not greater".
    Returns ``(share, lo, hi)``, each (n_bands,), shares in [0, 1]."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if a.shape != n.shape or a.ndim != 2:
        raise ValueError(f"a and n must both be (n_images, n_bands), got {a.shape} and {n.shape}")
    share, lo, hi = bootstrap_ci((a > n).astype(np.float64), np.mean, n_boot, alpha, seed)
    return np.atleast_1d(share), np.atleast_1d(lo), np.atleast_1d(hi)


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


# ----------------------------------------------------------------------------- linear probe


def _stratified_split(labels: np.ndarray, train_frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test): per class, a ``train_frac`` share (at least one image each side
    when the class has two or more) goes to train."""
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(train_frac * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                  max_iter: int) -> nn.Linear:
    """Multinomial logistic regression, full batch, L-BFGS from zero weights (convex: unique optimum).

    Loss: mean cross-entropy + ``weight_decay / 2 * ||W||^2`` (bias not penalised)."""
    layer = nn.Linear(x.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(layer(x), y) + 0.5 * weight_decay * layer.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def _pca2(z: np.ndarray) -> np.ndarray:
    """First two principal-component scores of the rows of z (n, d) -> (n, 2), zero-padded when d < 2.
    Signs are fixed (largest loading positive) so the embedding is deterministic."""
    centred = z - z.mean(axis=0)
    vt = np.linalg.svd(centred, full_matrices=False)[2][:2]
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    scores = centred @ vt.T
    return np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))


def linear_probe(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, train_frac: float = 0.7,
                 seed: int = 0, weight_decay: float = 1e-3, max_iter: int = 500, permute: bool = True) -> dict:
    """One linear layer (multinomial logistic regression) from features to labels, scored on held-out images.

    ``features`` (N, D) (e.g. flattened single-image masks), ``labels`` int (N,) in [0, K). The split is
    stratified by class (``train_frac`` to train, seeded); features are standardised with the train
    split's mean and std. The permuted control refits on the same split with the labels permuted once
    by a seeded random permutation of all N labels.

    Returns a dict with ``train_acc``, ``test_acc``, ``chance`` (test accuracy of always predicting the
    most frequent train label), ``train_index``/``test_index`` (N_train,)/(N_test,), ``test_labels``,
    ``test_correct`` bool (N_test,) (for a bootstrap CI), ``test_logits`` (N_test, K) and ``embedding``
    (N_test, 2) = PCA of the test logits; with ``permute`` also ``permuted_train_acc``,
    ``permuted_test_acc``, ``permuted_test_correct`` (scored against the permuted labels)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"need features (N, D) and labels (N,), got {x.shape} and {y.shape}")
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    rng = np.random.default_rng(seed)
    train, test = _stratified_split(y, train_frac, rng)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("split left the train or the test set empty; need more images")
    num_classes = int(y.max()) + 1
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    z = torch.from_numpy((x - mean) / np.where(std > 0, std, 1.0))

    def fit_and_score(target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        t = torch.from_numpy(target)
        layer = _fit_logistic(z[train], t[train], num_classes, weight_decay, max_iter)
        with torch.no_grad():
            pred = layer(z).argmax(dim=1).numpy()
            logits = layer(z[test]).numpy()
        return float((pred[train] == target[train]).mean()), pred[test] == target[test], logits

    train_acc, correct, logits = fit_and_score(y)
    majority = np.bincount(y[train], minlength=num_classes).argmax()
    result = {
        "train_acc": train_acc, "test_acc": float(correct.mean()), "chance": float((y[test] == majority).mean()),
        "train_index": train, "test_index": test, "test_labels": y[test], "test_correct": correct,
        "test_logits": logits, "embedding": _pca2(logits),
    }
    if permute:
        p_train_acc, p_correct, _ = fit_and_score(y[rng.permutation(len(y))])
        result.update(permuted_train_acc=p_train_acc, permuted_test_acc=float(p_correct.mean()),
                      permuted_test_correct=p_correct)
    return result


# ----------------------------------------------------------------------------- frequency baselines


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) pixels as float in [0, 1] (uint8 divided by 255)."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _device(model: nn.Module, fallback: torch.device) -> torch.device:
    return next((p.device for p in model.parameters()), fallback)


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels (B,) on the model's device, in eval mode, without gradients (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x.to(_device(model, x.device))).argmax(dim=1).cpu()
    finally:
        model.train(was_training)


def radial_distance(h: int, w: int) -> torch.Tensor:
    """Distance in cycles per image of every frequency of the UNSHIFTED (H, W) plane: float64 (H, W)."""
    ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64)
    kx = torch.fft.fftfreq(w, d=1.0 / w, dtype=torch.float64)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def filtered_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radii: Sequence[float],
                      kind: str = "low", batch_size: int = 256, keep_dc: bool = True) -> np.ndarray:
    """Accuracy on ideal radially low- or high-pass filtered images, one value per radius: float (len(radii),).

    ``x``: pixels (N, C, H, W) in [0, 1] (or uint8), ``y`` (N,). The filter acts on ``fft2`` of each
    channel: "low" keeps frequencies at distance ``<= radius`` (cycles per image, from the zero
    frequency of the centred plane), "high" keeps those ``> radius``. With ``keep_dc`` the high-pass
    filter also keeps the zero frequency (the mean brightness), so that clipping does not cut off the
    negative half of a zero-mean image. Filtered images are clipped to [0, 1] before the model."""
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high', got {kind!r}")
    if len(x) == 0:
        raise ValueError("filtered_accuracy needs at least one image")
    if any(r < 0 for r in radii):
        raise ValueError(f"radii must be >= 0, got {list(radii)}")
    h, w = x.shape[-2:]
    dist = radial_distance(h, w)
    filters = []
    for r in radii:
        keep = dist <= r if kind == "low" else dist > r
        if kind == "high" and keep_dc:
            keep[0, 0] = True
        filters.append(keep)
    correct = np.zeros(len(radii))
    for start in range(0, len(x), batch_size):
        xb, yb = _pixels(x[start:start + batch_size]), y[start:start + batch_size].cpu()
        spectrum = torch.fft.fft2(xb.double())
        for i, keep in enumerate(filters):
            filtered = torch.fft.ifft2(spectrum * keep).real.clamp(0, 1).float()
            correct[i] += (_predict(model, filtered) == yb).sum().item()
    return correct / len(x)


def heatmap_frequencies(size: int, grid: int) -> torch.Tensor:
    """Signed integer frequencies probed along one axis of a heat map: int64 (G,).

    ``grid >= size``: every frequency of the axis in shifted order ``-(size//2) .. (size-1)//2``;
    otherwise ``grid`` frequencies evenly spaced (rounded) and symmetric over ``-m .. m``,
    ``m = (size-1)//2``."""
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if grid >= size:
        return torch.arange(size, dtype=torch.int64) - size // 2
    m = (size - 1) // 2
    return torch.round(torch.linspace(-m, m, grid, dtype=torch.float64)).long()


def fourier_basis(h: int, w: int, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Real Fourier basis images of unit L2 norm, one per frequency pair: (F, H, W) float32.

    ``U = cos(2 pi (ky m / H + kx n / W))`` normalised; its spectrum is non-zero only at ``(ky, kx)`` and
    ``(-ky, -kx)`` (Yin et al. 2019)."""
    m = torch.arange(h, dtype=torch.float64)[None, :, None]
    n = torch.arange(w, dtype=torch.float64)[None, None, :]
    phase = 2 * math.pi * (ky.double()[:, None, None] * m / h + kx.double()[:, None, None] * n / w)
    basis = torch.cos(phase)
    return (basis / torch.linalg.vector_norm(basis, dim=(-2, -1), keepdim=True)).float()


def fourier_heatmap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: float, grid: int = 9,
                    freqs: tuple[torch.Tensor, torch.Tensor] | None = None, batch_size: int = 512,
                    seed: int = 0) -> np.ndarray:
    """Fourier heat map of Yin et al. 2019: error rate under one added basis image per frequency.

    For each probed frequency (ky, kx) every image becomes ``clip(x + s * norm * U_{ky,kx}, 0, 1)``:
    ``U`` from :func:`fourier_basis` (same for all channels), ``norm`` its L2 norm in pixel units per
    channel, ``s = +-1`` a random sign per image (seeded, the same for all frequencies).
    ``x``: pixels (N, C, H, W) in [0, 1] (or uint8), ``y`` (N,). Frequencies: ``freqs = (ky (Gy,), kx (Gx,))``
    or by default ``heatmap_frequencies`` of each axis with ``grid``.
    Returns the error rate, float (Gy, Gx), row i / column j = frequency ``(ky[i], kx[j])`` (so it reads
    like the shifted plane, low frequencies in the middle)."""
    if len(x) == 0:
        raise ValueError("fourier_heatmap needs at least one image")
    h, w = x.shape[-2:]
    fy, fx = freqs if freqs is not None else (heatmap_frequencies(h, grid), heatmap_frequencies(w, grid))
    gy, gx = torch.meshgrid(torch.as_tensor(fy), torch.as_tensor(fx), indexing="ij")
    basis = fourier_basis(h, w, gy.flatten(), gx.flatten())                      # (F, H, W)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (len(x),), generator=gen).float() * 2 - 1
    errors = torch.zeros(len(basis))
    per_chunk = max(1, batch_size // min(len(x), batch_size))
    for start in range(0, len(x), batch_size):
        xb, yb = _pixels(x[start:start + batch_size]), y[start:start + batch_size].cpu()
        delta = norm * signs[start:start + len(xb), None, None, None]             # (B, 1, 1, 1)
        for f0 in range(0, len(basis), per_chunk):
            u = basis[f0:f0 + per_chunk]                                          # (F', H, W)
            batch = (xb[None] + delta[None] * u[:, None, None]).clamp(0, 1)       # (F', B, C, H, W)
            pred = _predict(model, batch.flatten(0, 1)).view(len(u), len(xb))
            errors[f0:f0 + len(u)] += (pred != yb[None]).sum(dim=1)
    return (errors / len(x)).view(gy.shape).numpy().astype(np.float64)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank."""
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    ranks = np.empty(len(a))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def heatmap_mask_correlation(heatmap: np.ndarray | torch.Tensor, mask_full_shifted: torch.Tensor,
                             freqs: tuple[torch.Tensor, torch.Tensor] | None = None,
                             method: str = "spearman") -> float:
    """Correlation between a Fourier heat map (Gy, Gx) and a mask sampled at the same frequencies.

    ``mask_full_shifted``: full-plane SHIFTED mask (H, W) (e.g. ``fftshift(as_full_plane(m, W))``).
    ``freqs``: the heat map's (ky, kx); by default those of :func:`heatmap_frequencies` for its shape.
    ``method``: "spearman" (Pearson on average ranks; default) or "pearson". NaN when either side is
    constant. A positive value: the model errs most at the frequencies its mask keeps."""
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    heat = np.asarray(heatmap, dtype=np.float64)
    h, w = mask_full_shifted.shape[-2:]
    fy, fx = freqs if freqs is not None else (heatmap_frequencies(h, heat.shape[0]),
                                              heatmap_frequencies(w, heat.shape[1]))
    fy, fx = torch.as_tensor(fy), torch.as_tensor(fx)
    if heat.shape != (len(fy), len(fx)):
        raise ValueError(f"heat map shape {heat.shape} does not match the frequencies ({len(fy)}, {len(fx)})")
    sampled = mask_full_shifted.detach().double().cpu()[(fy + h // 2)[:, None], (fx + w // 2)[None, :]].numpy()
    a, b = heat.ravel(), sampled.ravel()
    if method == "spearman":
        a, b = _average_ranks(a), _average_ranks(b)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
