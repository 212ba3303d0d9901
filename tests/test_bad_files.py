"""A missing, truncated or malformed input file ends a stage with one line naming the file and the stage
that rewrites it (``dvc repro -f <stage>``), exit status 2 (:mod:`freqbias.io`'s one read path), never a
traceback; a non-numeric table cell is an error naming the file, row and column; a temporary file left
by a killed write is removed by the next run of the stage that owns the output.

Each case corrupts one file of a copy of ``conftest.tiny_run`` (restored afterwards) and runs the stage
that reads it in this process (``conftest.run_script``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import copy_project, run_script

pytestmark = pytest.mark.slow

GARBAGE = b"garbage \x00\xff\xfe not an artifact\n"
CASES = [  # (file, the stage script that reads it, the stage that rewrites it)
    ("masks/N-s0/dataset.pt", "stages/aggregate.py", "masks@N-0"),
    ("masks/A-s0/single.pt", "stages/aggregate.py", "masks@A-0"),
    ("models/N-s0.pt", "stages/aggregate.py", "train@N-0"),
    ("metrics/masks/N-s0.json", "stages/aggregate.py", "masks@N-0"),
    ("data/prepared/val.pt", "stages/aggregate.py", "fetch"),
    ("data/prepared/manifest.json", "stages/aggregate.py", "fetch"),
    ("results/figdata.pt", "stages/report.py", "aggregate"),
    ("results/claims.json", "stages/report.py", "aggregate"),
    ("results/summary.json", "stages/report.py", "aggregate"),
    ("results/accuracy.csv", "stages/report.py", "aggregate"),
]


@pytest.fixture(scope="module")
def work(tiny_run: Path, tmp_path_factory) -> Path:
    """One copy of the tiny run for the whole module; each case restores the file it changed."""
    return copy_project(tiny_run, tmp_path_factory.mktemp("bad") / "run")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize(("name", "script", "stage"), CASES)
def test_a_bad_input_file_is_one_line_naming_its_stage(work: Path, capsys, name: str, script: str, stage: str,
                                                       damage: str) -> None:
    path = work / name
    original = path.read_bytes()
    try:
        path.write_bytes(original[:len(original) // 2] if damage == "truncated" else GARBAGE)
        capsys.readouterr()
        status = run_script(work, script)
        err = capsys.readouterr().err
    finally:
        path.write_bytes(original)
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = _error_lines(err)
    assert len(lines) == 1 and name in lines[0] and f"dvc repro -f {stage}`" in lines[0], err


@pytest.mark.parametrize(("text", "problem"), [("0.9x1", "is not a number"), ("nan", "is not a finite number")])
def test_a_non_numeric_cell_names_file_row_and_column(work: Path, capsys, text: str, problem: str) -> None:
    """A malformed number is one error naming the cell, never shown as n/a (a missing value's cell is empty)."""
    path = work / "results" / "accuracy.csv"
    original = path.read_bytes()
    rows = list(csv.DictReader(path.open(newline="")))
    rows[1]["val_clean"] = text
    try:
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        capsys.readouterr()
        status = run_script(work, "stages/report.py")
        err = capsys.readouterr().err
    finally:
        path.write_bytes(original)
    assert status == 2, err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    assert f"results/accuracy.csv: row 2: column 'val_clean': {text!r} {problem}" in lines[0], err
    assert "dvc repro -f aggregate`" in lines[0], err


def test_the_next_run_removes_a_killed_writes_temporary_file(work: Path) -> None:
    leftovers = [work / "reports" / ".report.md.0123abcd.tmp",
                 work / "reports" / "figures" / ".accuracy.png.deadbeef.tmp"]
    for p in leftovers:
        p.write_text("half written")
    keep = work / "reports" / ".report.md.notmine.tmp"  # not a name the atomic writer makes
    keep.write_text("someone else's")
    assert run_script(work, "stages/report.py") == 0
    assert not any(p.exists() for p in leftovers)
    assert keep.exists()
