"""Training: the batched affine augmentation, the variants, a tiny training run, and TrainConfig errors."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml

from freqbias import perf
from freqbias.config import ParamError
from freqbias.models import build_model
from freqbias.planted import make_planted
from freqbias.training import (
    TrainConfig,
    accuracy,
    augment_batch,
    random_affine,
    train_model,
    train_step,
)
from freqbias.variants import VARIANTS, AugmentConfig, NoiseSettings

ROOT = Path(__file__).resolve().parents[1]
S = 32  # image size of the augmentation tests


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _blob(cy: float, cx: float, sigma: float = 1.5, size: int = S, batch: int = 64) -> torch.Tensor:
    """A Gaussian dot centred at pixel (cy, cx), peak 1, repeated ``batch`` times: (B, 1, S, S)."""
    r = torch.arange(size, dtype=torch.float32)
    img = torch.exp(-((r.view(-1, 1) - cy) ** 2 + (r.view(1, -1) - cx) ** 2) / (2 * sigma ** 2))
    return img.expand(batch, 1, size, size).clone()


def _centroid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass centre (row, col) of each image of x (B, 1, H, W), in pixels."""
    r = torch.arange(x.shape[-1], dtype=torch.float32)
    mass = x.sum((1, 2, 3))
    return (x.sum((1, 3)) * r).sum(1) / mass, (x.sum((1, 2)) * r).sum(1) / mass


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Radius of gyration of each image's mass about its centre, pixels."""
    cy, cx = _centroid(x)
    r = torch.arange(x.shape[-1], dtype=torch.float32)
    d2 = (r.view(1, -1, 1) - cy.view(-1, 1, 1)) ** 2 + (r.view(1, 1, -1) - cx.view(-1, 1, 1)) ** 2
    return torch.sqrt((x[:, 0] * d2).sum((1, 2)) / x.sum((1, 2, 3)))


def _pattern(batch: int = 8) -> torch.Tensor:
    """Smooth, asymmetric images in [0, 1] that vanish towards the border: (B, 1, S, S)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 1, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(S, S), mode="bicubic", align_corners=False).clamp(0, 1)
    window = torch.hann_window(S, periodic=False)
    return x * (window.view(-1, 1) * window.view(1, -1))


# ---------------------------------------------------------------------------------------------
# random_affine


def test_identity_parameters_give_back_x():
    x = _pattern()
    out = random_affine(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-5)


def test_hflip_flips_about_half_of_the_images():
    x = _pattern(32)
    out = random_affine(x, torch.Generator().manual_seed(0), hflip=True)
    same = (out - x).abs().amax((1, 2, 3)) < 1e-5
    flipped = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert (same ^ flipped).all()
    assert 5 <= int(flipped.sum()) <= 27


def test_rotation_is_about_the_centre_and_within_degrees():
    centre = (S - 1) / 2
    round_dot = _blob(centre, centre, sigma=3.0)
    out = random_affine(round_dot, torch.Generator().manual_seed(0), degrees=180)
    assert torch.allclose(out, round_dot, atol=0.03)  # a rotationally symmetric pattern stays put
    cy, cx = _centroid(out)  # (up to bilinear interpolation: 2% of the peak)
    assert (cy - centre).abs().max() < 0.02 and (cx - centre).abs().max() < 0.02

    dot = _blob(centre, centre + 9)  # 9 px right of the centre: angle 0
    for degrees in (30, 180):
        out = random_affine(dot, torch.Generator().manual_seed(1), degrees=degrees)
        cy, cx = _centroid(out)
        radius = torch.hypot(cy - centre, cx - centre)
        assert torch.allclose(radius, torch.full_like(radius, 9.0), atol=0.3)
        angle = torch.rad2deg(torch.atan2(cy - centre, cx - centre))
        assert angle.abs().max() <= degrees + 2
        assert angle.min() < -degrees / 2 and angle.max() > degrees / 2  # both directions, up to the limit
    assert angle.abs().max() > 160  # degrees=180 reaches the half turn


def test_rotation_by_180_degrees_matches_rot90_twice():
    """The generator draws the angle first (uniform in +-degrees); pick a seed whose draw is a half turn."""
    seed = next(s for s in range(100_000)
                if abs(float(torch.rand(1, generator=torch.Generator().manual_seed(s))) - 0.5) > 0.5 - 1e-4)
    x = _pattern(1)
    out = random_affine(x, torch.Generator().manual_seed(seed), degrees=180)
    assert torch.allclose(out, torch.rot90(x, 2, (2, 3)), atol=0.01)
    assert not torch.allclose(x, torch.rot90(x, 2, (2, 3)), atol=0.1)  # the pattern is not symmetric itself


@pytest.mark.parametrize("axis", [0, 1])
def test_translation_moves_mass_along_its_axis(axis):
    """translate = (horizontal, vertical) share of the size, torchvision's order."""
    centre = (S - 1) / 2
    dot = _blob(centre, centre)
    translate = (0.25, 0.0) if axis == 0 else (0.0, 0.25)
    out = random_affine(dot, torch.Generator().manual_seed(0), translate=translate)
    cy, cx = _centroid(out)
    moved, still = (cx, cy) if axis == 0 else (cy, cx)
    assert (still - centre).abs().max() < 0.05
    shift = moved - centre
    assert shift.abs().max() <= 0.25 * S + 0.1
    assert shift.min() < -0.15 * S and shift.max() > 0.15 * S
    # the mass moves as a whole: the dot keeps its shape
    assert torch.allclose(_spread(out), _spread(dot), atol=0.1)


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_scale_above_one_enlarges(zoom):
    centre = (S - 1) / 2
    dot = _blob(centre, centre, sigma=2.5)
    out = random_affine(dot, torch.Generator().manual_seed(0), scale=(zoom, zoom))
    assert torch.allclose(_spread(out), zoom * _spread(dot), rtol=0.1)
    cy, cx = _centroid(out)
    assert (cy - centre).abs().max() < 0.05 and (cx - centre).abs().max() < 0.05


# ---------------------------------------------------------------------------------------------
# augment_batch


def test_standard_variant_without_flip_is_the_identity():
    x = _pattern()
    for variant in ("N", "A"):
        assert torch.equal(augment_batch(x, variant, AugmentConfig(hflip=False), torch.Generator().manual_seed(0)), x)


def test_standard_variant_only_flips():
    x = _pattern(32)
    out = augment_batch(x, "N", AugmentConfig(hflip=True), torch.Generator().manual_seed(0))
    same = (out - x).abs().amax((1, 2, 3)) < 1e-5
    flipped = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert (same | flipped).all() and flipped.any() and same.any()


@pytest.mark.parametrize("variant", ["S", "T", "R", "G"])
def test_variants_change_the_images(variant):
    x = _pattern(16)
    cfg = AugmentConfig(hflip=False)
    out = augment_batch(x, variant, cfg, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().amax((1, 2, 3)) > 0.05
    assert changed.float().mean() >= 0.9
    if variant == "G":
        gray = torch.full((4, 1, S, S), 0.5)
        noisy = augment_batch(gray, variant, cfg, torch.Generator().manual_seed(0), NoiseSettings(0.05))
        assert (noisy - gray).std() == pytest.approx(0.05, rel=0.05)
    else:  # geometric variants move pixels but add no noise: a flat image stays flat inside
        flat = augment_batch(torch.full((4, 1, S, S), 0.5), variant, cfg, torch.Generator().manual_seed(0))
        assert torch.allclose(flat[..., S // 2 - 2:S // 2 + 2, S // 2 - 2:S // 2 + 2], torch.tensor(0.5), atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_augment_batch_is_deterministic_with_the_generator(variant):
    x = _pattern(16)
    cfg = AugmentConfig()
    run = lambda seed: augment_batch(x, variant, cfg, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_crop_scale_zooms_in():
    centre = (S - 1) / 2
    dot = _blob(centre, centre, sigma=2.5, batch=8)
    out = augment_batch(dot, "N", AugmentConfig(hflip=False, crop_scale=(0.25, 0.25)), torch.Generator().manual_seed(0))
    assert torch.allclose(_spread(out), 2 * _spread(dot), rtol=0.1)  # keeping 1/4 of the area = zoom x2


# ---------------------------------------------------------------------------------------------
# train_model


def _tiny_config(**train) -> TrainConfig:
    params = _params()
    params["train"].update({"epochs": 3, "batch_size": 50, "lr": 0.01, **train})
    params["train"]["augment"]["hflip"] = False  # a flip swaps the planted 45 and 135 degree classes
    return TrainConfig.from_params(params)


def test_train_model_learns_and_keeps_the_best_val_epoch():
    x, y = make_planted(300, 28, 4, seed=0)
    x_val, y_val = make_planted(200, 28, 4, seed=1)
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2])
    lines = []
    result = train_model(model, "N", _tiny_config(), 0, (x, y), (x_val, y_val), std=0.2, log=lines.append)
    assert len(result.history) == 3 and len(lines) == 3
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    val = [row["val_acc"] for row in result.history]
    assert result.best_val_acc == max(val) > 0.6  # chance is 0.25
    assert result.best_epoch == val.index(max(val)) + 1
    assert not result.model.training
    assert accuracy(result.model, x_val, y_val) == pytest.approx(result.best_val_acc)  # best weights restored
    assert all(math.isfinite(row["train_loss"]) for row in result.history)


def test_train_model_restores_an_earlier_best_epoch(monkeypatch):
    """With the val accuracy of each epoch scripted as 0.3, 0.9, 0.5, the epoch-2 weights come back."""
    import freqbias.training as training

    x, y = make_planted(100, 28, 4, seed=0)
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2])
    scripted, snapshots = iter([0.3, 0.9, 0.5]), []

    def fake_accuracy(m, *args, **kwargs):
        snapshots.append(copy.deepcopy(m.state_dict()))
        return next(scripted)

    monkeypatch.setattr(training, "accuracy", fake_accuracy)
    result = train_model(model, "N", _tiny_config(), 0, (x, y), (x[:10], y[:10]), std=0.2, log=lambda s: None)
    assert result.best_epoch == 2 and result.best_val_acc == 0.9
    state = result.model.state_dict()
    assert all(torch.equal(state[k], snapshots[1][k]) for k in state)
    assert not all(torch.equal(state[k], snapshots[2][k]) for k in state)


def test_train_model_is_reproducible_and_adversarial_runs():
    x, y = make_planted(100, 28, 4, seed=0)

    def run(variant):
        torch.manual_seed(0)
        model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2])
        cfg = _tiny_config(epochs=1)
        return train_model(model, variant, cfg, 0, (x, y), (x[:20], y[:20]), std=0.2, log=lambda s: None)

    a, b = run("R"), run("R")
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    adv = run("A")
    assert math.isfinite(adv.history[0]["train_loss"])


def test_train_model_unknown_variant():
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2])
    x, y = make_planted(20, 28, 4)
    with pytest.raises(ParamError, match="train.variants"):
        train_model(model, "X", _tiny_config(), 0, (x, y), (x, y), std=0.2)


# ---------------------------------------------------------------------------------------------
# TrainConfig


def test_train_config_from_the_default_params():
    cfg = TrainConfig.from_params(_params())
    assert cfg.arch == "small_cnn" and cfg.variants == list("NASTRG")
    assert cfg.attack.steps >= 1 and cfg.attack is cfg.settings["A"]
    assert cfg.augment == AugmentConfig(hflip=True, crop_scale=(1.0, 1.0))
    assert {v: type(s).__name__ for v, s in cfg.settings.items()} == {
        "N": "NoSettings", "A": "AttackConfig", "S": "ScaleSettings", "T": "TranslateSettings",
        "R": "RotateSettings", "G": "NoiseSettings"}
    assert cfg.settings["S"].scale == (0.5, 1.5) and cfg.settings["R"].degrees == 180
    assert cfg.evaluation.eps == (0.02, 0.05, 0.1) and cfg.evaluation.attack(0.1).alpha == pytest.approx(0.025)


def test_each_variant_trains_with_its_own_settings(monkeypatch):
    """train_model hands the variant's parsed ``train.variant.<V>`` settings to its hooks."""
    seen = []
    spec = VARIANTS["R"]
    monkeypatch.setitem(VARIANTS, "R", dataclasses.replace(spec, warp=lambda s: seen.append(s) or {}))
    x, y = make_planted(50, 28, 4, seed=0)
    torch.manual_seed(0)
    params = _params()
    params["train"]["variant"]["R"]["degrees"] = 30
    params["train"].update(epochs=1, batch_size=50)
    train_model(build_model("small_cnn", 1, 4, 28, [0.5], [0.2]), "R", TrainConfig.from_params(params), 0,
                (x, y), (x[:10], y[:10]), std=0.2, log=lambda s: None)
    assert [s.degrees for s in seen] == [30.0]


def test_a_listed_variant_needs_its_settings_entry():
    cfg = _tiny_config()
    with pytest.raises(ParamError, match=r"^train\.variant\.X: missing"):
        cfg.settings_of("X")


def test_train_config_alpha_defaults_to_eps_over_8_and_units():
    params = _params()
    params["train"]["variant"]["A"].update({"eps": 0.06, "alpha": None, "units": "normalized"})
    cfg = TrainConfig.from_params(params)
    assert cfg.attack.alpha == pytest.approx(0.06 / 8)
    attack = cfg.attack.build(std=0.226)
    assert attack.eps == pytest.approx(0.06 * 0.226) and attack.alpha == pytest.approx(0.06 / 8 * 0.226)


def _set(params: dict, dotted: str, value) -> dict:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return params


@pytest.mark.parametrize("key,value", [
    ("train.variants", ["N", "X"]),
    ("train.variants", []),
    ("train.variants", ["N", "N"]),
    ("train.variant.A.eps", -0.1),
    ("train.variant.A.steps", 0),
    ("train.variant.A.steps", 2.5),
    ("train.variant.A.units", "percent"),
    ("train.lr", 0),
    ("train.lr", -0.001),
    ("train.lr", "fast"),
    ("train.epochs", 0),
    ("train.seeds", [-1]),
    ("train.seeds", []),
    ("train.seeds", [0, 0]),
    ("train.variants", ["N", "T"]),
    ("train.variants", ["A", "R"]),
    ("train.augment.crop_scale", [0.8, 0.5]),
    ("train.augment.crop_scale", [0.0, 1.0]),
    ("train.augment.crop_scale", [0.5, 1.2]),
    ("train.augment.crop_scale", [0.5]),
    ("train.variant.S.scale", [1.5, 0.5]),
    ("train.variant.R.degrees", 270),
    ("train.variant.T.translate", [0.4]),
    ("train.variant.T.translate", [-0.1, 0.1]),
    ("train.variant.G.noise_std", -0.1),
    ("train.eval.steps", 0),
    ("train.eval.eps", "0.1"),
    ("model.arch", "vit"),
    ("train.variant.A", 0.1),
    ("train.variant.N", None),
    ("train.amp", "yes"),
])
def test_train_config_errors_name_the_key(key, value):
    with pytest.raises(ParamError, match=rf"^{key.replace('.', '[.]')}: "):
        TrainConfig.from_params(_set(_params(), key, value))


def test_train_config_missing_key():
    params = _params()
    del params["train"]["variant"]["A"]["eps"]
    with pytest.raises(ParamError, match=r"^train\.variant\.A\.eps: missing"):
        TrainConfig.from_params(params)
    params = _params()
    params["train"]["variant"]["S"] = {}  # a variant's setting has no default in params
    with pytest.raises(ParamError, match=r"^train\.variant\.S\.scale: missing"):
        TrainConfig.from_params(params)


@pytest.mark.parametrize("value,device,amx,on,warned", [
    (None, "cpu", False, False, False), (None, "cuda", False, True, False),  # auto: bf16 on CUDA only ...
    (None, "cpu", True, False, False),                                       # ... even on an AMX CPU
    (True, "cpu", False, True, True), (True, "cuda", False, True, False),    # explicit true wins, warned
    (True, "cpu", True, True, False),                                        # on a CPU without AMX only
    (False, "cuda", False, False, False), (False, "cpu", False, False, False),
])
def test_train_amp_auto_and_explicit(value, device, amx, on, warned, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    params = _params()
    params["train"]["amp"] = value
    lines = []
    assert TrainConfig.from_params(params).amp_on(torch.device(device), lines.append) is on
    assert len(lines) == int(warned) and all("train.amp" in line and "AMX" in line for line in lines)


def test_fast_bf16_is_false_when_torch_cannot_tell(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert perf.fast_bf16() is False


def test_train_amp_left_out_is_auto():
    params = _params()
    del params["train"]["amp"]
    assert TrainConfig.from_params(params).amp is None


def test_train_step_lowers_the_loss_and_restores_train_mode():
    x, y = make_planted(64, 28, 4, seed=0)
    x = x.float() / 255
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2]).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    attack = _tiny_config().attack.build(std=0.2)
    _, logits = train_step(model, x, y, opt, attack=attack, g=torch.Generator().manual_seed(0))
    assert model.training and logits.shape == (64, 4) and not logits.requires_grad
    first, _ = train_step(model, x, y, opt)
    for _ in range(10):
        loss, _ = train_step(model, x, y, opt)
    assert loss < 0.8 * first
