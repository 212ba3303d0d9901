"""Training: the augmentation every variant shares, the training loop and evaluation.

The variants themselves (N, A, S, T, R, G and what each adds) are the entries of
:data:`freqbias.variants.VARIANTS`. All images here are pixels in [0, 1], (B, C, H, W). Augmentations are
sampled per image and applied as one batched affine warp (``affine_grid`` + ``grid_sample``), so they
cost little on a CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import runtime
from .attacks import PGD, AttackConfig, RobustEval
from .config import MissingParam, ParamError, Section, unknown_key
from .data import to_float
from .loops import BATCH_SIZE, batches, frozen, one_cycle, predict
from .perf import fast_bf16
from .variants import VARIANTS, AugmentConfig

Labelled = tuple[torch.Tensor, torch.Tensor]  # images x uint8 (N, C, H, W) and labels y int64 (N,), as load_split


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section of params.yaml: shared settings, the base augmentation ``train.augment``, each
    variant's own settings ``train.variant.<V>`` parsed by its registered settings type (``settings``: variant
    -> settings object, :mod:`freqbias.variants`; A's is its PGD, :attr:`attack`) and the evaluate stage's
    attacks ``train.eval`` (docs in params.yaml)."""

    arch: str
    variants: list[str]
    seeds: list[int]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    pct_start: float
    augment: AugmentConfig
    settings: Mapping[str, Any]
    evaluation: RobustEval
    amp: bool | None = None

    @property
    def attack(self) -> AttackConfig:
        """A's PGD (``train.variant.A``: also the study's attack, recorded in the aggregate's summary)."""
        return self.settings["A"]

    def settings_of(self, variant: str) -> Any:
        """Variant ``variant``'s own settings (ParamError naming ``train.variant.<V>`` when it has no entry)."""
        if variant not in self.settings:
            raise missing_entry(f"train.variant.{variant}")
        return self.settings[variant]

    def amp_on(self, device: torch.device, log: Callable[[str], None] = print) -> bool:
        """Whether to train under bf16 autocast on ``device``: ``amp`` null (auto) = on for CUDA only; an
        explicit true on a CPU still wins, with a one-line warning where the CPU lacks AMX (bf16 autocast is
        slow there; :func:`freqbias.perf.fast_bf16`)."""
        if self.amp is None:
            return device.type == "cuda"
        if self.amp and device.type == "cpu" and not fast_bf16():
            log("warning: train.amp is true on a CPU without AMX: bf16 autocast is slow there (README); null = auto")
        return self.amp

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainConfig":
        from .models import ARCHITECTURES

        sec = Section(params, "train")
        variants = sec.choices("variants", VARIANTS)
        missing = [v for v in ("N", "A") if v not in variants]
        if missing:
            raise ParamError(f"train.variants: must include N and A (N is the reference of every difference, A the "
                             f"adversarial model; both pick the single images), missing {', '.join(missing)}")
        settings = read_variant_settings(sec, variants)
        augment = AugmentConfig.from_section(sec.sub("augment"))
        seeds = sec.numbers("seeds", integer=True, min=0)
        if not seeds:
            raise ParamError("train.seeds: must list at least one seed, got []")
        if len(set(seeds)) != len(seeds):
            raise ParamError(f"train.seeds: values must be distinct, got {seeds}")
        return cls(
            arch=Section(params, "model").choice("arch", ARCHITECTURES),
            variants=variants, seeds=seeds,
            epochs=sec.integer("epochs", min=1), batch_size=sec.integer("batch_size", min=1),
            lr=sec.number("lr", min=0, strict_min=True), weight_decay=sec.number("weight_decay", 0.0, min=0),
            pct_start=sec.number("pct_start", min=0, max=1, strict_min=True),
            augment=augment, settings=settings, evaluation=RobustEval.from_section(sec.sub("eval")),
            amp=None if sec.raw("amp", None) is None else sec.boolean("amp"),
        )


def read_variant_settings(sec: Section, variants: list[str]) -> dict[str, Any]:
    """Each entry ``train.variant.<V>`` parsed by its registered variant's settings type (variant -> settings):
    an entry is required for every variant of ``variants`` and for A (its PGD is also the study's attack).
    Each train stage depends on its own entry only (dvc.yaml), so that changing one variant's setting retrains
    that variant alone."""
    table = sec.sub("variant")
    for name in table.data:
        if name not in VARIANTS:
            raise unknown_key(table.key(str(name)), VARIANTS)
    for name in dict.fromkeys([*variants, "A"]):
        if name not in table.data:
            raise missing_entry(table.key(name))
    return {name: VARIANTS[name].read(table.sub(name)) for name in table.data}


def missing_entry(key: str) -> MissingParam:
    """The error for a variant without its entry ``key`` (``train.variant.<V>``)."""
    return MissingParam(key, f"{key}: missing (every variant of train.variants needs an entry; {{}} when it has no "
                             "settings)")


# ---------------------------------------------------------------------------------------------
# Augmentation


def random_affine(x: torch.Tensor, g: torch.Generator, *, degrees: float = 0.0, translate: tuple[float, float] = (0, 0),
                  scale: tuple[float, float] = (1, 1), hflip: bool = False) -> torch.Tensor:
    """Per-image random affine warp of x (B, C, H, W), pixels in [0, 1]; outside is filled with 0.

    Rotation uniform in +-degrees, shift uniform in +-translate x size, zoom uniform in ``scale``
    (> 1 enlarges), optional horizontal flip with p = 0.5 (torchvision RandomAffine conventions)."""
    b = x.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=g)  # noqa: E731
    angle = torch.deg2rad(u(-degrees, degrees))
    s = u(*scale)
    tx, ty = 2 * u(-translate[0], translate[0]), 2 * u(-translate[1], translate[1])
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # affine_grid maps output coordinates to input coordinates: the inverse of the image transform.
    theta = torch.stack([torch.stack([cos * flip, sin, -(cos * tx + sin * ty)], 1),
                         torch.stack([-sin * flip, cos, sin * tx - cos * ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_batch(x: torch.Tensor, variant: str, cfg: AugmentConfig, g: torch.Generator,
                  settings: Any = None) -> torch.Tensor:
    """Base augmentation ``cfg`` (flip, resized crop) plus the variant's own (:mod:`freqbias.variants`), set by
    its ``settings`` (default: its settings type's defaults): the variant's ``warp`` joins the base warp (one
    resampling), then its ``augment`` runs. x: pixels in [0, 1] (B, C, H, W); randomness from ``g`` only."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; registered: {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    if settings is None and (spec.warp is not None or spec.augment is not None):
        settings = spec.settings()
    lo, hi = cfg.crop_scale
    zoom = (1 / math.sqrt(hi), 1 / math.sqrt(lo))  # keeping area a of the image = zooming by 1/sqrt(a)
    warp = spec.warp_args(settings)
    if "scale" in warp:
        warp["scale"] = (warp["scale"][0] * zoom[0], warp["scale"][1] * zoom[1])
    elif zoom != (1.0, 1.0):
        warp["scale"] = zoom
    if warp:
        x = random_affine(x, g, hflip=cfg.hflip, **warp)
    elif cfg.hflip:  # a flip alone needs no resampling
        flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(-1), x)
    return spec.apply(x, settings, g)


# ---------------------------------------------------------------------------------------------
# Loops


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = BATCH_SIZE) -> float:
    """Share of images x (N, C, H, W), uint8 or [0, 1] pixels, classified as y (N,), model in eval mode."""
    return float((predict(model, x, batch_size) == y).float().mean())


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: PGD, batch_size: int = 500,
                    seed: int = 0) -> float:
    """Accuracy on PGD images (model in eval mode, its mode restored afterwards). x: uint8 or [0, 1] pixels."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    correct = 0
    with frozen(model):
        for s in batches(len(x), batch_size):
            xb, yb = to_float(x[s]).to(device), y[s].to(device)
            x_adv = attack.perturb(model, xb, yb, g)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(x)


def train_step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler | None = None, attack: PGD | None = None,
               g: torch.Generator | None = None, amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step of ``model`` (train mode) on the augmented batch ``xb`` (B, C, H, W), pixels
    in [0, 1], labels ``yb`` (B,): with ``attack``, first replace ``xb`` by PGD images crafted in eval
    mode (frozen BN statistics); with ``amp``, the forward pass runs under bf16 autocast. Returns the
    batch's mean CE loss (scalar) and logits (B, classes), both detached."""
    if attack is not None:
        with frozen(model):
            xb = attack.perturb(model, xb, yb, g)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return loss.detach(), logits.detach()


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_acc: float
    seconds: float


def train_model(model: nn.Module, variant: str, cfg: TrainConfig, seed: int, train: Labelled, val: Labelled,
                std: float, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``model`` as ``variant`` (with its own settings, :meth:`TrainConfig.settings_of`) with Adam + OneCycle
    on the ``train`` split; keep the weights of the epoch with the best accuracy on ``val`` (never test).
    Splits: (x uint8 (N, C, H, W), y (N,)); ``std``: the dataset's pixel std (an attack in normalised units)."""
    if variant not in VARIANTS:
        raise ParamError(f"train.variants: unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    spec, own = VARIANTS[variant], cfg.settings_of(variant)
    (x_train, y_train), (x_val, y_val) = train, val
    device = next(model.parameters()).device
    # The uint8 dataset is small enough to live on the accelerator: augmentation then runs there too,
    # and no loader workers or pinned-memory copies are needed per batch.
    x_train, y_train = x_train.to(device), y_train.to(device)
    g = torch.Generator().manual_seed(seed)
    attack = own.build(std) if spec.adversarial else None
    amp = cfg.amp_on(device, log)
    layout = runtime.fast_layout(device)
    model.to(memory_format=layout)
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = one_cycle(opt, cfg.lr, cfg.epochs * steps_per_epoch, cfg.pct_start)
    history, best = [], (-1.0, 0, None)
    start = time.perf_counter()
    bars = runtime.progress()
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"train {variant}", unit="epoch", disable=not bars):
        model.train()
        t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        order = torch.randperm(len(x_train), generator=g)
        for s in tqdm(batches(len(x_train), cfg.batch_size), total=steps_per_epoch, leave=False,
                      desc=f"epoch {epoch}", unit="batch", disable=not bars):
            idx = order[s].to(device)
            xb = augment_batch(to_float(x_train[idx]), variant, cfg.augment, g, own)
            yb = y_train[idx]
            loss, logits = train_step(model, xb, yb, opt, sched, attack, g, amp)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        val_acc = accuracy(model, x_val, y_val)
        row = {"epoch": epoch, "lr": sched.get_last_lr()[0], "train_loss": loss_sum / seen,
               "train_acc": correct / seen, "val_acc": val_acc, "seconds": time.perf_counter() - t0}
        history.append(row)
        log(f"{variant} epoch {epoch}/{cfg.epochs}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.4f} "
            f"val acc {val_acc:.4f} ({row['seconds']:.1f}s)")
        if val_acc > best[0]:
            best = (val_acc, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    model.to(memory_format=torch.contiguous_format)  # checkpoints keep the default layout
    return TrainResult(model.eval(), history, best[1], best[0], time.perf_counter() - start)
