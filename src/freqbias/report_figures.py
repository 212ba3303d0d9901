"""The report's params (:class:`ReportConfig`) and figures: :func:`make_figures` draws every figure of
``reports/report.md`` (one function each in :mod:`freqbias.plots`) from ``results/figdata.pt`` and the
result tables, with its caption, or says why a figure has no data (:class:`Figure`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .claims import variant_seed
from .config import Section


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` section of params.yaml."""

    title: str = "Frequency bias of robust networks through learned Fourier masks"
    dpi: int = 110
    panel_images: int = 4

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ReportConfig":
        sec = Section(params, "report")
        return cls(title=sec.string("title"), dpi=sec.integer("dpi", min=20, max=600),
                   panel_images=sec.integer("panel_images", min=1))


@dataclass(frozen=True)
class Figure:
    """A figure: file name under the figures folder and its caption; ``na``: why it was not drawn (no
    file then; the report shows the reason in its place)."""

    name: str
    caption: str
    na: str = ""
    appendix: bool = False   # drawn in the report's appendix (detail per model), not its body


APPENDIX = frozenset({"single_panel", "seen_through_masks", "class_masks", "filtered_accuracy", "heatmaps",
                      "faithfulness", "cascade"})
"""Figures of detail (per model or per image) that the report draws in its appendix."""


def make_figures(fig: Mapping, tables: Mapping[str, Sequence[Mapping]], folder: Path,
                 cfg: ReportConfig, claims: Sequence[Mapping] = ()) -> list[Figure]:
    """Render every figure into ``folder``; return them in report order with captions (the claims figure first,
    when ``claims`` are given)."""
    from . import plots  # matplotlib (0.3 s): imported by the report stage only, not by every stage's params check

    out: list[Figure] = []
    dpi = cfg.dpi
    names = fig["class_names"]

    na: Mapping[str, str] = fig.get("na", {})

    def add(name: str, caption: str, draw: Callable[[Path], Path]) -> None:
        appendix = name in APPENDIX
        if name in na:  # nothing to draw: the report says why instead
            (folder / f"{name}.png").unlink(missing_ok=True)
            out.append(Figure(f"{name}.png", caption, na[name], appendix))
            return
        draw(folder / f"{name}.png")
        out.append(Figure(f"{name}.png", caption, appendix=appendix))

    def series_na(name: str) -> dict[str, str]:
        """``{series: reason}`` of the series or panels of figure ``name`` that have no data."""
        return {k.split("/", 1)[1]: v for k, v in na.items() if k.startswith(f"{name}/")}

    if claims:
        from . import claims_figure
        add("claims", "Every claim at a glance: one panel per claim, one row per part of its verdict (secondary lines "
            "are in the Claims section): the pooled estimate with its 95% t interval over training seeds, coloured "
            "by the part's verdict; black line: the part's threshold; shaded: its negligible band (threshold +- "
            "delta); small dots: each seed's own estimate. Units are the part's own (accuracy ratio, energy "
            "difference, share, correlation).", lambda p: claims_figure.draw(claims, p, dpi))
    add("mask_grid_dataset", "Dataset masks of every model (top, mean over seeds; shifted, zero frequency in the "
        "centre) and their differences from the standard model's mask X - N (bottom; red: X keeps more).",
        lambda p: plots.mask_grid(fig["dataset_masks"], p, "Dataset masks", dpi))
    add("mask_grid_single", "Mean single-image mask of every model over its images (top) and X - N (bottom); "
        "the same test images for every model of a seed.",
        lambda p: plots.mask_grid(fig["single_mean_masks"], p, "Mean single-image masks", dpi,
                                  absent="no finite single-image mask"))
    add("accuracy", "Clean vs dataset-masked accuracy per model on the val images the mask was fitted on and on "
        "held-out test images, re-scored by the aggregate stage (bars: 95% bootstrap intervals over images).",
        lambda p: plots.accuracy_bars(fig["accuracy"], p, dpi))
    from . import budget_report
    pooled = [r for r in tables.get("budget_accuracy_pooled") or [] if r.get("budget") not in (None, "")]
    if pooled:
        add("budget_accuracy", "Accuracy against budget: held-out masked / clean test accuracy of each variant's "
            "budgeted masks (solid; a budget is the mask's full-plane mean) and of a centred low-pass disc of the same "
            "budget (dashed), mean over seeds with its 95% t interval over seeds (shaded); dotted: claim 1's "
            "threshold, the masks' rule.",
            lambda p: budget_report.draw_accuracy(pooled, p, dpi, budget_report.rule_level(claims)))
        add("budget_bands", "Band energy X - N at equal budget: the ladder's dataset masks of each variant minus N's "
            "at the same budget, mean over the low (solid) and mid (dashed) thirds of the rings, mean over seeds with "
            "95% t intervals over seeds (bars). Raw energies (mask normalised by its Frobenius norm); mask size "
            "cannot produce these differences.",
            lambda p: budget_report.draw_bands([r for r in tables.get("budget_bands") or []
                                                if r.get("budget") not in (None, "")], p, dpi))
    for profile, unit, claims_of in (("radial", "ring centre (cycles / image)", "claims 2 and 4"),
                                     ("angular", "wedge centre (degrees)", "claim 3")):
        add(f"{profile}_differences", f"{profile.capitalize()} band energy of each variant's masks minus the "
            "standard model's, one panel per variant: mean paired difference over the dataset masks' folds with its "
            "95% interval over "
            "seeds (solid, shaded), the same size-matched (dash-dot, crosses: each mask's energy minus its radial "
            f"twin's, the same values laid out by radius; {claims_of}'s verdict) and over single-image masks "
            "(dashed, interval dotted). Energies: mask normalised by its Frobenius norm, L2 norm inside each band.",
            lambda p, profile=profile, unit=unit: plots.band_differences(plots.BandDifferences(
                fig[f"{profile}_centres"], fig["dataset_diffs"][profile], fig["diffs"][profile],
                fig.get("excess_diffs", {}).get(profile) or {}, series_na(f"{profile}_differences_dataset"),
                series_na(f"{profile}_differences")), unit, p, f"{profile} band energy, X - N", dpi))
    add("single_panel", "Single-image analysis with the standard model N: x and its PGD version x_A (titles: "
        "N's prediction), N's masks of both, the images seen through them, the binary complement 1 - 1[M > 0] "
        "of x's mask and x seen through it.",
        lambda p: plots.single_panel(fig["panel"], names, p, cfg.panel_images, dpi))
    add("seen_through_masks", "The same test images seen through each model's own single-image mask (pixel "
        "units, each image min-max scaled): what the network needs to keep its prediction.",
        lambda p: plots.seen_through_masks(fig["through"], p, cfg.panel_images, dpi))
    capped = frozenset((r["model"], r["mask"].removeprefix("class:")) for r in tables.get("mask_fits") or []
                       if str(r.get("mask", "")).startswith("class:") and str(r.get("converged")) == "False")
    first: dict[str, str] = {}     # the figure's row of a variant is its first seed's model (figdata.figure_data)
    for m in fig.get("models", []):
        first.setdefault(variant_seed(m)[0], m)
    capped = frozenset((v, c) for v, m in first.items() for model, c in capped if model == m)
    add("class_masks", "Class masks: one dataset mask per class and model (first seed; shifted, zero frequency in "
        "the centre; colour: mask value in [0, 1]); a red frame marks a mask whose fit did not converge (hit its step "
        "cap, or found nothing sparser than the identity).",
        lambda p: plots.class_masks(fig["class_masks"], names, p, dpi, capped))
    add("band_shares", "Per band, the share of images whose mask (variant X) has more energy than the standard "
        "model's mask on the same image (raw energies), with 95% t intervals over seeds (over images with one seed); "
        "0.5 dashed.",
        lambda p: plots.band_shares((fig["radial_centres"], fig["angular_centres"]), fig["shares"], p, dpi,
                                    {q: series_na(f"band_shares_{q}") for q in ("radial", "angular")}))
    probe_model = next((m for m in fig["models"] if m in fig["probe"]), None)
    embedding = {**fig["probe"][probe_model], "model": probe_model} if probe_model else None
    add("probe", "Linear probe (multinomial logistic regression) from the flattened single-image masks to the "
        "true class, cross-validated (every probed image a test image once): accuracy with true vs permuted labels "
        "(95% bootstrap intervals over images; chance dashed), and a 2-D PCA embedding of the probe's out-of-fold "
        "outputs (logits) on every probed image.",
        lambda p: plots.probe_results(tables["probe"], embedding, names, p, dpi))
    add("filtered_accuracy", "Test accuracy on ideal low-pass (left) and high-pass (right; zero frequency kept) "
        "filtered images vs the cut-off radius, one line per variant (the mean of its seeds' models).",
        lambda p: plots.filtered_accuracy(fig["filtered"]["radii"],
                                          {m: c for m, c in fig["filtered"].items() if m != "radii"}, p, dpi))
    add("heatmaps", "Fourier heat maps (Yin et al. 2019): test error when one Fourier basis image of fixed L2 "
        "norm is added, per frequency (low frequencies in the centre); rho = Spearman correlation with the "
        "model's dataset mask at the same frequencies.",
        lambda p: plots.heatmaps(fig["heatmaps"]["freqs"], {m: h for m, h in fig["heatmaps"].items() if m != "freqs"},
                                 p, dpi, series_na("heatmaps")))
    add("faithfulness", "Faithfulness curves (controls stage): each model's accuracy when only the first share of "
        "the frequency plane is kept (insertion; higher = the order finds what matters sooner) or removed (deletion; "
        "lower = better), frequencies ranked by the mask's value, by radius (low first), at random, by the Fourier "
        "heat map's sensitivity and by the gradient of the loss w.r.t. an all-ones mask. Dataset mask: first "
        "test images vs their labels; single-image masks: each image's own order, agreement with its target. "
        "One row per variant: the mean curve of its seeds' models; their areas with intervals are in the Controls "
        "section's faithfulness table.",
        lambda p: plots.faithfulness(fig["faithfulness"], p, dpi, series_na("faithfulness")))
    add("cascade", "Cascading randomisation (claim 11; Adebayo et al. 2018, top-down): rank correlation of the radial "
        "band energies of the standard model's single-image masks with those of the same network after its top k "
        "layer groups were re-initialised (BatchNorm recalibrated), k = 1 .. all, with its nested 95% interval over "
        "seeds and images; the band: two trained seeds of the recipe on the same images. A curve below the band "
        "means the masks depend on the weights re-initialised so far.",
        lambda p: plots.cascade(fig["cascade"], p, dpi))
    return out
