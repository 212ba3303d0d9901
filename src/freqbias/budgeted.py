"""Budgeted masks: the mask that keeps the most of a model's loss at a fixed size, and the sparsest size by search.

A mask's *budget* is its full-plane mean (:meth:`~freqbias.parametrisation.Parametrisation.sparsity`: 1 keeps
everything, 0.1 keeps the equivalent of a tenth of the plane). A fit with a sparsity penalty returns a mask whose
size is wherever its optimiser stopped; a *budgeted* mask has its size set by construction (Fong & Vedaldi 2019,
"Understanding deep networks via extremal perturbations and smooth masks": compare masks at a fixed area):

- :func:`fit_at_budgets`: per group of normalised images, the mask of budget ``a_g`` that keeps the model's loss
  best: it minimises the mean CE gap ``mean_i CE(f(z~_i), y_i) - CE(f(z_i), y_i)`` (no sparsity term: the size
  is fixed; the study's ``exp(gap^2)`` balances a penalty and, far from a solution, lets the worst image of a
  minibatch set the step: from a uniform mask at a budget of 0.03 it stalled at a loss of 21 on a planted
  network that the mean gap fits), by projected gradient steps (:class:`NormalisedMomentum`, not Adam) each
  followed by the projection onto the masks of that budget
  (:meth:`~freqbias.parametrisation.Parametrisation.project_budget`). Every ``check_every`` steps the loss is
  measured on the group's first ``eval_n`` images (a fixed set, so the measurement does not depend on the minibatch
  order); the fit keeps the mask with the lowest measured loss and has *converged* when that loss improved by
  <= ``tol`` over ``patience`` checks in a row (else it hit ``max_steps``). A class mask's foreign images
  (:mod:`freqbias.class_rule`) add their push term, as in :mod:`freqbias.shared_masks`.
- :func:`search_budgets`: the sparsest budget whose budgeted mask meets the accuracy rule (masked correct >=
  ``acc_ratio`` x clean correct on all of the group's images, and for a class mask the foreign images kept out).
  From the identity (budget 1) the budget goes down by a factor ``step`` while the rule is met, each fit
  warm-started from the last mask that met it (a path from the identity down, where a fit from a uniform mask at a
  small budget starts far from any solution: on a trained network it then lost to a low-pass disc of its budget);
  after the first miss, ``rounds`` bisections in log-budget between the last met and the first missed budget
  (relative resolution ``(1 / step) ** (2 ** -rounds)``: 1.09 at 0.5 and 3). Not below ``budget_min``. The
  returned mask is the last that met the rule; its size is the bracket's upper end, so two refits (another
  minibatch order, another CPU) differ in size only where the rule's verdict at a budget differs.

All groups are fitted in one batched run (each with its own generator, budget and state), like the shared masks.
Masks are in the config's parametrisation, UNSHIFTED.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import runtime
from .class_rule import Foreign, foreign_of, push_gradients, score_push
from .fitting import check_images, clean_ce
from .fourier import predict
from .frozen import fitting_copy
from .loops import BATCH_SIZE, batches
from .parametrisation import Parametrisation, Rfft, check_parametrisation
from .shared_masks import min_correct, score_rule


@dataclass(frozen=True)
class BudgetConfig:
    """Constants of budgeted fits (``masks.budget`` in params.yaml).

    ``lr``: the largest entry's step (:class:`NormalisedMomentum`); ``batch_size``: images per group per step;
    ``max_steps``: the cap of one fit (one search round, one ladder budget); ``check_every``, ``eval_n``, ``tol``
    (loss units), ``patience``: the convergence rule (module doc); ``acc_ratio``: the rule of the search; ``step``,
    ``rounds``, ``budget_min``: the search (module doc).
    ``eval_batch_size``, ``fast_net``: speed only. ``push_tol``: a class mask's foreign images it may send into
    its class beyond the clean count, as a share."""

    lr: float = 0.1
    batch_size: int = 16
    max_steps: int = 150
    check_every: int = 10
    eval_n: int = 128
    tol: float = 0.002
    patience: int = 3
    acc_ratio: float = 0.99
    step: float = 0.5
    rounds: int = 3
    budget_min: float = 0.005
    parametrisation: type[Parametrisation] = Rfft
    seed: int = 0
    eval_batch_size: int = BATCH_SIZE
    fast_net: bool = True
    push_tol: float = 0.05

    def __post_init__(self) -> None:
        check_parametrisation(self.parametrisation)
        for name in ("lr", "batch_size", "max_steps", "check_every", "eval_n", "patience", "rounds",
                     "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.budget_min < 1:
            raise ValueError(f"budget_min must be in (0, 1), got {self.budget_min}")
        if not 0 < self.step < 1:
            raise ValueError(f"step must be in (0, 1), got {self.step}")
        if self.tol < 0 or not 0 <= self.acc_ratio <= 1 or not 0 <= self.push_tol <= 1:
            raise ValueError(f"tol >= 0, acc_ratio and push_tol in [0, 1]; got {self.tol}, {self.acc_ratio}, "
                             f"{self.push_tol}")

    def resolution(self) -> float:
        """The search's relative resolution: the ratio of its bracket's ends after ``rounds`` halvings."""
        return (1 / self.step) ** (2.0 ** -self.rounds)

    def max_rounds(self) -> int:
        """Rounds of the search at most: down from 1 to ``budget_min`` by ``step``, then ``rounds`` halvings."""
        return math.ceil(math.log(self.budget_min) / math.log(self.step)) + self.rounds


@dataclass
class BudgetFit:
    """Budgeted masks (G, *shape) (all-NaN for a group without images) and one record per group: ``budget``,
    ``n_images``, ``converged`` (the loss settled; None without images), ``steps``, ``loss`` (the lowest measured
    loss) and ``history`` (one ``{step, loss}`` per check)."""

    masks: torch.Tensor
    records: list[dict]


class NormalisedMomentum:
    """Projected gradient descent for a stack of masks ``param`` (G, *shape), updated in place: heavy-ball momentum
    (``beta``) on each mask's gradient, the step scaled per mask so that its entry of largest momentum moves by
    ``lr`` (the others in proportion), then clamped to [0, 1] (the caller projects onto the budget).

    Not Adam: Adam divides each entry by its own gradient scale, so entries the loss barely depends on take steps as
    large as those it needs, and under a budget their random walks take mass from the needed ones. Measured on a
    trained adversarial network (A-s1, 2,000 val images, 100 steps): held-out masked / clean accuracy at budgets
    0.02 / 0.05 / 0.1 of 0.49 / 0.73 / 0.82 with Adam (lr 0.05), below a low-pass disc of the same budget (0.70 /
    0.81 / 0.93); 0.78 / 0.91 / 0.95 with this (lr 0.1)."""

    def __init__(self, param: torch.Tensor, lr: float, beta: float = 0.9):
        self.param, self.lr, self.beta = param, lr, beta
        self.m = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, act: torch.Tensor) -> None:
        """Update masks ``act`` (indices) with their gradient ``grad`` (len(act), *shape)."""
        self.m[act] = self.beta * self.m[act] + (1 - self.beta) * grad
        m = self.m[act]
        scale = m.flatten(1).abs().amax(dim=1).clamp_min(1e-30).view(-1, *([1] * (m.dim() - 1)))
        self.param[act] = (self.param[act] - self.lr * m / scale).clamp(0.0, 1.0)


class _Group:
    """One group's budgeted fit: row ``row`` of the stack, images ``index`` (n,), the budget, its own generator
    (its draws do not depend on the other groups), the fixed check images ``probe`` (the first ``eval_n``), the
    best mask so far by measured loss, and a class mask's foreign images (``foreign``, ``p0``)."""

    def __init__(self, row: int, index: torch.Tensor, budget: float, cfg: BudgetConfig,
                 foreign: tuple[Foreign | None, torch.Tensor | None] = (None, None)):
        self.row, self.index, self.size, self.budget = row, index, len(index), float(budget)
        f, p0 = foreign
        self.foreign, self.p0 = (f, p0) if f is not None and len(f.index) and len(index) else (None, None)
        self.probe = index[:cfg.eval_n]
        self.gen = torch.Generator().manual_seed(cfg.seed * 100_003 + row)
        self.best: torch.Tensor | None = None
        self.best_loss, self.ref_loss, self.since, self.steps = math.inf, math.inf, 0, 0
        self.converged: bool | None = False if self.size else None
        self.history: list[dict] = []

    def draw(self, b: int) -> torch.Tensor:
        return self.index[torch.randint(self.size, (b,), generator=self.gen).to(self.index.device)]

    def draw_foreign(self, b: int) -> torch.Tensor:
        return torch.randint(len(self.foreign.index), (b,), generator=self.gen).to(self.index.device)

    def check(self, step: int, loss: float, mask: torch.Tensor, tol: float, patience: int) -> bool:
        """Log the measured ``loss`` of ``mask``, keep the best; whether the fit has now converged."""
        self.history.append({"step": step, "loss": loss})
        self.steps = step
        if loss < self.best_loss:
            self.best, self.best_loss = mask.clone(), loss
        if self.ref_loss - self.best_loss > tol:
            self.ref_loss, self.since = self.best_loss, 0
        else:
            self.since += 1
        return self.since >= patience

    def record(self) -> dict:
        return {"budget": self.budget, "n_images": self.size, "converged": self.converged, "steps": self.steps,
                "loss": self.best_loss if self.size else math.nan, "history": self.history}


def _gradient(net: nn.Module, z: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
              par: Parametrisation) -> torch.Tensor:
    """The gradient (G, *shape) of ``sum_g mean_i CE(f(z~_i), y_i)`` for masks (G, *shape) on normalised images
    ``z`` (G * b, C, H, W), ``b`` per mask in mask order, with labels ``y`` (G * b,)."""
    m = masks.detach().requires_grad_()
    logits = net(par.apply(z, m.repeat_interleave(len(z) // len(m), dim=0)))
    loss = F.cross_entropy(logits, y, reduction="none").view(len(m), -1).mean(dim=1).sum()
    return torch.autograd.grad(loss, m)[0]


@torch.no_grad()
def measured_loss(net: nn.Module, z: torch.Tensor, y: torch.Tensor, ce0: torch.Tensor, mask: torch.Tensor,
                  par: Parametrisation, batch_size: int = BATCH_SIZE) -> float:
    """The mean CE gap ``mean_i CE(f(z~_i), y_i) - CE(f(z_i), y_i)`` (nats) of ``mask`` on normalised images ``z``
    (n, C, H, W) with clean CE ``ce0`` (n,)."""
    total = 0.0
    for s in batches(len(z), batch_size):
        total += float((F.cross_entropy(net(par.apply(z[s], mask)), y[s], reduction="none") - ce0[s]).sum())
    return total / max(1, len(z))


def _clean(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor],
           foreign: Sequence[tuple[torch.Tensor, int] | None], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean CE and predictions (N,) of every image a group or a foreign set uses (NaN / -1 elsewhere)."""
    ce0, pred0 = torch.full_like(y, math.nan, dtype=z.dtype), torch.full_like(y, -1)
    used = torch.cat([*groups, *(f[0] for f in foreign if f is not None), y.new_zeros(0)]).unique()
    if len(used):
        ce0[used], pred0[used] = clean_ce(net, z[used], y[used], batch_size)
    return ce0, pred0


def fit_at_budgets(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor],
                   budgets: Sequence[float] | torch.Tensor, cfg: BudgetConfig, init: torch.Tensor | None = None,
                   foreign: Sequence[tuple[torch.Tensor, int] | None] | None = None,
                   desc: str = "budgeted masks") -> BudgetFit:
    """One budgeted mask per group of normalised images ``z`` (N, C, H, W) with labels ``y`` (N,): ``groups``
    index tensors into ``z`` (an empty one gets an all-NaN mask), ``budgets`` (G,) in (0, 1], ``init`` (G, *shape)
    a warm start (projected onto its budget first; None: ones, i.e. a uniform mask of the budget), ``foreign`` per
    group None or a class mask's ``(index into z, class)``. See the module doc."""
    check_images(z, y)
    par = cfg.parametrisation(*z.shape[-2:])
    dev, y = z.device, y.to(z.device)
    groups = [g.to(dev).long() for g in groups]
    budgets = torch.as_tensor(budgets, dtype=torch.float64).reshape(-1)
    if len(budgets) != len(groups) or not ((budgets > 0) & (budgets <= 1)).all():
        raise ValueError(f"need one budget in (0, 1] per group ({len(groups)}), got {budgets.tolist()}")
    net = fitting_copy(net, cfg.fast_net)
    foreign = [None if f is None else (f[0].to(dev).long(), int(f[1])) for f in (foreign or [None] * len(groups))]
    ce0, pred0 = _clean(net, z, y, groups, foreign, cfg.eval_batch_size)
    start = par.init(len(groups), device=dev, dtype=z.dtype) if init is None else init.to(dev, z.dtype).clone()
    param = par.project_budget(torch.nan_to_num(start, nan=1.0), budgets.to(dev))
    opt = NormalisedMomentum(param, cfg.lr)
    fits = [_Group(g, index, budgets[g].item(), cfg, foreign_of(net, z, pred0, f, cfg.push_tol, cfg.eval_batch_size))
            for g, (index, f) in enumerate(zip(groups, foreign))]
    active = [fit for fit in fits if fit.size]
    b = cfg.batch_size
    bar = tqdm(total=cfg.max_steps, desc=desc, unit="step", disable=not runtime.progress())
    for step in range(1, cfg.max_steps + 1):
        if not active:
            break
        act = torch.tensor([fit.row for fit in active], device=dev)
        idx = torch.stack([fit.draw(b) for fit in active])
        grad = torch.cat([_gradient(net, z[idx[c]].flatten(0, 1), y[idx[c]].flatten(), param[act[c]], par)
                          for c in batches(len(active), max(1, cfg.eval_batch_size // b))])
        grad = grad + push_gradients(net, z, active, grad, param, par, max(1, b // 4), cfg.eval_batch_size)
        opt.step(grad, act)
        param[act] = par.project_budget(param[act], budgets[act.cpu()].to(dev))
        bar.update(1)
        if step % cfg.check_every and step != cfg.max_steps:
            continue
        for fit in list(active):
            mask = param[fit.row]
            loss = measured_loss(net, z[fit.probe], y[fit.probe], ce0[fit.probe], mask, par, cfg.eval_batch_size)
            if fit.check(step, loss, mask, cfg.tol, cfg.patience):
                fit.converged = True
                active.remove(fit)
        bar.set_postfix(active=len(active))
    bar.close()
    masks = torch.stack([fit.best if fit.best is not None else torch.full(par.shape, math.nan, device=dev,
                                                                           dtype=z.dtype) for fit in fits])
    return BudgetFit(masks=masks, records=[fit.record() for fit in fits])


@torch.no_grad()
def meets_rule(net: nn.Module, z: torch.Tensor, y: torch.Tensor, index: torch.Tensor, correct0: int,
               mask: torch.Tensor, cfg: BudgetConfig, foreign: Foreign | None = None, full: bool = False) -> dict:
    """Score ``mask`` on the images ``index`` (all of them; ``correct0`` of them right without a mask) and on a
    class mask's ``foreign`` images: ``clean_acc``, ``masked_acc``, ``met`` (the rule, both sides) and for a class
    mask ``pushed`` / ``pushed_clean`` / ``n_foreign``. Scoring stops once the verdict is settled
    (:func:`freqbias.shared_masks.score_rule`): ``masked_acc`` is None then, unless ``full``."""
    par = cfg.parametrisation(*z.shape[-2:])
    need = min_correct(correct0, cfg.acc_ratio)
    if full:
        correct = int((predict(net, z[index], mask, par, cfg.eval_batch_size) == y[index]).sum())
        scored = len(index)
    else:
        correct, scored, _ = score_rule(net, z[index], y[index], mask, len(index) - need, par, cfg.eval_batch_size)
    out = {"n_images": len(index), "clean_acc": correct0 / len(index),
           "masked_acc": correct / len(index) if scored == len(index) else None,
           "met": scored - correct <= len(index) - need}
    if foreign is not None:
        pushed, _ = score_push(net, z[foreign.index], foreign.target, mask,
                               len(foreign.index) if full else foreign.allowed, par, cfg.eval_batch_size)
        out.update({"n_foreign": len(foreign.index), "pushed_clean": foreign.clean,
                    "pushed": pushed if full or pushed <= foreign.allowed else None,
                    "met": out["met"] and pushed <= foreign.allowed})
    return out


def search_budgets(net: nn.Module, z: torch.Tensor, y: torch.Tensor, groups: Sequence[torch.Tensor],
                   cfg: BudgetConfig, foreign: Sequence[tuple[torch.Tensor, int] | None] | None = None,
                   desc: str = "budget search") -> BudgetFit:
    """The sparsest budgeted mask that meets the rule, per group (module doc). Records: ``budget`` (the size
    found; 1.0 when no budget below 1 met the rule), ``mean`` / ``support`` / ``min`` of the mask, the rule's
    scores (:func:`meets_rule`), ``converged`` (the returned mask's fit settled and some budget below 1 met the
    rule; None without images), ``steps`` (all rounds), ``rounds_converged`` (share of rounds whose fit settled),
    ``floor`` (no budget down to ``budget_min`` missed: the size is an upper bound) and ``history``: one
    ``{budget, met, converged, steps, loss}`` per round."""
    check_images(z, y)
    par = cfg.parametrisation(*z.shape[-2:])
    dev = z.device
    groups = [g.to(dev).long() for g in groups]
    foreign = list(foreign or [None] * len(groups))
    fast, y = fitting_copy(net, cfg.fast_net), y.to(dev)
    _, pred0 = _clean(fast, z, y, groups, [None if f is None else (f[0].to(dev).long(), int(f[1])) for f in foreign],
                      cfg.eval_batch_size)
    correct0 = [int((pred0[g] == y[g]).sum()) for g in groups]
    once = dataclasses.replace(cfg, fast_net=False)  # ``fast`` is already the fitting copy
    kept_out = [None if f is None or not len(f[0]) else Foreign.of(f[0].to(dev).long(), int(f[1]), pred0, cfg.push_tol)
                for f in foreign]
    hi = [1.0] * len(groups)                      # the smallest budget that met the rule (the identity at first)
    lo: list[float | None] = [None] * len(groups)  # the largest that missed it, once one has
    halvings, done = [0] * len(groups), [not len(g) for g in groups]
    best = par.init(len(groups), device=dev, dtype=z.dtype)
    best_fit: list[dict | None] = [None] * len(groups)
    history: list[list[dict]] = [[] for _ in groups]
    for r in range(cfg.max_rounds()):
        for g in range(len(groups)):   # the next budget: down by ``step`` until a miss, then bisect in log-budget
            nxt = hi[g] * cfg.step if lo[g] is None else math.sqrt(lo[g] * hi[g])
            done[g] = done[g] or (lo[g] is None and nxt < cfg.budget_min) or halvings[g] >= cfg.rounds
        if all(done):
            break
        budget = [1.0 if done[g] else hi[g] * cfg.step if lo[g] is None else math.sqrt(lo[g] * hi[g])
                  for g in range(len(groups))]
        fit = fit_at_budgets(fast, z, y, [index[:0] if done[g] else index for g, index in enumerate(groups)], budget,
                             once, init=best, foreign=foreign, desc=f"{desc} {r + 1}")
        for g, index in enumerate(groups):
            if done[g]:
                continue
            score = meets_rule(fast, z, y, index, correct0[g], fit.masks[g], cfg, kept_out[g])
            rec = fit.records[g]
            history[g].append({"budget": budget[g], "met": score["met"], "converged": rec["converged"],
                               "steps": rec["steps"], "loss": rec["loss"]})
            halvings[g] += lo[g] is not None
            if score["met"]:
                hi[g], best[g], best_fit[g] = budget[g], fit.masks[g], rec
            else:
                lo[g] = budget[g]
    records = []
    for g, index in enumerate(groups):
        if not len(index):
            best[g] = math.nan
            records.append({"budget": math.nan, "n_images": 0, "converged": None, "history": []})
            continue
        score = meets_rule(fast, z, y, index, correct0[g], best[g], cfg, kept_out[g], full=True)
        rounds = history[g]
        records.append({
            "budget": hi[g], **score, "mean": par.sparsity(best[g]).item(),
            "support": par.support(best[g]).item(), "min": best[g].min().item(),
            "converged": best_fit[g] is not None and bool(best_fit[g]["converged"]),
            "steps": sum(h["steps"] for h in rounds),
            "rounds_converged": sum(bool(h["converged"]) for h in rounds) / max(1, len(rounds)),
            "floor": lo[g] is None, "history": rounds})
    return BudgetFit(masks=best, records=records)
