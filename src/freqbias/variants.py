"""The registry of training variants: one entry per variant, the only place a variant is defined.

Every variant gets the base augmentation (random horizontal flip ``augment.hflip`` and resized crop
``augment.crop_scale``, :func:`freqbias.training.augment_batch`) plus its own:

| key | label | its own augmentation |
|-----|-------|----------------------|
| N | standard | none |
| A | adversarial | none; trained on PGD images of the augmented batch (:mod:`freqbias.attacks`) |
| S | scale | random zoom in ``augment.scale`` |
| T | translation | random shift up to ``augment.translate`` x image size |
| R | rotation | random rotation in +- ``augment.degrees`` |
| G | gaussian noise | pixel noise of std ``augment.noise_std`` (not in the study) |

An entry has two hooks, both optional: ``warp(cfg)`` returns extra :func:`~freqbias.training.random_affine`
keyword arguments (``scale``, ``translate``, ``degrees``) that join the base warp, so that base and variant
cost ONE resampling (a ``scale`` range is multiplied by the crop's zoom); ``augment(x, cfg, g)`` then maps
the warped pixels x in [0, 1] (B, C, H, W) to new pixels in [0, 1], drawing randomness from ``g`` only
(cfg: :class:`AugmentConfig`). ``adversarial`` variants train on the PGD attack of their own
``train.variant.<V>`` entry (A: ``train.variant.A``).

Adding a variant is one :func:`register_variant` call at the end of this file; ``train.variants``
(params validation), the training loop, the figures' colours and the report's labels all read
:data:`VARIANTS`. (Stages run as subprocesses that import this module, so an entry added anywhere else
would not reach them.) N and A must stay: params validation requires both in ``train.variants``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges (RandomAffine conventions): base ``hflip`` and ``crop_scale`` (area kept by a
    random resized crop) apply to every variant; ``scale``, ``translate``, ``degrees``, ``noise_std``
    are read by the variants that use them (S, T, R and G). Read from ``train.augment`` by
    :class:`freqbias.training.TrainConfig`."""

    hflip: bool = True
    crop_scale: tuple[float, float] = (1.0, 1.0)
    scale: tuple[float, float] = (0.5, 1.5)
    translate: tuple[float, float] = (0.4, 0.4)
    degrees: float = 180.0
    noise_std: float = 0.1


Warp = Callable[[AugmentConfig], dict[str, Any]]
Augment = Callable[[torch.Tensor, AugmentConfig, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Variant:
    """One training variant: its key ``name`` (as in ``train.variants`` and model names ``<name>-s<seed>``),
    a readable ``label``, a matplotlib ``colour``, its augmentation hooks and whether it trains on PGD."""

    name: str
    label: str
    colour: str
    warp: Warp | None = None
    augment: Augment | None = None
    adversarial: bool = False


VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, label: str, colour: str, *, warp: Warp | None = None,
                     augment: Augment | None = None, adversarial: bool = False) -> Variant:
    """Add a variant to :data:`VARIANTS` and return it. ``name``: letters and digits (model names are
    ``<name>-s<seed>``); raise ``ValueError`` for a bad or already registered name."""
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ValueError(f"variant name must be letters and digits, got {name!r}")
    if name in VARIANTS:
        raise ValueError(f"variant {name!r} is already registered ({VARIANTS[name].label})")
    VARIANTS[name] = Variant(name, label, colour, warp, augment, adversarial)
    return VARIANTS[name]


def label(name: str) -> str:
    """The label of a registered variant; ``name`` itself otherwise (e.g. an external checkpoint)."""
    return VARIANTS[name].label if name in VARIANTS else name


def colour(name: str, default: str = "gray") -> str:
    """The colour of variant ``name``; ``default`` when it is not registered."""
    return VARIANTS[name].colour if name in VARIANTS else default


def gaussian_noise(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """x plus pixel noise of std ``cfg.noise_std`` (drawn on the CPU from ``g``), clamped to [0, 1]."""
    if cfg.noise_std <= 0:
        return x
    return (x + cfg.noise_std * torch.randn(x.shape, generator=g).to(x)).clamp(0, 1)


register_variant("N", "standard", "black")
register_variant("A", "adversarial", "tab:red", adversarial=True)
register_variant("S", "scale", "tab:blue", warp=lambda cfg: {"scale": cfg.scale})
register_variant("T", "translation", "tab:green", warp=lambda cfg: {"translate": cfg.translate})
register_variant("R", "rotation", "tab:purple", warp=lambda cfg: {"degrees": cfg.degrees})
register_variant("G", "gaussian noise", "tab:orange", augment=gaussian_noise)
