"""The arrays the report's figures need (``results/figdata.pt``), gathered from the aggregate stage's
measurements: masks as SHIFTED full planes (zero frequency in the centre), band curves, accuracies,
probe embeddings, filtered accuracy and heat maps; pixels in [0, 1]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import torch

from .artifacts import ControlsData, YardstickData
from .bands import (
    BandStats,
    shifted_full,
)
from .baselines import heatmap_frequencies
from .bootstrap import Estimate
from .control_claims import NO_CONTROLS
from .fourier import binary_complement
from .measures import (
    ModelRecord,
    SeedImages,
    finite_masks,
    masked_pixels,
)
from .na import NA

if TYPE_CHECKING:
    from .runs import Run

from .na import NO_IMAGES
from .tables import to_tensor as _t


def figure_data(run: Run, img: SeedImages, outcomes: Mapping[str, Mapping[str, np.ndarray]],
                probes: Mapping[str, Sequence[dict | NA]], baselines: Mapping[str, dict], bands: BandStats,
                accuracy_rows: Sequence[Mapping]) -> dict:
    """Arrays the report's figures need, as tensors: masks as shifted full planes (dataset and mean
    single-image masks averaged over seeds; class masks and example images of the first seed), band
    curves (3, bands) = estimate / lo / hi, accuracies, probe embeddings, filtered accuracy, heat maps.
    What cannot be drawn is left out and ``na`` says why: ``na[figure]`` for a whole figure (named as in
    :func:`freqbias.stage_report.make_figures`), ``na["<figure>/<series>"]`` for one series or panel."""
    w, s0 = run.image_size[1], run.seeds[0]
    std_rec, adv_rec = run.by["N", s0], run.by["A", s0]
    na: dict[str, str] = {}
    k = min(run.cfg.figure_images, len(img.index))
    x, x_adv = img.x[:k], img.x_adv[:k]
    panel, through = {}, {"x": x.cpu()}
    if k == 0:
        na["single_panel"] = na["seen_through_masks"] = f"{NO_IMAGES} for seed {s0}"
    else:
        m_n, m_adv = std_rec.single.masks[:k], std_rec.single.masks_adv[:k]
        comp = binary_complement(m_n)
        with torch.no_grad():
            panel = {
                "x": x.cpu(), "x_adv": x_adv.cpu(), "mask": shifted_full(m_n, std_rec.par),
                "mask_adv": shifted_full(m_adv, std_rec.par),
                "mask_A": shifted_full(adv_rec.single.masks[:k], adv_rec.par),
                "masked_x": masked_pixels(std_rec.model, x, m_n, std_rec.par).cpu(),
                "masked_x_adv": masked_pixels(std_rec.model, x_adv, m_adv, std_rec.par).cpu(),
                "complement": shifted_full(comp, std_rec.par),
                "complement_x": masked_pixels(std_rec.model, x, comp, std_rec.par).cpu(),
                "y": img.y[:k].cpu(), "target": std_rec.single.target[:k],
                "target_adv": std_rec.single.target_adv[:k],
                "outcomes": {m: _t(outcomes[std_rec.name][m][:k]) for m in ("masked", "complement", "restored")},
            }
            through.update({f"seen_{v}": masked_pixels(run.by[v, s0].model, x, run.by[v, s0].single.masks[:k],
                                                       run.by[v, s0].par).cpu() for v in run.variants})

    def mean_over_seeds(get: Callable[[ModelRecord], torch.Tensor]) -> dict[str, torch.Tensor]:
        return {v: torch.stack([get(run.by[v, s]) for s in run.seeds]).mean(0) for v in run.variants}

    def single_mean(r: ModelRecord) -> torch.Tensor | None:
        """Mean over the images of one model's finite single-image masks (None when there is none)."""
        masks = r.single.masks[finite_masks(r.single.masks)]
        return shifted_full(masks, r.par).mean(0) if len(masks) else None

    single_means = {}
    for v in run.variants:
        per_seed = [m for s in run.seeds if (m := single_mean(run.by[v, s])) is not None]
        if per_seed:
            single_means[v] = torch.stack(per_seed).mean(0)
    if "N" not in single_means:
        na["mask_grid_single"] = "no finite single-image mask of the standard model N (0 images, or non-finite masks)"

    def curves(name: str, d: Mapping[str, Estimate]) -> dict[str, torch.Tensor]:
        out = {}
        for v, est in d.items():
            if isinstance(est[0], NA):
                na[f"{name}/{v}"] = est[0].reason
            else:
                out[v] = torch.stack([_t(a) for a in est])
        return out

    acc = {key: _t([float(row[key]) for row in accuracy_rows])
           for key in accuracy_rows[0] if key.startswith(("val_", "test_")) and not key.endswith("_n")}
    probe_data = {}
    for r in run.records:
        p = probes[r.variant][run.seeds.index(r.seed)]
        if isinstance(p, NA):
            na[f"probe/{r.name}"] = p.reason
        else:
            probe_data[r.name] = {"embedding": _t(p["embedding"]), "labels": torch.as_tensor(p["test_labels"]),
                                  "test_acc": p["test_acc"], "permuted_test_acc": p["permuted_test_acc"],
                                  "chance": p["chance"]}
    if not probe_data:  # no model could be probed: no figure, the reasons instead
        na["probe"] = ", ".join(f"{m}: {reason}" for m, reason in
                                ((k.split("/", 1)[1], v) for k, v in na.items() if k.startswith("probe/")))
    heat = {}
    for r in run.records:
        corr = baselines[r.name]["heatmap_corr"]
        heat[r.name] = {"map": _t(baselines[r.name]["heatmap"]), "corr": float(corr)}
        if isinstance(corr, NA):
            na[f"heatmaps/{r.name}"] = corr.reason
    return {
        "variants": run.variants, "seeds": run.seeds, "models": [r.name for r in run.records],
        "class_names": run.class_names, "radial_centres": _t(run.centres[0]), "angular_centres": _t(run.centres[1]),
        "dataset_masks": mean_over_seeds(lambda r: shifted_full(r.dataset_mask, r.par)),
        "single_mean_masks": single_means,
        "class_masks": {v: shifted_full(run.by[v, s0].class_masks, run.by[v, s0].par) for v in run.variants},
        "diffs": {p: curves(f"{p}_differences", d) for p, d in bands.diffs.items()},
        "dataset_diffs": {p: curves(f"{p}_differences_dataset", d) for p, d in bands.dataset_diffs.items()},
        "excess_diffs": {p: curves(f"{p}_differences_size_matched", d) for p, d in bands.excess_dataset_diffs.items()},
        "shares": {p: curves(f"band_shares_{p}", d) for p, d in bands.shares.items()},
        "accuracy": {"models": [row["model"] for row in accuracy_rows], **acc},
        "panel": panel, "through": through,
        "probe": probe_data,
        "filtered": {"radii": _t(run.cfg.filter_radii),
                     **{r.name: {"low": _t(baselines[r.name]["low"]), "high": _t(baselines[r.name]["high"])}
                        for r in run.records}},
        "heatmaps": {"freqs": heatmap_frequencies(w, run.cfg.heatmap.grid), **heat},
        "na": na,
    }


FAITH_SOURCES = ("dataset", "single")  # the controls stage's faithfulness sources (dataset mask, single-image masks)


def faithfulness_curves(controls: Mapping[str, ControlsData | YardstickData]) -> tuple[dict, dict[str, str]]:
    """The faithfulness figure's data from the controls stage's measurements per model name (``controls``, in
    report order): ``{"budgets": (B,) shares of the plane, model: {source: {order: {kind: (B,)}}}}`` with the mean
    insertion / deletion curves (:func:`freqbias.controls.faithfulness`), and the reasons for what is missing
    (``{"faithfulness": why}`` when no model has curves, ``{"faithfulness/<model>": why}`` per model)."""
    out: dict = {}
    na: dict[str, str] = {}
    for name, c in controls.items():
        faith = getattr(c, "faithfulness", None) or {}  # a YardstickData has none
        have = {s: faith[s]["curves"] for s in FAITH_SOURCES if s in faith}
        if not have:
            na[f"faithfulness/{name}"] = "no finite mask to order"
            continue
        out.setdefault("budgets", _t(faith["budgets"]))
        out[name] = {s: {o: {k: _t(v) for k, v in per.items()} for o, per in cur.items()} for s, cur in have.items()}
    if "budgets" not in out:
        na["faithfulness"] = NO_CONTROLS if not controls else "no model has a finite mask to order"
    return out, na
