"""Frequency orders as a registry: what each one ranks first, its readable label, and how it is computed.

An *order* is a permutation of the H * (W//2+1) entries of the UNSHIFTED rfft grid of H x W images, most
important first (:mod:`freqbias.orders` turns orders into binary masks of given budgets). Each :class:`Order`
scores every entry from an :class:`OrderContext` (the mask, the image width, the Fourier heat map, the
loss gradient and the seed) and ranks the scores with :func:`order_by`, ties broken by a seeded random
permutation (so no order inherits the radial order through its ties). The controls (:mod:`freqbias.controls`)
compute every registered order, in registry order, for the dataset mask (one shared order, int64 (F,)) and
for the single-image masks (one per image, int64 (n, F)); the report names them by :func:`order_label`.

Extension point: a new order is one :func:`register_order` call, e.g.::

    register_order(Order("angle", "angle (first quadrant first)", lambda ctx: -angle(ctx)))

Its curves and areas then appear in the controls' output beside the others, under its name.
Torch only (no other project module), so that the report's label lookup pulls in nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def order_by(scores: torch.Tensor, descending: bool = True, seed: int = 0) -> torch.Tensor:
    """Orders of rfft entries by ``scores`` (..., H, Wm): int64 (..., H * Wm) of flat indices, highest score
    first (``descending``) or lowest first; ties (and NaN, last) in a seeded random order."""
    flat = scores.detach().double().cpu().flatten(-2)
    flat = torch.where(torch.isnan(flat), torch.tensor(-torch.inf if descending else torch.inf, dtype=flat.dtype), flat)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(flat.shape[-1], generator=gen) for _ in range(flat[..., 0].numel())])
    perm = perm.view(*flat.shape[:-1], flat.shape[-1])
    shuffled = torch.gather(flat, -1, perm)
    return torch.gather(perm, -1, shuffled.argsort(dim=-1, descending=descending, stable=True))


def random_order(shape: tuple[int, ...], h: int, wm: int, seed: int) -> torch.Tensor:
    """Uniformly random orders: int64 (*shape, H * Wm)."""
    return order_by(torch.zeros(*shape, h, wm), seed=seed)


def rfft_radius(h: int, w: int) -> torch.Tensor:
    """(H, W//2+1) float64: distance of every rfft entry from the zero frequency, cycles per image."""
    ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64)
    kx = torch.fft.rfftfreq(w, d=1.0 / w, dtype=torch.float64)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def as_rfft(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Masks (..., H, Wm) in the rfft or the full layout as rfft masks (..., H, W//2+1) with the same effect: a
    full mask acts through the mean of ``M(k)`` and ``M(-k)`` (the real part of its filter), which the rfft entry
    holds."""
    wr = width // 2 + 1
    if mask.shape[-1] == wr:
        return mask
    full, h = mask, mask.shape[-2]
    neg_rows = (-torch.arange(h, device=mask.device)) % h
    neg_cols = (-torch.arange(width, device=mask.device)) % width
    mirrored = full[..., neg_rows, :][..., neg_cols]
    return (0.5 * (full + mirrored))[..., :wr]


@dataclass(frozen=True)
class OrderContext:
    """What the orders of one mask (H, Wm) or of n per-image masks (n, H, Wm) are computed from: ``mask`` in
    either layout (on the CPU; a mask with a non-finite entry scores 0 everywhere), ``width`` of the images,
    ``heat`` the Fourier heat map's error rate per rfft entry (H, W//2+1), ``grad`` the loss gradient's score
    ``-dCE/dM`` (H, W//2+1) or one per image (n, H, W//2+1), float64, and the tie-breaking ``seed``."""

    mask: torch.Tensor
    width: int
    heat: torch.Tensor
    grad: torch.Tensor
    seed: int

    @property
    def batch(self) -> tuple[int, ...]:
        """() for one shared order, (n,) for one per image."""
        return tuple(self.mask.shape[:-2])

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W//2+1): the rfft grid."""
        return self.mask.shape[-2], self.width // 2 + 1


@dataclass(frozen=True)
class Order:
    """One frequency order: its ``name`` (the key of its curves and areas), ``label`` (the report's words),
    ``score`` per rfft entry from an :class:`OrderContext` ((H, W//2+1) shared, or (*batch, H, W//2+1)),
    ranked highest first (``descending``) or lowest first, and whether it is computed for the single-image
    masks too (``per_image``)."""

    name: str
    label: str
    score: Callable[[OrderContext], torch.Tensor]
    descending: bool = True
    per_image: bool = True

    def __call__(self, ctx: OrderContext) -> torch.Tensor:
        """The order of ``ctx``'s rfft entries: int64 (*ctx.batch, H * (W//2+1))."""
        scores = self.score(ctx)
        return order_by(scores.expand(*ctx.batch, *scores.shape[-2:]), descending=self.descending, seed=ctx.seed)


def mask_scores(ctx: OrderContext) -> torch.Tensor:
    """The mask's values as rfft scores (*batch, H, W//2+1) float64; 0 for a mask with a non-finite entry."""
    fine = torch.isfinite(ctx.mask.flatten(-2)).all(dim=-1)
    return torch.where(fine[..., None, None], as_rfft(ctx.mask, ctx.width).double(), torch.zeros(()))


ORDERS: dict[str, Order] = {}


def register_order(order: Order) -> Order:
    """Add ``order`` to :data:`ORDERS` (after those registered before it); its name must be new."""
    if order.name in ORDERS:
        raise ValueError(f"order {order.name!r} is already registered")
    ORDERS[order.name] = order
    return order


def orders_of(ctx: OrderContext) -> dict[str, torch.Tensor]:
    """Every registered order of ``ctx`` in registry order (only the ``per_image`` ones for per-image masks):
    ``{name: int64 (*ctx.batch, F)}``."""
    return {name: order(ctx) for name, order in ORDERS.items() if not ctx.batch or order.per_image}


def order_label(name: str) -> str:
    """The readable label of order ``name`` (the name itself when no such order is registered)."""
    return ORDERS[name].label if name in ORDERS else name


register_order(Order("mask", "mask value", mask_scores))
register_order(Order("radius", "radius (low first)", lambda ctx: rfft_radius(ctx.grid[0], ctx.width),
                     descending=False))
register_order(Order("random", "random", lambda ctx: torch.zeros(*ctx.grid)))
register_order(Order("heatmap", "heat map", lambda ctx: ctx.heat))
register_order(Order("gradient", "loss gradient", lambda ctx: ctx.grad))
