"""The groups of one model's shared-mask fit, by role: the dataset mask's images, one group per fold of them and
one per class (docs/study.md, "Three kinds of mask").

The masks stage fits every shared mask of a model in ONE batch (:func:`freqbias.shared_masks.fit_shared_masks`
takes a flat list of groups and returns flat masks and records). :class:`MaskGroups` is that layout as a type:
``flat()`` gives the batch's list, ``like(values)`` reads a flat result back by role, so no caller addresses a
group by its position. The controls stage rebuilds the same groups (same seed) for its isotropic masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from .shared_masks import fold_groups

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class MaskGroups(Generic[T]):
    """One value per fitted group: ``dataset`` (the dataset mask's), ``folds`` (one per disjoint fold of its
    images) and ``classes`` (one per class, in class order). The flat order is ``[dataset, *folds, *classes]``."""

    dataset: T
    folds: list[T]
    classes: list[T]

    def flat(self) -> list[T]:
        """The groups in the batch's order: dataset, folds, classes."""
        return [self.dataset, *self.folds, *self.classes]

    @property
    def fit(self) -> list[T]:
        """The groups over the dataset mask's fit images: the dataset mask's, then the folds'."""
        return [self.dataset, *self.folds]

    def like(self, values: Sequence[U] | torch.Tensor) -> "MaskGroups[U]":
        """``values`` in :meth:`flat` order (a list, or a tensor whose first dimension is the group) read back by
        role; a tensor's folds and classes stay one stacked tensor each. ``ValueError`` when the length differs."""
        n = 1 + len(self.folds)
        if len(values) != n + len(self.classes):
            raise ValueError(f"expected {n + len(self.classes)} values (1 dataset, {len(self.folds)} folds, "
                             f"{len(self.classes)} classes), got {len(values)}")
        if isinstance(values, torch.Tensor):
            return MaskGroups(values[0], values[1:n], values[n:])  # type: ignore[arg-type]
        return MaskGroups(values[0], list(values[1:n]), list(values[n:]))


def shared_groups(y_val: torch.Tensor, n_fit: int, folds: int, class_fit_n: int, num_classes: int,
                  seed: int) -> MaskGroups[torch.Tensor]:
    """The groups of one model's shared-mask fit, as indices into the val split (labels ``y_val`` (N,)): the
    first ``n_fit`` images (the dataset mask), ``folds`` disjoint folds of them, and per class its first
    ``class_fit_n`` val images (empty for a class without any)."""
    y_val = y_val.cpu()
    per_class = [(y_val == k).nonzero().squeeze(1)[:class_fit_n] for k in range(num_classes)]
    return MaskGroups(torch.arange(n_fit), fold_groups(n_fit, folds, seed), per_class)


def foreign_images(y_val: torch.Tensor, num_classes: int, n: int, class_fit_n: int) -> list[tuple[torch.Tensor, int]]:
    """Per class k, ``n`` val images of the other classes that no class mask is fitted on (each other class's
    images after its first ``class_fit_n``, taken in turn so that the classes are balanced), with k: the
    images class k's mask must not send into k (:mod:`freqbias.class_rule`). Fewer when the split runs out."""
    y_val = y_val.cpu()
    spare = [(y_val == j).nonzero().squeeze(1)[class_fit_n:] for j in range(num_classes)]
    out = []
    for k in range(num_classes):
        others = [spare[j] for j in range(num_classes) if j != k and len(spare[j])]
        depth = -(-n // max(1, len(others)))
        mixed = torch.stack([torch.nn.functional.pad(o[:depth], (0, max(0, depth - len(o[:depth]))), value=-1)
                             for o in others], dim=1).flatten() if others else torch.zeros(0, dtype=torch.long)
        out.append((mixed[mixed >= 0][:n], k))
    return out
