"""A new training variant with its own new setting and its own new augmentation is one settings type and one
``register_variant`` call: here a brightness-jitter variant "B" with ``train.variant.B.brightness``, registered
in this module only (a real user adds both to ``src/freqbias/variants.py``, which the stages import), parsed,
validated and applied by the real training code on a tiny planted run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from freqbias.config import ParamError, Section
from freqbias.models import build_model
from freqbias.planted import make_planted
from freqbias.schema import validate_params
from freqbias.training import TrainConfig, augment_batch, train_model
from freqbias.variants import VARIANTS, AugmentConfig, register_variant

ROOT = Path(__file__).resolve().parents[1]


# --- everything variant B needs (in a real project: at the end of src/freqbias/variants.py) -----------------


@dataclass(frozen=True)
class BrightnessSettings:
    """B: largest brightness shift ``brightness`` in [0, 1] ([0, 1] pixel units)."""

    brightness: float = 0.2

    @classmethod
    def from_section(cls, sec: Section) -> "BrightnessSettings":
        return cls(sec.number("brightness", min=0, max=1))


def brightness_jitter(x: torch.Tensor, s: BrightnessSettings, g: torch.Generator) -> torch.Tensor:
    """Every image of x (B, C, H, W) in [0, 1] plus one shift uniform in +- ``s.brightness``, clamped to [0, 1]."""
    shift = (2 * torch.rand(len(x), 1, 1, 1, generator=g) - 1) * s.brightness
    return (x + shift.to(x)).clamp(0, 1)


def _register() -> None:
    register_variant("B", "brightness", "tab:brown", settings=BrightnessSettings, augment=brightness_jitter)


# -------------------------------------------------------------------------------------------------------------


@pytest.fixture
def with_b():
    """Variant B registered for one test; the registry restored afterwards."""
    before = dict(VARIANTS)
    _register()
    yield VARIANTS["B"]
    VARIANTS.clear()
    VARIANTS.update(before)


def _params(**b) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["variants"] = ["N", "A", "B"]
    params["train"]["variant"]["B"] = b
    params["train"].update(epochs=1, batch_size=50, lr=0.01)
    params["train"]["augment"]["hflip"] = False
    return params


def test_its_setting_is_parsed(with_b):
    cfg = TrainConfig.from_params(_params(brightness=0.3))
    assert cfg.variants == ["N", "A", "B"] and cfg.settings_of("B") == BrightnessSettings(0.3)
    assert cfg.settings_of("S").scale == (0.5, 1.5)  # the others keep theirs
    validate_params(_params(brightness=0.3))  # every key of its entry is read: the schema knows it


@pytest.mark.parametrize("value,message", [
    (1.5, r"^train\.variant\.B\.brightness: must be <= 1, got 1\.5$"),
    (-0.1, r"^train\.variant\.B\.brightness: must be >= 0, got -0\.1$"),
    ("bright", r"^train\.variant\.B\.brightness: must be a number, got 'bright'$"),
])
def test_a_bad_value_names_its_key(with_b, value, message):
    with pytest.raises(ParamError, match=message):
        TrainConfig.from_params(_params(brightness=value))


def test_a_missing_or_misspelt_setting_names_its_key(with_b):
    with pytest.raises(ParamError, match=r"^train\.variant\.B\.brightness: missing$"):
        TrainConfig.from_params(_params())
    with pytest.raises(ParamError, match=r"^train\.variant\.B\.brihgtness: unknown key; did you mean brightness\?$"):
        validate_params(_params(brihgtness=0.3))


def test_unregistered_it_is_unknown():
    with pytest.raises(ParamError, match=r"^train\.variants: unknown value 'B'"):
        TrainConfig.from_params(_params(brightness=0.3))


def test_its_augmentation_follows_its_setting(with_b):
    gray = torch.full((64, 1, 8, 8), 0.5)
    run = lambda s: augment_batch(gray, "B", AugmentConfig(hflip=False), torch.Generator().manual_seed(0), s)  # noqa: E731
    shift = (run(BrightnessSettings(0.3)) - gray).amax((1, 2, 3))
    assert shift.abs().max() <= 0.3 + 1e-6 and shift.abs().max() > 0.2 and (shift > 0).any() and (shift < 0).any()
    assert torch.equal(run(BrightnessSettings(0.0)), gray)
    assert torch.equal(augment_batch(gray, "B", AugmentConfig(hflip=False), torch.Generator().manual_seed(0)),
                       run(BrightnessSettings()))  # no settings given: its type's defaults


def test_a_tiny_training_run_applies_it(with_b, monkeypatch):
    """The real train_model hands B's parsed settings to B's hook on every batch and trains on its images."""
    seen = []

    def spy(x, s, g):
        seen.append(s)
        return brightness_jitter(x, s, g)

    monkeypatch.setitem(VARIANTS, "B", dataclasses.replace(VARIANTS["B"], augment=spy))
    x, y = make_planted(100, 28, 4, seed=0)

    def train(variant: str, brightness: float):
        torch.manual_seed(0)
        model = build_model("small_cnn", 1, 4, 28, [0.5], [0.2])
        cfg = TrainConfig.from_params(_params(brightness=brightness))
        return train_model(model, variant, cfg, 0, (x, y), (x[:20], y[:20]), std=0.2, log=lambda s: None)

    jittered = train("B", 0.3)
    assert seen == [BrightnessSettings(0.3)] * 2  # 100 images, batches of 50, one epoch
    assert math.isfinite(jittered.history[0]["train_loss"])
    plain, standard = train("B", 0.0), train("N", 0.3)
    weights = lambda r: torch.cat([p.flatten() for p in r.model.state_dict().values() if p.is_floating_point()])  # noqa: E731
    assert torch.equal(weights(plain), weights(standard))  # no jitter: B draws once per batch, otherwise as N ...
    assert not torch.equal(weights(jittered), weights(standard))  # ... and its setting changes the trained net
