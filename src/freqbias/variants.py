"""The registry of training variants: one entry per variant, the only place a variant is defined.

Every variant gets the base augmentation (random horizontal flip ``train.augment.hflip`` and resized crop
``train.augment.crop_scale``, :func:`freqbias.training.augment_batch`) plus its own, set by its own entry
``train.variant.<V>`` of params.yaml and read by its own settings type:

| key | label | settings (``train.variant.<V>``) | its own augmentation |
|-----|-------|----------------------------------|----------------------|
| N | standard | none (``{}``) | none |
| A | adversarial | :class:`~freqbias.attacks.AttackConfig` | none; trained on PGD images of the augmented batch |
| S | scale | :class:`ScaleSettings` (``scale``) | random zoom in ``scale`` |
| T | translation | :class:`TranslateSettings` (``translate``) | random shift up to ``translate`` x image size |
| R | rotation | :class:`RotateSettings` (``degrees``) | random rotation in +- ``degrees`` |
| G | gaussian noise | :class:`NoiseSettings` (``noise_std``) | pixel noise of std ``noise_std`` (not in the study) |

An entry owns its settings: a type whose ``cls()`` holds the defaults and whose
``from_section(sec)`` reads (and checks) ``train.variant.<V>`` through a :class:`~freqbias.config.Section`,
so that a bad value is a one-line :class:`~freqbias.config.ParamError` naming its key. Every key of the
entry must be read there: a key nobody reads is reported as unknown (:mod:`freqbias.schema`).

An entry has two hooks, both optional, and both receive the variant's own settings object ``s``:
``warp(s)`` returns extra :func:`~freqbias.training.random_affine` keyword arguments (``scale``, ``translate``,
``degrees``) that join the base warp, so that base and variant cost ONE resampling (a ``scale`` range is
multiplied by the crop's zoom); ``augment(x, s, g)`` then maps the warped pixels x in [0, 1] (B, C, H, W)
to new pixels in [0, 1], drawing randomness from ``g`` only. ``adversarial`` variants train on the PGD
attack their settings build (``s.build(std)``: an :class:`~freqbias.attacks.AttackConfig`).

Adding a variant, with a new setting and a new augmentation, is one settings type and one
:func:`register_variant` call at the end of this file (and its entry ``train.variant.<V>`` in params.yaml);
``train.variants`` (params validation), the training loop, the figures' colours and the report's labels all
read :data:`VARIANTS`. (Stages run as subprocesses that import this module, so an entry added anywhere else
would not reach them.) N and A must stay: params validation requires both in ``train.variants``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .attacks import AttackConfig
from .config import ParamError, Section


@dataclass(frozen=True)
class AugmentConfig:
    """The base augmentation of every variant (RandomAffine conventions), ``train.augment``: ``hflip`` (random
    horizontal flip, p = 0.5) and ``crop_scale`` (low, high): share of the area a random resized crop keeps."""

    hflip: bool = True
    crop_scale: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_section(cls, sec: Section) -> "AugmentConfig":
        """Read ``train.augment``: ``crop_scale`` needs 0 < low <= high <= 1."""
        crop = sec.numbers("crop_scale", [1.0, 1.0], length=2, min=0)
        if not 0 < crop[0] <= crop[1]:
            raise ParamError(f"{sec.key('crop_scale')}: need 0 < low <= high, got {crop}")
        if crop[1] > 1:
            raise ParamError(f"{sec.key('crop_scale')}: high must be <= 1, got {crop[1]}")
        return cls(hflip=sec.boolean("hflip", True), crop_scale=(crop[0], crop[1]))


# ---------------------------------------------------------------------------------------------
# Each variant's own settings (``train.variant.<V>``)


@dataclass(frozen=True)
class NoSettings:
    """A variant without settings: its entry is ``{}`` (any key in it is unknown)."""

    @classmethod
    def from_section(cls, sec: Section) -> "NoSettings":
        return cls()


@dataclass(frozen=True)
class ScaleSettings:
    """S: zoom factor range ``scale`` (low, high), 0 < low <= high (> 1 enlarges)."""

    scale: tuple[float, float] = (0.5, 1.5)

    @classmethod
    def from_section(cls, sec: Section) -> "ScaleSettings":
        lo, hi = sec.numbers("scale", length=2, min=0)
        if not 0 < lo <= hi:
            raise ParamError(f"{sec.key('scale')}: need 0 < low <= high, got {[lo, hi]}")
        return cls((lo, hi))


@dataclass(frozen=True)
class TranslateSettings:
    """T: largest shift ``translate`` (x, y), share of the image size, >= 0."""

    translate: tuple[float, float] = (0.4, 0.4)

    @classmethod
    def from_section(cls, sec: Section) -> "TranslateSettings":
        dx, dy = sec.numbers("translate", length=2, min=0)
        return cls((dx, dy))


@dataclass(frozen=True)
class RotateSettings:
    """R: largest rotation ``degrees``, in [0, 180]."""

    degrees: float = 180.0

    @classmethod
    def from_section(cls, sec: Section) -> "RotateSettings":
        return cls(sec.number("degrees", min=0, max=180))


@dataclass(frozen=True)
class NoiseSettings:
    """G: std ``noise_std`` >= 0 of the pixel noise ([0, 1] pixel units)."""

    noise_std: float = 0.1

    @classmethod
    def from_section(cls, sec: Section) -> "NoiseSettings":
        return cls(sec.number("noise_std", min=0))


# ---------------------------------------------------------------------------------------------
# The registry


Warp = Callable[[Any], dict[str, Any]]
Augment = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Variant:
    """One training variant: its key ``name`` (as in ``train.variants`` and model names ``<name>-s<seed>``),
    a readable ``label``, a matplotlib ``colour``, the type of its ``settings``, its augmentation hooks
    (each given the settings object) and whether it trains on PGD."""

    name: str
    label: str
    colour: str
    settings: type = NoSettings
    warp: Warp | None = None
    augment: Augment | None = None
    adversarial: bool = False

    def read(self, sec: Section) -> Any:
        """This variant's settings, read from its entry ``sec`` (``train.variant.<name>``)."""
        return self.settings.from_section(sec)

    def warp_args(self, settings: Any) -> dict[str, Any]:
        """Extra :func:`~freqbias.training.random_affine` arguments of this variant ({} without a warp)."""
        return dict(self.warp(settings)) if self.warp is not None else {}

    def apply(self, x: torch.Tensor, settings: Any, g: torch.Generator) -> torch.Tensor:
        """This variant's pixel augmentation of x (B, C, H, W) in [0, 1]; x itself without one."""
        return self.augment(x, settings, g) if self.augment is not None else x


VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, label: str, colour: str, *, settings: type = NoSettings, warp: Warp | None = None,
                     augment: Augment | None = None, adversarial: bool = False) -> Variant:
    """Add a variant to :data:`VARIANTS` and return it. ``name``: letters and digits (model names are
    ``<name>-s<seed>``); ``settings``: a type with defaults (``settings()``) and ``from_section``; an
    ``adversarial`` variant's settings must ``build(std)`` its PGD. Raise ``ValueError`` for a bad or already
    registered name or a settings type that cannot be read."""
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ValueError(f"variant name must be letters and digits, got {name!r}")
    if name in VARIANTS:
        raise ValueError(f"variant {name!r} is already registered ({VARIANTS[name].label})")
    if not callable(getattr(settings, "from_section", None)):
        raise ValueError(f"variant {name!r}: settings {settings!r} has no from_section(sec) reader")
    if adversarial and not callable(getattr(settings, "build", None)):
        raise ValueError(f"variant {name!r}: an adversarial variant's settings must build(std) a PGD")
    VARIANTS[name] = Variant(name, label, colour, settings=settings, warp=warp, augment=augment,
                             adversarial=adversarial)
    return VARIANTS[name]


def label(name: str) -> str:
    """The label of a registered variant; ``name`` itself otherwise (e.g. an external checkpoint)."""
    return VARIANTS[name].label if name in VARIANTS else name


def colour(name: str, default: str = "gray") -> str:
    """The colour of variant ``name``; ``default`` when it is not registered."""
    return VARIANTS[name].colour if name in VARIANTS else default


def gaussian_noise(x: torch.Tensor, s: NoiseSettings, g: torch.Generator) -> torch.Tensor:
    """x plus pixel noise of std ``s.noise_std`` (drawn on the CPU from ``g``), clamped to [0, 1]."""
    if s.noise_std <= 0:
        return x
    return (x + s.noise_std * torch.randn(x.shape, generator=g).to(x)).clamp(0, 1)


register_variant("N", "standard", "black")
register_variant("A", "adversarial", "tab:red", settings=AttackConfig, adversarial=True)
register_variant("S", "scale", "tab:blue", settings=ScaleSettings, warp=lambda s: {"scale": s.scale})
register_variant("T", "translation", "tab:green", settings=TranslateSettings, warp=lambda s: {"translate": s.translate})
register_variant("R", "rotation", "tab:purple", settings=RotateSettings, warp=lambda s: {"degrees": s.degrees})
register_variant("G", "gaussian noise", "tab:orange", settings=NoiseSettings, augment=gaussian_noise)
