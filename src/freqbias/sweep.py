"""A sweep report from finished DVC experiments: each headline statistic against the swept param.

Usage (README "Sweeps")::

    python -m freqbias.sweep --param train.variant.A.eps --out reports/sweeps/eps [--exp-json saved.json]

Reads ``dvc exp show --json`` (run here, or a saved output) and writes ``<out>/sweep.md`` (a markdown table)
and ``<out>/sweep.png`` (one panel per statistic, one line per series, intervals as error bars). Every
finished experiment and baseline commit is a point (the workspace row is skipped: it repeats one of them).
Statistics, where the experiment has them: claim 2's A - N energy over the low and the mid rings of the fold
masks (``results/metrics.json``: ``claim_2`` and ``claim_2.part_2``, with their intervals over seeds, then
folds), each variant's dataset mask sparsity (``metrics/masks/<model>.json`` ``dataset_mask_mean``), clean and
robust test accuracy (``metrics/evaluate/<model>.json`` ``test_acc`` and ``pgd_acc``, at each of
``train.eval.eps``: the same attacks in every experiment), each the mean over the variant's seeds with a t interval
over them (none with one seed), and the controls' claims 9-11: N's headline and the part of the swept variant
(``train.variant.<V>.*``: V; ``--variant`` for another param).
A param no experiment varies, or no finished experiment, ends with one line (status 2).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .bootstrap import jackknife_t
from .claim_registry import CLAIMS as REGISTRY
from .claim_registry import by_key
from .io import atomic_path

COLUMNS = ["experiment", "rev", "value", "statistic", "series", "estimate", "lo", "hi"]
_RADIAL = by_key("radial")
CLAIMS = {_RADIAL.metric: "A - N energy, low rings (fold masks)",
          f"{_RADIAL.metric}.part_2": "A - N energy, mid rings (fold masks)"}
CONTROLS = {c.metric: f"claim {c.number}: {c.title}" for c in REGISTRY if c.control}  # headline N; parts per variant
MODEL_STATS = {("masks", "dataset_mask_mean"): "dataset mask sparsity (mean value)",
               ("evaluate", "test_acc"): "clean test accuracy"}
ALPHA = 0.05  # the per-variant intervals over seeds
ROBUST = "robust test accuracy, PGD eps {eps} (train.eval)"  # one statistic per eval eps (metrics/evaluate pgd_acc)


class SweepError(Exception):
    """Nothing to report: the message is the one line the command prints."""


def experiments(rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(name, rev, data) of every finished baseline commit and experiment in ``dvc exp show --json``'s rows."""
    seen = set()
    for row in rows:
        revs = [(row.get("name") or row["rev"][:7], row)] + [
            (exp.get("name") or r["rev"][:7], r) for exp in row.get("experiments") or [] for r in exp.get("revs", [])]
        for name, r in revs:
            data = r.get("data") or {}
            rev = data.get("rev") or r.get("rev")
            if rev == "workspace" or rev in seen or r.get("error") or not data.get("metrics"):
                continue
            seen.add(rev)
            yield name, rev, data


def _get(tree: Any, dotted: str) -> Any:
    """``tree["a"]["b"]...`` for ``dotted`` "a.b..." (None when a key is missing)."""
    for key in dotted.split("."):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def swept_variant(param: str) -> str | None:
    """The variant whose own setting ``param`` is (``train.variant.<V>.<key>`` -> V), else None."""
    parts = param.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["train", "variant"] else None


def _control_parts(claim: Mapping[str, Any], variant: str | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(series, part) of a control claim: its headline (N) and the parts and secondary parts about ``variant``."""
    yield "N", claim
    for key, p in claim.items():
        if key.startswith(("part_", "secondary_")) and isinstance(p, Mapping) and variant not in (None, "N") \
                and p.get("variant") == variant:
            yield variant, p


def _over_seeds(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean of per-seed values with a t interval over them (None, None with one seed)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None, None
    _, lo, hi = jackknife_t(np.asarray(values, dtype=np.float64), None, ALPHA)
    return mean, float(lo), float(hi)


def statistics(metrics: Mapping[str, Any], variant: str | None = None
               ) -> Iterator[tuple[str, str, float | None, float | None, float | None]]:
    """(statistic, series, estimate, lo, hi) of one experiment's metrics (``{file: {"data": {...}}}``); per-model
    statistics pooled over each variant's seeds (models ``<V>-s<seed>``); ``variant``: the swept one."""
    claims = (metrics.get("results/metrics.json") or {}).get("data") or {}
    for key, label in CLAIMS.items():
        c = _get(claims, key)
        if isinstance(c, Mapping) and _number(c.get("estimate")) is not None:
            yield label, "A - N", *(_number(c.get(k)) for k in ("estimate", "lo", "hi"))
    for key, label in CONTROLS.items():
        c = _get(claims, key)
        for series, p in _control_parts(c, variant) if isinstance(c, Mapping) else ():
            if _number(p.get("estimate")) is not None:
                yield label, series, *(_number(p.get(k)) for k in ("estimate", "lo", "hi"))
    pooled: dict[tuple[str, str], list[float]] = {}
    for path in sorted(metrics):
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != "metrics" or not path.endswith(".json"):
            continue
        data, model = (metrics[path] or {}).get("data") or {}, parts[2][:-5]
        series = model.rsplit("-s", 1)[0] if re.fullmatch(r".+-s\d+", model) else model
        for (stage, key), label in MODEL_STATS.items():
            if parts[1] == stage and _number(data.get(key)) is not None:
                pooled.setdefault((label, series), []).append(_number(data[key]))
        if parts[1] == "evaluate" and isinstance(data.get("pgd_acc"), Mapping):
            for eps, acc in data["pgd_acc"].items():
                if _number(acc) is not None:
                    pooled.setdefault((ROBUST.format(eps=eps), series), []).append(_number(acc))
    for (label, series), values in pooled.items():
        yield label, series, *_over_seeds(values)


def sweep_frame(rows: Sequence[Mapping[str, Any]], param: str, variant: str | None = None) -> pd.DataFrame:
    """One row per experiment, statistic and series (:data:`COLUMNS`), sorted by the swept ``value``; SweepError
    when there is no finished experiment or ``param`` takes fewer than two values among them. ``variant``: whose
    parts of claims 9-11 to show beside N's (default: :func:`swept_variant` of ``param``)."""
    variant = variant or swept_variant(param)
    records = []
    found = list(experiments(rows))
    if not found:
        raise SweepError("no finished experiment in `dvc exp show --json` (run the sweep first: README 'Sweeps')")
    values = {}
    for name, rev, data in found:
        value = _get((data.get("params") or {}).get("params.yaml", {}).get("data", {}), param)
        values[rev] = value
        for stat in statistics(data.get("metrics") or {}, variant):
            records.append({"experiment": name, "rev": rev[:7], "value": value, **dict(zip(COLUMNS[3:], stat))})
    distinct = {json.dumps(v) for v in values.values()}
    if all(v is None for v in values.values()):
        raise SweepError(f"param {param}: not in params.yaml of any of the {len(found)} experiments")
    if len(distinct) < 2:
        raise SweepError(f"param {param}: no experiment varies it (all {len(found)} have {next(iter(distinct))})")
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    return frame.sort_values(["statistic", "series", "value", "experiment"], kind="stable").reset_index(drop=True)


def _cell(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(frame: pd.DataFrame, param: str) -> str:
    """The sweep as one markdown table per statistic (rows: experiments by swept value; interval where one)."""
    out = [f"# Sweep over `{param}`", "", f"{frame['rev'].nunique()} experiments; interval: a claim's 1 - alpha "
           "interval over seeds, then folds or images (results/metrics.json); per variant: the mean over its seeds "
           f"with a t interval over them ({1 - ALPHA:.0%}); blank with one seed.", ""]
    for stat, group in frame.groupby("statistic", sort=False):
        out += [f"## {stat}", "", f"| {param} | series | estimate | interval | experiment |", "|---|---|---|---|---|"]
        for _, r in group.iterrows():
            interval = f"[{_cell(r['lo'])}, {_cell(r['hi'])}]" if pd.notna(r["lo"]) else ""
            out.append(f"| {_cell(r['value'])} | {r['series']} | {_cell(r['estimate'])} | {interval} | "
                       f"{r['experiment']} ({r['rev']}) |")
        out.append("")
    return "\n".join(out)


def figure(frame: pd.DataFrame, param: str, path: Path, dpi: int = 110) -> Path:
    """One panel per statistic: estimate against the swept value, one line per series, error bars lo..hi."""
    from .plots import _save, plt  # matplotlib on Agg, the report's atomic save

    stats = list(dict.fromkeys(frame["statistic"]))
    cols = min(3, len(stats))
    rows = -(-len(stats) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, stat in zip(axes.flat, stats):
        for series, g in frame[frame["statistic"] == stat].groupby("series", sort=True):
            x, y = pd.to_numeric(g["value"], errors="coerce"), g["estimate"].astype(float)
            err = None
            if g["lo"].notna().all():
                err = [(y - g["lo"].astype(float)).clip(lower=0), (g["hi"].astype(float) - y).clip(lower=0)]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, lw=1.2, label=series or None)
        if stat.startswith("A - N"):
            ax.axhline(0.0, color="gray", lw=0.6)
        ax.set_title(stat, fontsize=8)
        ax.set_xlabel(param, fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(stats):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path, dpi)


def write_report(frame: pd.DataFrame, param: str, out: Path) -> tuple[Path, Path]:
    """``<out>/sweep.md`` and ``<out>/sweep.png``."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / "sweep.md"
    with atomic_path(md) as tmp:
        Path(tmp).write_text(markdown(frame, param) + "\n")
    return md, figure(frame, param, out / "sweep.png")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freqbias.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--param", required=True, help="the swept param, dotted (e.g. train.variant.A.eps)")
    parser.add_argument("--out", required=True, type=Path, help="folder of sweep.md and sweep.png")
    parser.add_argument("--variant", help="whose parts of claims 9-11 to show (default: V of train.variant.V.*)")
    parser.add_argument("--exp-json", type=Path, help="a saved `dvc exp show --json` (default: run it here)")
    args = parser.parse_args(argv)
    try:
        if args.exp_json:
            text = args.exp_json.read_text()
        else:
            proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
            if proc.returncode:
                raise SweepError(f"dvc exp show failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            text = proc.stdout
        md, png = write_report(sweep_frame(json.loads(text), args.param, args.variant), args.param, args.out)
    except (SweepError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
