"""Tests of freqbias.loops: batches, the OneCycle schedule on short runs, prediction in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqbias.loops import batches, one_cycle, one_cycle_lr, one_cycle_momentum, predict


def test_batches_cover_range_in_order():
    assert [(s.start, s.stop) for s in batches(7, 3)] == [(0, 3), (3, 6), (6, 7)]
    assert [(s.start, s.stop) for s in batches(6, 3)] == [(0, 3), (3, 6)]
    assert list(batches(0, 3)) == []


def test_one_cycle_runs_very_short_schedules():
    for total in (1, 2, 3, 5):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = one_cycle(opt, 0.1, total, 0.1)
        lrs = []
        for _ in range(max(total, 4)):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert max(lrs) <= 0.1 + 1e-12 and lrs[-1] < 0.1


class _ModeRecorder(nn.Module):
    """Logits (x.sum, -x.sum) per image; records whether it ran in training mode."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        s = self.scale * (x.flatten(1).sum(1) - 0.5 * x[0].numel())
        return torch.stack([s, -s], dim=1)


def test_predict_eval_mode_restored_uint8_and_batches():
    model = _ModeRecorder().train()
    x = torch.tensor([0, 255, 10, 250, 255], dtype=torch.uint8).view(5, 1, 1, 1)
    pred = predict(model, x, batch_size=2)
    assert pred.tolist() == [1, 0, 1, 0, 0]                      # uint8 divided by 255: 250 / 255 > 0.5
    assert model.training and model.modes == [False, False, False]  # three batches in eval mode, mode restored
    assert pred.dtype == torch.int64 and predict(model, x[:0]).shape == (0,)
    seen = []

    def flip(xb: torch.Tensor, s: slice) -> torch.Tensor:
        seen.append((s.start, s.stop))
        return 1 - xb

    assert predict(model, x, 3, transform=flip).tolist() == [0, 1, 0, 1, 1]
    assert seen == [(0, 3), (3, 5)]


@pytest.mark.parametrize("total,pct", [(100, 0.1), (37, 0.3), (20, 0.1), (1000, 0.25), (7, 0.5)])
def test_one_cycle_lr_and_momentum_match_torch(total, pct):
    """The lr and Adam's beta1 of each step (1-based) equal what torch's OneCycleLR (cosine, div 25, final
    div 1e4, momentum cycled 0.95 -> 0.85 -> 0.95) sets for that step: the published procedures' schedule."""
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=total, pct_start=pct)
    expected = []
    for _ in range(total):
        expected.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
        opt.step()
        sched.step()
    got = [(one_cycle_lr(step, total, 0.02, pct), one_cycle_momentum(step, total, pct)) for step in range(1, total + 1)]
    assert [g[0] for g in got] == pytest.approx([e[0] for e in expected], rel=1e-9, abs=1e-15)
    assert [g[1] for g in got] == pytest.approx([e[1] for e in expected], rel=1e-12)


def test_one_cycle_lr_shape():
    """Whatever the exact step alignment: starts at max/25, peaks at max, ends at max/25e4."""
    lrs = [one_cycle_lr(step, 100, 0.02, 0.1) for step in range(1, 101)]
    assert lrs[0] == pytest.approx(0.02 / 25) and lrs[-1] == pytest.approx(0.02 / 25e4)
    assert max(lrs) == pytest.approx(0.02, rel=1e-3) and 8 <= lrs.index(max(lrs)) <= 11
    peak = lrs.index(max(lrs))
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
