"""Figures of the report, one function per figure (matplotlib, Agg backend).

Every function takes arrays from ``results/figdata.pt`` (written by :mod:`freqbias.stage_aggregate`) or rows of
a results table, writes one PNG atomically to ``path`` and returns ``path``. Masks arrive SHIFTED
(``fftshift``: zero frequency in the centre, ky down, kx right); images are pixels, (n, C, H, W).
Missing data never stop a figure: a panel or series without finite values is drawn as "n/a" with its
reason (``na`` arguments: series -> reason, from the figure data's ``na``), a NaN pixel is left blank.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .claims import variant_seed  # noqa: E402
from .io import atomic_path  # noqa: E402
from .na import number  # noqa: E402
from .variants import colour as variant_colour  # noqa: E402
from .variants import label as variant_label


def _color(name: str) -> str:
    """The registered colour of a model's variant (``<variant>-s<seed>``), gray for any other model."""
    return variant_colour(name.split("-")[0])


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _na_panel(ax: plt.Axes, reason: str, title: str = "") -> None:
    """An empty panel that says "n/a" and why."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, "n/a\n" + textwrap.fill(reason, 24), ha="center", va="center", fontsize=6,
            transform=ax.transAxes, color="dimgray")
    if title:
        ax.set_title(title, fontsize=8)


def _image(ax: plt.Axes, img: torch.Tensor | np.ndarray, title: str = "", cmap: str = "gray",
           vmin: float | None = None, vmax: float | None = None) -> None:
    """Show one image (C, H, W) / (H, W); grayscale shows channel 0, RGB is min-max scaled. NaN pixels
    are blank (title marked); an image without a finite pixel is an n/a panel."""
    a = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        _na_panel(ax, "no finite value (non-finite mask)", title)
        return
    if not finite.all():
        title = f"{title} (non-finite: blank)" if title else "non-finite: blank"
    if a.ndim == 3:
        lo, span = np.nanmin(a), max(np.nanmax(a) - np.nanmin(a), 1e-12)
        a = a[0] if a.shape[0] == 1 else np.moveaxis((a - lo) / span, 0, -1)
    ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _first_image(axes: np.ndarray) -> matplotlib.image.AxesImage | None:
    """The first image drawn on any of ``axes`` (None when every panel is n/a)."""
    return next((ax.images[0] for ax in np.ravel(axes) if ax.images), None)


def mask_grid(masks: Mapping[str, torch.Tensor], path: Path, title: str, dpi: int = 110,
              absent: str = "no mask") -> Path:
    """Masks of every variant (top row, [0, 1]) and their differences X - N (bottom row, diverging scale
    shared by all panels). ``masks[V]``: shifted full plane (H, W); a variant without one (N included)
    is an n/a panel saying ``absent``."""
    variants = list(dict.fromkeys(["N", *masks]))
    diffs = {v: (masks[v] - masks["N"]).numpy() for v in variants if v != "N" and v in masks and "N" in masks}
    lim = max([float(np.nanmax(np.abs(d))) for d in diffs.values() if np.isfinite(d).any()] + [1e-6])
    fig, axes = plt.subplots(2, len(variants), figsize=(1.9 * len(variants), 4.1), squeeze=False)
    for j, v in enumerate(variants):
        if v in masks:
            _image(axes[0, j], masks[v], f"{v} ({variant_label(v)})", "viridis", 0, 1)
        else:
            _na_panel(axes[0, j], absent, f"{v} ({variant_label(v)})")
        if v in diffs:
            _image(axes[1, j], diffs[v], f"{v} - N", "RdBu_r", -lim, lim)
        else:
            axes[1, j].axis("off")
    for row, label in ((0, "mask value"), (1, "difference")):
        if (im := _first_image(axes[row])) is not None:
            fig.colorbar(im, ax=axes[row, :].tolist(), fraction=0.02, label=label)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)


def accuracy_bars(acc: Mapping[str, Sequence], path: Path, dpi: int = 110) -> Path:
    """Clean vs masked (dataset mask) accuracy per model on val and test, with intervals.
    ``acc``: ``models`` and per split ``<split>_clean``, ``<split>_clean_lo``, ... as in accuracy.csv."""
    models = list(acc["models"])
    per_row = 6                                            # rows of panels, not one strip of bars
    rows = max(1, -(-len(models) // per_row))
    fig, axes = plt.subplots(rows, 1, figsize=(max(5.0, 1.1 * min(per_row, len(models)) + 2), 2.6 * rows + 0.6),
                             squeeze=False, sharey=True)
    bars = [("val", "clean", "tab:gray"), ("val", "masked", "tab:cyan"), ("test", "clean", "dimgray"),
            ("test", "masked", "tab:blue")]
    width = 0.8 / len(bars)
    lows = np.concatenate([np.asarray(acc[f"{s}_{w}_lo"], float) for s, w, _ in bars])
    lowest = float(np.min(lows)) if np.isfinite(lows).all() else 0.0  # n/a bars are drawn from 0
    for r, ax in enumerate(axes[:, 0]):
        idx = np.arange(r * per_row, min(len(models), (r + 1) * per_row))
        x = np.arange(len(idx))
        for i, (split, what, color) in enumerate(bars):
            key = f"{split}_{what}"
            est = np.asarray(acc[key], dtype=float)[idx]
            err = np.abs(np.stack([est - np.asarray(acc[f"{key}_lo"], float)[idx],
                                   np.asarray(acc[f"{key}_hi"], float)[idx] - est]))
            missing = ~np.isfinite(est)
            ax.bar(x + (i - 1.5) * width, np.where(missing, 0.0, est), width,
                   yerr=np.where(np.isfinite(err), err, 0.0), color=color, label=f"{split} {what}", capsize=2)
            for j in np.flatnonzero(missing):  # the table below the figure says why
                ax.text(x[j] + (i - 1.5) * width, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [models[j] for j in idx], fontsize=8)
        ax.set_ylabel("accuracy")
        ax.set_ylim(max(0.0, lowest - 0.1), 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle("Clean vs dataset-masked accuracy (95% bootstrap intervals over images)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi)


@dataclass(frozen=True)
class BandDifferences:
    """The band-energy differences X - N of one profile (radial or angular), each ``[V]`` = (3, bands) estimate /
    lo / hi at the band ``centres`` (bands,): ``dataset`` (mean paired difference over the dataset masks' folds),
    ``single`` (single-image masks) and ``size_matched`` (the dataset masks minus their radial twins'; the verdict);
    ``dataset_na`` / ``single_na``: variant -> why it has no such curve."""

    centres: torch.Tensor
    dataset: Mapping[str, torch.Tensor]
    single: Mapping[str, torch.Tensor]
    size_matched: Mapping[str, torch.Tensor] = field(default_factory=dict)
    dataset_na: Mapping[str, str] = field(default_factory=dict)
    single_na: Mapping[str, str] = field(default_factory=dict)


def band_differences(curves: BandDifferences, xlabel: str, path: Path, title: str, dpi: int = 110) -> Path:
    """Band energy of each variant minus N (:class:`BandDifferences`), one panel per variant: dataset masks (solid,
    interval shaded), the same size-matched (dash-dot with crosses) and single-image masks (dashed, interval
    dotted). A curve a variant lacks is named with its reason in the panel."""
    variants = list(dict.fromkeys([*curves.dataset, *curves.single, *curves.dataset_na, *curves.single_na]))
    cols = min(3, max(1, len(variants)))
    rows = max(1, -(-len(variants) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows + 0.7), squeeze=False, sharex=True,
                             sharey=True)
    x = np.asarray(curves.centres)
    for ax, v in zip(axes.flat, variants):
        missing = []
        if v in curves.dataset:
            est, lo, hi = np.asarray(curves.dataset[v])
            ax.plot(x, est, color=_color(v), marker="o", ms=3, label="dataset masks")
            ax.fill_between(x, lo, hi, color=_color(v), alpha=0.2, lw=0)
        elif v in curves.dataset_na:
            missing.append(f"dataset masks: n/a ({curves.dataset_na[v]})")
        if v in curves.size_matched:
            ax.plot(x, np.asarray(curves.size_matched[v])[0], color=_color(v), ls="-.", marker="x", ms=3, lw=1,
                    label="size-matched")
        if v in curves.single:
            est, lo, hi = np.asarray(curves.single[v])
            ax.plot(x, est, color=_color(v), ls="--", lw=1, label="single-image masks")
            ax.plot(x, lo, color=_color(v), ls=":", lw=0.6)
            ax.plot(x, hi, color=_color(v), ls=":", lw=0.6)
        elif v in curves.single_na:
            missing.append(f"single-image: n/a ({curves.single_na[v]})")
        if missing:
            ax.text(0.5, 0.5, textwrap.fill("; ".join(missing), 40), transform=ax.transAxes, ha="center",
                    va="center", fontsize=6.5, color="dimgray")
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_title(f"{v} - N", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(variants):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("energy difference", fontsize=8)
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_legend_handles_labels()[1]),
                           ([], []))
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
    fig.suptitle(f"{title} (shaded / dotted: 95% interval)", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path, dpi)


def single_panel(panel: Mapping, class_names: Sequence[str], path: Path, n: int, dpi: int = 110) -> Path:
    """Single-image panel, one row per image: x, x_A (PGD), N's mask of x, N's mask of x_A, masked x,
    masked x_A, the binary complement of x's mask and x seen through it. Titles: class names of the
    target (N's clean prediction) and of N's prediction on x_A."""
    n = min(n, len(panel["x"]))
    cols = [("x", "x", "gray"), ("x_adv", "x_A (PGD)", "gray"), ("mask", "mask of x", "viridis"),
            ("mask_adv", "mask of x_A", "viridis"), ("masked_x", "masked x", "gray"),
            ("masked_x_adv", "masked x_A", "gray"), ("complement", "complement", "viridis"),
            ("complement_x", "complement-masked x", "gray")]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.35 * len(cols), 1.45 * n + 0.4), squeeze=False)
    for i in range(n):
        target, target_adv = int(panel["target"][i]), int(panel["target_adv"][i])
        for j, (key, name, cmap) in enumerate(cols):
            title = name if i == 0 else ""
            if key == "x":
                title += f"\n{class_names[target]}"
            elif key == "x_adv":
                title += f"\n{class_names[target_adv]}"
            vrange = (0, 1) if cmap == "viridis" else (None, None)
            _image(axes[i, j], panel[key][i], title, cmap, *vrange)
    fig.suptitle("Single-image masks of the standard model N (masked images min-max scaled)", fontsize=9)
    return _save(fig, path, dpi)


def seen_through_masks(through: Mapping[str, torch.Tensor], path: Path, n: int, dpi: int = 110) -> Path:
    """Images (rows) as each model sees them through its own single-image mask (columns), pixel units,
    each image min-max scaled. ``through``: ``x`` (n, C, H, W) and ``seen_<V>`` (n, C, H, W)."""
    keys = ["x"] + [k for k in through if k.startswith("seen_")]
    n = min(n, len(through["x"]))
    fig, axes = plt.subplots(n, len(keys), figsize=(1.4 * len(keys), 1.45 * n + 0.3), squeeze=False)
    for i in range(n):
        for j, k in enumerate(keys):
            _image(axes[i, j], through[k][i], ("original" if k == "x" else f"through {k[5:]}'s mask") if i == 0 else "")
    fig.suptitle("Images seen through their single-image masks", fontsize=9)
    return _save(fig, path, dpi)


def class_masks(masks: Mapping[str, torch.Tensor], class_names: Sequence[str], path: Path, dpi: int = 110,
                capped: frozenset[tuple[str, str]] = frozenset()) -> Path:
    """Class masks: one row per model, one column per class (shifted, [0, 1], one colour bar); a mask in
    ``capped`` ((model, class name): its fit hit the step cap, or found nothing sparser than the identity) is
    framed in red and labelled "not converged"."""
    variants = list(masks)
    k = masks[variants[0]].shape[0]
    fig, axes = plt.subplots(len(variants), k, figsize=(1.25 * k + 1.2, 1.3 * len(variants) + 0.5), squeeze=False)
    for i, v in enumerate(variants):
        for j in range(k):
            _image(axes[i, j], masks[v][j], class_names[j] if i == 0 else "", "viridis", 0, 1)
            if (v, class_names[j]) in capped:
                for spine in axes[i, j].spines.values():
                    spine.set(visible=True, color="red", lw=2)
                axes[i, j].text(0.5, 0.04, "not converged", transform=axes[i, j].transAxes, ha="center",
                                fontsize=6, color="red", backgroundcolor="white")
        axes[i, 0].set_ylabel(v, rotation=0, labelpad=14, fontsize=9)
    image = _first_image(axes)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="mask value")
    fig.suptitle("Class masks (one per class and model; red frame: the fit did not converge)", fontsize=9)
    return _save(fig, path, dpi)


def band_shares(centres: Sequence[torch.Tensor], shares: Mapping[str, Mapping[str, torch.Tensor]], path: Path,
                dpi: int = 110, na: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """Share of images whose mask has more band energy than N's mask on the same image, per ring (left)
    and per wedge (right); ``shares[profile][V]`` = (3, bands) estimate / lo / hi; ``na[profile][V]``:
    why a variant has no curve (shown in the legend)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.2))
    for ax, (profile, x, xlabel) in zip(axes, (("radial", centres[0], "ring centre (cycles / image)"),
                                               ("angular", centres[1], "wedge centre (degrees)"))):
        for v, d in shares[profile].items():
            est, lo, hi = np.asarray(d)
            ax.plot(np.asarray(x), est, color=_color(v), marker="o", ms=3, label=f"{v} > N")
            ax.fill_between(np.asarray(x), lo, hi, color=_color(v), alpha=0.2, lw=0)
        for v, reason in ((na or {}).get(profile) or {}).items():
            ax.plot([], [], color=_color(v), marker="o", ms=3, label=textwrap.fill(f"{v} > N: n/a ({reason})", 40))
        ax.axhline(0.5, color="gray", lw=0.8, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of images")
        ax.legend(fontsize=7)
    fig.suptitle("Per band: share of images whose mask has more energy than N's", fontsize=9)
    return _save(fig, path, dpi)


def probe_results(rows: Sequence[Mapping], embedding: Mapping | None, class_names: Sequence[str], path: Path,
                  dpi: int = 110) -> Path:
    """Linear probe: cross-validated test accuracy with true vs permuted labels per model (intervals;
    chance dashed), and the 2-D PCA embedding of one model's out-of-fold probe outputs (logits) on every
    probed image, coloured by class."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
    ax = axes[0]
    keys = ("test_acc", "test_acc_lo", "test_acc_hi", "permuted_test_acc", "permuted_test_acc_lo",
            "permuted_test_acc_hi", "chance")
    measured = [all(number(r.get(k)) is not None for k in keys) for r in rows]
    x = np.arange(len(rows))
    for off, key, color, label in ((-0.2, "test_acc", "tab:blue", "true labels"),
                                   (0.2, "permuted_test_acc", "tab:gray", "permuted labels")):
        value = {k: np.array([number(r.get(k)) if ok else 0.0 for r, ok in zip(rows, measured)], dtype=float)
                 for k in (key, f"{key}_lo", f"{key}_hi")}
        est = value[key]
        err = np.abs(np.stack([est - value[f"{key}_lo"], value[f"{key}_hi"] - est]))
        ax.bar(x[measured], est[measured], 0.4, yerr=err[:, measured], color=color, capsize=2, label=label)
    for j in np.flatnonzero(~np.array(measured, dtype=bool)):  # the probe table says why
        ax.text(x[j], 0.02, "n/a\n(not probed)", ha="center", va="bottom", fontsize=6)
    if any(measured):
        ax.axhline(np.mean([number(r["chance"]) for r, ok in zip(rows, measured) if ok]), color="k", ls="--", lw=0.8,
                   label="chance")
    ax.set_xticks(x, [r["model"] for r in rows], rotation=90 if len(rows) > 6 else 0, fontsize=7)  # no overlap
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("probe test accuracy")
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    ax.set_title("Linear probe on single-image masks", fontsize=9)
    ax = axes[1]
    if embedding is not None:
        emb, labels = np.asarray(embedding["embedding"]), np.asarray(embedding["labels"])
        for c in np.unique(labels):
            ax.scatter(*emb[labels == c].T, s=12, label=class_names[int(c)])
        ax.legend(fontsize=6, markerscale=0.8)
        ax.set_title(f"probe outputs (out-of-fold logits, PCA), {embedding['model']}", fontsize=9)
    else:
        _na_panel(ax, "no model probed", "probe outputs (PCA)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    return _save(fig, path, dpi)


def filtered_accuracy(radii: torch.Tensor, curves: Mapping[str, Mapping[str, torch.Tensor]], path: Path,
                      dpi: int = 110) -> Path:
    """Accuracy on low-pass (left) and high-pass (right) filtered test images vs cut-off radius, one line per
    variant (the mean of its seeds' models ``<V>-s<seed>``)."""
    groups: dict[str, list[str]] = {}                      # one line per variant: the mean of its seeds' models
    for model in curves:
        groups.setdefault(variant_seed(model)[0], []).append(model)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    for ax, kind in zip(axes, ("low", "high")):
        for g, models in groups.items():
            mean = np.mean([np.asarray(curves[m][kind], dtype=float) for m in models], axis=0)
            ax.plot(np.asarray(radii), mean, color=_color(models[0]), marker="o", ms=3,
                    label=g + (f" (mean of {len(models)})" if len(models) > 1 else ""))
        ax.set_xlabel("cut-off radius (cycles / image)")
        ax.set_title(f"{kind}-pass filtered", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path, dpi)


def heatmaps(freqs: torch.Tensor, maps: Mapping[str, Mapping], path: Path, dpi: int = 110,
             na: Mapping[str, str] | None = None) -> Path:
    """Fourier heat maps (error rate under one added basis image per frequency; low frequencies in the
    centre), one panel per model, titled with the Spearman correlation with its dataset mask (n/a with
    the reason, ``na[model]``, when undefined)."""
    models = list(maps)
    cols = min(6, max(1, len(models)))                     # a grid, not a strip: readable at page width
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols + 0.8, 2.6 * rows), squeeze=False,
                             gridspec_kw={"hspace": 0.55})
    f = np.asarray(freqs)
    ticks = np.unique(np.linspace(0, len(f) - 1, min(len(f), 5)).round().astype(int))
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, models):
        im = ax.imshow(np.asarray(maps[m]["map"]), cmap="magma", vmin=0, vmax=1)
        corr = maps[m]["corr"]
        why = textwrap.shorten((na or {}).get(m, "undefined"), 40, placeholder="...")
        ax.set_title(f"{m}\nrho = {corr:.2f}" if np.isfinite(corr) else f"{m}\nrho = n/a\n({why})", fontsize=8)
        ax.set_xticks(ticks, f[ticks])
        ax.set_yticks(ticks, f[ticks])
        ax.set_xlabel("kx", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("ky", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, label="error rate")
    return _save(fig, path, dpi)


FAITH_PANELS = (("dataset", "insertion"), ("dataset", "deletion"), ("single", "insertion"), ("single", "deletion"))


def faithfulness(curves: Mapping, path: Path, dpi: int = 110, na: Mapping[str, str] | None = None) -> Path:
    """Insertion (keep the first share of the plane) and deletion (remove it) curves per frequency order: one row
    per variant (the mean curve of its seeds' models ``<V>-s<seed>``), columns dataset mask (test accuracy vs
    labels) and single-image masks (agreement with the target); an n/a panel names why a variant has none
    (``na[model]`` of its first model)."""
    budgets = np.asarray(curves["budgets"])
    groups: dict[str, list[str]] = {}                      # one row per variant: its seeds' mean curves
    for m in [m for m in curves if m != "budgets"] + list(na or {}):
        groups.setdefault(variant_seed(m)[0], []).append(m)
    fig, axes = plt.subplots(len(groups), 4, figsize=(11.0, 2.0 * len(groups) + 0.6), squeeze=False, sharex=True)
    orders: list[str] = []
    for row, (g, members) in zip(axes, groups.items()):
        for ax, (source, kind) in zip(row, FAITH_PANELS):
            measured = [curves[m][source] for m in members if curves.get(m, {}).get(source) is not None]
            if not measured:
                _na_panel(ax, (na or {}).get(members[0], "not measured"), f"{g}: {source} {kind}")
                continue
            for order in dict.fromkeys(o for per in measured for o in per):
                orders += [order] if order not in orders else []
                mean = np.mean([np.asarray(per[order][kind]) for per in measured if order in per], axis=0)
                ax.plot(budgets, mean, color=f"C{orders.index(order)}", lw=1.3, label=order)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{g}: {source} {kind}" + (f" (mean of {len(measured)})" if len(measured) > 1 else ""),
                         fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("share of the plane kept / removed", fontsize=8)
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_legend_handles_labels()[1]),
                           ([], []))
    if labels:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, title="order",
                   title_fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.0 * len(groups) + 0.6)))
    return _save(fig, path, dpi)


def cascade(curve: Mapping, path: Path, dpi: int = 110) -> Path:
    """Cascading randomisation (claim 11): rank correlation of the trained standard model's single-image masks
    with the masks after the top k layer groups were re-initialised, k = 1 .. L (``curve``: ``layers`` from the
    top, ``value`` / ``lo`` / ``hi`` per step), beside the seed-to-seed similarity (``yardstick``: (value, lo,
    hi), or its n/a text) as a band."""
    k = np.arange(1, len(curve["value"]) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.fill_between(k, curve["lo"], curve["hi"], color="C3", alpha=0.25, lw=0)
    ax.plot(k, curve["value"], "o-", color="C3", label="top k layers re-initialised")
    yard = curve["yardstick"]
    if isinstance(yard, str):
        ax.set_title(textwrap.shorten(f"seed-to-seed: {yard}", 90, placeholder="..."), fontsize=8)
    else:
        ax.axhspan(yard[1], yard[2], color="C0", alpha=0.2, lw=0)
        ax.axhline(yard[0], color="C0", ls="--", label="two trained seeds (yardstick)")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xticks(k, [f"{i}\n{textwrap.shorten(n, 14, placeholder='.')}" for i, n in zip(k, curve["layers"])],
                  fontsize=7)
    ax.set_xlabel("layer groups re-initialised from the top (k; its lowest layer)", fontsize=8)
    ax.set_ylabel("rank correlation with trained masks", fontsize=8)
    values = [*np.asarray(curve["lo"], float), *np.asarray(curve["hi"], float), 0.0]
    if not isinstance(yard, str):
        values += [float(yard[1]), float(yard[2])]
    finite = [v for v in values if np.isfinite(v)]
    ax.set_ylim(max(-1.02, min(finite) - 0.08), min(1.02, max(finite) + 0.08))  # the data's range, 0 included
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path, dpi)
