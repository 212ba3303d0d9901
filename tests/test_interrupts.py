"""Ctrl-C at any point of a stage, imports included, ends with one line and exit status 130; a temporary
file that a killed atomic write left beside its target is removed by the next write of that target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freqbias._interrupt import MESSAGE
from freqbias.io import save_text

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["stages/report.py", "stages/train.py"])
def test_ctrl_c_while_a_stage_imports_is_one_line_and_130(script: str, tmp_path: Path) -> None:
    """``-X importtime`` reports each import as it completes: SIGINT goes out right after
    ``freqbias._interrupt`` is in, while the script still imports torch."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-X", "importtime", str(REPO / script), "--variant", "N", "--seed", "0"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "freqbias._interrupt" in line:
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest[-2000:]
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest[-2000:]
    assert rest.splitlines()[-1] == MESSAGE
    assert "import time:" in rest  # the signal came while it was still importing


def test_a_write_removes_the_temporary_files_a_killed_write_left(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    leftovers = [tmp_path / ".out.txt.0123abcd.tmp", tmp_path / ".out.txt.ffffffff.tmp"]
    others = [tmp_path / ".out.txt.notmine.tmp", tmp_path / ".other.txt.0123abcd.tmp",
              tmp_path / "out.txt.0123abcd.tmp"]
    for p in leftovers + others:
        p.write_text("half written")
    save_text("whole\n", target)
    assert target.read_text() == "whole\n"
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in others)
