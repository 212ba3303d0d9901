"""Verdicts and the directions claims are judged in, as small str-valued types.

A :class:`Verdict` and a :class:`Direction` are strings: ``json.dumps``, ``csv`` and f-strings write their value
("holds", ">"), equal to and hashed like that string, so files read back (plain strings) compare and look up the
same. :meth:`Direction.judge` is the rule of one interval, :meth:`Verdict.combine` that of a claim's parts,
:attr:`Verdict.code` the number ``metrics.json`` sorts by. :data:`VERDICT_RULE` says both in words (the report's
"Verdict rule", ``summary.json``).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Iterable


class _Text(str, Enum):
    """A str-valued enum whose text is its value (Python < 3.12 f-strings would write ``Class.MEMBER``)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Verdict(_Text):
    """The verdict on a part or a claim."""

    HOLDS = "holds"
    INCONCLUSIVE = "inconclusive"
    DOES_NOT_HOLD = "does not hold"
    NOT_MEASURED = "not measured"

    @property
    def code(self) -> int | None:
        """1 / 0 / -1 (holds / inconclusive / does not hold; sortable in ``metrics.json``), None when not measured."""
        return _CODES[self]

    @classmethod
    def combine(cls, verdicts: Iterable[str]) -> Verdict:
        """A claim's verdict from its parts': all hold -> HOLDS; any does not hold -> DOES_NOT_HOLD; none measured
        (or no part) -> NOT_MEASURED; else INCONCLUSIVE."""
        given = [cls(v) for v in verdicts]
        measured = [v for v in given if v is not cls.NOT_MEASURED]
        if not measured:
            return cls.NOT_MEASURED
        if cls.DOES_NOT_HOLD in measured:
            return cls.DOES_NOT_HOLD
        return cls.HOLDS if all(v is cls.HOLDS for v in given) else cls.INCONCLUSIVE


_CODES = {Verdict.HOLDS: 1, Verdict.INCONCLUSIVE: 0, Verdict.DOES_NOT_HOLD: -1, Verdict.NOT_MEASURED: None}


class Direction(_Text):
    """The side of its threshold a claimed quantity is on: ABOVE (``>``) or BELOW (``<``)."""

    ABOVE = ">"
    BELOW = "<"

    def judge(self, lo: float, hi: float, threshold: float) -> Verdict:
        """HOLDS when the interval [lo, hi] lies strictly on the claimed side of ``threshold``, DOES_NOT_HOLD when
        it lies on the other side (touching the threshold included), else INCONCLUSIVE."""
        if self is Direction.ABOVE:
            claimed, against = lo > threshold, hi <= threshold
        else:
            claimed, against = hi < threshold, lo >= threshold
        return Verdict.HOLDS if claimed else Verdict.DOES_NOT_HOLD if against else Verdict.INCONCLUSIVE


ABOVE, BELOW = Direction.ABOVE, Direction.BELOW


def verdict(estimate: float, lo: float, hi: float, threshold: float = 0.0,
            direction: Direction | str = Direction.ABOVE) -> Verdict:
    """Verdict on the claim ``quantity <direction> threshold`` from its estimate and interval [lo, hi]
    (:meth:`Direction.judge`). The verdict depends on the interval; the estimate is checked to lie in it.
    ValueError for a direction other than ">" / "<" and for non-finite inputs (a claim nobody could measure)."""
    side = Direction(direction)
    if not all(math.isfinite(v) for v in (estimate, lo, hi, threshold)):
        raise ValueError(f"non-finite input: estimate={estimate}, lo={lo}, hi={hi}, threshold={threshold}")
    if not lo <= estimate <= hi:
        raise ValueError(f"need lo <= estimate <= hi, got {lo} <= {estimate} <= {hi}")
    return side.judge(lo, hi, threshold)


VERDICT_RULE = ("A part holds when its whole {level}% interval lies on the claimed side of the threshold, does "
                "not hold when the interval lies entirely on the other side (touching the threshold included), "
                "and is inconclusive otherwise (verdicts.verdict). A claim holds when all its parts hold, does not "
                "hold when any part does not hold, and is inconclusive otherwise; 'not measured' when this run "
                "lacks a model or images a part needs.")
