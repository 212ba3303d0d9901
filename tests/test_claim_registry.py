"""freqbias.claim_registry: every claim is one entry, and a new entry is measured and rendered everywhere a claim is
(the aggregate's claims and metrics, the size-matched table, the report's opening, claims table and appendix, the
claims figure and its dvc plots rows) with no other change; no module outside the registry finds a claim by number."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from freqbias import claim_registry as reg
from freqbias import claims_figure, headline, plot_data, size_null, stage_report
from freqbias.claims import claim_row, part
from freqbias.stage_aggregate import claim_metrics
from freqbias.study import Delta
from freqbias.verdicts import VERDICT_RULE

SRC = Path(__file__).resolve().parents[1] / "src" / "freqbias"


def constructed(claim: reg.Claim) -> reg.Claim:
    """``claim`` with a measure that returns one constructed part (its real measure is tested in test_claims)."""
    return dataclasses.replace(claim, measure=lambda ev: claim_row(claim, [part(f"statistic of {claim.key}", 0.2,
                                                                                0.1, 0.3, 0.0, ">")]))


NEXT = len(reg.CLAIMS) + 1   # the number a new claim gets
NEW = reg.Claim(NEXT, "new_claim", "a new title", "A new claim: the masks of X are sparser than those of Y.",
                "not measured by the study", Delta(0.02, "a test's choice"), "Y - X mask size",
                "Is X sparser than Y?",
                lambda ev: claim_row(NEW, [part("Y - X mean (dataset masks, 4 folds, size-matched)", 0.05, 0.01, 0.09,
                                                0.0, ">"),
                                           part("Y - X mean (dataset masks, 4 folds)", -0.02, -0.05, 0.01, 0.0, ">")]),
                energy=True)


@pytest.fixture
def with_new(monkeypatch):
    monkeypatch.setattr(reg, "CLAIMS", (*(constructed(c) for c in reg.CLAIMS), NEW))
    return reg.measure_all(reg.Evidence(cfg=None))


def test_the_entries_are_well_formed():
    assert [c.number for c in reg.CLAIMS] == list(range(1, len(reg.CLAIMS) + 1))
    assert len({c.key for c in reg.CLAIMS}) == len(reg.CLAIMS)
    assert all(c.text and c.study and c.title and c.statistic and c.question and c.delta.value > 0 and c.delta.reason
               for c in reg.CLAIMS)
    assert [c.key for c in reg.CLAIMS if c.energy] == ["radial", "angular", "augmentations", "low_share"]
    assert [c.key for c in reg.CLAIMS if c.control] == ["disc", "isotropic", "randomisation"]
    with pytest.raises(KeyError, match="known: accuracy, radial"):
        reg.by_key("nope")


def test_a_row_is_found_by_its_entry_not_its_number():
    row = claim_row("probe", [part("s", 0.5, 0.4, 0.6, 0.0, ">")])
    assert row["key"] == "probe" and row["claim"] == 6 and reg.claim_of(row) is reg.by_key("probe")
    assert reg.claim_of({"claim": 6}) is reg.by_key("probe")   # a claims.json written before keys
    assert reg.claim_of({"claim": 6, "key": "other"}) is None
    assert reg.find([row], reg.by_key("probe")) is row and reg.find([row], reg.by_key("radial")) is None
    assert row["parts"][0]["delta"] == reg.by_key("probe").delta.value


def test_a_new_claim_is_one_entry(with_new, tmp_path):
    rows = with_new
    assert [r["claim"] for r in rows] == list(range(1, NEXT + 1)) and rows[-1]["key"] == "new_claim"
    new = rows[-1]
    assert new["text"] == NEW.text and new["verdict"] == "inconclusive" and new["parts"][1]["delta"] == 0.02
    metrics = claim_metrics(rows)
    assert metrics[NEW.metric]["part_2"]["estimate"] == pytest.approx(-0.02)
    assert [r["claim"] for r in size_null.size_table(rows)] == [NEXT]   # energy=True: its size-matched row
    bullets = headline.what_this_run_found(rows)
    assert any(b.startswith(f"**Is X sparser than Y?** Claim {NEXT} is inconclusive") for b in bullets)
    assert not any(b.startswith("**Other claims:**") for b in bullets)
    table = stage_report.claims_section(rows, VERDICT_RULE.format(level="95"))
    assert f"| {NEXT} | {NEW.text} | Y - X mean (dataset masks, 4 folds, size-matched) |" in table
    assert f"**Claim {NEXT}: inconclusive.** A new claim" in stage_report.claims_appendix(rows)
    parts = {r["part"] for r in plot_data.claims_rows(rows) if r["part"].startswith(f"{NEXT}.")}
    assert parts == {f"{NEXT}.1", f"{NEXT}.2"}
    assert claims_figure.draw(rows, tmp_path / "claims.png").stat().st_size > 0


def test_a_new_claim_without_a_question_of_its_own_joins_one(monkeypatch):
    joined = dataclasses.replace(NEW, question=reg.by_key("probe").question)
    monkeypatch.setattr(reg, "CLAIMS", (*(constructed(c) for c in reg.CLAIMS), joined))
    bullets = headline.what_this_run_found(reg.measure_all(reg.Evidence(cfg=None)))
    assert len(bullets) == len(reg.questions()) + 1
    single = next(b for b in bullets if b.startswith(f"**{joined.question}**"))
    assert "claim 8" in single and f"claim {NEXT} is inconclusive" in single


def test_a_measure_with_nothing_to_say_leaves_its_claim_out(monkeypatch):
    silent = dataclasses.replace(NEW, measure=lambda ev: None)
    monkeypatch.setattr(reg, "CLAIMS", (*(constructed(c) for c in reg.CLAIMS), silent))
    assert [r["key"] for r in reg.measure_all(reg.Evidence(cfg=None))] == [c.key for c in reg.CLAIMS[:-1]]


# a claim looked up by its number: claim_row(2, ...), by[9], c["claim"] in (2, 3, 4), c.get("claim") == 9
BY_NUMBER = re.compile(r"(claim_row|control_row|_by_source)\(\s*\d|\bby\[\d+\]|"
                       r"(\[\"claim\"\]|\.get\(\"claim\"\))\s*(==|!=|in\b|not in\b)\s*[\d(]")


def test_no_module_outside_the_registry_finds_a_claim_by_number():
    offenders = [f"{path.name}:{i}: {line.strip()}" for path in sorted(SRC.glob("*.py"))
                 if path.name != "claim_registry.py"
                 for i, line in enumerate(path.read_text().splitlines(), 1) if BY_NUMBER.search(line)]
    assert not offenders, offenders
    assert BY_NUMBER.search('    by = {c["claim"]: c}; x = by[9]') and BY_NUMBER.search('if c.get("claim") in (2, 3):')
