"""Long-format tables for ``dvc plots`` (dvc.yaml's top-level ``plots:``), written under ``results/curves/``.

DVC's built-in templates colour by revision and file, not by a column, so every table here has a ``series``
column and the custom templates in ``.dvc/plots/`` (committed) colour by it: one file per plot, whatever
variants or models the run has. Line plots carry an interval in ``lo`` / ``hi`` where there is one (drawn
as a band; blank cells are left out). Tables:

- ``fold_radial_diff`` / ``fold_angular_diff``: X - N band energy of the dataset masks refitted on disjoint
  folds (the claims' headline masks, claims 2-4), interval over folds (and seeds);
- ``shares_radial``: share of images whose single-image mask has more energy than N's, per ring (claim 7);
- ``filtered``: low- and high-pass filtered test accuracy per model (no masks);
- ``training``: validation and train accuracy per epoch per model (``metrics/train/<model>.csv``);
- ``sparsity``: mean mask value per model of its dataset, fold, class and single-image masks (``mask_fits``);
- ``claims``: per part of every claim its margin, how many interval half-widths its estimate lies on the claimed
  side of its threshold (> 1: holds), coloured by verdict (the report's claims figure, :mod:`freqbias.claims_figure`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import paths
from .io import load_csv
from .na import NA

CurveRows = Mapping[str, Sequence[Mapping[str, Any]]]


def _number(v: Any) -> float | None:
    """A finite float, or None (an NA, a blank cell or a non-number)."""
    if isinstance(v, NA) or v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _long(curves: CurveRows, prefix: str, axis: str, y: str, lo: str | None, hi: str | None,
          label: str = "{} - N") -> list[dict]:
    """Rows ``{series, <axis>, value, lo, hi}`` of every ``<prefix>/<name>`` curve with a finite ``y``."""
    rows = []
    for key in sorted(k for k in curves if k.startswith(prefix + "/")):
        name = key.split("/", 1)[1]
        for row in curves[key]:
            value = _number(row.get(y))
            if value is None:
                continue
            band = {"lo": _number(row.get(lo)), "hi": _number(row.get(hi))} if lo and hi else {}
            rows.append({"series": label.format(name), axis: row[axis], "value": value,
                         **{k: ("" if v is None else v) for k, v in band.items()}})
    return rows


def sparsity_rows(fits: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Mean mask value per model and mask level (dataset, fold and class: mean over the level's masks; single:
    the single-image masks' mean), from the rows of ``mask_fits.csv``."""
    levels: dict[tuple[str, str], list[float]] = {}
    for row in fits:
        level = "single" if str(row["mask"]).startswith("single") else str(row["mask"]).split(":")[0]
        value = _number(row.get("mean"))
        if value is not None:
            levels.setdefault((level, str(row["model"])), []).append(value)
    order = {"dataset": 0, "fold": 1, "class": 2, "single": 3}
    return [{"series": f"{level} masks", "model": model, "mean": sum(v) / len(v)}
            for (level, model), v in sorted(levels.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1]))]


def training_rows(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict]:
    """Per model and epoch: ``{series: model, epoch, val_acc, train_acc, train_loss}`` (the train stage's
    history, ``metrics/train/<model>.csv``)."""
    return [{"series": model, "epoch": int(float(row["epoch"])),
             **{k: _number(row.get(k)) for k in ("val_acc", "train_acc", "train_loss")}}
            for model, rows in histories.items() for row in rows]


def load_histories(models: Sequence[str], root: Path = paths.ROOT) -> dict[str, list[dict]]:
    """The training histories of ``models`` that have one (fetched checkpoints have none)."""
    return {m: [dict(r) for r in load_csv(f, "training history")] for m in models
            if (f := paths.train_history(m, root)).exists()}


def margin(part: Mapping[str, Any]) -> float:
    """(estimate - threshold) / half-width, signed so that > 0 is the claimed side; NaN when not measured."""
    values = [_number(part.get(k)) for k in ("estimate", "lo", "hi", "threshold")]
    if any(v is None for v in values):
        return math.nan
    est, lo, hi, thr = values
    half = (hi - lo) / 2
    sign = 1.0 if part.get("direction") == ">" else -1.0
    return sign * (est - thr) / half if half > 0 else sign * math.copysign(math.inf, est - thr)


def claims_rows(claims: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``results/curves/claims.csv``: per part ``part`` ("2.1": claim 2, part 1), ``series`` (its verdict) and
    ``margin`` (None when not measured or infinite: blank in the CSV)."""
    rows = []
    for c in claims:
        for i, p in enumerate(c.get("parts", []), start=1):
            m = margin(p)
            rows.append({"part": f"{c['claim']}.{i}", "series": p["verdict"],
                         "margin": m if math.isfinite(m) else None})
    return rows


def plot_tables(curves: CurveRows, fits: Sequence[Mapping[str, Any]],
                histories: Mapping[str, Sequence[Mapping[str, Any]]],
                claims: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[dict]]:
    """The tables of this module's docstring, by name (written as ``results/curves/<name>.csv``), from the
    aggregate's per-series ``curves``, the ``mask_fits`` rows and the training ``histories``."""
    filtered = []
    for key in sorted(k for k in curves if k.startswith("filtered/")):
        model = key.split("/", 1)[1]
        filtered += [{"series": model, "radius": row["radius"], "low_pass": _number(row.get("low_pass")),
                      "high_pass": _number(row.get("high_pass"))} for row in curves[key]]
    tables = {
        "fold_radial_diff": _long(curves, "radial_diff", "radius", "dataset_diff", "dataset_lo", "dataset_hi"),
        "fold_angular_diff": _long(curves, "angular_diff", "angle", "dataset_diff", "dataset_lo", "dataset_hi"),
        "shares_radial": _long(curves, "shares_radial", "radius", "share", "lo", "hi", "{} > N"),
        "filtered": filtered,
        "training": training_rows(histories),
        "sparsity": sparsity_rows(fits),
        "claims": claims_rows(claims),
    }
    return {name: rows for name, rows in tables.items() if rows}
