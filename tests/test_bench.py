"""benchmarks/bench.py runs (``make bench``) and prints its table: one row per kernel, shares of the peak."""

from __future__ import annotations

import re
import sys

from conftest import REPO, run


def test_bench_prints_one_row_per_kernel() -> None:
    out = run([sys.executable, "benchmarks/bench.py", "--threads", "1", "--repeats", "1", "--inner", "1",
               "--batch", "8", "--groups", "2"], REPO).stdout
    assert re.search(r"fp32 matmul peak \(2048 x 2048\): \d+ GFLOP/s", out), out
    rows = [line for line in out.splitlines() if re.search(r"\d+%\s+\d+%", line)]
    kernels = ("train N", "train A", "shared masks (2 per batch)", "single masks", "rule checks (batch 128)",
               "rule checks (batch 1024)")
    assert len(rows) == len(kernels) and all(row.startswith(k) for row, k in zip(rows, kernels)), out
