"""The selection stage's work: which test images the single-image masks are fitted on (docs/study.md, "Three kinds
of mask", kind 3), with their PGD versions, written once per seed (``selections/s<seed>.pt``) and read by the masks,
controls and yardstick stages. Each seed draws its own images: the test split is cut into disjoint shards by a
fixed permutation, the seed's position in ``train.seeds`` picks its shard and the seed orders it at random
(:func:`seed_shard`), so no two seeds share an image and the seeds' means carry independent image samples.

Images are pixels in [0, 1] (N, C, H, W) unless said (the split's uint8 images are converted on the way in).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .attacks import PGD, AttackConfig
from .data import to_float
from .io import load_torch, save_torch
from .loops import batches


@dataclass
class Selection:
    """Chosen images: ``index`` into the split (n,), clean images ``x`` and their PGD versions
    ``x_adv`` (against the standard model), both pixels in [0, 1] (n, C, H, W), true labels ``y``."""

    index: torch.Tensor
    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    pool: int


@dataclass(frozen=True)
class SelectConfig:
    """``masks.select``: how many images (``n_images``), the selection's own PGD (``attack``) and ``keep``
    (keep a selection already made, :func:`save_selection`)."""

    n_images: int
    attack: AttackConfig
    keep: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "SelectConfig":
        from .config import Section

        sec = Section(params, "masks.select")
        return cls(n_images=sec.integer("n_images", min=1), attack=AttackConfig.from_section(sec),
                   keep=sec.boolean("keep", False))


def save_selection(sel: Selection, path: str | Path) -> None:
    """Write the select stage's output ``selections/s<seed>.pt``: the chosen test ``index``, labels ``y``,
    PGD images ``x_adv`` and ``pool`` (the clean images are the test split's, :func:`load_selection`)."""
    save_torch({"index": sel.index.cpu(), "y": sel.y.cpu(), "x_adv": sel.x_adv.cpu(), "pool": sel.pool}, path)


def load_selection(path: str | Path, x_test: torch.Tensor) -> Selection:
    """The selection written by :func:`save_selection`, its clean images taken from ``x_test`` (uint8 or
    [0, 1] pixels (N, C, H, W)), everything on the CPU; one line naming the select stage when it is missing
    or unreadable (:func:`freqbias.io.load_torch`)."""
    d = load_torch(path, "selection")
    return Selection(index=d["index"], x=to_float(x_test[d["index"]]), x_adv=d["x_adv"], y=d["y"], pool=d["pool"])


SHARDS_MIN = 5            # the test split is cut into max(seeds, SHARDS_MIN) shards: see shard_count
PERMUTATION_SEED = 20220516  # the fixed permutation that cuts the test split into shards (any fixed number)


def shard_count(n_seeds: int) -> int:
    """How many disjoint shards the test split is cut into for ``n_seeds`` seeds: one per seed, and at least
    :data:`SHARDS_MIN`, so that appending a seed to ``train.seeds`` (up to SHARDS_MIN seeds) leaves every other
    seed's shard, and so its selection and masks, as they are."""
    return max(int(n_seeds), SHARDS_MIN)


def shard_order(n_items: int, position: int, shards: int, seed: int) -> torch.Tensor:
    """The screening order of one seed's own images: shard ``position`` of ``shards`` disjoint shards of a split of
    ``n_items`` (every ``shards``-th item of a fixed permutation, :data:`PERMUTATION_SEED`), in a random order drawn
    with ``seed``. Shards of different positions share no item; int64 indices (m,) on the CPU."""
    if not 0 <= position < shards:
        raise ValueError(f"shard position {position} not in [0, {shards})")
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(PERMUTATION_SEED))
    shard = perm[position::shards]
    return shard[torch.randperm(len(shard), generator=torch.Generator().manual_seed(seed))]


def seed_shard(seeds: Sequence[int], seed: int, n_items: int) -> torch.Tensor:
    """:func:`shard_order` of training seed ``seed``: its position in ``train.seeds`` picks its shard."""
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not in train.seeds {list(seeds)}")
    return shard_order(n_items, list(seeds).index(seed), shard_count(len(seeds)), seed)


def select_images(standard: nn.Module, adversarial: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  attack: PGD, n: int, seed: int = 0, batch_size: int = 500,
                  order: torch.Tensor | None = None) -> Selection:
    """The study's rule on a random draw: screening the images of ``order`` (indices into ``x``; default: the whole
    split in a random order drawn with ``seed``; the select stage gives each seed its own shard,
    :func:`seed_shard`), the first ``n`` on which the standard and the adversarially trained model are equally right
    or wrong and on which PGD flips the standard model's prediction: a random sample of the eligible images.
    ``x`` uint8 or [0, 1] pixels and ``y`` on any device: batches move to the models' device; ``index`` (sorted) and
    ``y`` come back on ``y``'s device, ``x`` / ``x_adv`` on the models'. Fewer than ``n`` when the order runs out
    (``pool``: the images screened)."""
    g = torch.Generator().manual_seed(seed)
    device = next(standard.parameters()).device
    order = shard_order(len(x), 0, 1, seed) if order is None else torch.as_tensor(order, dtype=torch.long).cpu()
    chosen, adv, seen = [], [], 0
    for s in batches(len(order), batch_size):
        idx = order[s]
        xb, yb = to_float(x[idx.to(x.device)].to(device)), y[idx.to(y.device)].to(device)
        with torch.no_grad():
            pred_n, pred_a = standard(xb).argmax(1), adversarial(xb).argmax(1)
        x_adv = attack.perturb(standard, xb, pred_n, g)
        with torch.no_grad():
            flipped = standard(x_adv).argmax(1) != pred_n
        ok = ((pred_n == yb) == (pred_a == yb)) & flipped
        chosen.append(idx[ok.cpu()])
        adv.append(x_adv[ok])
        seen = s.stop
        if sum(len(c) for c in chosen) >= n:
            break
    index, x_adv = torch.cat(chosen)[:n] if chosen else order[:0], torch.cat(adv)[:n] if adv else x[:0].float()
    index, by_index = index.sort()
    x_adv = x_adv[by_index.to(x_adv.device)]
    xs = to_float(x[index.to(x.device)].to(device))
    return Selection(index=index, x=xs, x_adv=x_adv, y=y[index.to(y.device)], pool=seen)
