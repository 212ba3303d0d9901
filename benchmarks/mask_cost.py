"""What the masks stage costs per model on this device: the library's own fits, timed at a profile's size.

On ``FREQBIAS_DEVICE`` (CUDA when there is one), with the ``--profile``'s settings (default ``paper``:
VGG11-BN, grayscale 128 x 128, 5 classes), it times

- **shared**: :func:`freqbias.shared_masks.fit_shared_masks` on the masks stage's groups (the dataset
  mask on ``data.val_size`` images, ``masks.dataset.folds`` folds of them, one group of up to
  ``class_fit_n`` images per class): ``batch_size`` images per group per step, the rule checked every
  ``check_every`` steps on all of each group's images;
- **single**: :func:`freqbias.fitting.fit_single_masks` on one chunk of images, one mask each;

at each ``--batch`` (images per forward pass, the configs' ``eval_batch_size``; the code uses
``loops.BATCH_SIZE``, sized for a CPU's cache) and each ``--chunk`` (single-image masks per batch,
``FREQBIAS_CHUNK_SIZE``). Stopping is disabled and the net and images are random: a step's speed does
not depend on them, when a fit stops does. Seconds per step are ``(t(2 S) - t(S)) / S`` for
``S = --steps``, so start-up (the frozen copy, the clean pass, the final pruning) drops out.

From these it gives the profile's caps per model: ``max_steps`` shared steps, and ``ceil(n_images /
chunk) x max_steps`` single-image steps, twice for a standard model (N), whose PGD images get masks
too. Converged masks stop earlier, so the caps bound the cost from above. Also: the device's matmul
peak (fp32, and TF32 on CUDA, where cuDNN's convolutions use TF32 by default) and each fit's FLOP rate,
counted with :func:`bench.count_flops` (the net's forward and backward; FFTs count 0).

    python benchmarks/mask_cost.py [--profile paper] [--steps 20] [--batch 128 1024] [--chunk 128 512]
                                   [--size N] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench import count_flops  # noqa: E402
from freqbias import runtime  # noqa: E402
from freqbias.config import load_params  # noqa: E402
from freqbias.fitting import fit_single_masks  # noqa: E402
from freqbias.frozen import fitting_copy  # noqa: E402
from freqbias.mask_groups import shared_groups  # noqa: E402
from freqbias.models import build_model  # noqa: E402
from freqbias.perf import best_seconds  # noqa: E402
from freqbias.profiles import deep_merge, load_profile  # noqa: E402
from freqbias.shared_masks import fit_shared_masks  # noqa: E402
from freqbias.stage_masks import MasksConfig  # noqa: E402
from freqbias.stage_selection import SelectConfig  # noqa: E402

NEVER = 10**9  # patience that no fit reaches: every step runs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peaks(device: torch.device) -> dict[str, float]:
    """GFLOP/s of an n x n fp32 matmul (n = 8192 on a GPU, 2048 on a CPU), and with TF32 on CUDA."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    modes = {"fp32": False, "tf32": True} if device.type == "cuda" else {"fp32": False}
    peaks, before = {}, torch.backends.cuda.matmul.allow_tf32
    try:
        for name, tf32 in modes.items():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            peaks[name] = 2 * n**3 / best_seconds(lambda: (a @ b, sync(device)), 5) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    return peaks


def per_step(fit: Callable[[int], object], steps: int, device: torch.device) -> float:
    """Seconds per step of ``fit(max_steps)``, start-up excluded: ``(t(2 S) - t(S)) / S``, after a warm-up."""
    fit(steps)
    return max(seconds(lambda: fit(2 * steps), device) - seconds(lambda: fit(steps), device), 0.0) / steps


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper", help="profile in profiles/ (default: paper)")
    ap.add_argument("--classes", type=int, default=5, help="classes (paper: Imagenette's 5)")
    ap.add_argument("--size", type=int, default=None, help="image size (default: the profile's data.image_size)")
    ap.add_argument("--steps", type=int, default=20, help="S: fits of S and 2 S steps are timed")
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 1024], help="images per forward pass")
    ap.add_argument("--chunk", type=int, nargs="+", default=[128, 512], help="single-image masks per batch")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    params = deep_merge(load_params(REPO / "params.yaml"), load_profile(args.profile, REPO / "profiles"))
    cfg = MasksConfig.from_params(params)
    single_n = SelectConfig.from_params(params).n_images
    data, arch = params["data"], params["model"]["arch"]
    size, k, dev = args.size or data["image_size"], args.classes, runtime.device()
    torch.manual_seed(0)
    net = build_model(arch, 1, k, size, [0.0], [1.0]).net.to(dev)
    frozen = fitting_copy(net, fast=True)
    n_val = data["val_size"]
    z, y = torch.randn(n_val, 1, size, size, device=dev), torch.randint(0, k, (n_val,), device=dev)
    groups = shared_groups(y, n_val, cfg.folds, cfg.class_fit_n, k, seed=0).flat()
    step_images = len(groups) * cfg.dataset.batch_size
    check_images = sum(len(g) for g in groups)

    x1 = torch.randn(2, 1, size, size, device=dev, requires_grad=True)
    fwd = count_flops(lambda: frozen(x1.detach())) / 2
    fwd_bwd = count_flops(lambda: torch.autograd.grad(frozen(x1).sum(), x1)) / 2
    peaks = matmul_peaks(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"{name} ({dev}), torch {torch.__version__}; matmul peak "
          + ", ".join(f"{m} {p:,.0f} GFLOP/s" for m, p in peaks.items()))
    print(f"profile {args.profile}: {arch} 1x{size}x{size}, {k} classes; {fwd / 1e9:.2f} GFLOP forward, "
          f"{fwd_bwd / 1e9:.2f} forward + backward per image")
    print(f"shared: {len(groups)} groups ({n_val} images, {cfg.folds} folds, {k} classes of <= {cfg.class_fit_n}), "
          f"{cfg.dataset.batch_size} images per group per step, {check_images} checked every "
          f"{cfg.dataset.check_every} steps; cap {cfg.dataset.max_steps} steps")
    print(f"single: {single_n} images, cap {cfg.single.max_steps} steps\n")

    rows: list[dict[str, Any]] = []
    for batch in args.batch:
        shared = dataclasses.replace(cfg.dataset, patience=NEVER, eval_batch_size=batch)

        def fit(s: int, c=shared) -> object:
            return fit_shared_masks(frozen, z, y, groups, dataclasses.replace(c, max_steps=s))

        t = per_step(fit, args.steps, dev)
        flop = step_images * fwd_bwd + check_images * fwd / cfg.dataset.check_every
        rows.append({"fit": "shared", "batch": batch, "images_per_step": step_images, "ms_per_step": 1e3 * t,
                     "gflops": flop / t / 1e9 if t else math.nan, "cap_s": cfg.dataset.max_steps * t,
                     "memory_mb": peak_memory_mb(lambda: fit(cfg.dataset.check_every), dev)})
    for chunk in args.chunk:
        single = dataclasses.replace(cfg.single, patience=NEVER, chunk_size=chunk)
        zc = torch.randn(chunk, 1, size, size, device=dev)
        target = torch.randint(0, k, (chunk,), device=dev)

        def fit(s: int, c=single, zc=zc, target=target) -> object:
            return fit_single_masks(frozen, zc, target, dataclasses.replace(c, max_steps=s))

        t = per_step(fit, args.steps, dev)
        cap = math.ceil(single_n / chunk) * cfg.single.max_steps * t
        rows.append({"fit": "single", "batch": chunk, "images_per_step": chunk, "ms_per_step": 1e3 * t,
                     "gflops": chunk * fwd_bwd / t / 1e9 if t else math.nan, "cap_s": cap,
                     "memory_mb": peak_memory_mb(lambda: fit(2), dev)})

    head = (f"{'fit':<7} {'batch':>6} {'images/step':>11} {'ms/step':>8} {'image-steps/s':>13} {'GFLOP/s':>9} "
            f"{'of fp32':>8} {'peak MiB':>9} {'cap per model':>14}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        rate = r["images_per_step"] / r["ms_per_step"] * 1e3 if r["ms_per_step"] else math.nan
        mem = f"{r['memory_mb']:,.0f}" if r["memory_mb"] is not None else "-"
        print(f"{r['fit']:<7} {r['batch']:>6} {r['images_per_step']:>11} {r['ms_per_step']:>8.1f} {rate:>13,.0f} "
              f"{r['gflops']:>9,.0f} {r['gflops'] / peaks['fp32']:>8.0%} {mem:>9} {r['cap_s'] / 60:>10.1f} min")
    best = {f: min((r for r in rows if r["fit"] == f), key=lambda r: r["cap_s"]) for f in ("shared", "single")}
    caps = {"standard (N)": best["shared"]["cap_s"] + 2 * best["single"]["cap_s"],
            "other": best["shared"]["cap_s"] + best["single"]["cap_s"]}
    print("\ncaps per model at the fastest batch (converged masks stop earlier): "
          + "; ".join(f"{m} {s / 60:.0f} min" for m, s in caps.items()))
    if args.out:
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "peaks_gflops": peaks,
                                        "profile": args.profile, "size": size, "fwd_flop": fwd,
                                        "fwd_bwd_flop": fwd_bwd, "rows": rows, "caps_s": caps}, indent=1))


if __name__ == "__main__":
    main()
