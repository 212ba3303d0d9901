"""The class masks' push term (freqbias.class_rule.push_gradient): zero where a mask lowers the class's probability
on a foreign image, and a pull that does not fade as the image is pushed firmly into the class (the bounded
``exp((p~ - p)^2)`` it replaced loses its gradient there, as softmax saturates)."""

from __future__ import annotations

import torch
from torch import nn

from freqbias.class_rule import push_gradient
from freqbias.parametrisation import Rfft

SIZE = 4


def _dc_reader(scale: float) -> nn.Module:
    """Two classes; class 1's logit is ``scale`` x the sum of the image's pixels, class 0's is 0."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[1] = scale
    return net


def _pull(scale: float, p0: float) -> float:
    """The push term's gradient at the identity mask, on its zero-frequency entry, per unit of class 1's logit
    (d push / d logit_1): a constant foreign image, whose only frequency is the zero one."""
    par = Rfft(SIZE, SIZE)
    z = torch.full((1, 1, SIZE, SIZE), 1.0 / SIZE**2)   # pixel sum 1: logit_1 = scale x the mask's DC entry
    grad = push_gradient(_dc_reader(scale), z, torch.tensor([p0]), torch.tensor([1]), par.init(1), par)
    assert torch.count_nonzero(grad[0].flatten()[1:]) == 0   # only the zero frequency carries this image
    return float(grad[0, 0, 0]) / scale


def test_no_push_where_the_mask_lowers_the_class_probability() -> None:
    p_masked = torch.sigmoid(torch.tensor(1.0)).item()       # class 1's probability with the identity mask, scale 1
    assert _pull(1.0, p0=min(0.999, p_masked + 0.1)) == 0.0
    assert _pull(1.0, p0=p_masked - 0.1) > 0.0


def test_the_pull_does_not_fade_as_the_image_is_pushed_into_the_class() -> None:
    mid, firm = _pull(0.4, p0=0.01), _pull(7.0, p0=0.01)     # p~ = 0.60 and 0.999
    assert mid > 0.5 and firm >= mid, (mid, firm)            # exp((p~ - p0)^2) gives 0.40 and 0.005
