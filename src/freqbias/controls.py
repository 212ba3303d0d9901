"""Controls for the masks of one model: what a learned mask shows beyond a plain low-pass filter (docs/study.md,
"Controls").

- **Equal budget** (:func:`equal_budget`): the accuracy of each dataset / fold mask, of its binary support, of a
  centred low-pass disc keeping as many frequencies, and of random supports of that size, on the mask's fit
  images and on held-out test images.
- **Faithfulness** (:func:`faithfulness`): insertion (keep the first k) and deletion (remove the first k) curves
  over frequency orders: the mask's values, the radius, random, the model's Fourier heat map and the gradient
  of the cross-entropy at the all-ones mask; their areas per image.
- **Class specificity** (:func:`class_specificity`): whether a class mask sends other classes' images into its
  class, and the model's *default class* (the class of an image reduced to its zero frequency).
- **Model randomisation** (:func:`randomised`): the same architecture with re-initialised weights, whose
  single-image masks the aggregate stage compares with the trained model's (Adebayo et al. 2018), against the
  yardstick of another trained seed's masks on the same images; and the cascade (:func:`cascade`): the layers
  re-initialised from the top down, one more at each step.

Images are normalised (``model.normalize(x)``, the tensor entering ``model.net``) unless named pixels;
masks are UNSHIFTED, compared on the rfft grid (:mod:`freqbias.orders`). Positive controls on planted data
(``tests/test_controls.py``) show that each control detects a real difference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from .baselines import HeatmapConfig, fourier_heatmap
from .config import Section
from .frequency_orders import OrderContext, orders_of
from .models import Classifier
from .orders import (
    area,
    as_rfft,
    budget,
    correct_under,
    disc_like,
    gradient_scores,
    keep_masks,
    predictions_under,
    random_like,
    rfft_weights,
    support_mask,
)

VARIANTS = ("mask", "support", "disc", "random")


@dataclass(frozen=True)
class ControlsConfig:
    """The ``controls`` section of params.yaml. ``n``: fit and test images each mask is scored on (the first
    n); ``random_draws``: random supports per mask; ``faith_n``: test images of the dataset mask's curves;
    ``steps``: budgets per curve (``steps + 1`` points from 0 to 1); ``heatmap``: the heat map that orders
    frequencies (:class:`~freqbias.baselines.HeatmapConfig`; with fewer probed frequencies per axis than the
    image size, each entry takes its nearest probed one's score); ``class_n``: test images scored under each
    class mask; ``randomised``: fit the re-initialised model's single-image masks (the standard model's
    stage; its yardstick is the yardstick stage's); ``cascade_n``: images of the cascading
    randomisation's curve (0: none); ``seed``."""

    n: int = 500            # the defaults are params.yaml's (tests/test_controls.py)
    random_draws: int = 2
    faith_n: int = 100
    steps: int = 8
    heatmap: HeatmapConfig = HeatmapConfig(n=16, grid=28, norm=3.0)
    class_n: int = 1000
    randomised: bool = True
    cascade_n: int = 24
    seed: int = 0

    @classmethod
    def from_params(cls, params: Mapping) -> "ControlsConfig":
        sec = Section(params, "controls")
        return cls(n=sec.integer("n", min=1), random_draws=sec.integer("random_draws", min=1),
                   faith_n=sec.integer("faith_n", min=1), steps=sec.integer("steps", min=1),
                   heatmap=HeatmapConfig.from_section(sec.sub("heatmap"), grid_min=2, grid_default=28),
                   class_n=sec.integer("class_n", min=1), randomised=sec.boolean("randomised"),
                   cascade_n=sec.integer("cascade_n", 32, min=0), seed=sec.integer("seed", 0, min=0))

    @property
    def budgets(self) -> list[float]:
        return [k / self.steps for k in range(self.steps + 1)]


def budget_masks(mask: torch.Tensor, width: int, draws: int, seed: int) -> dict[str, torch.Tensor]:
    """The equal-budget family of one mask (H, Wm), each as rfft masks (P, H, W//2+1): the mask itself, its
    binary support, a low-pass disc and ``draws`` random supports of the support's size."""
    return {"mask": as_rfft(mask, width)[None].float(), "support": support_mask(mask, width)[None],
            "disc": disc_like(mask, width, seed)[None], "random": random_like(mask, width, draws, seed)}


def equal_budget(net: nn.Module, masks: torch.Tensor, fit: list[tuple[torch.Tensor, torch.Tensor]],
                 test: tuple[torch.Tensor, torch.Tensor], cfg: ControlsConfig) -> list[dict]:
    """One row per mask of ``masks`` (G, H, Wm) (the dataset mask and its folds): its ``budget`` (full-plane
    share of its support) and, on its fit images ``fit[g] = (z, y)`` and on ``test = (z, y)`` (first
    ``cfg.n`` of each), the accuracy ``<split>_<variant>`` of each :data:`VARIANTS` (random: the mean over
    draws; ``<split>_random_draws`` each draw). All-NaN masks (no fit images) give a row with ``n/a``."""
    width = test[0].shape[-1]
    rows = []
    for g, mask in enumerate(masks):
        if not torch.isfinite(mask).all():
            rows.append({"mask": g, "na": "mask not fitted (no finite entry)"})
            continue
        family = budget_masks(mask.cpu(), width, cfg.random_draws, cfg.seed + g)
        stacked = torch.cat([family[v] for v in VARIANTS])
        sizes = [len(family[v]) for v in VARIANTS]
        row = {"mask": g, "budget": float(budget(family["support"][0], rfft_weights(mask.shape[-2], width)))}
        for split, (z, y) in (("fit", fit[g]), ("test", test)):
            acc = correct_under(net, z[:cfg.n], y[:cfg.n], stacked).float().mean(dim=1)
            for v, part in zip(VARIANTS, acc.split(sizes)):
                row[f"{split}_{v}"] = float(part.mean())
            row[f"{split}_random_draws"] = [float(a) for a in acc[-sizes[-1]:]]
            row[f"{split}_n"] = min(cfg.n, len(z))
        rows.append(row)
    return rows


def heatmap_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ControlsConfig) -> torch.Tensor:
    """The Fourier heat map (error rate under an added basis image, :func:`freqbias.baselines.fourier_heatmap`)
    at every rfft entry, on pixels ``x`` (N, C, H, W) in [0, 1]: float64 (H, W//2+1), unshifted. At most
    ``cfg.heatmap.grid`` frequencies per axis are probed (evenly spaced, signed rows and non-negative columns);
    every entry takes the score of its nearest probed frequency."""
    h, w = x.shape[-2:]
    ky = torch.fft.fftfreq(h, d=1.0 / h).round().long()
    kx = torch.fft.rfftfreq(w, d=1.0 / w).round().long()
    hm = cfg.heatmap
    fy = torch.linspace(-(h // 2), (h - 1) // 2, min(hm.grid, h)).round().long().unique()
    fx = torch.linspace(0, w // 2, min(hm.grid // 2 + 1, w // 2 + 1)).round().long().unique()
    heat = torch.as_tensor(fourier_heatmap(model, x[:hm.n], y[:hm.n], hm.norm, freqs=(fy, fx), seed=cfg.seed),
                           dtype=torch.float64)
    rows = (ky[:, None] - fy[None]).abs().argmin(dim=1)
    cols = (kx[:, None] - fx[None]).abs().argmin(dim=1)
    return heat[rows][:, cols]


def dataset_orders(mask: torch.Tensor, width: int, heat: torch.Tensor, grad: torch.Tensor,
                   seed: int) -> dict[str, torch.Tensor]:
    """Every registered order (:data:`~freqbias.frequency_orders.ORDERS`) of the rfft entries of one mask (H, Wm)
    for images of ``width``, each int64 (F,); ``heat`` and ``grad``: (H, W//2+1) scores."""
    return orders_of(OrderContext(mask=mask, width=width, heat=heat, grad=grad, seed=seed))


def curves(net: nn.Module, z: torch.Tensor, target: torch.Tensor, orders: Mapping[str, torch.Tensor],
           budgets: list[float]) -> dict[str, dict[str, torch.Tensor]]:
    """Insertion and deletion curves of ``net`` on ``z`` (N, C, H, W), target (N,), for each order: shared
    orders (F,) or one per image (N, F). ``{order: {"insertion": bool (B, N), "deletion": bool (B, N)}}``:
    whether each image is still right (== target) with the first ``budgets[b]`` of the plane kept /
    removed."""
    h, w = z.shape[-2:]
    weights = rfft_weights(h, w)
    out = {}
    for name, order in orders.items():
        keep = keep_masks(order, weights, budgets)                         # (B, [N,] H, Wm)
        out[name] = {"insertion": correct_under(net, z, target, keep),
                     "deletion": correct_under(net, z, target, 1.0 - keep)}
    return out


def areas(curve: Mapping[str, Mapping[str, torch.Tensor]], budgets: list[float]) -> dict[str, dict[str, list]]:
    """Per image areas under each curve of :func:`curves`: ``{order: {"insertion": [N], "deletion": [N]}}``."""
    return {name: {k: area(c, budgets).tolist() for k, c in per.items()} for name, per in curve.items()}


def net_of(model: Classifier | nn.Sequential) -> nn.Module:
    """The net a mask acts before, in a model from pixels to logits: ``model.net`` of a
    :class:`~freqbias.models.Classifier`, ``model[1]`` of ``nn.Sequential(normalize, net)``."""
    if isinstance(model, Classifier):
        return model.net
    if isinstance(model, nn.Sequential) and len(model) == 2:
        return model[1]
    raise TypeError(f"expected a Classifier or nn.Sequential(normalize, net), got {type(model).__name__}")


def faithfulness(model: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor, dataset_mask: torch.Tensor,
                 single: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, cfg: ControlsConfig,
                 normalise: Callable[[torch.Tensor], torch.Tensor], net: nn.Module | None = None) -> dict:
    """Faithfulness of the dataset mask (curves on the first ``cfg.faith_n`` test images ``x_test``, pixels,
    against their labels) and of the single-image masks ``single = (x, target, masks)`` (pixels (n, C, H, W),
    targets (n,), masks (n, H, Wm); per image orders, against the target). Returns per image areas and the mean
    curves: ``{"dataset": {"areas": ..., "curves": {order: {kind: [B]}}}, "single": ..., "budgets": [B]}``, one
    ``order`` per registered order (:data:`~freqbias.frequency_orders.ORDERS`). ``model``: pixels -> logits (the
    heat map's); ``net``: the net the masks act before, on ``normalise``'s output (None: :func:`net_of` the model)."""
    net, b = (net_of(model) if net is None else net), cfg.budgets
    x, y = x_test[:cfg.faith_n], y_test[:cfg.faith_n]
    z = normalise(x)
    heat = heatmap_scores(model, x, y, cfg)
    out: dict = {"budgets": b, "heatmap": heat}
    if torch.isfinite(dataset_mask).all():
        grad = gradient_scores(net, z, y, per_image=False)
        orders = dataset_orders(dataset_mask.cpu(), z.shape[-1], heat, grad, cfg.seed)
        c = curves(net, z, y, orders, b)
        out["dataset"] = {"areas": areas(c, b), "curves": _mean_curves(c)}
    if single is not None and len(single[0]):
        xs, target, masks = single
        zs = normalise(xs)
        fine = torch.isfinite(masks.flatten(1)).all(dim=1)
        grad = gradient_scores(net, zs, target, per_image=True)
        orders = orders_of(OrderContext(mask=masks.cpu(), width=zs.shape[-1], heat=heat, grad=grad, seed=cfg.seed))
        c = curves(net, zs, target, orders, b)
        out["single"] = {"areas": areas(c, b), "curves": _mean_curves(c), "finite": fine.tolist()}
    return out


def _mean_curves(c: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, list[float]]]:
    return {name: {k: v.float().mean(dim=1).tolist() for k, v in per.items()} for name, per in c.items()}


@torch.no_grad()
def default_class(net: nn.Module, z: torch.Tensor, num_classes: int) -> dict:
    """The classes ``net`` gives to featureless input: normalised images ``z`` (N, C, H, W) reduced to their
    zero frequency (``dc_share``: share of images per class; ``dc_class``: the most common) and the all-zero
    normalised image (``zero_class``)."""
    dc = z.mean(dim=(-2, -1), keepdim=True).expand_as(z)
    pred = net(dc).argmax(dim=1).cpu()
    share = torch.bincount(pred, minlength=num_classes).double() / max(1, len(pred))
    zero = int(net(torch.zeros_like(z[:1])).argmax(dim=1))
    return {"dc_class": int(share.argmax()), "dc_share": share.tolist(), "zero_class": zero}


def class_specificity(net: nn.Module, masks: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> list[dict]:
    """For each class mask ``masks[k]`` (K, H, Wm) on normalised test images ``z`` (N, C, H, W) with labels y:
    its class's accuracy clean and masked (``own_clean``, ``own_masked``) and the share of the other classes'
    images predicted as ``k``, clean and masked (``into_clean``, ``into_masked``; ``pushed`` = their
    difference). A class without a fitted mask, or without test images, gives ``na``."""
    width, y = z.shape[-1], y.cpu()
    fine = [k for k, m in enumerate(masks) if torch.isfinite(m).all()]
    clean = predictions_under(net, z, torch.ones(1, z.shape[-2], width // 2 + 1))[0]
    masked = dict(zip(fine, predictions_under(net, z, torch.stack([as_rfft(masks[k], width).float().cpu()
                                                                   for k in fine])) if fine else []))
    rows = []
    for k in range(len(masks)):
        own, other = y == k, y != k
        if k not in masked:
            rows.append({"class": k, "na": "mask not fitted (no val image of the class)"})
        elif not own.any() or not other.any():
            rows.append({"class": k, "na": "no test image of the class (or of any other)"})
        else:
            pred = masked[k]
            row = {"class": k, "own_clean": float((clean[own] == k).float().mean()),
                   "own_masked": float((pred[own] == k).float().mean()),
                   "into_clean": float((clean[other] == k).float().mean()),
                   "into_masked": float((pred[other] == k).float().mean())}
            rows.append({**row, "pushed": row["into_masked"] - row["into_clean"]})
    return rows


def randomised(model: Classifier, seed: int, calibrate: torch.Tensor | None = None) -> Classifier:
    """A copy of ``model`` with every layer of ``model.net`` re-initialised from ``seed`` (:func:`cascade` of
    all its layers); the same normalisation. Eval mode."""
    return cascade(model, seed, len(layer_groups(model.net)), calibrate)


@torch.no_grad()
def recalibrate(model: Classifier, norms: list[nn.Module], z: torch.Tensor, batch_size: int = 256) -> None:
    """Re-estimate, in place, the running statistics of the BatchNorm layers ``norms`` of ``model.net`` on the
    normalised images ``z`` (N, C, H, W) (cumulative average over batches of ``batch_size``); other layers keep
    theirs (they run in eval mode). Leaves ``model`` in eval mode."""
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for i in range(0, len(z) if norms else 0, batch_size):
        model.net(z[i:i + batch_size])
    model.eval()


def layer_groups(net: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The re-initialisable layers of ``net`` from the TOP (output) down, as ``(name, modules)``: each weight
    layer (a module with ``reset_parameters`` that is not a normalisation) with the normalisation layers that
    follow it (BatchNorm goes with its convolution); registration order is taken as the forward order."""
    groups: list[tuple[str, list[nn.Module]]] = []
    for name, module in net.named_modules():
        if not hasattr(module, "reset_parameters") or module is net:
            continue
        if isinstance(module, nn.modules.batchnorm._NormBase) and groups:
            groups[-1][1].append(module)
        else:
            groups.append((f"{name} ({type(module).__name__})", [module]))
    return groups[::-1]


def cascade(model: Classifier, seed: int, steps: int, calibrate: torch.Tensor | None = None) -> Classifier:
    """Cascading randomisation (Adebayo et al. 2018; Quantus' ``top_down``): a copy of ``model`` whose top
    ``steps`` layer groups (:func:`layer_groups`) are re-initialised from ``seed``, the rest kept trained.
    BatchNorm's running statistics of the re-initialised groups are reset, and with ``calibrate`` (normalised
    images (N, C, H, W)) re-estimated on them (:func:`recalibrate`): with reset statistics (mean 0, variance 1)
    the later layers get activations of the wrong scale and the network predicts nearly one class for every
    image, so its masks would describe a constant function. Eval mode."""
    rand = copy.deepcopy(model)
    reset = [m for _, modules in layer_groups(rand.net)[:steps] for m in modules]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in reset:
            module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    if calibrate is not None:
        recalibrate(rand, [m for m in reset if isinstance(m, nn.modules.batchnorm._BatchNorm)], calibrate)
    return rand.eval()
