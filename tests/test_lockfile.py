"""A damaged ``dvc.lock`` (a Ctrl-C while DVC rewrote it) is set aside by ``make repro`` with one line, and the
``dvc repro`` after it restores the finished stages from DVC's run-cache (:mod:`freqbias.lockfile`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import copy_project, git_commit, run
from freqbias.lockfile import damaged_path, head_lock, lock_problem, main, recover, set_aside

REPO = Path(__file__).resolve().parents[1]
VALID = """schema: '2.0'
stages:
  fetch:
    cmd: python stages/fetch.py
    deps:
    - path: stages/fetch.py
      hash: md5
      md5: 5d40e779794de2d8ce6f0c4aa60942fd
      size: 1089
    outs:
    - path: data/prepared
      hash: md5
      md5: 0956e1c14e5a58a3318c404b7b2e0706.dir
      size: 18907
      nfiles: 4
"""
NOW = datetime(2026, 12, 7, 6, 30, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("\n  \n", "empty"),
    ("schema: '2.0'\nstages:\n  fetch:\n    cmd: [python\n", "not YAML"),
    ("\x00\x00\x00\x00", "not YAML"),
    ("just text\n", "no schema/stages mapping"),
    ("schema: '2.0'\n", "no schema/stages mapping"),
    (VALID[:VALID.index("    cmd:")] + "    deps:\n    - path:\n", "fails DVC's lock file schema"),
])
def test_a_damaged_lock_is_named(text: str, problem: str) -> None:
    found = lock_problem(text)
    assert found is not None and found.startswith(problem), found


def test_a_valid_lock_is_not_damaged() -> None:
    assert lock_problem(VALID) is None
    assert lock_problem(VALID[:VALID.index("  fetch:")] + "  {}\n") is None  # no stage run yet


def test_set_aside_keeps_the_damaged_copy_under_a_new_name(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  fetch: [\n")
    problem, dest = set_aside(lock, NOW)
    assert problem.startswith("not YAML")
    assert dest == tmp_path / "dvc.lock.damaged-20261207T063005Z"
    assert not lock.exists() and dest.read_text() == "schema: '2.0'\nstages:\n  fetch: [\n"
    lock.write_text("")
    assert set_aside(lock, NOW) == ("empty", tmp_path / "dvc.lock.damaged-20261207T063005Z-2")
    assert damaged_path(lock, NOW).name == "dvc.lock.damaged-20261207T063005Z-3"


def test_a_valid_or_missing_lock_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "dvc.lock"
    assert main([str(lock)]) == 0  # missing: a fresh project before its first run
    lock.write_text(VALID)
    assert main([str(lock)]) == 0
    assert lock.read_text() == VALID and sorted(tmp_path.iterdir()) == [lock]
    assert capsys.readouterr() == ("", "")


def test_main_says_in_one_line_what_it_moved_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "dvc.lock"  # not in a git repository: nothing takes its place
    lock.write_bytes(b"schema: '2.0'\nstages:\n  fetch: \xe2\x80")  # cut inside a UTF-8 character
    assert main([str(lock)]) == 0
    out, err = capsys.readouterr()
    [moved] = tmp_path.glob("dvc.lock.damaged-*")
    assert out == "" and err == (f"{lock} was damaged (not UTF-8 text; an interrupt while DVC wrote it?): moved it "
                                 f"to {moved}; dvc repro restores finished stages from DVC's run-cache and reruns "
                                 "the rest\n")
    assert not lock.exists()


def test_git_heads_lock_takes_the_damaged_ones_place(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    run(["git", "init", "-q"], tmp_path)
    lock.write_text("")
    git_commit(tmp_path, "an empty lock")
    assert head_lock(lock) is None  # HEAD's own lock is damaged: not used
    assert recover(lock, NOW).endswith("restores finished stages from DVC's run-cache and reruns the rest")
    assert not lock.exists()
    lock.write_text(VALID)
    git_commit(tmp_path, "a valid lock")
    assert head_lock(lock) == VALID
    lock.write_text(VALID[:VALID.index("    outs:")] + "    outs:\n    - path: 12\n")
    said = recover(lock, NOW)
    assert said == (f"{lock} was damaged (fails DVC's lock file schema: expected str in stages -> fetch -> outs -> 0 "
                    "-> path; an interrupt while DVC wrote it?): moved it to "
                    f"{tmp_path / 'dvc.lock.damaged-20261207T063005Z-2'} and put git HEAD's "
                    "dvc.lock in its place; dvc repro skips the stages that match it, restores others from DVC's "
                    "run-cache and reruns the rest")
    assert lock.read_text() == VALID and recover(lock, NOW) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".git", "dvc.lock", "dvc.lock.damaged-20261207T063005Z", "dvc.lock.damaged-20261207T063005Z-2"]


def test_the_damaged_copies_are_git_ignored() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc.lock.damaged-20261207T063005Z-2"], cwd=REPO)
    assert ignored.returncode == 0


def _outputs(root: Path) -> dict[str, int]:
    """mtime (ns) of every file the run wrote (DVC-tracked or not), by path."""
    folders = ("data", "models", "masks", "selections", "controls", "metrics", "results", "reports")
    return {str(p.relative_to(root)): p.stat().st_mtime_ns
            for folder in folders for p in (root / folder).rglob("*") if p.is_file()}


@pytest.mark.slow
def test_make_repro_recovers_an_emptied_lock_from_the_run_cache(tiny_run: Path, tmp_path: Path) -> None:
    root = copy_project(tiny_run, tmp_path / "p")
    before = _outputs(root)
    (root / "dvc.lock").write_text("")  # what a Ctrl-C during "Updating lock file 'dvc.lock'" left
    broken = run(["dvc", "status"], root, check=False)
    assert broken.returncode != 0 and "validation failed" in broken.stdout + broken.stderr
    # -o setup: no venv set-up in the copy; PATH (conftest.run) has this interpreter's python and dvc
    made = run(["make", "-o", "setup", "repro"], root)
    out = made.stdout + made.stderr
    [damaged] = root.glob("dvc.lock.damaged-*")
    said = [line for line in out.splitlines() if "was damaged" in line]
    assert said == [f"dvc.lock was damaged (empty; an interrupt while DVC wrote it?): moved it to {damaged.name} "
                    "and put git HEAD's dvc.lock in its place; dvc repro skips the stages that match it, restores "
                    "others from DVC's run-cache and reruns the rest"], out[-3000:]
    assert damaged.stat().st_size == 0
    assert "Running stage" not in out, out[-3000:]  # no stage script ran
    assert "skipping run" in out or "didn't change" in out, out[-3000:]
    assert _outputs(root) == before  # nothing rewritten
    assert "up to date" in run(["dvc", "status"], root).stdout
    assert "damaged" not in run(["git", "status", "--porcelain"], root).stdout
    assert os.path.getsize(root / "dvc.lock") > 0


@pytest.mark.slow
def test_without_heads_lock_the_run_cache_restores_the_trained_models_and_masks(tiny_run: Path,
                                                                               tmp_path: Path) -> None:
    """The fallback: no lock at HEAD. Every stage with a run-cache entry is restored (checked out again,
    same bytes); select, aggregate and report keep none (a persist / ``cache: false`` output) and rerun."""
    root = copy_project(tiny_run, tmp_path / "p")
    run(["git", "rm", "-q", "--cached", "dvc.lock"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "no lock at HEAD"], root)
    folders = ("models", "masks", "controls", "metrics", "selections")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in (root / f).rglob("*")
              if p.is_file()}
    (root / "dvc.lock").write_text("")
    made = run(["make", "-o", "setup", "repro"], root)
    out = made.stdout + made.stderr
    assert "restores finished stages from DVC's run-cache and reruns the rest" in out, out[-3000:]
    for stage in ("fetch", "train@N-0", "evaluate@A-1", "masks@T-0", "controls@N-1", "yardstick@0"):
        assert f"Stage '{stage}' is cached - skipping run" in out, out[-3000:]
    ran = {line.split("'")[1].split("@")[0] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran <= {"select", "aggregate", "report"}, out[-3000:]
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert "up to date" in run(["dvc", "status"], root).stdout
