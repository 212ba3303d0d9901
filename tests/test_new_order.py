"""A new frequency order is one entry in one module (:mod:`freqbias.frequency_orders`): registered here, the
controls' faithfulness computes its insertion / deletion curves and areas beside the registered ones (leaving
theirs unchanged), for the dataset mask and per image, and the report names it by its label."""

from __future__ import annotations

import functools

import pytest
import torch

from freqbias import controls as ct
from freqbias import findings
from freqbias import frequency_orders as fo
from freqbias.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 28
CFG = ct.ControlsConfig(n=16, random_draws=1, faith_n=12, steps=4, class_n=16)
BUILT_IN = ("mask", "radius", "random", "heatmap", "gradient")


def angle(ctx: fo.OrderContext) -> torch.Tensor:
    """Angle of each rfft entry's frequency from the horizontal axis, radians in [0, pi] (H, W//2+1)."""
    h, wm = ctx.grid
    ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=torch.float64)
    kx = torch.fft.rfftfreq(ctx.width, d=1.0 / ctx.width, dtype=torch.float64)
    return torch.atan2(ky[:, None].abs(), kx[None, :].expand(h, wm))


@pytest.fixture
def angle_order():
    """The ``angle`` order (horizontal frequencies first) registered for one test, then removed."""
    saved = dict(fo.ORDERS)
    order = fo.register_order(fo.Order("angle", "angle (horizontal first)", angle, descending=False))
    yield order
    fo.ORDERS.clear()
    fo.ORDERS.update(saved)


@functools.cache
def _setup():
    """A small_cnn with its initial weights (the orders need a net, not a good one), 12 test images, a dataset
    mask and 3 single-image masks (one unfitted)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3, SIZE, [0.5], [0.25]).eval()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(12, 1, SIZE, SIZE, generator=gen), torch.randint(0, 3, (12,), generator=gen)
    mask = torch.rand(SIZE, SIZE // 2 + 1, generator=gen)
    masks = torch.rand(3, SIZE, SIZE // 2 + 1, generator=gen)
    masks[1] = float("nan")
    return model, x, y, mask, masks


def _faithfulness() -> dict:
    model, x, y, mask, masks = _setup()
    target = model(x[:3]).argmax(dim=1)
    return ct.faithfulness(model, x, y, mask, (x[:3], target, masks), CFG, model.normalize)


def test_the_built_in_orders_are_registered_in_their_order():
    assert tuple(fo.ORDERS) == BUILT_IN
    assert fo.order_label("radius") == "radius (low first)" and fo.order_label("unknown") == "unknown"
    with pytest.raises(ValueError, match="already registered"):
        fo.register_order(fo.Order("mask", "again", fo.mask_scores))


def test_a_registered_order_gets_curves_and_areas_beside_the_others(angle_order):
    fo.ORDERS.pop("angle")
    before = _faithfulness()
    fo.register_order(angle_order)
    out = _faithfulness()
    for source, n in (("dataset", 12), ("single", 3)):
        assert tuple(out[source]["areas"]) == (*BUILT_IN, "angle")  # after the others, in registry order
        assert tuple(out[source]["curves"]) == (*BUILT_IN, "angle")
        areas, curve = out[source]["areas"]["angle"], out[source]["curves"]["angle"]
        assert all(len(areas[kind]) == n and len(curve[kind]) == CFG.steps + 1 for kind in ("insertion", "deletion"))
        assert curve["insertion"][-1] == curve["deletion"][0]  # everything kept = nothing removed
        for name in BUILT_IN:  # adding an order changes no other order's numbers
            assert out[source]["areas"][name] == before[source]["areas"][name]
            assert out[source]["curves"][name] == before[source]["curves"][name]


def test_the_order_is_horizontal_first_and_per_image_by_broadcast(angle_order):
    masks = _setup()[-1]
    ctx = fo.OrderContext(mask=masks, width=SIZE, heat=torch.zeros(SIZE, SIZE // 2 + 1),
                          grad=torch.zeros(3, SIZE, SIZE // 2 + 1), seed=0)
    orders = fo.orders_of(ctx)
    assert orders["angle"].shape == (3, SIZE * (SIZE // 2 + 1))  # one order per image (ties broken per image)
    for first in orders["angle"][:, :SIZE // 2 + 1]:  # the row ky = 0 (angle 0) comes first
        assert set(first.tolist()) == set(range(SIZE // 2 + 1))


def test_the_report_names_the_order_by_its_label(angle_order):
    row = {"model": "S-s0", "source": "dataset", "order": "angle", "insertion": 0.5, "insertion_lo": 0.4,
           "insertion_hi": 0.6, "deletion": 0.3, "deletion_lo": 0.2, "deletion_hi": 0.4}
    assert fo.order_label("angle") == "angle (horizontal first)"
    assert "| S-s0 | dataset | angle (horizontal first) |" in findings.controls_tables({"faithfulness": [row]})
