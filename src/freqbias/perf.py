"""How fast this machine is: the fp32 matmul peak that every speed in this project is quoted against.

Machines of one kind differ by about 2x, so a speed means little without the peak of the machine that
measured it: ``benchmarks/bench.py`` reports each kernel as a share of :func:`matmul_peak`, and the
aggregate stage records the peak in ``results/summary.json`` so that the report's run times can be
scaled to another machine.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Callable

import torch


def best_seconds(fn: Callable[[], object], repeats: int, inner: int = 1, warmup: int = 3) -> float:
    """Seconds per call: the fastest of ``repeats`` rounds of ``inner`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def matmul_peak(repeats: int = 10, n: int = 2048) -> float:
    """fp32 GFLOP/s of ``a @ b`` for n x n matrices on the CPU with torch's current threads, best of
    ``repeats`` (about 0.1 s per repeat on a 2-core machine; 1.2 s in all on one thread). Measured once
    per process and thread count: a process that runs the aggregate stage several times (the tests)
    measures it once."""
    return _matmul_peak(repeats, n, torch.get_num_threads())


@functools.cache
def _matmul_peak(repeats: int, n: int, threads: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats, 1) / 1e9
