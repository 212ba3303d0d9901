"""Tests of freqbias.measures: per-image similarity measures, masked pixels, loading the models' files."""

from __future__ import annotations

import pytest
import torch

from freqbias import measures as ms
from freqbias.config import DataError, ParamError
from freqbias.models import build_model
from freqbias.parametrisation import Rfft

H = W = 28

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ssim_and_correlation():
    torch.manual_seed(0)
    x = torch.rand(3, 1, H, W)
    assert torch.allclose(ms.ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ms.pixel_correlation(x, 2 * x + 1), torch.ones(3, dtype=torch.float64))
    noise = torch.rand(3, 1, H, W)
    assert (ms.ssim(x, noise) < 0.2).all() and (ms.pixel_correlation(x, noise).abs() < 0.2).all()


def test_masked_pixels_with_ones_mask_is_the_image():
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3, H, [0.4], [0.3])
    x = torch.rand(2, 1, H, W)
    torch.testing.assert_close(ms.masked_pixels(model, x, torch.ones(2, H, W // 2 + 1), Rfft(H, W)), x)


def test_load_records_needs_N_and_the_files(tmp_path):
    with pytest.raises(ParamError, match=r"^train\.variants"):
        ms.load_records(["A"], [0], torch.device("cpu"), tmp_path)
    with pytest.raises(DataError, match="not found"):
        ms.load_records(["N"], [0], torch.device("cpu"), tmp_path)
