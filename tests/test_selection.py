"""Each seed's single-image masks get their own images: disjoint shards of the test split, a seeded random draw
within a shard, and the study's rule applied in that order (freqbias.stage_selection)."""

from __future__ import annotations

import pytest
import torch

from freqbias.attacks import PGD
from freqbias.models import build_model
from freqbias.stage_selection import SHARDS_MIN, seed_shard, select_images, shard_count, shard_order


def test_shards_are_disjoint_and_cover_the_split():
    shards = [shard_order(103, k, 4, seed=k) for k in range(4)]
    together = torch.cat(shards)
    assert len(together) == 103 and len(set(together.tolist())) == 103          # disjoint, and all of the split
    assert torch.equal(shard_order(103, 2, 4, seed=2), shards[2])               # fixed
    again = shard_order(103, 2, 4, seed=7)                                      # another seed: same images, new order
    assert set(again.tolist()) == set(shards[2].tolist()) and not torch.equal(again, shards[2])
    with pytest.raises(ValueError):
        shard_order(103, 4, 4, seed=0)


def test_a_seed_s_position_picks_its_shard_and_appending_a_seed_keeps_the_others():
    assert shard_count(3) == SHARDS_MIN and shard_count(SHARDS_MIN + 2) == SHARDS_MIN + 2
    three = [seed_shard([0, 1, 2], s, 1000) for s in (0, 1, 2)]
    four = [seed_shard([0, 1, 2, 3], s, 1000) for s in (0, 1, 2, 3)]
    assert all(torch.equal(a, b) for a, b in zip(three, four))                 # dvc reruns select@*, same bytes
    assert not set(four[3].tolist()) & set(torch.cat(three).tolist())
    with pytest.raises(ValueError, match="not in train.seeds"):
        seed_shard([0, 1], 5, 1000)


def test_selection_draws_from_its_order_only():
    """Two seeds' selections share no image; each holds only images of its own shard, sorted, with their PGD images
    in the same order."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).eval()
    x = torch.randint(0, 256, (60, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(60) % 4
    attack = PGD(0.5, 0.25, 2)
    sels = [select_images(model, model, x, y, attack, n=5, seed=s, batch_size=8, order=seed_shard([0, 1], s, 60))
            for s in (0, 1)]
    assert all(len(s.index) > 0 for s in sels), "PGD at eps 0.5 should flip some of a random net's predictions"
    for s, sel in enumerate(sels):
        own = set(seed_shard([0, 1], s, 60).tolist())
        assert set(sel.index.tolist()) <= own and torch.equal(sel.index, sel.index.sort().values)
        assert torch.equal(sel.y, y[sel.index]) and sel.x_adv.shape == sel.x.shape
        with torch.no_grad():   # x_adv belongs to the image at the same position: PGD flipped its prediction
            assert (model(sel.x_adv).argmax(1) != model(sel.x).argmax(1)).all()
    assert not set(sels[0].index.tolist()) & set(sels[1].index.tolist())
