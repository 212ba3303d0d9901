"""benchmarks/bench.py runs (``make bench``) and prints its table: one row per kernel, shares of the peak."""

from __future__ import annotations

import re
import sys

from conftest import REPO, run
from freqbias.data import DataConfig
from freqbias.mask_run import MasksConfig
from freqbias.training import TrainConfig


def test_bench_prints_one_row_per_kernel() -> None:
    out = run([sys.executable, "benchmarks/bench.py", "--threads", "1", "--repeats", "1", "--inner", "1",
               "--batch", "8", "--groups", "2"], REPO).stdout
    assert re.search(r"fp32 matmul peak \(2048 x 2048\): \d+ GFLOP/s", out), out
    rows = [line for line in out.splitlines() if re.search(r"\d+%\s+\d+%", line)]
    kernels = ("train N", "train A", "shared masks (2 per batch)", "single masks", "rule checks (batch 128)",
               "rule checks (batch 1024)")
    assert len(rows) == len(kernels) and all(row.startswith(k) for row, k in zip(rows, kernels)), out


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
    assert masks.dataset.max_steps == masks.single.max_steps == 1000 and masks.single_n == 32
    assert train.attack.steps == 10 and masks.dataset.batch_size == 16   # the paper's, not the default's
