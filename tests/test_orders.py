"""Tests for freqbias.orders: budgets on the rfft grid, orders, equal-budget masks and masked correctness."""

from __future__ import annotations

import pytest
import torch

from freqbias import fourier as fm
from freqbias import frequency_orders as fo
from freqbias import orders as od
from freqbias.parametrisation import Full, Rfft
from test_fourier import _net

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("h,w", [(28, 28), (9, 7), (8, 10)])
def test_weights_and_radius(h, w):
    weights, radius = od.rfft_weights(h, w), fo.rfft_radius(h, w)
    assert weights.shape == radius.shape == (h, w // 2 + 1)
    assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert radius[0, 0] == 0 and radius[1, 0] == 1 and radius[-1, 0] == 1  # row -1 is ky = -1


def test_order_by_sorts_and_breaks_ties_at_random():
    scores = torch.tensor([[3.0, 1.0, 1.0], [1.0, 1.0, 2.0]])
    order = fo.order_by(scores)
    assert order[:2].tolist() == [0, 5] and sorted(order.tolist()) == list(range(6))
    ties = {tuple(fo.order_by(scores, seed=s)[2:].tolist()) for s in range(12)}
    assert len(ties) > 1  # the four tied entries come in several orders
    assert fo.order_by(scores, descending=False)[-1] == 0
    batch = fo.order_by(torch.stack([scores, -scores]))
    assert batch.shape == (2, 6) and batch[0, 0] == 0 and batch[1, -1] == 0


@pytest.mark.parametrize("w", [28, 27])
def test_keep_masks_respect_the_budget(w):
    h = 28
    weights = od.rfft_weights(h, w)
    order = fo.random_order((), h, w // 2 + 1, seed=3)
    budgets = [0.0, 0.1, 0.37, 1.0]
    keep = od.keep_masks(order, weights, budgets)
    assert keep.shape == (4, h, w // 2 + 1)
    kept = od.budget(keep, weights)
    assert kept[0] == 0 and torch.isclose(kept[-1], torch.tensor(1.0, dtype=torch.float64))
    for b, k in zip(budgets, kept):  # within one entry (at most 2 full-plane frequencies) below the budget
        assert b - 2 / (h * w) - 1e-9 <= k <= b + 1e-9
    assert torch.all(keep[1] <= keep[2])  # nested: a larger budget keeps a superset
    per_image = od.keep_masks(torch.stack([order, order.flip(0)]), weights, budgets)
    assert per_image.shape == (4, 2, h, w // 2 + 1) and torch.equal(per_image[:, 0], keep)


def test_disc_and_random_match_the_support_size():
    h = w = 28
    torch.manual_seed(0)
    mask = torch.rand(h, w // 2 + 1) * (torch.rand(h, w // 2 + 1) > 0.7)
    weights = od.rfft_weights(h, w)
    size = od.budget(od.support_mask(mask, w), weights)
    disc = od.disc_like(mask, w)
    randoms = od.random_like(mask, w, draws=3, seed=1)
    for m in (disc, *randoms):
        assert size - 2 / (h * w) - 1e-9 <= od.budget(m, weights) <= size + 1e-9
    radius = fo.rfft_radius(h, w)
    assert radius[disc > 0].max() <= radius[disc == 0].min()  # a disc: every kept entry nearer than every dropped
    assert not torch.equal(randoms[0], randoms[1])


def test_as_rfft_of_a_full_mask_has_the_same_effect():
    torch.manual_seed(1)
    z = torch.randn(3, 1, 10, 12)
    full = torch.rand(10, 12)
    via_rfft = Rfft(10, 12).apply(z, fo.as_rfft(full, 12))
    assert torch.allclose(via_rfft, Full(10, 12).apply(z, full), atol=1e-5)
    rfft = torch.rand(10, 7)
    assert fo.as_rfft(rfft, 12) is rfft


def test_correct_under_matches_predict():
    net = _net()
    torch.manual_seed(2)
    z = torch.randn(21, 1, 28, 28)
    y = fm.predict(net, z)
    masks = torch.rand(5, 28, 15)
    got = od.correct_under(net, z, y, masks, batch_size=8)
    want = torch.stack([fm.predict(net, z, m) == y for m in masks])
    assert torch.equal(got, want)
    per_image = torch.rand(3, 21, 28, 15)
    got = od.correct_under(net, z, y, per_image, batch_size=8)
    want = torch.stack([fm.predict(net, z, m) == y for m in per_image])
    assert torch.equal(got, want)


def test_gradient_scores_point_at_what_the_loss_needs():
    """The score of an entry is -dCE/dM at the all-ones mask: a finite difference agrees."""
    net = _net()
    torch.manual_seed(3)
    z = torch.randn(4, 1, 28, 28)
    y = fm.predict(net, z)
    scores = od.gradient_scores(net, z, y, per_image=True)
    assert scores.shape == (4, 28, 15)
    mean = od.gradient_scores(net, z, y, per_image=False)
    assert torch.allclose(mean, scores.mean(dim=0))
    eps = 1e-2
    m = torch.ones(28, 15, dtype=torch.float64)
    m[2, 3] -= eps
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        net64 = net.double()
        diff = (ce(net64(Rfft(28, 28).apply(z[:1].double(), m)), y[:1]) - ce(net64(z[:1].double()), y[:1])) / eps
        net.float()
    assert abs(diff.item() - scores[0, 2, 3].item()) < 0.05 * abs(scores[0, 2, 3].item()) + 1e-4


def test_area_is_the_trapezoid():
    correct = torch.tensor([[0, 1], [1, 1], [1, 0]], dtype=torch.bool)
    assert od.area(correct, [0.0, 0.5, 1.0]).tolist() == [0.75, 0.75]
