"""PGD L-inf attack (Madry et al. 2018) in [0, 1] pixel space.

An attack is a small object with ``random_start``, ``step`` and ``project`` (as in MadryLab's
robustness library); :meth:`PGD.perturb` runs them. ``eps`` and ``alpha`` are in pixel units unless
built with :meth:`PGD.from_normalized` (the study's setting: eps in units of the normalised image,
i.e. ``eps_pixel = eps * std``). Unlike the published code, adversarial images are clamped to the
valid pixel range [0, 1], not to the batch's min / max. Settings as params give them: :class:`AttackConfig`
(a training or selection attack), :class:`RobustEval` (the evaluate stage's attacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .config import Section


@dataclass(frozen=True)
class PGD:
    """L-inf PGD. ``eps``, ``alpha``: pixel units ([0, 1] scale); ``steps`` >= 0."""

    eps: float
    alpha: float
    steps: int
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.eps < 0 or self.alpha < 0 or self.steps < 0:
            raise ValueError(f"PGD needs eps, alpha >= 0 and steps >= 0, got {self}")

    @classmethod
    def from_normalized(cls, eps: float, alpha: float, steps: int, std: float, random_start: bool = True) -> "PGD":
        """Build from eps / alpha in normalised-image units (the study's convention)."""
        return cls(eps * std, alpha * std, steps, random_start)

    def start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform random point in the eps-ball around x (or x itself without random start)."""
        if not self.random_start or self.eps == 0:
            return x.clone()
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
        return (x + (2 * noise - 1) * self.eps).clamp(0, 1)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One ascent step along the gradient's sign."""
        return x_adv + self.alpha * grad.sign()

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Back into the eps-ball around x and the valid range [0, 1]."""
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Adversarial images (B, C, H, W) in [0, 1] that raise ``CE(model(x_adv), y)``.

        The model's mode (train / eval) is left as it is; parameters get no gradient."""
        x = x.detach()
        x_adv = self.start(x, generator)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = self.project(self.step(x_adv.detach(), grad), x)
        return x_adv.detach()


@dataclass(frozen=True)
class AttackConfig:
    """PGD settings as params give them; ``units`` says whether eps / alpha are in pixel or
    normalised-image units (:meth:`build` makes the :class:`PGD` for a dataset's pixel ``std``)."""

    eps: float
    alpha: float
    steps: int
    random_start: bool = True
    units: str = "pixel"

    def build(self, std: float) -> PGD:
        if self.units == "normalized":
            return PGD.from_normalized(self.eps, self.alpha, self.steps, std, self.random_start)
        return PGD(self.eps, self.alpha, self.steps, self.random_start)

    @classmethod
    def from_section(cls, sec: "Section") -> "AttackConfig":
        """Read ``eps``, ``alpha`` (null = eps / 8), ``steps``, ``random_start`` and ``units`` of ``sec``
        (``train.variant.A``, the adversarial training's PGD; ``masks.select``, the selection's)."""
        eps = sec.number("eps", min=0)
        alpha = sec.number("alpha", None, min=0, optional=True)
        return cls(eps=eps, alpha=eps / 8 if alpha is None else alpha, steps=sec.integer("steps", min=1),
                   random_start=sec.boolean("random_start", True),
                   units=sec.choice("units", ["pixel", "normalized"], "pixel"))


@dataclass(frozen=True)
class RobustEval:
    """The evaluate stage's own attacks (``train.eval``): L-inf PGD at every ``eps`` (pixel units) with ``steps``
    steps of eps / 4 and a random start, on the first ``n`` test images; the same for every model."""

    eps: tuple[float, ...]
    steps: int
    n: int

    def attack(self, eps: float) -> PGD:
        """The PGD at ``eps`` (one of :attr:`eps`)."""
        return PGD(eps, eps / 4, self.steps)

    @classmethod
    def from_section(cls, sec: "Section") -> "RobustEval":
        """Read ``eps`` (a list, >= 0), ``steps`` (>= 1) and ``n`` (>= 1) of ``sec`` (``train.eval``)."""
        return cls(eps=tuple(sec.numbers("eps", min=0)), steps=sec.integer("steps", min=1), n=sec.integer("n", min=1))
