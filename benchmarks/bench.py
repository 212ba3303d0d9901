"""How close the study's kernels run to this machine's fp32 matmul peak.

Measures, in one run and on the same torch threads:

- **peak**: ``a @ b`` with 2048 x 2048 fp32 matrices, best of ``--repeats`` (2 n^3 FLOP each);
- **train N**: one call of :func:`freqbias.training.train_step` (forward, backward, Adam) of
  ``small_cnn`` at 28 x 28 on a batch of ``train.batch_size`` images, in the layout training uses;
- **train A**: the same step with the PGD of ``train.variant.A`` (params.yaml) first (eval-mode forward +
  backward per PGD step);
- **shared masks**: the kernel of dataset / class mask fitting: ``--batch`` images, each filtered by
  its group's mask out of ``--groups`` masks (``par.apply(z, masks[group_ids])``), forward +
  backward to the masks through the frozen net of :func:`freqbias.frozen.fitting_copy` (``fast``:
  BN folded, channels-last), then a :class:`freqbias.fitting.MaskAdam` step with its [0, 1] clamp;
- **single masks**: the per-step kernel of single-image fitting: one mask per image, the same way;
- **rule checks**: masked prediction without gradient (:func:`freqbias.fourier.predict`), the shared
  masks' accuracy rule: about 40 % of their fit. At ``loops.BATCH_SIZE`` images per forward pass (the
  code's choice) and, for comparison, at 1024 (the code's choice before), which spills the cache.

Each row gives items per second (images, or image-steps of mask fitting), the FLOP per item COUNTED
with :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matmuls of forward and
backward; the FFTs and elementwise ops count 0, so the share is of useful dense work), the GFLOP/s
this makes, and that as a share of the peak, against the issue's targets (training 60 %, mask fitting
70 %). Times are the best of ``--repeats`` rounds of ``--inner`` calls (the machine may be shared: the
fastest round is the least disturbed). ``--profile`` adds torch.profiler's top operators per row;
``--paper B`` what an epoch of the ``paper`` profile costs on this machine, fp32 and bf16 autocast;
``--compile`` the train N and mask-fitting rows again with the net under ``torch.compile``; ``--bf16``
the train N, mask-fitting and rule-check rows again under bf16 autocast (fast only on a CPU with AMX),
as shares of the bf16 matmul peak, measured beside the fp32 one; skipped, with a note, on a CPU without
native bf16 (:func:`native_bf16`), where emulated bf16 takes minutes for near-zero rates.
Peaks are printed to 3 significant digits, so none reads as 0.

    python benchmarks/bench.py [--threads N] [--repeats 5] [--inner 10] [--batch 128] [--groups 10] [--profile]
                               [--paper BATCH] [--compile] [--bf16]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from freqbias import fitting, fourier, loops
from freqbias.config import load_params
from freqbias.frozen import fitting_copy
from freqbias.models import build_model
from freqbias.parametrisation import Parametrisation
from freqbias.perf import best_seconds, matmul_peak
from freqbias.runtime import fast_layout
from freqbias.stage_masks import MasksConfig
from freqbias.training import TrainConfig, train_step

REPO = Path(__file__).resolve().parents[1]
SIZE, CLASSES = 28, 10
TARGETS = {"train": 0.60, "masks": 0.70}
PAPER_TRAIN = 4171   # Imagenette's 5 study classes (imagenette2 train split) less the 500 val images


@dataclass
class Case:
    """A kernel to time: ``fn()`` processes ``items`` items (images or image-steps)."""

    name: str
    kind: str            # "train" | "masks": which target applies
    items: int
    unit: str
    fn: Callable[[], object]
    compiled: bool = False   # the net runs under torch.compile: FLOP counted on its eager twin (same name)
    tag: str = ""            # shown after the name: " [compiled]", " [bf16]"


class Bf16(torch.nn.Module):
    """``net`` with its forward pass under CPU bf16 autocast, logits returned in fp32 (what
    ``train.amp`` does in training, here for the frozen net of the mask fits and rule checks)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(x).float()


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks break
    ``torch.autograd.grad`` on a leaf input (PGD, masks); only the global total is needed here."""

    parents = {"Global"}

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOP of one call of ``fn``, counted by torch (matmuls and convolutions, forward and backward)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def training_cases(cfg: TrainConfig, compiled: bool = False, amp: bool = False) -> list[Case]:
    """One train step of N (no attack) and of A (PGD of ``cfg.attack`` first), batch ``cfg.batch_size``;
    with ``compiled``, the model under ``torch.compile``; with ``amp``, under bf16 autocast."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.batch_size, 1, SIZE, SIZE, generator=g)
    y = torch.randint(0, CLASSES, (cfg.batch_size,), generator=g)
    cases = []
    for variant, attack in (("N", None), ("A", cfg.attack.build(std=0.35))):
        model = build_model(cfg.arch, 1, CLASSES, SIZE, [0.29], [0.35]).train()
        model.to(memory_format=fast_layout(x.device))  # as train_model does
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        name = f"train {variant}" + ("" if attack is None else f" (PGD {attack.steps} steps)")
        run = torch.compile(model) if compiled else model
        cases.append(Case(name, "train", cfg.batch_size, "images",
                          lambda m=run, o=opt, a=attack: train_step(m, x, y, o, attack=a, g=g, amp=amp), compiled,
                          " [compiled]" if compiled else " [bf16]" if amp else ""))
    return cases


def mask_case(net: torch.nn.Module, name: str, batch: int, groups: int, par: Parametrisation) -> Case:
    """Forward + backward to ``groups`` masks shared by a batch of ``batch`` images (``groups`` =
    ``batch``: one mask per image), an Adam step and the clamp: one image-step per image."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 1, SIZE, SIZE, generator=g)
    y = torch.randint(0, CLASSES, (batch,), generator=g)
    group_ids = torch.arange(batch) % groups
    masks = par.init(groups)
    adam, every = fitting.MaskAdam(masks, 0.02, warmup=1), torch.arange(groups)

    def step() -> None:
        m = masks.detach().requires_grad_()
        logits = net(par.apply(z, m[group_ids]))
        loss = torch.exp(F.cross_entropy(logits, y, reduction="none") ** 2).sum() + 0.2 * m.abs().mean()
        adam.step(torch.autograd.grad(loss, m)[0], every)  # the fits' Adam, with the [0, 1] clamp

    return Case(name, "masks", batch, "image-steps", step)


def check_case(net: torch.nn.Module, batch: int, par: Parametrisation, images: int = 2048) -> Case:
    """Masked prediction of ``images`` images under one shared mask, ``batch`` per forward pass."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(images, 1, SIZE, SIZE, generator=g)
    mask = torch.rand(par.shape, generator=g)
    return Case(f"rule checks (batch {batch})", "masks", images, "images",
                lambda: fourier.predict(net, z, mask, par, batch))


def paper_cost(batch: int, calls: int, paper_train: int = PAPER_TRAIN) -> None:
    """What one epoch of the ``paper`` profile costs here: a VGG11-BN train step at 128 x 128 (grayscale,
    5 classes, batch ``batch``) timed in fp32 and under bf16 autocast; A's epoch from N's rate and the
    counted FLOP of its 10-step PGD (same GFLOP/s assumed)."""
    from freqbias.profiles import deep_merge, load_profile

    paper = deep_merge(load_params(REPO / "params.yaml"), load_profile("paper", REPO / "profiles"))
    cfg = TrainConfig.from_params(paper)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 1, 128, 128, generator=g), torch.randint(0, 5, (batch,), generator=g)
    model = build_model(cfg.arch, 1, 5, 128, [0.449], [0.226]).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    attack = cfg.attack.build(std=0.226)
    flop_n = count_flops(lambda: train_step(model, x, y, opt)) / batch
    flop_a = count_flops(lambda: train_step(model, x, y, opt, attack=attack, g=g)) / batch
    print(f"\npaper profile ({cfg.arch} 128x128, batch {batch}; {paper_train} train images per epoch; "
          f"A: PGD {attack.steps} steps = {flop_a / flop_n:.1f}x N's FLOP)")
    for amp in (False, True):
        rate = batch / best_seconds(lambda a=amp: train_step(model, x, y, opt, amp=a), calls, 1, warmup=1)
        epoch_n = paper_train / rate
        print(f"  {'bf16 autocast' if amp else 'fp32':<14} N {rate:6.2f} images/s ({rate * flop_n / 1e9:5.1f} "
              f"GFLOP/s): epoch N {epoch_n / 60:6.0f} min, A {epoch_n * flop_a / flop_n / 3600:6.1f} h")


def profile_table(fn: Callable[[], object], calls: int = 5, rows: int = 8) -> str:
    """torch.profiler's operators by self CPU time over ``calls`` calls of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles); elsewhere torch emulates it far
    below the fp32 speed (a bf16 matmul peak under 0.5 GFLOP/s on a 2-core AMD EPYC). False when torch
    cannot tell. Here, not in :mod:`freqbias.perf`, which every train and evaluate stage depends on."""
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(bool(probe()) for probe in probes if probe is not None)


def gflops(x: float) -> str:
    """A rate in GFLOP/s to 3 significant digits, whole numbers from 100 up (0.0123, 5.43, 387, 2294)."""
    return f"{x:.{max(0, 2 - math.floor(math.log10(x)))}f}" if math.isfinite(x) and x > 0 else f"{x:g}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds; the fastest counts")
    ap.add_argument("--inner", type=int, default=10, help="calls per round")
    ap.add_argument("--batch", type=int, default=128, help="images per mask-fitting step")
    ap.add_argument("--groups", type=int, default=10, help="shared masks per batch (10: the class masks)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml", help="train and masks settings")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators per row")
    ap.add_argument("--compile", action="store_true", help="also time train N and the shared and single "
                    "mask fits with the net under torch.compile (inductor, default mode; first call's seconds shown)")
    ap.add_argument("--bf16", action="store_true", help="also time train N, the mask fits and the rule checks "
                    "under bf16 autocast and print the bf16 matmul peak (skipped, with a note, without native bf16)")
    ap.add_argument("--paper", type=int, default=0, metavar="BATCH",
                    help="also time the paper profile's VGG11-BN step (fp32 and bf16) at this batch size")
    args = ap.parse_args()
    bf16 = args.bf16 and native_bf16()
    os.environ.setdefault("FREQBIAS_PROGRESS", "0")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = load_params(args.params)
    cfg = TrainConfig.from_params(params)
    par = MasksConfig.from_params(params).parametrisation(SIZE, SIZE)

    peak = matmul_peak(max(args.repeats, 10))
    frozen = fitting_copy(build_model(cfg.arch, 1, CLASSES, SIZE, [0.29], [0.35]).net, fast=True)
    cases = training_cases(cfg) + [
        mask_case(frozen, f"shared masks ({args.groups} per batch)", args.batch, args.groups, par),
        mask_case(frozen, "single masks (1 per image)", args.batch, args.batch, par),
        check_case(frozen, loops.BATCH_SIZE, par), check_case(frozen, 1024, par)]
    if args.compile:
        fast = torch.compile(frozen)
        cases += [training_cases(cfg, compiled=True)[0],
                  dataclasses.replace(mask_case(fast, cases[2].name, args.batch, args.groups, par), compiled=True,
                                      tag=" [compiled]"),
                  dataclasses.replace(mask_case(fast, cases[3].name, args.batch, args.batch, par), compiled=True,
                                      tag=" [compiled]")]
    if bf16:
        half = Bf16(frozen)
        cases += [training_cases(cfg, amp=True)[0]] + [
            dataclasses.replace(c, tag=" [bf16]") for c in (
                mask_case(half, cases[2].name, args.batch, args.groups, par),
                mask_case(half, cases[3].name, args.batch, args.batch, par),
                check_case(half, loops.BATCH_SIZE, par))]

    print(f"{cpu_name()}; {os.cpu_count()} CPUs, torch {torch.__version__} on {torch.get_num_threads()} threads; "
          f"{cfg.arch} {SIZE}x{SIZE}, train batch {cfg.batch_size}, mask batch {args.batch}, kind {par.kind!r}")
    peak_bf16 = matmul_peak(max(args.repeats, 10), dtype=torch.bfloat16) if bf16 else math.nan
    note = (f"; bf16: {gflops(peak_bf16)} GFLOP/s ([bf16] rows: share of this)" if bf16 else
            "; bf16 not native on this CPU (no AVX512-BF16 or AMX): [bf16] rows skipped" if args.bf16 else "")
    print(f"fp32 matmul peak (2048 x 2048): {gflops(peak)} GFLOP/s{note}\n")
    head = f"{'kernel':<39} {'items/s':>9} {'unit':<12} {'MFLOP/item':>10} {'GFLOP/s':>8} {'of peak':>8} {'target':>7}"
    print(head + "\n" + "-" * len(head))
    profiles, flops = [], {}
    for case in cases:
        if case.compiled:   # torch.compile's first call compiles; FlopCounterMode would trace it again
            start = time.perf_counter()
            case.fn()
            first = time.perf_counter() - start
        elif case.name not in flops:
            flops[case.name] = count_flops(case.fn) / case.items
        flop = flops[case.name]  # a kernel's [compiled] and [bf16] rows: the FLOP counted on its fp32 row
        rate = case.items / best_seconds(case.fn, args.repeats, args.inner)
        share, target = rate * flop / 1e9 / (peak_bf16 if case.tag == " [bf16]" else peak), TARGETS[case.kind]
        name = case.name + case.tag
        print(f"{name:<39} {rate:>9.0f} {case.unit:<12} {flop / 1e6:>10.1f} {rate * flop / 1e9:>8.1f} "
              f"{share:>8.0%} {target:>7.0%}" + ("" if share >= target else "  (below)")
              + (f"  (1st call {first:.1f} s)" if case.compiled else ""))
        if args.profile:
            profiles.append((case.name, profile_table(case.fn)))
    for name, table in profiles:
        print(f"\n{name}: torch.profiler, top operators by self CPU time\n{table}")
    if args.paper:
        paper_cost(args.paper, max(2, args.repeats // 2))


if __name__ == "__main__":
    main()
