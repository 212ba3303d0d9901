"""The benchmarks run: bench.py (``make bench``) prints its table, mask_cost.py prices the mask fits. The
``bench``-marked test (torch.compile) runs in ``make test-bench``, not in ``make test``."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest
import torch

from conftest import REPO, run, run_script
from freqbias.data import DataConfig
from freqbias.fitting import SingleMaskConfig, fit_single_masks
from freqbias.models import build_model
from freqbias.shared_masks import SharedMaskConfig, fit_shared_masks
from freqbias.stage_masks import MasksConfig
from freqbias.stage_selection import SelectConfig
from freqbias.training import TrainConfig

TOY = ("--threads", "1", "--repeats", "1", "--inner", "1", "--batch", "8", "--groups", "2")  # bench.py's toy size
FP32 = ["train N", "train A", "shared masks (2 per batch)", "single masks", "rule checks (batch 128)",
        "rule checks (batch 1024)"]
BF16 = ["train N [bf16]", "shared masks (2 per batch) [bf16]", "single masks (1 per image) [bf16]",
        "rule checks (batch 128) [bf16]"]
COMPILED = ["train N [compiled]", "shared masks (2 per batch) [compiled]", "single masks (1 per image) [compiled]"]


def _half_unit(printed: str) -> float:
    """Half the unit of a printed number's last digit: the most its rounding moved it."""
    return 0.5 * 10.0 ** -len(printed.partition(".")[2])


def check_rows(out: str, kernels: list[str]) -> None:
    """One row per kernel, in order, each row's GFLOP/s its share of its own precision's printed peak, up to
    the printed roundings (bounds multiplied, never divided: a figure printed as 0 cannot break the check)."""
    peaks = re.search(r"fp32 matmul peak \(2048 x 2048\): ([\d.]+) GFLOP/s(?:; bf16: ([\d.]+) GFLOP/s)?", out)
    assert peaks, out
    rows = [line for line in out.splitlines() if re.search(r"\d+%\s+\d+%", line)]
    assert len(rows) == len(kernels) and all(row.startswith(k) for row, k in zip(rows, kernels)), out
    for row in rows:
        printed = (*re.search(r"([\d.]+)\s+(\d+)%\s+\d+%", row).groups(), peaks[2] if "[bf16]" in row else peaks[1])
        (gflops, dg), (share, ds), (peak, dp) = ((float(t), _half_unit(t)) for t in printed)
        assert (share - ds) / 100 * (peak - dp) <= gflops + dg and gflops - dg <= (share + ds) / 100 * (peak + dp), row


def _bf16_probes(monkeypatch, avx512_bf16: bool, amx: bool) -> None:
    """Torch's CPU probes that :func:`bench.native_bf16` reads, set as on a CPU with or without each feature."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize(("avx512_bf16", "amx", "native"), [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_native_bf16_is_avx512_bf16_or_amx(monkeypatch, avx512_bf16: bool, amx: bool, native: bool) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench

    _bf16_probes(monkeypatch, avx512_bf16, amx)
    assert bench.native_bf16() is native
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert bench.native_bf16() is False   # torch cannot tell


def test_bench_prints_one_row_per_kernel(monkeypatch, capsys, one_thread) -> None:
    """The fp32 rows at toy size; ``--bf16`` on a CPU without native bf16 (simulated where it has it) prints
    a note instead of the bf16 peak and the [bf16] rows."""
    _bf16_probes(monkeypatch, avx512_bf16=False, amx=False)
    monkeypatch.setenv("FREQBIAS_PROGRESS", "0")
    assert run_script(REPO, "benchmarks/bench.py", *TOY, "--bf16") == 0
    out = capsys.readouterr().out
    assert "; bf16 not native on this CPU (no AVX512-BF16 or AMX): [bf16] rows skipped" in out, out
    check_rows(out, FP32)


def test_bench_bf16_rows_are_shares_of_the_bf16_peak(monkeypatch, capsys, one_thread) -> None:
    """``--bf16`` where bf16 is native: rows [bf16], as shares of the bf16 matmul peak it prints."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench

    if not bench.native_bf16():
        pytest.skip("no native bf16 on this CPU (AVX512-BF16 or AMX): bench.py skips its [bf16] rows")
    monkeypatch.setenv("FREQBIAS_PROGRESS", "0")
    assert run_script(REPO, "benchmarks/bench.py", *TOY, "--bf16") == 0
    out = capsys.readouterr().out
    assert "; bf16: " in out, out
    check_rows(out, FP32 + BF16)


@pytest.mark.slow
@pytest.mark.bench
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc): torch.compile's inductor needs one")
def test_bench_compiled_rows() -> None:
    """``--compile``: rows [compiled] with their first call's seconds. Minutes of torch.compile on a cold
    cache, so ``make test-bench`` runs it, not ``make test``."""
    out = run([sys.executable, "benchmarks/bench.py", *TOY, "--compile"], REPO).stdout
    check_rows(out, FP32 + COMPILED)
    assert all("1st call" in row for row in out.splitlines() if "[compiled]" in row), out


def test_bench_prints_rates_to_three_significant_digits() -> None:
    """No printed peak rounds to 0 (emulated bf16: well under 1 GFLOP/s)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench

    assert [bench.gflops(x) for x in (0.01234, 0.4, 5.432, 172.4, 2294.4)] == ["0.0123", "0.400", "5.43", "172", "2294"]


def test_device_check_runs_the_paper_profile_on_imagenette_sized_planted_data() -> None:
    """benchmarks/device_check.py (run on a lent GPU): the paper profile, less the files it cannot fetch."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench
    import device_check

    p = device_check.paper_params(epochs=3, single=32, quick=False, mask_steps=1000)
    data, train, masks = DataConfig.from_params(p), TrainConfig.from_params(p), MasksConfig.from_params(p)
    assert (train.arch, data.image_size, data.dataset) == ("vgg11_bn", 128, "planted")
    assert p["data"]["planted"]["n_train"] - data.val_size == bench.PAPER_TRAIN
    assert p["data"]["planted"]["num_classes"] == 5 and train.variants == ["N", "A"] and train.epochs == 3
    assert masks.dataset.max_steps == masks.single.max_steps == 1000 and SelectConfig.from_params(p).n_images == 32
    assert train.attack.steps == 10 and masks.dataset.batch_size == 16   # the paper's, not the default's


def test_mask_cost_times_every_fit_and_prices_the_caps(tmp_path, capsys) -> None:
    """benchmarks/mask_cost.py (run on a lent GPU for the paper profile): one row per fit and batch, and
    the caps priced from the timed steps (shared: max_steps steps; single: chunks x max_steps)."""
    out = tmp_path / "cost.json"
    assert run_script(REPO, "benchmarks/mask_cost.py", "--profile", "tiny", "--classes", "2", "--steps", "2",
                      "--batch", "64", "--chunk", "3", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert re.search(r"matmul peak fp32 [\d,]+ GFLOP/s", text), text
    cost = json.loads(out.read_text())
    assert [(r["fit"], r["batch"]) for r in cost["rows"]] == [("shared", 64), ("single", 3)]
    shared, single = cost["rows"]
    assert shared["images_per_step"] == (1 + 4 + 2) * 8   # dataset, 4 folds, 2 classes; 8 images each
    assert shared["cap_s"] == pytest.approx(60 * shared["ms_per_step"] / 1e3)
    assert single["cap_s"] == pytest.approx(3 * 20 * single["ms_per_step"] / 1e3)   # ceil(8 / 3) chunks x 20 steps
    assert cost["caps_s"]["standard (N)"] == pytest.approx(shared["cap_s"] + 2 * single["cap_s"])


def test_fits_with_unreachable_patience_run_every_step() -> None:
    """What mask_cost.py's timings rest on: with its patience no fit stops before max_steps."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import mask_cost

    torch.manual_seed(0)
    net = build_model("small_cnn", 1, 3, 28, [0.0], [1.0]).net
    z, y = torch.randn(12, 1, 28, 28), torch.randint(0, 3, (12,))
    shared = SharedMaskConfig(lam=0.2, lr=0.02, batch_size=4, max_steps=30, check_every=5, acc_ratio=0.99,
                              tol=0.5, patience=mask_cost.NEVER)
    records = fit_shared_masks(net, z, y, [torch.arange(12), torch.arange(6)], shared).records
    assert [r["steps"] for r in records] == [30, 30]
    single = SingleMaskConfig(lam=0.07, lr=0.2, pct_start=0.1, max_steps=25, tol=1.0, tol_gap=1.0,
                              patience=mask_cost.NEVER)
    assert fit_single_masks(net, z[:4], y[:4], single).steps_used.tolist() == [25] * 4


def test_device_check_trace_writes_the_stage_s_tracebacks_to_the_log(tmp_path) -> None:
    """``--trace``: where a stage spends its time, read from the log even when the stage is stopped."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import device_check

    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "slow.py").write_text(
        "import sys, time\n\ndef waiting_here():\n    time.sleep(0.6)\n\n"
        "if __name__ == '__main__':\n    print('argv', sys.argv[1:])\n    waiting_here()\n    sys.exit(3)\n")
    log = tmp_path / "log"
    result = device_check.run(tmp_path, ["stages/slow.py", "--flag", "1"], timeout=30, log=log, trace=0.25)
    text = log.read_text()
    assert result["rc"] == 3 and "argv ['--flag', '1']" in text
    assert "in waiting_here" in text and "Timeout (0:00:00.250000)!" in text, text
