"""Tests of freqbias.loops: batches, the OneCycle schedule on short runs, prediction in eval mode."""

from __future__ import annotations

import torch
from torch import nn

from freqbias.loops import batches, one_cycle, predict


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
