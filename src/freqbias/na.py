"""Values this run could not measure, with the reason: one representation from the measurements to the report.

A quantity that is undefined on this run's data (too few images, a class absent, an all-zero or NaN mask,
a clean accuracy of 0, ...) is an :class:`NA` holding its reason, never a silent NaN or an empty cell:

- in measurements and table rows, the value itself is ``NA(reason)`` (``float(NA(...))`` is NaN; arithmetic
  on it raises); an interval that cannot be computed is ``(NA, NA, NA)`` (:func:`na_estimate`);
- in a results CSV (:func:`csv_rows`) the cell is empty (a missing value to any CSV reader) and the row's
  ``reason`` column says why, as ``"<columns>: <reason>"`` entries joined by ``"; "``;
- reading a table back, :func:`cell` gives a float or the ``NA`` with the reason for that column, and
  ``str(NA)`` is the report's rendering ``n/a (<reason>)``. An empty cell without a reason reads as
  ``NA("no value recorded")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

REASON = "reason"
NO_VALUE = "no value recorded"
ABSENT = "not recorded for this row"
NO_IMAGES = "no single-image masks (0 images)"


@dataclass(frozen=True)
class NA:
    """A missing value and why it is missing (one short clause, no ';')."""

    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", " ".join(str(self.reason).replace(";", ",").split()) or NO_VALUE)

    def __float__(self) -> float:
        return math.nan

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


def na_estimate(reason: str) -> tuple[NA, NA, NA]:
    """An :data:`freqbias.bootstrap.Estimate` ``(estimate, lo, hi)`` that could not be computed."""
    na = NA(reason)
    return na, na, na


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (NA, None, NaN / inf, empty or non-numeric text)."""
    if isinstance(value, NA) or value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def first_na(values: Iterable[Any]) -> NA | None:
    """The first :class:`NA` among ``values`` (None when there is none)."""
    return next((v for v in values if isinstance(v, NA)), None)


def _base(column: str, row: Mapping[str, Any]) -> str:
    for suffix in ("_lo", "_hi"):
        if column.endswith(suffix) and column[:-len(suffix)] in row:
            return column[:-len(suffix)]
    return column


def csv_rows(rows: Sequence[Mapping[str, Any]], default: str = "not a finite number") -> list[dict]:
    """Rows ready for a CSV, all with the union of the rows' columns: every :class:`NA`, None and
    non-finite float becomes an empty cell, and a last ``reason`` column lists why, ``"<columns>:
    <reason>"`` joined by ``"; "`` (``default`` for a bare non-finite float, :data:`NO_VALUE` for None,
    :data:`ABSENT` for a column the row lacks), after the row's own ``reason`` (a note) if it has one;
    empty when the row is complete."""
    columns = list(dict.fromkeys(k for row in rows for k in row if k != REASON))
    out = []
    for row in rows:
        why: dict[str, list[str]] = {}
        clean = {}
        for k in columns:
            v = row.get(k, NA(ABSENT))
            if v is None:
                v = NA(NO_VALUE)
            if isinstance(v, NA) or (isinstance(v, float) and not math.isfinite(v)):
                why.setdefault(v.reason if isinstance(v, NA) else default, []).append(k)
                v = None
            clean[k] = v
        given = [row[REASON]] if row.get(REASON) else []
        clean[REASON] = "; ".join(given + [f"{', '.join(cols)}: {reason}" for reason, cols in why.items()])
        out.append(clean)
    return out


def parse_reasons(text: str) -> dict[str, str]:
    """``{column: reason}`` from a ``reason`` cell written by :func:`csv_rows` (entries without columns
    are under ``""``)."""
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in (text or "").split(";"))):
        cols, sep, reason = entry.partition(": ")
        if not sep or " " in cols.replace(", ", ","):
            out[""] = f"{out[''] + ', ' if '' in out else ''}{entry}"
            continue
        for c in cols.split(", "):
            out[c] = reason
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cell(row: Mapping[str, Any], column: str) -> float | NA:
    """A table cell as a finite float, or the :class:`NA` saying why it is missing: the value itself when
    it is an NA, else the row's reason for the column (or, for ``<c>_lo`` / ``<c>_hi``, for ``<c>``),
    else the row's reason without columns, else :data:`NO_VALUE`. In a row read from a file
    (:class:`freqbias.io.Row`), a non-empty cell that is not a finite number (``0.9x1``, ``nan``: the
    tables write a missing value as an empty cell) is an error naming the file, row and column."""
    value = row.get(column)
    x = number(value)
    if x is not None:
        return x
    if isinstance(value, NA):
        return value
    if hasattr(row, "error") and isinstance(value, str) and value.strip():
        raise row.error(f"column {column!r}: {value!r} is not a {'finite ' if _is_float(value) else ''}number")
    reasons = parse_reasons(row.get(REASON) or "")
    return NA(reasons.get(column) or reasons.get(_base(column, row)) or reasons.get("") or NO_VALUE)


def to_json(obj: Any) -> Any:
    """A row, part or value as strict JSON: NaN / inf -> None, an NA -> its text, numpy scalars -> Python."""
    if isinstance(obj, NA):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
