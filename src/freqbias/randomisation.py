"""Claim 11 in the aggregate stage: do the masks depend on the trained weights? (docs/study.md, "Controls").

The similarity of two masks of one image is the Spearman rank correlation of their radial band energies
(:func:`similarity`). Its yardstick is not a fixed number but the similarity of two independently trained networks
of the same recipe on the same images: the standard model of seed s' has its own masks on its selected images
(masks stage), and the standard model of the seed before it (cyclically) fitted its masks on those images too
(yardstick stage: :func:`freqbias.stage_yardstick.yardstick`). The masks depend on the trained weights when a
re-initialised network's masks (``randomised``, BatchNorm recalibrated) are less similar to the trained masks than the
other seed's are: the paired difference per image, seed-to-seed minus re-initialised, with a nested interval over
seeds, then images (:func:`freqbias.bootstrap.nested_interval`). With one seed there is no yardstick and the claim
is not measured.

The cascade (Adebayo et al. 2018's cascading randomisation, top-down) re-initialises the top k layer groups,
k = 1 .. L; its curve (similarity to the trained masks against k, beside the seed-to-seed band) shows from which
layer down the masks stop resembling the trained network's.
Controls stage: :func:`freqbias.stage_controls.randomisation`.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from .artifacts import ControlsData, YardstickData
from .bands import band_profiles
from .baselines import average_ranks
from .bootstrap import Estimate, defined_estimate
from .claims import control_row, judge
from .na import NA
from .parametrisation import Parametrisation
from .runs import AggregateConfig, Run
from .verdicts import ABOVE  # every control claim: the difference is > 0

ONE_SEED = "one trained seed: no second network of the recipe to compare with (train.seeds lists one)"
NOT_FITTED = "the randomisation check was not fitted (controls.randomised: false, or no single-image masks)"


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Spearman rank correlation of (n, k) arrays (ties share their average rank); NaN where a row is
    constant or not finite."""
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a, b)):
        if np.isfinite(x).all() and np.isfinite(y).all():
            rx, ry = average_ranks(x), average_ranks(y)
            rx, ry = rx - rx.mean(), ry - ry.mean()
            den = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
            out[i] = float((rx * ry).sum()) / den if den > 0 else math.nan
    return out


def similarity(a: torch.Tensor, b: torch.Tensor, par: Parametrisation, n_radial: int) -> np.ndarray:
    """Per image, the rank correlation of the radial band energies of masks ``a`` and ``b`` (n, *shape), both in
    parametrisation ``par`` (n,); NaN where either mask has no energies (all zero or not finite)."""
    radial_a, _ = band_profiles(a.double(), par, n_radial, 2)
    radial_b, _ = band_profiles(b.double(), par, n_radial, 2)
    return spearman(radial_a.numpy(), radial_b.numpy())


def _estimate(groups: Sequence[np.ndarray], cfg: AggregateConfig, empty: str) -> Estimate:
    return defined_estimate([np.asarray(g, dtype=np.float64)[:, None] for g in groups], lambda m: float(m[0]),
                            alpha=cfg.alpha, empty=empty, undefined="no image with band energies in both masks")


def _cells(est: Estimate) -> dict:
    return {"value": est[0], "lo": est[1], "hi": est[2]}


def randomisation_results(run: Run, controls: Mapping[str, ControlsData | YardstickData]
                          ) -> tuple[dict[str, list[dict]], dict, dict]:
    """``(tables, claim 11 row, figure data)`` for the models of ``run`` (:class:`freqbias.runs.Run`) from the
    standard models' controls (``controls``: model name -> the controls stage's data, and ``yardstick-s<seed>``
    -> the yardstick stage's).

    Tables: ``randomisation`` (per model and image: the rank correlation with the re-initialised model's mask,
    and for N with another seed's), ``randomisation_cascade`` (per cascade step: the similarity to the trained
    masks with its interval, and the seed-to-seed row). Figure data ``cascade``: the curve, or the reason it is
    n/a."""
    cfg, seeds = run.cfg, run.seeds
    std = {s: c for s in seeds if isinstance(c := controls.get(run.by["N", s].name), ControlsData)}
    fitted = [s for s in std if std[s].randomised is not None]
    rows: list[dict] = []
    rand: dict[str, list[np.ndarray]] = {v: [] for v in run.variants}
    yard: list[np.ndarray] = []
    paired_n: dict[str, list[np.ndarray]] = {v: [] for v in run.variants}
    for s in fitted:
        n_rec, r = run.by["N", s], std[s].randomised
        sims = {v: similarity(run.by[v, s].single.masks, r["masks"], n_rec.par, cfg.radial_bands)
                for v in run.variants}
        for v, sim in sims.items():
            rand[v].append(sim)
            rows += [{"model": run.by[v, s].name, "image": int(i), "compared_with": "re-initialised",
                      "rank_correlation": float(c)} for i, c in zip(r["index"].tolist(), sim)]
        partner = next((c for c in controls.values() if isinstance(c, YardstickData) and c.fitted and c.seed == s),
                       None)
        if partner is None or not torch.equal(partner.index, n_rec.single.index):
            continue
        seed_sim = similarity(n_rec.single.masks, partner.masks, n_rec.par, cfg.radial_bands)
        yard.append(seed_sim)
        rows += [{"model": n_rec.name, "image": int(i), "compared_with": "another trained seed",
                  "rank_correlation": float(c)} for i, c in zip(n_rec.single.index.tolist(), seed_sim)]
        for v in run.variants:
            paired_n[v].append(seed_sim - sims[v])
    why = NOT_FITTED if not fitted else ONE_SEED if len(seeds) < 2 else (
        "no standard model's masks on another seed's images (yardstick stage)")
    parts = [judge("N: seed-to-seed - re-initialised rank correlation (paired per image)",
                   _estimate(paired_n["N"], cfg, why) if yard else Estimate(NA(why), NA(why), NA(why)), 0.0, ABOVE)]
    secondary = [judge(f"{v}: N seed-to-seed - {v} re-initialised rank correlation", _estimate(paired_n[v], cfg, why)
                       if yard else Estimate(NA(why), NA(why), NA(why)), 0.0, ABOVE) for v in run.others]
    cascade_rows, figure = _cascade(run, std, fitted, yard, cfg)
    stopped = [float(std[s].randomised["converged"].float().mean()) for s in fitted]
    modal = [std[s].randomised["modal_share"] for s in fitted]
    info = {"seed_to_seed": _mean_or_na(yard, why), "re_initialised": _mean_or_na(rand.get("N", []), NOT_FITTED),
            "re_initialised_modal_class_share": float(np.mean(modal)) if modal else f"n/a ({NOT_FITTED})",
            "randomised_stopped_by_rule": float(np.mean(stopped)) if stopped else f"n/a ({NOT_FITTED})",
            "yardstick_stopped_by_rule": _yardstick_stopped(controls, why)}
    capped = (f"{1 - float(np.mean(stopped)):.0%} of the re-initialised model's masks hit the step cap"
              if stopped and float(np.mean(stopped)) < 1 else "")
    claim = control_row("randomisation", parts, info=info, missing=capped, secondary=secondary)
    return {"randomisation": rows, "randomisation_cascade": cascade_rows}, claim, figure


def _yardstick_stopped(controls: Mapping[str, ControlsData | YardstickData], why: str) -> float | str:
    """Share of the yardstick stage's masks that stopped by their rule (not at the step cap), over its fits."""
    done = [c.converged.float() for c in controls.values() if isinstance(c, YardstickData) and c.fitted]
    return float(torch.cat(done).mean()) if done else f"n/a ({why})"


def _mean_or_na(groups: Sequence[np.ndarray], why: str) -> float | str:
    values = [g[np.isfinite(g)] for g in groups]
    return float(np.mean([v.mean() for v in values if len(v)])) if any(len(v) for v in values) else f"n/a ({why})"


def _cascade(run: Run, std: Mapping[int, ControlsData], fitted: Sequence[int], yard: Sequence[np.ndarray],
             cfg: AggregateConfig) -> tuple[list[dict], dict]:
    """The cascade's table rows and figure data: per step k (top k layer groups re-initialised), the similarity
    of the step's masks to the trained masks on the cascade's images, with a nested interval over seeds and
    images; the last step is the fully re-initialised model (its masks on the same images)."""
    have = [s for s in fitted if std[s].cascade is not None]
    if not have:
        why = NOT_FITTED if not fitted else "no cascade fitted (controls.cascade_n: 0, or a single layer)"
        return [{"step": "", "reason": why}], {"na": why}
    layers = std[have[0]].cascade["layers"]
    per_step: list[list[np.ndarray]] = [[] for _ in layers]
    for s in have:
        rec, c = run.by["N", s], std[s]
        m = len(c.cascade["index"])
        trained = rec.single.masks[:m]
        steps = [st["masks"] for st in c.cascade["steps"]] + [c.randomised["masks"][:m]]
        for k, masks in enumerate(steps):
            per_step[k].append(similarity(trained, masks, rec.par, cfg.radial_bands))
    rows, est = [], []
    for k, groups in enumerate(per_step):
        e = _estimate(groups, cfg, "no cascade images")
        est.append(e)
        rows.append({"step": k + 1, "re_initialised": ", ".join(layers[:k + 1]), **_cells(e),
                     "n_images": int(sum(np.isfinite(g).sum() for g in groups)), "seeds": len(groups)})
    ref = _estimate(yard, cfg, ONE_SEED) if yard else Estimate(NA(ONE_SEED), NA(ONE_SEED), NA(ONE_SEED))
    rows.append({"step": "seed-to-seed", "re_initialised": "none (another trained seed of N)", **_cells(ref),
                 "n_images": int(sum(np.isfinite(g).sum() for g in yard)), "seeds": len(yard)})
    figure = {"layers": list(layers), "value": [float(e[0]) for e in est], "lo": [float(e[1]) for e in est],
              "hi": [float(e[2]) for e in est],
              "yardstick": [float(x) for x in ref] if not isinstance(ref[0], NA) else str(ref[0])}
    return rows, figure
