"""Tests of freqbias.verdicts, freqbias.study and freqbias.textfmt: verdicts and directions are types whose text in
JSON, CSV and f-strings is the string the files always held; the study's numbers have one source; the report's
number styles write what the report always wrote."""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import re

import pytest

from freqbias import claims as cl
from freqbias.claim_registry import CLAIMS, by_key
from freqbias.na import NA, to_json
from freqbias.stage_aggregate import claim_metrics
from freqbias.study import REFERENCE, reference
from freqbias.textfmt import FIXED, PERCENT, PERCENT_NUMBER, PLAIN, SIGNED, ci, fmt, markdown_table
from freqbias.verdicts import VERDICT_RULE, Direction, Verdict, verdict

TEXT = {Verdict.HOLDS: "holds", Verdict.INCONCLUSIVE: "inconclusive", Verdict.DOES_NOT_HOLD: "does not hold",
        Verdict.NOT_MEASURED: "not measured", Verdict.NEGLIGIBLE: "negligible", Direction.ABOVE: ">",
        Direction.BELOW: "<"}


@pytest.mark.parametrize("member,text", list(TEXT.items()))
def test_a_verdict_or_direction_is_written_as_its_string(member, text):
    assert member == text and str(member) == text and f"{member}" == text and f"**{member}**" == f"**{text}**"
    assert f"{member:>14}" == f"{text:>14}" and "%s" % member == text
    assert json.dumps({"verdict": member}) == json.dumps({"verdict": text})
    buf = io.StringIO()
    csv.DictWriter(buf, ["v"]).writerow({"v": member})
    assert buf.getvalue().strip().strip('"') == text
    assert {text: 1}[member] == 1 and {member: 1}[text] == 1            # files read back look up the same
    assert type(member)(text) is member


def test_verdict_codes_and_combination():
    assert [v.code for v in Verdict] == [1, 0, -1, None, -0.5]
    assert Verdict.combine([Verdict.HOLDS, "holds"]) is Verdict.HOLDS
    assert Verdict.combine(["holds", "inconclusive"]) is Verdict.INCONCLUSIVE
    assert Verdict.combine(["inconclusive", "not measured", "does not hold"]) is Verdict.DOES_NOT_HOLD
    assert Verdict.combine(["holds", "not measured"]) is Verdict.INCONCLUSIVE
    assert Verdict.combine(iter([])) is Verdict.combine(["not measured"]) is Verdict.NOT_MEASURED
    with pytest.raises(ValueError):
        Verdict.combine(["maybe"])


@pytest.mark.parametrize("lo,hi,threshold,direction,expected", [
    (-0.01, 0.015, 0.0, Direction.ABOVE, Verdict.NEGLIGIBLE),       # within +-0.02 around 0: no effect that big
    (-0.02, 0.02, 0.0, Direction.BELOW, Verdict.NEGLIGIBLE),        # the bounds themselves count as within
    (-0.5, 0.5, 0.0, Direction.ABOVE, Verdict.INCONCLUSIVE),        # as wide as +-0.5: nothing learned
    (-0.01, 0.03, 0.0, Direction.ABOVE, Verdict.INCONCLUSIVE),      # an effect of 0.03 is not ruled out
    (0.005, 0.015, 0.0, Direction.ABOVE, Verdict.HOLDS),            # clear of 0: the side is settled, small or not
    (0.005, 0.015, 0.0, Direction.BELOW, Verdict.DOES_NOT_HOLD),
    (0.975, 1.005, 0.99, Direction.ABOVE, Verdict.NEGLIGIBLE),      # around a threshold other than 0
    (0.965, 1.005, 0.99, Direction.ABOVE, Verdict.INCONCLUSIVE),
])
def test_negligible_is_an_interval_within_the_threshold_plus_minus_delta(lo, hi, threshold, direction, expected):
    assert direction.judge(lo, hi, threshold, 0.02) is expected
    assert verdict((lo + hi) / 2, lo, hi, threshold, direction, 0.02) is expected
    assert direction.judge(lo, hi, threshold) is not Verdict.NEGLIGIBLE   # without a delta: the three outcomes


def test_negligible_in_a_claim():
    """The claim is the conjunction of its parts: a part that does not hold decides; else a negligible part (an
    effect the claim needs is absent to within delta); else all must hold."""
    assert Verdict.combine(["holds", "negligible"]) is Verdict.NEGLIGIBLE
    assert Verdict.combine(["inconclusive", "negligible"]) is Verdict.NEGLIGIBLE
    assert Verdict.combine(["negligible", "does not hold"]) is Verdict.DOES_NOT_HOLD
    assert Verdict.combine(["negligible", "not measured"]) is Verdict.NEGLIGIBLE
    assert Verdict.combine(["holds", "inconclusive"]) is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError):
        verdict(0.0, -0.1, 0.1, 0.0, Direction.ABOVE, 0.0)
    parts = [cl.part("a", 0.5, 0.2, 0.8, 0.0, ">", delta=0.05),
             cl.part("b", 0.001, -0.008, 0.009, 0.0, "<", per_seed=[(0.001, -0.008, 0.009, 4), (0.0, -0.2, 0.2, 4)])]
    row = cl.claim_row("radial", parts)
    assert row["verdict"] is Verdict.NEGLIGIBLE and "within +-0.01" in row["note"]   # b gets claim 2's delta
    b = row["parts"][1]
    assert b["delta"] == by_key("radial").delta.value and b["delta_reason"] == by_key("radial").delta.reason
    assert [s["verdict"] for s in b["per_seed"]] == ["negligible", "inconclusive"]
    assert row["parts"][0]["delta"] == 0.05 and row["parts"][0]["half_width"] == pytest.approx(0.3)
    texture = cl.claim_row("texture", [cl.part("c", 0.3, 0.2, 0.4, 0.5, "<")])
    assert all(p["delta"] > 0 and p["delta_reason"] for p in texture["parts"])


@pytest.mark.parametrize("direction,lo,hi,expected", [
    (Direction.ABOVE, 0.1, 0.2, Verdict.HOLDS), (Direction.ABOVE, 0.0, 0.2, Verdict.INCONCLUSIVE),
    (Direction.ABOVE, -0.2, 0.0, Verdict.DOES_NOT_HOLD), (Direction.BELOW, -0.2, -0.1, Verdict.HOLDS),
    (Direction.BELOW, -0.2, 0.0, Verdict.INCONCLUSIVE), (Direction.BELOW, 0.0, 0.2, Verdict.DOES_NOT_HOLD),
])
def test_direction_judges_an_interval_touching_the_threshold_as_not_on_the_claimed_side(direction, lo, hi, expected):
    assert direction.judge(lo, hi, 0.0) is expected
    assert verdict((lo + hi) / 2, lo, hi, 0.0, str(direction)) is expected   # the old ">" / "<" still accepted


def test_claims_json_and_metrics_keep_their_strings():
    parts = [cl.part("a", 0.5, 0.2, 0.8, 0.0, Direction.ABOVE, per_seed=[(0.5, 0.2, 0.8)]),
             cl.part("b", 0.5, 0.2, 0.8, 0.0, "<")]
    row = cl.claim_row("radial", parts)
    assert row["verdict"] is Verdict.DOES_NOT_HOLD and parts[1]["direction"] is Direction.BELOW
    text = json.dumps(to_json([row]))
    assert '"verdict": "does not hold"' in text and '"direction": ">"' in text and "Verdict" not in text
    back = json.loads(text)
    assert claim_metrics(back) == claim_metrics([row])
    assert claim_metrics(back)["claim_2"]["verdict_code"] == -1 and claim_metrics(back)["claim_2"]["part_2"][
        "verdict_code"] == -1
    assert "{level}" in VERDICT_RULE
    module, name = re.search(r"\((\w+)\.(\w+)\)", VERDICT_RULE).groups()  # the rule names where it is defined
    assert getattr(importlib.import_module(f"freqbias.{module}"), name) is verdict
    assert verdict.__module__ == f"freqbias.{module}"


def test_the_study_numbers_have_one_source():
    """The claims' ``study`` column is written from REFERENCE: these are the texts claims.json always held."""
    study = {c.key: c.study for c in CLAIMS}
    assert study["accuracy"] == ("VGG11-BN val: masked / clean from 0.992 (A) to 1.001 (S), min 0.992; fitted and "
                                 "scored on the same images")
    assert study["complement"] == ("masked 100% / 100%, complement 55.5% / 58.3%, PGD 0% / 0%, restored 58.7% / "
                                   "74.3% (VGG / ResNet)")
    assert study["probe"] == "probe test accuracy 82.2% / 78.4% vs about 20% with permuted labels (chance 20%)"
    assert study["texture"] == ("masked images keep the prediction 100% / 100%; they look texture-like (shown, not "
                                "measured)")
    assert [c.number for c in CLAIMS] == list(range(1, 13)) and len({c.key for c in CLAIMS}) == len(CLAIMS)
    assert len({r.key for r in REFERENCE}) == len(REFERENCE) == 17
    assert reference("single", "complement").resnet == "58.3"


def test_number_styles():
    assert (PLAIN(0.91234), PERCENT(0.91234), PERCENT_NUMBER(0.91234), SIGNED(0.0123), FIXED(0.7391)) == (
        "0.912", "91.2%", "91.2", "+0.012", "0.739")
    assert PLAIN(NA("no images")) == PERCENT(NA("no images")) == "n/a (no images)"
    assert PLAIN(math.inf) == "n/a (not a finite number)"
    assert SIGNED.interval(0.5, 0.25, NA("one seed")) == "+0.500 (interval n/a: one seed)"
    row = {"v": 0.5, "v_lo": 0.25, "v_hi": 0.75}
    assert ci(row, "v") == "0.5 [0.25, 0.75]" and ci(row, "v", True) == "50.0 [25.0, 75.0]" and fmt(0.5, True) == "50.0"
    assert SIGNED.judged({"estimate": 0.5, "lo": 0.25, "hi": 0.75}) == "+0.500 [+0.250, +0.750]"
    assert PLAIN.judged({"estimate": None, "lo": 0.0, "hi": 1.0, "reason": "no model"}) == "n/a (no model)"
    assert PLAIN.judged({"estimate": None}) == "n/a (not measured)"
    assert markdown_table(["a", "b"], [["x|y", "1\n2"]]) == "| a | b |\n|---|---|\n| x\\|y | 1 2 |"
