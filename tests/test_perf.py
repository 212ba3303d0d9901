"""freqbias.perf: the timing helper and the matmul peak the report's run times go with."""

import math

from freqbias import perf


def test_best_seconds_calls_warmup_then_rounds_and_keeps_the_fastest(monkeypatch):
    ticks = iter([0.0, 5.0, 10.0, 12.0, 20.0, 29.0])  # rounds of 5 s, 2 s and 9 s for 2 calls each
    monkeypatch.setattr(perf.time, "perf_counter", lambda: next(ticks))
    calls = []
    seconds = perf.best_seconds(lambda: calls.append(1), repeats=3, inner=2, warmup=1)
    assert seconds == 1.0 and len(calls) == 1 + 3 * 2


def test_matmul_peak_is_a_positive_rate():
    peak = perf.matmul_peak(repeats=1, n=128)
    assert math.isfinite(peak) and peak > 0


def test_matmul_peak_is_measured_once_per_process_and_thread_count(monkeypatch):
    calls = []
    monkeypatch.setattr(perf, "best_seconds", lambda fn, repeats, inner: calls.append(1) or 1.0)
    perf._matmul_peak.cache_clear()
    first = perf.matmul_peak(repeats=1, n=64)
    assert perf.matmul_peak(repeats=1, n=64) == first and len(calls) == 1
    threads = perf.torch.get_num_threads()
    try:
        perf.torch.set_num_threads(threads + 1)
        perf.matmul_peak(repeats=1, n=64)
    finally:
        perf.torch.set_num_threads(threads)
    assert len(calls) == 2  # another thread count is measured again
    perf._matmul_peak.cache_clear()
