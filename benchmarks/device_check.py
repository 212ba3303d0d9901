"""The pipeline's stages on whatever device ``FREQBIAS_DEVICE`` picks (CUDA when there is one), without DVC.

Two runs, each in a fresh temporary copy of ``src/``, ``stages/`` and ``profiles/`` with its own
``params.yaml``; the stages run in dvc.yaml's order as plain ``python stages/<stage>.py`` calls:

- **smoke**: the ``tiny`` profile end to end (fetch, train N/A/T, masks, aggregate, report): every stage
  runs on the device and writes its outputs (a GPU smoke test; the CPU tests run the same profile);
- **paper**: the ``paper`` profile's train stage for N and A on ``planted`` data of Imagenette's size
  (128 x 128, 5 classes, 4,171 train and 500 val images; the real files cannot be fetched on a lent
  machine), ``--epochs`` epochs each, then, unless ``--no-masks``, N's masks stage with the paper's
  mask settings and ``--single`` single-image masks: seconds per epoch and per stage.

It prints one table and writes ``device_check.json`` (stage seconds, per-epoch seconds, test accuracy,
mask convergence) to ``--out``. A stage that fails or outruns ``--stage-timeout`` is reported as such
and the rest still runs. Used on a lent GPU machine (README, "What a run costs"); on a CPU
``--quick`` shrinks the paper run so the script can be checked here::

    python benchmarks/device_check.py --out OUT [--epochs 2] [--single 32] [--mask-steps N] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from freqbias.config import load_params  # noqa: E402
from freqbias.profiles import deep_merge, load_profile  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench import PAPER_TRAIN  # noqa: E402

VAL = 500   # the paper profile's data.val_size
IMAGENETTE = {"n_train": PAPER_TRAIN + VAL, "n_test": 500, "num_classes": 5}   # train + val; test


def paper_params(epochs: int, single: int, quick: bool, mask_steps: int | None = None) -> dict[str, Any]:
    """The paper profile with planted data of Imagenette's size and ``epochs`` epochs of N and A; masks
    capped at ``mask_steps`` steps (None: the profile's caps)."""
    planted = dict(IMAGENETTE, n_train=300, n_test=60) if quick else IMAGENETTE
    overlay = {"data": {"dataset": "planted", "root": None, "val_size": 60 if quick else VAL, "max_test": None,
                        "planted": planted},
               "train": {"variants": ["N", "A"], "epochs": epochs, "eval": {"n": 60 if quick else 500}},
               "masks": {"select": {"n_images": single}}}
    if quick:
        overlay["masks"]["dataset"] = {"max_steps": 20, "class_fit_n": 5}
        overlay["masks"]["single"] = {"max_steps": 10}
    if mask_steps:
        overlay["masks"].setdefault("dataset", {})["max_steps"] = mask_steps
        overlay["masks"].setdefault("single", {})["max_steps"] = mask_steps
    paper = deep_merge(load_params(REPO / "params.yaml"), load_profile("paper", REPO / "profiles"))
    return deep_merge(paper, overlay)


def workdir(params: dict[str, Any]) -> Path:
    """A fresh copy of the code with ``params`` as its params.yaml."""
    root = Path(tempfile.mkdtemp(prefix="freqbias-device-"))
    for name in ("src", "stages", "profiles"):
        shutil.copytree(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


# Runs a script as its __main__ after arranging for every thread's traceback to be written to stderr
# every argv[1] seconds: where a long stage spends its time, read from the log even when it is stopped.
TRACED = ("import faulthandler, runpy, sys; faulthandler.dump_traceback_later(float(sys.argv[1]), repeat=True); "
          "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run(root: Path, args: list[str], timeout: float, log: Path, trace: float = 0) -> dict[str, Any]:
    """``python stages/<args>`` in ``root``; its seconds and exit status ("timeout" past ``timeout``).
    With ``trace`` > 0 the log also gets the stage's progress bars and its tracebacks every ``trace`` s."""
    env = dict(os.environ, PYTHONPATH=str(root / "src"), FREQBIAS_PROGRESS="1" if trace else "0")
    command = ["-c", TRACED, str(trace), *args] if trace else args
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ python {' '.join(args)}\n")
        out.flush()
        try:
            rc = subprocess.run([sys.executable, *command], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = round(time.perf_counter() - start, 1)
    print(f"  {' '.join(args):<55} {seconds:>7.1f} s  {'ok' if rc == 0 else f'FAILED ({rc})'}", flush=True)
    return {"stage": " ".join(args), "seconds": seconds, "ok": rc == 0, "rc": rc}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def smoke(timeout: float, log: Path) -> list[dict[str, Any]]:
    """The tiny profile end to end in a fresh copy."""
    params = deep_merge(load_params(REPO / "params.yaml"), load_profile("tiny", REPO / "profiles"))
    root = workdir(params)
    steps = [["stages/fetch.py"]]
    steps += [["stages/train.py", "--variant", v, "--seed", "0"] for v in params["train"]["variants"]]
    steps += [["stages/evaluate.py", "--variant", v, "--seed", "0"] for v in params["train"]["variants"]]
    steps += [["stages/selection.py", "--seed", "0"]]
    steps += [["stages/masks.py", "--model", f"{v}-s0", "--seed", "0"] for v in params["train"]["variants"]]
    steps += [["stages/controls.py", "--model", f"{v}-s0", "--seed", "0"] for v in params["train"]["variants"]]
    steps += [["stages/aggregate.py"], ["stages/report.py"]]
    results = [run(root, s, timeout, log) for s in steps]
    results.append({"stage": "report written", "ok": (root / "reports" / "report.md").exists()})
    shutil.rmtree(root, ignore_errors=True)
    return results


def paper(epochs: int, single: int, masks: bool, quick: bool, mask_steps: int | None, timeout: float,
          log: Path, trace: float = 0) -> dict[str, Any]:
    """N and A of the paper profile on Imagenette-sized planted data; N's masks."""
    root = workdir(paper_params(epochs, single, quick, mask_steps))
    stages = [run(root, ["stages/fetch.py"], timeout, log)]
    trained = {}
    for v in ("N", "A"):
        stages.append(run(root, ["stages/train.py", "--variant", v, "--seed", "0"], timeout, log))
        history = root / "metrics" / "train" / f"{v}-s0.csv"
        epochs_s = [float(r["seconds"]) for r in csv.DictReader(history.open())] if history.exists() else []
        m = read_json(root / "metrics" / "train" / f"{v}-s0.json")
        trained[v] = {"epoch_seconds": epochs_s, "test_acc": m.get("test_acc"), "train_seconds": m.get("train_seconds")}
    out: dict[str, Any] = {"stages": stages, "train": trained}
    if masks:
        stages.append(run(root, ["stages/masks.py", "--model", "N-s0", "--seed", "0"], timeout, log, trace))
        m = read_json(root / "metrics" / "masks" / "N-s0.json")
        out["masks_N"] = {k: m.get(k) for k in ("seconds", "dataset_converged", "dataset_steps", "class_converged",
                                                "class_steps_mean", "fold_converged", "single_n", "single_converged",
                                                "single_steps_mean", "val_ratio")}
    shutil.rmtree(root, ignore_errors=True)
    return out


def device_name() -> str:
    import torch

    from freqbias import runtime

    dev = runtime.device()
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({os.cpu_count()} CPUs)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for device_check.json and the stages' log")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of N and A in the paper run")
    ap.add_argument("--single", type=int, default=32, help="single-image masks in the paper run's masks stage")
    ap.add_argument("--mask-steps", type=int, default=None, help="cap every mask at this many steps (default: "
                    "the paper's 6,000 shared, 20,000 single): a rate, not converged masks")
    ap.add_argument("--no-masks", action="store_true", help="skip the paper run's masks stage")
    ap.add_argument("--no-smoke", action="store_true", help="skip the tiny end-to-end run")
    ap.add_argument("--quick", action="store_true", help="a paper run small enough for a CPU (checks the script)")
    ap.add_argument("--stage-timeout", type=float, default=300, help="seconds before a stage is stopped")
    ap.add_argument("--trace", type=float, default=0, metavar="SECONDS", help="the masks stage writes its "
                    "progress bars, and every thread's traceback every SECONDS, to the log")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "stages.log"
    import torch

    report: dict[str, Any] = {"device": device_name(), "torch": torch.__version__}
    print(f"{report['device']}, torch {report['torch']}", flush=True)
    if not args.no_smoke:
        print("smoke: the tiny profile end to end", flush=True)
        report["smoke"] = smoke(args.stage_timeout, log)
    print(f"paper: VGG11-BN 128 x 128, planted data of Imagenette's size, {args.epochs} epochs of N and A", flush=True)
    report["paper"] = paper(args.epochs, args.single, not args.no_masks, args.quick, args.mask_steps,
                            args.stage_timeout, log, args.trace)
    for v, t in report["paper"]["train"].items():
        print(f"  {v}: seconds per epoch {t['epoch_seconds']}, test acc {t['test_acc']}")
    if "masks_N" in report["paper"]:
        print(f"  masks N: {report['paper']['masks_N']}")
    (args.out / "device_check.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
