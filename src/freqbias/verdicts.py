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
    NEGLIGIBLE = "negligible"

    @property
    def code(self) -> float | None:
        """1 / 0 / -0.5 / -1 (holds / inconclusive / negligible / does not hold; sortable in ``metrics.json``: a
        negligible effect sits between "not settled" and "the other side"), None when not measured."""
        return _CODES[self]

    @classmethod
    def combine(cls, verdicts: Iterable[str]) -> Verdict:
        """A claim's verdict from its parts' (a claim is the conjunction of its parts): any does not hold ->
        DOES_NOT_HOLD; else any negligible -> NEGLIGIBLE (a part the claim needs is absent, to within its delta);
        else all hold -> HOLDS; none measured (or no part) -> NOT_MEASURED; else INCONCLUSIVE."""
        given = [cls(v) for v in verdicts]
        measured = [v for v in given if v is not cls.NOT_MEASURED]
        if not measured:
            return cls.NOT_MEASURED
        if cls.DOES_NOT_HOLD in measured:
            return cls.DOES_NOT_HOLD
        if cls.NEGLIGIBLE in measured:
            return cls.NEGLIGIBLE
        return cls.HOLDS if all(v is cls.HOLDS for v in given) else cls.INCONCLUSIVE


_CODES = {Verdict.HOLDS: 1, Verdict.INCONCLUSIVE: 0, Verdict.NEGLIGIBLE: -0.5, Verdict.DOES_NOT_HOLD: -1,
          Verdict.NOT_MEASURED: None}


class Direction(_Text):
    """The side of its threshold a claimed quantity is on: ABOVE (``>``) or BELOW (``<``)."""

    ABOVE = ">"
    BELOW = "<"

    def judge(self, lo: float, hi: float, threshold: float, delta: float | None = None) -> Verdict:
        """HOLDS when the interval [lo, hi] lies strictly on the claimed side of ``threshold``, DOES_NOT_HOLD when
        it lies on the other side (touching the threshold included); else NEGLIGIBLE when ``delta`` (the smallest
        effect of interest, > 0) is given and the interval lies within ``threshold +- delta`` (an equivalence test:
        two one-sided tests, each at the level of the sides' tests), else INCONCLUSIVE. An interval clear of the
        threshold keeps HOLDS / DOES_NOT_HOLD even when it also lies within +- delta: its side is settled."""
        if self is Direction.ABOVE:
            claimed, against = lo > threshold, hi <= threshold
        else:
            claimed, against = hi < threshold, lo >= threshold
        if claimed or against:
            return Verdict.HOLDS if claimed else Verdict.DOES_NOT_HOLD
        if delta is not None and threshold - delta <= lo and hi <= threshold + delta:
            return Verdict.NEGLIGIBLE
        return Verdict.INCONCLUSIVE


ABOVE, BELOW = Direction.ABOVE, Direction.BELOW


def verdict(estimate: float, lo: float, hi: float, threshold: float = 0.0,
            direction: Direction | str = Direction.ABOVE, delta: float | None = None) -> Verdict:
    """Verdict on the claim ``quantity <direction> threshold`` from its estimate and interval [lo, hi]
    (:meth:`Direction.judge`; ``delta``: the part's smallest effect of interest, None for the three-outcome rule).
    The verdict depends on the interval; the estimate is checked to lie in it. ValueError for a direction other
    than ">" / "<", for non-finite inputs (a claim nobody could measure) and for a delta that is not > 0."""
    side = Direction(direction)
    if not all(math.isfinite(v) for v in (estimate, lo, hi, threshold)):
        raise ValueError(f"non-finite input: estimate={estimate}, lo={lo}, hi={hi}, threshold={threshold}")
    if not lo <= estimate <= hi:
        raise ValueError(f"need lo <= estimate <= hi, got {lo} <= {estimate} <= {hi}")
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a finite number > 0, got {delta}")
    return side.judge(lo, hi, threshold, delta)


VERDICT_RULE = ("A part holds when its whole {level}% interval lies on the claimed side of the threshold, does "
                "not hold when the interval lies entirely on the other side (touching the threshold included), is "
                "negligible when the interval contains the threshold but lies within the threshold +- the part's "
                "delta (its smallest effect of interest, stated with its reason in each part: an equivalence test "
                "at the same level), and is inconclusive otherwise (verdicts.verdict). A claim holds when all its "
                "parts hold, does not hold when any part does not hold, is negligible when no part fails but one "
                "is negligible (an effect the claim needs is absent, to within its delta), and is inconclusive "
                "otherwise; 'not measured' when this run lacks a model or images a part needs.")
