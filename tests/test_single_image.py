"""Single-image selection and evaluation at the edges: no image meets the rule, no image to score."""

from __future__ import annotations

import math

import torch

from freqbias.attacks import PGD
from freqbias.models import build_model
from freqbias.parametrisation import Rfft
from freqbias.single_image import evaluate_single_masks
from freqbias.stage_selection import select_images


def _constant_model(label: int = 1) -> torch.nn.Module:
    """A small_cnn that predicts ``label`` for every image (zero output weights, one large bias)."""
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).eval()
    last = model.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(10.0 * torch.nn.functional.one_hot(torch.tensor(label), 4))
    return model


def test_no_image_meets_the_rule_when_pgd_cannot_flip() -> None:
    model = _constant_model()
    x = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sel = select_images(model, model, x, torch.arange(12) % 4, PGD(0.1, 0.05, 2), n=4, batch_size=5)
    assert sel.index.shape == (0,) and sel.x.shape == sel.x_adv.shape == (0, 1, 28, 28) and sel.y.shape == (0,)
    assert sel.pool == 12  # screened the whole split


def test_evaluation_of_no_image_is_nan_for_every_value() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).eval()
    z = torch.randn(3, 1, 28, 28)
    target = model.net(z).argmax(1)
    full = evaluate_single_masks(model.net, z, target, torch.ones(3, 28, 15), Rfft(28, 28), z_adv=z)
    assert full["masked_agreement"] == 1.0 and all(math.isfinite(v) for v in full.values())
    empty = evaluate_single_masks(model.net, z[:0], target[:0], torch.ones(0, 28, 15), Rfft(28, 28), z_adv=z[:0])
    assert set(empty) == set(full) and all(math.isnan(v) for v in empty.values())
    assert set(evaluate_single_masks(model.net, z[:0], target[:0], torch.ones(0, 28, 15), Rfft(28, 28))) == {
        "masked_agreement", "complement_agreement"}
