"""The second side of a class mask's rule: it must not send other classes' images into its class.

A class mask fitted on its class alone can meet the accuracy rule trivially when the model gives that class to
featureless input: removing almost everything keeps the class's images "correct" and sends every other image
there too (the study's loss never sees another class). Each class mask therefore has *foreign* images, a
sample of the other classes' images (:class:`Foreign`), and

- its loss gains, per foreign image ``j`` in a minibatch, the one-vs-rest cross-entropy gap
  ``push_j = max(0, log(1 - p_k(f(z_j))) - log(1 - p_k(f(z~_j))))``: a penalty on moving probability to the
  class on another class's image, zero for a fall, about ``p~ - p`` for a small rise (a rise of the class's
  probability from 1e-6 to 1e-3 changes no decision and costs 1e-3 here) and without bound as the image is
  pulled into the class, where a decision changes (:func:`push_gradient`). It replaced ``exp(push^2)`` of the
  probability rise, which is bounded by ``e``: with it, 9 of 180 class masks of a run sent more than 20 % of
  held-out other classes' images into their class (docs/study.md "Class masks that mean something");
- its rule also requires that no more foreign images are predicted as the class than clean, plus
  ``push_tol`` of them (:attr:`Foreign.allowed`, :func:`score_push`).

Images are normalised (the tensor entering ``net``); masks are in the fit's parametrisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .loops import batches
from .parametrisation import Parametrisation


@dataclass
class Foreign:
    """A class mask's foreign images: ``index`` (n,) into the fit's images, none of class ``target``;
    ``clean`` of them predicted as ``target`` without a mask; at most ``allowed`` may be with it."""

    index: torch.Tensor
    target: int
    clean: int = 0
    allowed: int = 0

    @classmethod
    def of(cls, index: torch.Tensor, target: int, pred0: torch.Tensor, push_tol: float) -> "Foreign":
        """With the clean predictions ``pred0`` of the fit's images: ``allowed = clean + ceil(push_tol n)``."""
        clean = int((pred0[index] == target).sum())
        return cls(index, target, clean, clean + math.ceil(push_tol * len(index) - 1e-9))


def clean_prob(net: nn.Module, z: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``p_target(f(z))`` per image (N,), without a mask or gradient."""
    out = []
    with torch.no_grad():
        for s in batches(len(z), batch_size):
            out.append(F.softmax(net(z[s]), dim=1).gather(1, target[s, None]).squeeze(1))
    return torch.cat(out) if out else z.new_zeros(0)


def push_gradient(net: nn.Module, z: torch.Tensor, p0: torch.Tensor, target: torch.Tensor, masks: torch.Tensor,
                  par: Parametrisation) -> torch.Tensor:
    """The gradient (G, *shape) of ``sum_g mean_j push_gj`` (module doc) for masks (G, *shape) on foreign
    images ``z`` (G * b, C, H, W), ``b`` per mask in mask order, their clean probabilities ``p0`` (G * b,) of the
    masks' classes ``target`` (G * b,)."""
    m = masks.detach().requires_grad_()
    logits = net(par.apply(z, m.repeat_interleave(len(z) // len(m), dim=0)))
    rest = torch.logsumexp(logits.scatter(1, target[:, None], -math.inf), dim=1) - torch.logsumexp(logits, dim=1)
    push = (torch.log1p(-p0.clamp(max=1 - 1e-6)) - rest).clamp(min=0)   # log(1 - p0) - log(1 - p~), finite at p = 1
    loss = push.view(len(m), -1).mean(dim=1).sum()
    return torch.autograd.grad(loss, m)[0]


@torch.no_grad()
def score_push(net: nn.Module, z: torch.Tensor, target: int, mask: torch.Tensor, allowed: int,
               par: Parametrisation, batch_size: int) -> tuple[int, int]:
    """Foreign images ``z`` (N, C, H, W) predicted as ``target`` under ``mask``, in batches, until more than
    ``allowed`` are: ``(pushed, scored)``; the rule's second side holds iff ``pushed <= allowed``."""
    pushed, scored = 0, 0
    for s in batches(len(z), batch_size):
        pushed += int((net(par.apply(z[s], mask)).argmax(dim=1) == target).sum())
        scored = s.stop
        if pushed > allowed:
            break
    return pushed, scored


def foreign_of(net: nn.Module, z: torch.Tensor, pred0: torch.Tensor, f: tuple[torch.Tensor, int] | None,
               push_tol: float, batch_size: int) -> tuple[Foreign | None, torch.Tensor | None]:
    """A group's :class:`Foreign` images ``f = (index into z, class)`` (or none) and their clean probabilities of
    its class (n_f,); ``pred0``: the clean predictions of ``z``."""
    if f is None:
        return None, None
    index, target = f
    p0 = clean_prob(net, z[index], torch.full_like(index, target), batch_size)
    return Foreign.of(index, target, pred0, push_tol), p0


def push_gradients(net: nn.Module, z: torch.Tensor, active: Sequence[Any], grad: torch.Tensor,
                   param: torch.Tensor, par: Parametrisation, b: int, batch_size: int) -> torch.Tensor:
    """The foreign images' term of the shared fit's gradient (rows as ``grad``, zero for masks without foreign
    images) for the ``active`` mask fits (``freqbias.shared_masks._GroupFit``: ``row``, ``foreign``, ``p0``,
    ``draw_foreign``): ``b`` foreign images per class mask, a few masks per forward pass (:func:`push_gradient`)."""
    out = torch.zeros_like(grad)
    rows = [i for i, fit in enumerate(active) if fit.foreign is not None]
    for c in batches(len(rows), max(1, batch_size // b)):
        fits = [active[i] for i in rows[c]]
        pos = [fit.draw_foreign(b) for fit in fits]
        idx = torch.cat([fit.foreign.index[p] for fit, p in zip(fits, pos)])
        p0 = torch.cat([fit.p0[p] for fit, p in zip(fits, pos)])
        target = torch.cat([torch.full_like(p, fit.foreign.target) for fit, p in zip(fits, pos)])
        out[rows[c]] = push_gradient(net, z[idx], p0, target, param[[fit.row for fit in fits]], par)
    return out
