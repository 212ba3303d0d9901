"""What this run found: the report's opening bullets, generated from the claims (``results/claims.json``).

One bullet per study question (:func:`freqbias.claim_registry.questions`; at most ~8 sentences in all), each naming
the claims it rests on with their verdict and headline part (``estimate [lo, hi]``). A claim whose parts come from
several mask sources (the statistic's closing parenthesis: "dataset masks, 4 folds, size-matched", "... equal budget
0.05", "single-image masks", ...) also gets one verdict per source, so a reader sees where the raw masks and the
masks at equal size disagree; a last bullet names what this run did not settle and how many seeds would. Nothing
here is written by hand about the results: change a verdict in the claims and the sentences change.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .claim_registry import claim_of, questions
from .textfmt import PLAIN
from .verdicts import Verdict

_SOURCE = re.compile(r"\(([^()]*masks[^()]*)\)\s*$")  # a statistic's mask source: its last parenthesis naming masks
_SIZED = ("size-matched", "equal budget")              # sources at which the masks' sizes are equal by construction

_WORDS = {Verdict.HOLDS: "holds", Verdict.DOES_NOT_HOLD: "does not hold",
          Verdict.NEGLIGIBLE: "is negligible (its effect lies within its smallest effect of interest)",
          Verdict.INCONCLUSIVE: "is inconclusive", Verdict.NOT_MEASURED: "was not measured"}


def source(statistic: str) -> str:
    """The mask source a part's statistic names in its last parenthesis (``"dataset masks, 4 folds"``), or ""."""
    found = _SOURCE.search(statistic)
    return found.group(1) if found else ""


def sources(claim: Mapping[str, Any]) -> list[tuple[str, Verdict]]:
    """``(source, verdict)`` for each mask source among a claim's parts and secondary parts, in order of first
    appearance; a source's verdict combines its parts as a claim does (:meth:`Verdict.combine`). Parts without a
    named source are left out."""
    verdicts: dict[str, list[str]] = {}
    for part in [*claim.get("parts", []), *claim.get("secondary", [])]:
        name = source(part["statistic"])
        if name:
            verdicts.setdefault(name, []).append(part["verdict"])
    return [(name, Verdict.combine(v)) for name, v in verdicts.items()]


def _claim_phrase(claim: Mapping[str, Any]) -> str:
    """``claim 2 is inconclusive (A - N ...: -0.00577 [-0.0397, 0.0281], claimed > 0)``."""
    return (f"claim {claim['claim']} {_WORDS[Verdict(claim['verdict'])]} ({claim['statistic']}: "
            f"{PLAIN.judged(claim)}, claimed {claim['direction']} {PLAIN(float(claim['threshold']))})"
            if claim.get("direction") else f"claim {claim['claim']} {_WORDS[Verdict(claim['verdict'])]}")


def route(name: str) -> tuple[str, str]:
    """``(masks, route)`` of a source: ``("dataset masks", "size-matched")``, ``("dataset masks", "equal budget
    0.05")``, ``("single-image masks", "raw")``: the route is the source's size-matched or equal-budget item, else
    raw (the energies as fitted)."""
    items = [x.strip() for x in name.split(",")]
    sized = [x for x in items[1:] if any(s in x for s in _SIZED)]
    return items[0], sized[0] if sized else "raw"


def _by_source(claim: Mapping[str, Any]) -> str:
    """`` By source: dataset masks: raw holds, size-matched inconclusive; ... .`` and, where a raw source holds
    while no source of equal size does, the sentence saying so; "" for a claim with one source."""
    named = sources(claim)
    if len(named) < 2:
        return ""
    grouped: dict[str, list[str]] = {}
    for name, v in named:
        masks, how = route(name)
        grouped.setdefault(masks, []).append(f"{how} {v}")
    text = " By source: " + "; ".join(f"{masks}: {', '.join(v)}" for masks, v in grouped.items()) + "."
    sized = [v for name, v in named if route(name)[1] != "raw"]
    raw = [route(name)[0] for name, v in named if v is Verdict.HOLDS and route(name)[1] == "raw"]
    if raw and sized and Verdict.HOLDS not in sized:
        text += (f" What the raw {' and '.join(raw)} show, no route at equal size does: this run ties it to the "
                 "masks' sizes, not to which frequencies they keep.")
    return text


def _unsettled(claims: Sequence[Mapping[str, Any]]) -> str:
    """The last bullet: the inconclusive claims and the seeds their headline part would need."""
    open_ = [c for c in claims if c["verdict"] == Verdict.INCONCLUSIVE]
    if not open_:
        return "**Settled.** Every claim this run measured has a verdict other than inconclusive."

    def need(c: Mapping[str, Any]) -> str:
        parts = [p for p in c.get("parts", []) if p["verdict"] == Verdict.INCONCLUSIVE and "seeds_to_settle" in p]
        if not parts:
            return f"claim {c['claim']}"
        counts = [p["seeds_to_settle"] for p in parts]
        most = "more than 100" if None in counts else str(max(counts))
        return f"claim {c['claim']} ({most} seeds)"

    return ("**Not settled.** " + ", ".join(need(c) for c in open_) + " cannot be decided at this run's number of "
            "seeds: in brackets, the seeds that would settle every inconclusive part at this run's variances.")


def what_this_run_found(claims: Sequence[Mapping[str, Any]]) -> list[str]:
    """The bullets (markdown) of the report's opening section, one per study question (each claim's registry entry
    names its question) whose claims this run has; a claim the registry does not hold gets an "Other claims" bullet;
    then the unsettled claims."""
    asked = [(question, [c for c in claims if claim_of(c) in entries]) for question, entries in questions()]
    asked.append(("Other claims:", [c for c in claims if claim_of(c) is None]))
    bullets = []
    for question, rows in asked:
        if rows:
            phrases = "; ".join(_claim_phrase(c) for c in rows)
            bullets.append(f"**{question}** {phrases[0].upper()}{phrases[1:]}." + "".join(_by_source(c) for c in rows))
    return bullets + [_unsettled(claims)]


def section(claims: Sequence[Mapping[str, Any]]) -> str:
    """``What this run found`` as a markdown list (the report's first section)."""
    return "\n".join(f"- {b}" for b in what_this_run_found(claims))


README_START, README_END = "<!-- findings: start (python -m freqbias.headline --readme) -->", "<!-- findings: end -->"


def readme_block(claims: Sequence[Mapping[str, Any]]) -> str:
    """The README's findings block: :func:`section` between the markers a test and ``--readme`` look for."""
    return f"{README_START}\n{section(claims)}\n{README_END}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m freqbias.headline [--readme]``: print what the committed run found, or write it into the README
    between its markers (tests/test_headline.py checks that the committed README matches results/claims.json)."""
    import argparse
    import json
    from pathlib import Path

    from . import paths

    parser = argparse.ArgumentParser(prog="python -m freqbias.headline", description=main.__doc__)
    parser.add_argument("--readme", nargs="?", const="README.md", help="write the block into this README")
    parser.add_argument("--claims", default=str(paths.RESULTS / "claims.json"))
    args = parser.parse_args(argv)
    claims = json.loads(Path(args.claims).read_text())
    if not args.readme:
        print(section(claims))
        return 0
    readme = Path(args.readme)
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme}: no findings markers ({README_START} ... {README_END})")
    head, rest = text.split(README_START, 1)
    readme.write_text(head + readme_block(claims) + rest.split(README_END, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
