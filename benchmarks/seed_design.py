"""Seeds against images: how wide a claim's interval gets for what a design costs, from a finished run's own numbers.

The default run's design (``train.seeds``, ``masks.select.n_images``, ``masks.dataset.*`` sizes) is a trade: every
seed trains six networks and fits all their masks; within a seed, more folds or images only shrink the part of the
variance that lives inside one network. This script reads a finished run with at least 2 seeds and, for every claim
part with per-seed estimates (``results/claims.json``), splits the variance of a seed's estimate into

- within: ``w = mean_s se_s^2``, se_s the standard error behind seed s's own t interval over its n_s folds or images
  (``(hi_s - lo_s) / (2 t_{n_s - 1})``);
- between: ``b = max(0, var_s(e_s) - w)``, the spread of the per-seed estimates beyond what ``w`` explains;

and predicts the half-width of the claim's top-level t interval for S seeds with r times the run's per-seed sample
sizes: ``h(S, r) = t_{S-1} sqrt((b + w / r) / S)``. Its cost is ``S (train + r (masks + controls)) + aggregate``,
the per-seed stage seconds of the run (``results/summary.json``; the mask and control costs taken as proportional to
their sample sizes: optimistic for r < 1, since the shared fits' cost is set by their steps more than by their images
(fit_n 2,000 instead of 1,000 cost 40 s instead of 37 s per model on the default profile). Both are given relative
to the run's own design (S = its seeds, r = 1). The table is the median over parts of the width ratio; ``--out``
writes it as markdown (docs/seed_design.md is its committed output for the default run).

    python benchmarks/seed_design.py [--results results] [--out docs/seed_design.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from freqbias.bootstrap import t_quantile, variance_components  # noqa: E402

SEEDS = (2, 3, 4, 5, 6)
SCALES = (0.25, 0.5, 1.0, 2.0)
ALPHA = 0.05


def components(claims: list[dict]) -> list[dict]:
    """Per claim part with >= 2 per-seed estimates (each with its n): the statistic, between- and within-seed
    variance of a seed's estimate, and the part's seeds."""
    out = []
    for claim in claims:
        for p in claim.get("parts", []) + claim.get("secondary", []):
            seeds = [s for s in p.get("per_seed", []) if all(isinstance(s.get(k), (int, float)) and
                                                             math.isfinite(s[k]) for k in ("estimate", "lo", "hi"))]
            split = variance_components([(s["estimate"], s["lo"], s["hi"], s.get("n", 0)) for s in seeds], ALPHA)
            if split is None or sum(split) <= 0:  # constant in every seed (e.g. an agreement of 1): nothing to design
                continue
            out.append({"claim": claim["claim"], "statistic": p["statistic"], "seeds": len(seeds),
                        "between": split[0], "within": split[1]})
    return out


def half_width(b: float, w: float, seeds: int, scale: float) -> float:
    return t_quantile(1 - ALPHA / 2, seeds - 1) * math.sqrt((b + w / scale) / seeds)


def costs(summary: dict) -> dict[str, float]:
    """Per-seed stage seconds (train, masks + controls) and the aggregate's, at the run's measured peak."""
    s = len(summary["seeds"])
    return {"train": summary["train_seconds"] / s,
            "fits": (summary["masks_seconds"] + summary.get("controls_seconds", 0.0)) / s,
            "aggregate": sum(summary["aggregate_seconds"].values())}


def table(parts: list[dict], cost: dict[str, float], run_seeds: int) -> str:
    base_cost = run_seeds * (cost["train"] + cost["fits"]) + cost["aggregate"]
    lines = ["| seeds | per-seed sizes (x run's) | cost (x run's) | median interval width (x run's) | "
             "parts narrower than the run's |", "|---|---|---|---|---|"]
    for seeds in SEEDS:
        for scale in SCALES:
            c = (seeds * (cost["train"] + scale * cost["fits"]) + cost["aggregate"]) / base_cost
            ratios = [half_width(p["between"], p["within"], seeds, scale) /
                      half_width(p["between"], p["within"], run_seeds, 1.0)
                      for p in parts if half_width(p["between"], p["within"], run_seeds, 1.0) > 0]
            mark = " (the run)" if seeds == run_seeds and scale == 1.0 else ""
            lines.append(f"| {seeds}{mark} | {scale:g} | {c:.2f} | {np.median(ratios):.2f} | "
                         f"{np.mean(np.array(ratios) < 1):.0%} |")
    return "\n".join(lines)


def report(results: Path) -> str:
    claims = json.loads((results / "claims.json").read_text())
    summary = json.loads((results / "summary.json").read_text())
    parts = components(claims)
    if not parts:
        raise SystemExit("error: no claim part with per-seed intervals (the run needs >= 2 seeds)")
    cost = costs(summary)
    share = np.array([p["between"] / (p["between"] + p["within"]) for p in parts])
    rows = "\n".join(f"| {p['claim']} | {p['statistic']} | {math.sqrt(p['between']):.3g} | "
                     f"{math.sqrt(p['within']):.3g} |" for p in parts)
    return "\n".join([
        f"# Seeds against images: the design of the default run ({len(summary['seeds'])} seeds)", "",
        "Written by `python benchmarks/seed_design.py --out docs/seed_design.md` from the committed run "
        "(`results/claims.json`, `results/summary.json`).", "",
        f"Per-seed stage seconds of the run (fp32 matmul peak {summary.get('matmul_peak_gflops', 'n/a')} GFLOP/s): "
        f"train {cost['train']:.0f} s, masks and controls {cost['fits']:.0f} s; aggregate "
        f"{cost['aggregate']:.0f} s.", "",
        f"Over the {len(parts)} claim parts with per-seed intervals, the between-seed share of a seed's variance "
        f"(b / (b + w)) has median {np.median(share):.2f} (quartiles {np.quantile(share, 0.25):.2f}, "
        f"{np.quantile(share, 0.75):.2f}); {np.mean(share > 0.5):.0%} of the parts vary more between seeds than "
        "within one.", "",
        "Predicted width of the top-level 95 % interval and cost of other designs, relative to the run's (costs "
        "below r = 1 are optimistic: the shared mask fits are bound by their steps, not their images):", "",
        table(parts, cost, len(summary["seeds"])), "",
        "Per part: the standard deviation of a seed's estimate between seeds (sqrt b) and within one (sqrt w).", "",
        "| claim | statistic | between | within |", "|---|---|---|---|", rows, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, help="write the markdown here (default: print it)")
    args = parser.parse_args(argv)
    text = report(args.results)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
