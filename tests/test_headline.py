"""freqbias.headline: the report's "What this run found", generated from constructed claims. The sentences must
follow the verdicts: change a verdict and the text changes; a raw route that holds where every route at equal size
does not is called a size effect; inconclusive claims are listed with the seeds that would settle them."""

from __future__ import annotations

import copy

from freqbias import headline
from freqbias.claim_registry import questions


def part(statistic: str, verdict: str, est: float = 0.1, settle: int | None = None) -> dict:
    out = {"statistic": statistic, "verdict": verdict, "estimate": est, "lo": est - 0.05, "hi": est + 0.05,
           "threshold": 0.0, "direction": ">"}
    if verdict == "inconclusive":
        out["seeds_to_settle"] = settle
    return out


def claim(number: int, parts: list[dict], secondary: list[dict] | None = None) -> dict:
    from freqbias.verdicts import Verdict
    head = parts[0]
    return {"claim": number, "text": f"claim text {number}", "verdict": Verdict.combine(p["verdict"] for p in parts),
            "statistic": head["statistic"], "estimate": head["estimate"], "lo": head["lo"], "hi": head["hi"],
            "threshold": 0.0, "direction": ">", "parts": parts, "secondary": secondary or []}


def claims(raw: str = "holds", sized: str = "inconclusive") -> list[dict]:
    """Claims 1-12: claim 2 with a size-matched verdict part and a raw secondary line; the others one part."""
    out = [claim(n, [part(f"statistic {n}", "holds")]) for n in range(1, 13) if n != 2]
    out.insert(1, claim(2, [part("A - N low rings (dataset masks, 4 folds, size-matched)", sized, settle=9)],
                        [part("A - N low rings (dataset masks, 4 folds)", raw),
                         part("A - N low rings (dataset masks, 4 folds, equal budget 0.05)", sized)]))
    return out


def test_every_claim_is_named_once_with_its_verdict_and_estimate():
    text = headline.section(claims())
    bullets = text.splitlines()
    assert len(bullets) == len(questions()) + 1 <= 8
    for n in range(1, 13):
        assert f"laim {n} " in text
    assert "Claim 2 is inconclusive (A - N low rings (dataset masks, 4 folds, size-matched): 0.1 [0.05, 0.15]" in text
    assert all(len(b.split()) <= 120 for b in bullets), max(len(b.split()) for b in bullets)


def test_the_sentences_follow_the_verdicts():
    before = headline.section(claims(raw="holds", sized="inconclusive"))
    after = headline.section(claims(raw="holds", sized="holds"))
    assert before != after
    assert "Claim 2 holds" in after and "Claim 2 is inconclusive" in before
    # the raw masks hold, no route at equal size does: called a size effect; when equal size holds too, not
    assert "ties it to the masks' sizes" in before and "ties it to the masks' sizes" not in after
    assert "dataset masks: size-matched inconclusive, raw holds, equal budget 0.05 inconclusive" in before
    assert "ties it to the masks' sizes" not in headline.section(claims(raw="does not hold"))


def test_unsettled_claims_name_the_seeds_that_would_settle_them():
    text = headline.section(claims())
    assert "**Not settled.** claim 2 (9 seeds)" in text
    assert "**Settled.**" in headline.section(claims(sized="holds"))
    unknown = claims()
    unknown[1]["parts"][0]["seeds_to_settle"] = None        # none up to 100 would
    assert "claim 2 (more than 100 seeds)" in headline.section(unknown)


def test_a_claim_no_question_names_still_appears():
    more = claims() + [claim(99, [part("a new statistic", "does not hold")])]
    text = headline.section(more)
    assert "**Other claims:** Claim 99 does not hold (a new statistic" in text
    assert text.splitlines()[-1].startswith("- **Not settled.**")


def test_not_measured_claims_read_as_such():
    absent = copy.deepcopy(claims())
    absent[0].update(verdict="not measured", estimate=None, lo=None, hi=None, reason="no model trained")
    assert "Claim 1 was not measured (statistic 1: n/a (no model trained)" in headline.section(absent)


def test_the_readme_findings_are_the_committed_runs():
    """README.md's findings block is what `python -m freqbias.headline --readme` writes from the committed
    results/claims.json: the README cannot contradict the report."""
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    committed = json.loads((repo / "results/claims.json").read_text())
    readme = (repo / "README.md").read_text()
    assert headline.readme_block(committed) in readme, "README findings are stale: python -m freqbias.headline --readme"


def test_readme_writer_replaces_only_its_block(tmp_path):
    import json
    readme, results = tmp_path / "README.md", tmp_path / "claims.json"
    readme.write_text(f"intro\n\n{headline.README_START}\nold\n{headline.README_END}\n\nrest\n")
    results.write_text(json.dumps(claims()))
    assert headline.main(["--readme", str(readme), "--claims", str(results)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n\n") and text.endswith("\n\nrest\n") and "\nold\n" not in text
    assert headline.readme_block(claims()) in text
