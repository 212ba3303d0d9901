"""How the report writes numbers and tables: one :class:`Style` per way of writing a number, and the markdown table.

A style writes a number as ``f"{scale * v:{spec}}{suffix}"`` and a missing one (an :class:`~freqbias.na.NA`, or a
non-finite number) as ``n/a (<reason>)``; its :meth:`Style.interval` writes ``estimate [lo, hi]``. The report's
tables use :data:`PLAIN` and :data:`PERCENT_NUMBER` (:func:`fmt`, :func:`ci`), the controls' section (sentences and
tables) :data:`PLAIN`, :data:`PERCENT`, :data:`SIGNED` and :data:`FIXED`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .na import NA, cell


@dataclass(frozen=True)
class Style:
    """One way of writing a number: format ``spec``, ``scale`` (100: a share as percent) and ``suffix``."""

    spec: str = ".3g"
    scale: float = 1.0
    suffix: str = ""

    def __call__(self, value: float | NA) -> str:
        if isinstance(value, NA):
            return str(value)
        if not math.isfinite(value):
            return str(NA("not a finite number"))
        return f"{value * self.scale:{self.spec}}{self.suffix}"

    def interval(self, est: float | NA, lo: float | NA, hi: float | NA) -> str:
        """``est [lo, hi]``; the estimate's n/a when it is missing, ``est (interval n/a: <reason>)`` when an end is."""
        if isinstance(est, NA):
            return str(est)
        if isinstance(lo, NA) or isinstance(hi, NA):
            gap = lo if isinstance(lo, NA) else hi
            return f"{self(est)} (interval n/a: {gap.reason})"
        return f"{self(est)} [{self(lo)}, {self(hi)}]"

    def column(self, row: Mapping[str, Any], key: str) -> str:
        """:meth:`interval` of a table row's columns ``key``, ``key_lo``, ``key_hi`` (:func:`freqbias.na.cell`)."""
        return self.interval(*(cell(row, k) for k in (key, f"{key}_lo", f"{key}_hi")))

    def judged(self, part: Mapping[str, Any]) -> str:
        """A claim's or a part's (claims.json) ``estimate [lo, hi]``, or ``n/a (<its reason>)`` when a value is
        missing (None or not finite)."""
        values = [math.nan if part.get(k) is None else float(part[k]) for k in ("estimate", "lo", "hi")]
        if not all(math.isfinite(v) for v in values):
            return str(NA(part.get("reason") or "not measured"))
        return self.interval(*values)


PLAIN = Style(".3g")                       # 3 significant digits: 0.912
PERCENT = Style(".1f", 100.0, "%")         # a share: 91.2%
PERCENT_NUMBER = Style(".1f", 100.0)       # a share under a "(%)" header: 91.2
SIGNED = Style("+.3f")                     # a difference: +0.012
FIXED = Style(".3f")                       # an area: 0.739


def fmt(value: float | NA, pct: bool = False) -> str:
    """A table cell: :data:`PERCENT_NUMBER` (one decimal, no sign) when ``pct``, else :data:`PLAIN`."""
    return (PERCENT_NUMBER if pct else PLAIN)(value)


def ci(row: Mapping[str, Any], key: str, pct: bool = False) -> str:
    """``estimate [lo, hi]`` of column ``key`` of a table row (``key_lo``, ``key_hi``) in :func:`fmt`'s style."""
    return (PERCENT_NUMBER if pct else PLAIN).column(row, key)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (cells as text, ``|`` escaped, newlines as spaces)."""
    def cell_text(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell_text, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell_text, r)) + " |" for r in rows])
