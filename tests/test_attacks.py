"""PGD L-inf: the eps-ball and the valid range, loss ascent, seeded random start, units, bad arguments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqbias.attacks import PGD
from freqbias.models import build_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """A random small_cnn in eval mode (28 x 28 grayscale, 4 classes)."""
    torch.manual_seed(0)
    return build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels in [0, 1], with saturated pixels (exact 0 and 1) so the range clamp matters."""
    g = torch.Generator().manual_seed(1)
    x = (1.4 * torch.rand(16, 1, 28, 28, generator=g) - 0.2).clamp(0, 1)
    y = torch.randint(0, 4, (16,), generator=g)
    return x, y


def _losses(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("eps,alpha,steps", [(0.03, 0.01, 5), (0.1, 0.05, 3), (0.3, 0.1, 4)])
@pytest.mark.parametrize("random_start", [True, False])
def test_stays_in_eps_ball_and_valid_range(model, batch, eps, alpha, steps, random_start):
    x, y = batch
    assert (x == 0).any() and (x == 1).any()
    x_adv = PGD(eps, alpha, steps, random_start).perturb(model, x, y, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > eps / 2  # it moved
    assert not x_adv.requires_grad


def test_raises_the_loss(model, batch):
    x, y = batch
    clean = _losses(model, x, y)
    attack = PGD(eps=0.1, alpha=0.025, steps=10)
    adv = _losses(model, attack.perturb(model, x, y, torch.Generator().manual_seed(0)), y)
    g = torch.Generator().manual_seed(0)
    noise = _losses(model, (x + 0.1 * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1), y)
    assert adv.mean() > clean.mean() + 0.1
    assert (adv > clean).float().mean() >= 0.9
    assert adv.mean() > noise.mean() + 0.1  # gradient ascent, not just noise


def test_more_steps_raise_the_loss_further(model, batch):
    x, y = batch
    one = _losses(model, PGD(0.05, 0.0125, 1, random_start=False).perturb(model, x, y), y)
    ten = _losses(model, PGD(0.05, 0.0125, 10, random_start=False).perturb(model, x, y), y)
    assert ten.mean() > one.mean()


def test_leaves_model_mode_and_parameters_alone(batch):
    x, y = batch
    torch.manual_seed(0)
    net = build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    PGD(0.05, 0.01, 2).perturb(net, x, y)
    assert not net.training
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_random_start_is_seeded(model, batch):
    x, y = batch
    attack = PGD(0.05, 0.01, 2)
    run = lambda seed: attack.perturb(model, x, y, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    start = lambda seed: attack.start(x, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(start(3), start(3)) and not torch.equal(start(3), start(4))
    s = start(3)
    assert (s - x).abs().max() <= 0.05 + 1e-6 and s.min() >= 0 and s.max() <= 1
    assert (s - x).abs().max() > 0.04  # uniform over the ball, not a point


def test_no_random_start_is_deterministic(model, batch):
    x, y = batch
    attack = PGD(0.05, 0.01, 3, random_start=False)
    a = attack.perturb(model, x, y, torch.Generator().manual_seed(1))
    b = attack.perturb(model, x, y, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert torch.equal(attack.start(x), x)


def test_zero_steps_without_random_start_returns_x(model, batch):
    x, y = batch
    out = PGD(0.1, 0.01, 0, random_start=False).perturb(model, x, y)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()  # a copy, not the caller's tensor


def test_zero_eps_returns_x(model, batch):
    x, y = batch
    assert torch.equal(PGD(0.0, 0.01, 3).perturb(model, x, y), x)


def test_step_and_project():
    attack = PGD(eps=0.1, alpha=0.04, steps=1)
    x = torch.tensor([0.0, 0.5, 0.5, 1.0])
    stepped = attack.step(x, torch.tensor([-2.0, 3.0, -0.5, 1.0]))
    assert torch.allclose(stepped, torch.tensor([-0.04, 0.54, 0.46, 1.04]))
    far = torch.tensor([-0.5, 0.9, 0.1, 0.95])
    assert torch.allclose(attack.project(far, x), torch.tensor([0.0, 0.6, 0.4, 0.95]))


def test_from_normalized_scales_by_std():
    attack = PGD.from_normalized(eps=0.06, alpha=0.0075, steps=10, std=0.226, random_start=False)
    assert attack.eps == pytest.approx(0.06 * 0.226)
    assert attack.alpha == pytest.approx(0.0075 * 0.226)
    assert attack.steps == 10 and attack.random_start is False


@pytest.mark.parametrize("kwargs", [dict(eps=-0.1, alpha=0.01, steps=1), dict(eps=0.1, alpha=-0.01, steps=1),
                                    dict(eps=0.1, alpha=0.01, steps=-1)])
def test_negative_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="PGD needs"):
        PGD(**kwargs)
    with pytest.raises(ValueError):
        PGD.from_normalized(**kwargs, std=0.5)
