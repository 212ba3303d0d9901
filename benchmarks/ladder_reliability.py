"""Test-retest reliability of the budget ladder: the budget a network needs for a share of its accuracy, and the masks
compared at equal budget.

The sparsest mask that keeps 0.99 of the accuracy is not a reliable size (docs/budget_reliability.md): near 0.99 the
accuracy-against-budget curve is flat, so a few images decide where it crosses. This measures the two quantities the
report reads from the ladder instead. For each ``--models`` checkpoint of the workspace (``models/<name>.pt``), with
the budgets stage's groups (the masks stage's fit images and folds, grouped with the model's seed) and settings
(params.yaml), the ladder is refitted twice, with two minibatch orders (fit seeds ``--seeds``), and scored on the same
held-out images:

- **budget needed**: the budget at which held-out masked / clean accuracy first reaches ``aggregate.budget_needed``
  (:func:`freqbias.budget_results.budget_needed`), in each refit; the issue's tolerance: 0.03 absolute or 10 %;
- **equal-budget masks**: at the claims' budget (``budgets.claims``), the Pearson correlation of the two refits'
  radial band profiles (``aggregate.radial_bands`` rings) for the dataset mask and for each fold mask (tolerance >=
  0.95), and the fold masks' low-third energy spread within a refit.

    python benchmarks/ladder_reliability.py [--models N-s0 A-s0] [--seeds 0 1] [--out docs/ladder_reliability.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from budget_reliability import emit, same_size  # noqa: E402  (this folder: the tolerance and the page writer)
from freqbias.band_geometry import band_profiles, band_thirds  # noqa: E402
from freqbias.budget_curve import LadderConfig, budget_ladder  # noqa: E402
from freqbias.budget_results import budget_needed  # noqa: E402
from freqbias.config import load_params  # noqa: E402
from freqbias.data import load_splits, to_float  # noqa: E402
from freqbias.mask_groups import shared_groups  # noqa: E402
from freqbias.models import load_checkpoint  # noqa: E402
from freqbias.runs import AggregateConfig  # noqa: E402
from freqbias.stage_budgets import LADDER_STEPS  # noqa: E402
from freqbias.stage_masks import MasksConfig  # noqa: E402
from freqbias.textfmt import markdown_table  # noqa: E402


def _fmt(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else "n/a"


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two profiles."""
    return float(np.corrcoef(a, b)[0, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["N-s0", "A-s0"])
    ap.add_argument("--seeds", nargs=2, type=int, default=[0, 1])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    params = load_params(REPO / "params.yaml")
    cfg, plan = MasksConfig.from_params(params), LadderConfig.from_params(params)
    fit_cfg = dataclasses.replace(cfg.budget.fit, max_steps=LADDER_STEPS * cfg.budget.fit.max_steps)
    splits = load_splits("val", "test", root=REPO)
    (x_val, y_val), (x_te, y_te) = splits["val"], splits["test"]
    rows, started = [], time.perf_counter()
    for name in args.models:
        model, meta = load_checkpoint(REPO / "models" / f"{name}.pt", map_location="cpu")
        z, z_te = model.normalize(to_float(x_val)), model.normalize(to_float(x_te))
        agg = AggregateConfig.from_params(params, tuple(z.shape[-2:]))
        par = cfg.parametrisation(*z.shape[-2:])
        n_fit = min(cfg.dataset_fit_n or len(y_val), len(y_val))
        groups = shared_groups(y_val, n_fit, cfg.folds, cfg.class_fit_n, meta["num_classes"], int(meta["seed"]))
        t0 = time.perf_counter()
        fits = [budget_ladder(model.net, (z, y_val, groups.dataset), groups.folds, (z_te, y_te), fit_cfg, plan, s,
                              f"{name} ladder s{s}") for s in args.seeds]
        needed = [budget_needed([r["budget"] for r in f["rows"]], [r["masked_ratio"] for r in f["rows"]],
                                agg.budget_needed)[0] for f in fits]
        at = plan.ladder.index(plan.claims)

        def radial(masks: torch.Tensor) -> np.ndarray:
            return np.stack([band_profiles(m.double(), par, agg.radial_bands, agg.angular_bands)[0].numpy()
                             for m in masks])

        data = [radial(f["masks"][at:at + 1]) for f in fits]
        folds = [radial(f["folds"]) for f in fits]
        low = [f[:, band_thirds(agg.radial_bands)[0]].mean(-1) for f in folds]   # (F,) per refit
        a, b = needed
        rows.append([name, f"{agg.budget_needed:g}", _fmt(a), _fmt(b), _fmt(abs(a - b)),
                     "yes" if same_size(a, b) else "no",
                     f"{corr(data[0][0], data[1][0]):.3f}",
                     " ".join(f"{corr(x, y):.2f}" for x, y in zip(folds[0], folds[1])),
                     " / ".join(f"{v.std(ddof=1):.3f}" for v in low),
                     " / ".join(" ".join(_fmt(r["masked_ratio"]) for r in f["rows"]) for f in fits),
                     f"{time.perf_counter() - t0:.0f}"])
        print(" | ".join(rows[-1]), flush=True)
    ladder = " ".join(f"{b:g}" for b in plan.ladder)
    table = markdown_table(["model", "share", f"budget needed, fit seed {args.seeds[0]}",
                            f"budget needed, fit seed {args.seeds[1]}", "difference", "within 0.03 or 10%",
                            f"dataset mask at {plan.claims:g}: radial profile correlation",
                            f"fold masks at {plan.claims:g}: radial profile correlation (each fold)",
                            "fold masks' low-third energy sd (each refit)",
                            f"held-out masked / clean at {ladder} (each refit)", "seconds"], rows)
    text = ("# Test-retest reliability of the budget ladder\n\nMeasured by `python benchmarks/ladder_reliability.py "
            f"--models {' '.join(args.models)} --seeds {' '.join(map(str, args.seeds))}` on the committed run's models "
            f"({time.perf_counter() - started:.0f} s, {torch.get_num_threads()} threads). The two refits of each "
            "model's ladder differ only in their minibatch order (the fit images, folds, settings and held-out images "
            "are the budgets stage's). Budget needed: the budget at which held-out masked / clean accuracy first "
            "reaches the share (`aggregate.budget_needed`), interpolated in log-budget on the ladder.\n\n"
            + table + "\n")
    return emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
