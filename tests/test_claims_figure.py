"""freqbias.claims_figure: each part's margin (its dvc plots table) and the one-figure view of every claim."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image

from freqbias.claims_figure import draw
from freqbias.plot_data import claims_rows, margin
from test_headline import claims, part


def test_margin_is_half_widths_on_the_claimed_side():
    p = part("s", "holds", est=0.1)                               # interval [0.05, 0.15]: half-width 0.05
    assert math.isclose(margin(p), 2.0)
    assert math.isclose(margin({**p, "direction": "<"}), -2.0)
    assert math.isclose(margin({**p, "threshold": 0.1}), 0.0)
    assert math.isnan(margin({**p, "estimate": None}))
    rows = claims_rows(claims())
    assert [r["part"] for r in rows[:3]] == ["1.1", "2.1", "3.1"] and rows[1]["series"] == "inconclusive"
    assert math.isclose(rows[1]["margin"], 2.0)


def test_figure_draws_every_claim_and_a_not_measured_one(tmp_path: Path):
    given = claims()
    given[0]["parts"][0].update(estimate=None, lo=None, hi=None, verdict="not measured", reason="no model")
    given[3]["parts"] = []
    out = draw(given, tmp_path / "claims.png", dpi=30)
    width, height = Image.open(out).size
    assert out.exists() and max(width / height, height / width) <= 3
