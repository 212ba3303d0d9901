"""The masks section of params: validation, and the chunk size and memory budget of single-image fits."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from freqbias.config import ParamError, load_params
from freqbias.fitting import bytes_per_image
from freqbias.models import build_model
from freqbias.parametrisation import Full, Rfft
from freqbias.stage_masks import MasksConfig

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")


def with_masks(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    for dotted, value in changes.items():
        node = params["masks"]
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    return params


def test_default_masks_section_is_valid() -> None:
    cfg = MasksConfig.from_params(PARAMS)
    assert cfg.parametrisation in (Rfft, Full) and cfg.single.chunk_size >= 1
    assert cfg.dataset.parametrisation is cfg.parametrisation is cfg.single.parametrisation


@pytest.mark.parametrize("key, value, match", [
    ("kind", "half", "masks.kind: unknown value 'half'; allowed: rfft, full, isotropic"),
    ("dataset__lam", -1, "masks.dataset.lam: must be >= 0"),
    ("dataset__batch_size", 0, "masks.dataset.batch_size: must be >= 1"),
    ("dataset__acc_ratio", 1.5, "masks.dataset.acc_ratio: must be <= 1"),
    ("dataset__method", "free", "masks.dataset.method: unknown value 'free'; allowed: constrained, fixed"),
    ("dataset__lam_factor", 1.0, "masks.dataset.lam_factor: must be > 1"),
    ("dataset__folds", 1, "masks.dataset.folds: must be >= 2"),
    ("dataset__check_every", 0, "masks.dataset.check_every: must be >= 1"),
    ("single__max_steps", 0, "masks.single.max_steps: must be >= 1"),
    ("single__lr", 0, "masks.single.lr: must be > 0"),
])
def test_bad_values_name_the_key(key: str, value, match: str) -> None:
    with pytest.raises(ParamError, match=match.replace(".", r"\.").replace("(", r"\(")):
        MasksConfig.from_params(with_masks(**{key: value}))


def test_bytes_per_image_grows_with_image_size() -> None:
    small = build_model("small_cnn", 1, 10, 28, [0.5], [0.25]).net.eval()
    assert bytes_per_image(small, (1, 56, 56)) > 3.5 * bytes_per_image(small, (1, 28, 28))


def test_memory_budget_caps_the_chunk_size() -> None:
    net = build_model("small_cnn", 1, 10, 28, [0.5], [0.25]).net.eval()
    per_image = bytes_per_image(net, (1, 28, 28))
    cfg = MasksConfig.from_params(PARAMS)
    unlimited = cfg.single_for(net, (1, 28, 28), chunk_size=512, memory_mb=None)
    assert unlimited == dataclasses.replace(cfg.single, chunk_size=512)
    assert cfg.single_for(net, (1, 28, 28), chunk_size=3, memory_mb=None).chunk_size == 3
    budget_mb = 10 * per_image / 2**20
    assert cfg.single_for(net, (1, 28, 28), chunk_size=512, memory_mb=budget_mb).chunk_size == 10
    assert cfg.single_for(net, (1, 28, 28), chunk_size=4, memory_mb=budget_mb).chunk_size == 4
    assert cfg.single_for(net, (1, 28, 28), chunk_size=512, memory_mb=1e-6).chunk_size == 1
