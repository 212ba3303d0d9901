"""How a shared mask's fit moves its sparsity weight and lr: the fit methods of :mod:`freqbias.shared_masks`.

A :class:`FitMethod` owns the choices a method makes during :func:`freqbias.shared_masks.fit_shared_masks`:
the optimiser's warm-up, the lr at each step, what a check does to a group's lambda, and what a plateau does
(refine or stop). :data:`METHODS` maps ``masks.dataset.method`` to one; a method reads its own settings from
the :class:`~freqbias.shared_masks.SharedMaskConfig` it is given (``lam_factor``, ``lr_cuts``, ``pct_start``).

- ``"constrained"`` (:class:`Constrained`, the default): lambda times ``lam_factor`` after a check that met
  the rule, divided by it after one that did not; constant lr (Adam warmed up over the first check);
  ``lr_cuts`` restarts from the sparsest mask at half the lr before a plateau stops the fit.
- ``"fixed"`` (:class:`Fixed`, as published): lambda constant, OneCycle lr over ``max_steps`` (peak ``lr``,
  warm-up share ``pct_start``); a plateau stops the fit.

Extension point: a new method is one subclass and one :func:`register_method` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .loops import one_cycle_lr

if TYPE_CHECKING:
    from .fitting import MaskAdam


class MethodSettings(Protocol):
    """The :class:`~freqbias.shared_masks.SharedMaskConfig` fields a method reads (a protocol, so that this module
    does not import the one that uses it)."""

    lr: float
    lam_factor: float
    lr_cuts: int
    pct_start: float
    max_steps: int
    check_every: int


class GroupState(Protocol):
    """What a method reads and moves of one group's fit (:class:`freqbias.shared_masks._GroupFit`)."""

    cuts: int

    def adjust_lambda(self, met: bool, factor: float) -> None: ...

    def refine(self, adam: MaskAdam) -> None: ...


class FitMethod:
    """A shared-mask fit method: the base keeps lambda and the lr constant, Adam without warm-up, and stops a
    group at its first plateau."""

    name: str = ""

    def warmup(self, cfg: MethodSettings) -> int:
        """Adam's warm-up (steps) for :class:`~freqbias.fitting.MaskAdam`."""
        return 1

    def set_lr(self, adam: MaskAdam, step: int, cfg: MethodSettings) -> None:
        """Set the lr of every mask (``adam.lr`` (G,)) before optimiser step ``step`` (1-based), or leave it."""

    def after_check(self, fit: GroupState, met: bool, cfg: MethodSettings) -> None:
        """Update a group's fit after a check (``met``: the check met the rule)."""

    def continues(self, fit: GroupState, adam: MaskAdam, cfg: MethodSettings) -> bool:
        """On a group's plateau: refine it and return True to go on, or return False to stop it."""
        return False


class Constrained(FitMethod):
    """Lambda set by the rule (dual ascent in log-space), constant lr, ``lr_cuts`` refinements."""

    name = "constrained"

    def warmup(self, cfg: MethodSettings) -> int:
        return cfg.check_every

    def after_check(self, fit: GroupState, met: bool, cfg: MethodSettings) -> None:
        fit.adjust_lambda(met, cfg.lam_factor)

    def continues(self, fit: GroupState, adam: MaskAdam, cfg: MethodSettings) -> bool:
        if fit.cuts < cfg.lr_cuts:
            fit.refine(adam)
            return True
        return False


class Fixed(FitMethod):
    """The published method: a fixed lambda and a OneCycle lr over ``max_steps``."""

    name = "fixed"

    def set_lr(self, adam: MaskAdam, step: int, cfg: MethodSettings) -> None:
        adam.lr[:] = one_cycle_lr(step, cfg.max_steps, cfg.lr, cfg.pct_start)


METHODS: dict[str, FitMethod] = {}


def register_method(method: FitMethod) -> FitMethod:
    """Add ``method`` to :data:`METHODS` under its ``name`` (new)."""
    if not method.name or method.name in METHODS:
        raise ValueError(f"a method needs a new name, got {method.name!r}")
    METHODS[method.name] = method
    return method


register_method(Constrained())
register_method(Fixed())
