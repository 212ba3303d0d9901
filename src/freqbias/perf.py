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


def fast_bf16() -> bool:
    """Whether this CPU has AMX tiles, with which bf16 matmuls and convolutions run several times faster
    than fp32 (``benchmarks/bench.py --bf16``: 6x the matmul peak, about 2x a small_cnn training step on a
    Sapphire Rapids core); without them CPU bf16 autocast is slower than fp32 (14x for a VGG11-BN step on
    one machine of this project). False when torch cannot tell."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, but the only probe torch has
    return bool(probe()) if probe is not None else False


def matmul_peak(repeats: int = 10, n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of ``a @ b`` for n x n matrices of ``dtype`` (fp32 unless asked) on the CPU with torch's
    current threads, best of ``repeats`` (about 0.1 s per repeat on a 2-core machine; 1.2 s in all on one
    thread). Measured once per process, thread count and dtype: a process that runs the aggregate stage
    several times (the tests) measures it once."""
    return _matmul_peak(repeats, n, torch.get_num_threads(), dtype)


@functools.cache
def _matmul_peak(repeats: int, n: int, threads: int, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats, 1) / 1e9
