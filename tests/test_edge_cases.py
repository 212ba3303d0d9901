"""Data-dependent edge cases never crash the stages downstream of training.

The real tiny pipeline runs once (``conftest.tiny_run``, shared with other files); each case then
corrupts a copy of its outputs (too few single-image masks, a class absent from them, all-zero / all-one /
NaN masks, no single-image masks at all, a model with zero clean accuracy) and runs the scripts
``stages/aggregate.py`` and ``stages/report.py`` there (in this process). The contract checked:

- both stages finish without an exception and with exit status 0, and the report is rendered with every
  figure it links;
- no raw ``nan`` / ``None`` / ``inf`` in the report's tables and claim lines;
- what cannot be measured is an explicit ``n/a`` with its reason: in results/*.csv the row has a
  non-empty reason column (a column whose name contains "reason" or "note"); in report.md the cell
  reads ``n/a (<reason>)`` or ``n/a: <reason>``; in results/claims.json the claim's verdict is "n/a"
  (or "not measured") and its note says why, and the report shows that note.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from conftest import copy_project, git_commit, repro_in_process, run_script
from freqbias.claim_registry import CLAIMS

pytestmark = pytest.mark.slow

NA_REASON = re.compile(r"n/a\s*(?:\(|:|-|–|—)\s*[A-Za-z]")
RAW = re.compile(r"(?<![\w/-])(?:[Nn]a[Nn]|None|null|-?[Ii]nf)(?![\w/])")
NOT_MEASURED = ("n/a", "not measured")


# ----------------------------------------------------------------------------- the project and its cases

@pytest.fixture(scope="module")
def base(tiny_run: Path) -> Path:
    """The tiny profile run for real (models, masks, both metrics JSONs); each test changes a copy."""
    return tiny_run


def names(root: Path) -> list[str]:
    params = yaml.safe_load((root / "params.yaml").read_text())
    return [f"{v}-s{s}" for s in params["train"]["seeds"] for v in params["train"]["variants"]]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def edit_single(root: Path, edit: Callable[[str, dict], dict], models: list[str] | None = None) -> None:
    """Rewrite masks/<model>/single.pt through ``edit(model, single)`` and keep the masks-stage metric
    ``single_n`` in step."""
    for name in models or names(root):
        path = root / "masks" / name / "single.pt"
        single = edit(name, load(path))
        torch.save(single, path)
        metrics_path = root / "metrics/masks" / f"{name}.json"
        metrics = json.loads(metrics_path.read_text())
        metrics["single_n"] = len(single["index"])
        metrics_path.write_text(json.dumps(metrics))


def keep_images(single: dict, keep: torch.Tensor) -> dict:
    """``single`` restricted to images ``keep`` (every per-image tensor: index, y, x_adv, masks, ...)."""
    n = len(single["index"])
    return {k: v[keep] if isinstance(v, torch.Tensor) and v.dim() >= 1 and len(v) == n else v
            for k, v in single.items()}


def set_masks(root: Path, name: str, value: float, kinds: tuple[str, ...]) -> None:
    """Fill every mask of ``name`` in the files ``kinds`` (dataset, class, single) with ``value``."""
    for kind in kinds:
        path = root / "masks" / name / f"{kind}.pt"
        blob = load(path)
        for key in ("mask", "masks", "masks_adv"):
            if key in blob:
                blob[key] = torch.full_like(blob[key], value)
        torch.save(blob, path)


def stage_run(root: Path) -> str:
    """Run the aggregate and report stages; assert both succeed (no exception, exit status 0); the report
    text. The stage scripts run in this process (:func:`conftest.run_script`), in ``root``; `dvc repro`
    in :func:`test_repro_with_three_single_images` runs them as DVC does."""
    for stage in ("aggregate", "report"):
        code = run_script(root, f"stages/{stage}.py")
        assert code == 0, f"{stage} stage exited {code}"
    text = (root / "reports/report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (root / "reports" / link).stat().st_size > 0, f"report names a missing figure: {link}"
    shown = [line for line in text.splitlines() if line.startswith(("|", "- "))]
    raw = [line for line in shown if RAW.search(line)]
    assert not raw, "raw nan / None / inf in the report:\n" + "\n".join(raw[:5])
    return text


# ----------------------------------------------------------------------------- what the report must show

def section(text: str, heading: str) -> str:
    """The report's section under ``### heading`` (up to the next heading)."""
    match = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"no section {heading!r} in the report"
    return match.group(1)


def assert_na_in(text: str, heading: str) -> None:
    body = section(text, heading)
    assert NA_REASON.search(body), f"section {heading!r} shows no 'n/a (<reason>)':\n{body[:3000]}"


def rows(root: Path, table: str, **match: str) -> list[dict]:
    with open(root / "results" / table, newline="") as fh:
        found = [r for r in csv.DictReader(fh) if all(r.get(k) == v for k, v in match.items())]
    assert found, f"results/{table}: no row with {match}"
    return found


def _finite(cell: str | None) -> bool:
    try:
        return math.isfinite(float(cell))
    except (TypeError, ValueError):
        return False


def _reason(row: dict) -> str:
    return " ".join(v for k, v in row.items() if k and ("reason" in k or "note" in k) and v).strip()


def assert_explained(root: Path, table: str, columns: tuple[str, ...], **match: str) -> None:
    """Every value in ``columns`` of the matching rows is a finite number, or the row says why not."""
    for row in rows(root, table, **match):
        bad = [c for c in columns if not _finite(row.get(c))]
        assert not bad or _reason(row), f"results/{table}: {bad} not numbers and no reason given: {row}"


def assert_na(root: Path, table: str, columns: tuple[str, ...], **match: str) -> None:
    """The matching rows have no number in ``columns`` (n/a) and a reason."""
    for row in rows(root, table, **match):
        assert not any(_finite(row.get(c)) for c in columns), f"results/{table}: expected n/a in {columns}: {row}"
        assert _reason(row), f"results/{table}: n/a without a reason: {row}"


def claim(root: Path, number: int) -> dict:
    return next(c for c in json.loads((root / "results/claims.json").read_text()) if c["claim"] == number)


def assert_claim_na(root: Path, text: str, number: int) -> None:
    c = claim(root, number)
    assert c["verdict"] in NOT_MEASURED, f"claim {number}: expected n/a, got {c['verdict']}: {c}"
    assert c["note"].strip(), f"claim {number}: n/a without a reason"
    assert c["note"].strip()[:40] in text, f"claim {number}: the report does not show its note"


# ----------------------------------------------------------------------------- the cases

def test_one_single_image(base: Path, tmp_path: Path) -> None:
    """One single-image mask per model: too few to split for the probe."""
    root = copy_project(base, tmp_path / "p")
    edit_single(root, lambda _, s: keep_images(s, torch.tensor([0])))
    text = stage_run(root)
    assert_na(root, "probe.csv", ("test_acc", "permuted_test_acc"))
    assert_na_in(text, "Linear probe")
    assert_claim_na(root, text, 6)


def test_three_single_images_with_a_class_absent(base: Path, tmp_path: Path) -> None:
    """Three images of four classes: at least one class has no single-image mask, and a stratified
    split leaves at most one test image (one class, chance 100%): nothing a probe could show."""
    root = copy_project(base, tmp_path / "p")
    edit_single(root, lambda _, s: keep_images(s, torch.arange(3)))
    assert len(set(load(root / "masks/N-s0/single.pt")["y"].tolist())) < 4
    text = stage_run(root)
    assert_na(root, "probe.csv", ("test_acc", "permuted_test_acc"))
    assert_explained(root, "single_image.csv", ("value",))
    assert_claim_na(root, text, 6)


def test_single_images_of_one_class(base: Path, tmp_path: Path) -> None:
    """All single-image masks of one class: the probe has nothing to tell apart."""
    root = copy_project(base, tmp_path / "p")
    y = load(root / "masks/N-s0/single.pt")["y"]
    top = torch.bincount(y).argmax()
    keep = (y == top).nonzero().squeeze(1)
    assert len(keep) >= 2
    edit_single(root, lambda _, s: keep_images(s, keep))
    text = stage_run(root)
    assert_na(root, "probe.csv", ("test_acc", "permuted_test_acc"))
    assert_na_in(text, "Linear probe")
    assert_claim_na(root, text, 6)


def test_all_zero_dataset_mask(base: Path, tmp_path: Path) -> None:
    """A's dataset mask is all zeros: its band energies (normalised by the mask's norm) and the heat
    map's rank correlation with it are undefined."""
    root = copy_project(base, tmp_path / "p")
    set_masks(root, "A-s0", 0.0, ("dataset",))
    text = stage_run(root)
    assert_na(root, "band_energies.csv", ("energy",), model="A-s0", mask="dataset")
    assert_na(root, "heatmaps.csv", ("corr_with_dataset_mask",), model="A-s0")
    assert_explained(root, "accuracy.csv", ("val_masked", "val_ratio", "test_masked", "test_ratio"), model="A-s0")
    assert_na_in(text, "Fourier heat maps")


def test_all_ones_masks(base: Path, tmp_path: Path) -> None:
    """Every mask of A is all ones: constant probe features, a constant mask to correlate with."""
    root = copy_project(base, tmp_path / "p")
    set_masks(root, "A-s0", 1.0, ("dataset", "class", "single"))
    text = stage_run(root)
    assert_na(root, "heatmaps.csv", ("corr_with_dataset_mask",), model="A-s0")
    assert_explained(root, "probe.csv", ("test_acc", "permuted_test_acc"), model="A-s0")
    assert_explained(root, "single_image.csv", ("value",), model="A-s0")
    assert_na_in(text, "Fourier heat maps")


def test_all_zero_single_image_masks(base: Path, tmp_path: Path) -> None:
    """A's single-image masks are all zeros: no band energy, a constant masked image (no pixel
    correlation), constant probe features (the user's `SVD did not converge`)."""
    root = copy_project(base, tmp_path / "p")
    for name in [n for n in names(root) if n.startswith("A-")]:  # every seed's: nothing to pool over seeds
        set_masks(root, name, 0.0, ("single",))
    text = stage_run(root)
    assert_na(root, "single_image.csv", ("value",), model="A-s0", metric="corr")
    assert_explained(root, "probe.csv", ("test_acc", "permuted_test_acc"), model="A-s0")
    assert_na(root, "band_differences.csv", ("diff",), variant="A", source="single")
    assert_na(root, "shares.csv", ("share",), variant="A")
    assert_claim_na(root, text, 7)
    assert_na_in(text, "Single-image masks")


def test_no_single_images(base: Path, tmp_path: Path) -> None:
    """The selection found no image (single.pt of every model holds zero images)."""
    root = copy_project(base, tmp_path / "p")
    edit_single(root, lambda _, s: keep_images(s, torch.zeros(0, dtype=torch.long)))
    text = stage_run(root)
    for number in (5, 6, 7, 8):
        assert_claim_na(root, text, number)
    assert_na_in(text, "Single-image masks")
    assert_na_in(text, "Linear probe")
    assert_explained(root, "accuracy.csv", ("val_clean", "val_masked", "val_ratio"))


def test_nan_in_masks(base: Path, tmp_path: Path) -> None:
    """A NaN in A's dataset mask, in one class mask and in one single-image mask."""
    root = copy_project(base, tmp_path / "p")
    for kind, key in (("dataset", "mask"), ("class", "masks"), ("single", "masks")):
        path = root / "masks/A-s0" / f"{kind}.pt"
        blob = load(path)
        blob[key].view(-1)[0] = math.nan
        torch.save(blob, path)
    text = stage_run(root)
    assert_na(root, "accuracy.csv", ("val_masked", "val_ratio", "test_masked", "test_ratio"), model="A-s0")
    assert_na(root, "band_energies.csv", ("energy",), model="A-s0", mask="dataset")
    assert_explained(root, "single_image.csv", ("value",), model="A-s0")
    assert_explained(root, "probe.csv", ("test_acc", "permuted_test_acc"), model="A-s0")
    assert_na_in(text, "Dataset masks")


def test_zero_clean_accuracy(base: Path, tmp_path: Path) -> None:
    """T predicts a wrong class for every image (its output layer rolled by one class) and the masks
    stage logged 0 clean accuracy: masked / clean is undefined for T."""
    from freqbias import paths
    from freqbias.data import load_split
    from freqbias.models import load_checkpoint
    from freqbias.training import accuracy

    root = copy_project(base, tmp_path / "p")
    path = root / "models/T-s0.pt"
    ckpt = load(path)
    last = [k for k, v in ckpt["state_dict"].items() if k.endswith(".weight") and v.dim() == 2][-1]
    for key in (last, last.removesuffix(".weight") + ".bias"):
        ckpt["state_dict"][key] = ckpt["state_dict"][key].roll(-1, dims=0)
    torch.save(ckpt, path)
    model, _ = load_checkpoint(path)
    for split in ("val", "test"):
        assert accuracy(model, *load_split(split, root)) == 0.0, "precondition: T was 100% right"
    metrics_path = root / "metrics/masks/T-s0.json"
    metrics = json.loads(metrics_path.read_text())
    metrics.update({f"{s}_{k}": 0.0 for s in ("val", "test") for k in ("clean_acc", "masked_acc")})
    metrics.update(val_ratio=None, test_ratio=None,
                   na={f"{s}_ratio": f"{s} clean accuracy is 0: masked / clean is undefined" for s in ("val", "test")})
    metrics_path.write_text(json.dumps(metrics))
    dataset_file = paths.mask_file("T-s0", "dataset", root)   # its per-image correctness was the old T's:
    blob = load(dataset_file)                                  # without it aggregate scores the rolled T
    del blob["correct"]
    torch.save(blob, dataset_file)
    text = stage_run(root)
    assert_na(root, "accuracy.csv", ("val_ratio", "test_ratio"), model="T-s0")
    assert_explained(root, "accuracy.csv", ("val_ratio", "test_ratio"))
    assert_na_in(text, "Dataset masks")
    assert claim(root, 1)["note"].strip(), "claim 1 leaves out T-s0's undefined ratio without saying so"


def test_repro_with_three_single_images(base: Path, tmp_path: Path) -> None:
    """The pipeline end to end with masks.select.n_images: 3 (the probe cannot stratify four classes): what
    `dvc repro` reruns (the stages `dvc status` lists and those downstream), run in this process
    (:func:`conftest.repro_in_process`; 113 s through `dvc repro`, most of it 10 fresh interpreters and DVC's
    hashing; test_pipeline checks that both write the same bytes)."""
    root = copy_project(base, tmp_path / "p")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["masks"]["select"]["n_images"] = 3
    params["masks"]["dataset"]["max_steps"] = 10  # the masks stage reruns anyway: keep its shared fit short
    params["train"]["variants"] = ["N", "A"]  # T's stages are the others' again
    params["train"]["seeds"] = [0]  # and seed 1's: 10 stages rerun (select, masks, budgets, controls, yardstick,
    # aggregate, report), not 22; the trained models stay up to date (train.seeds is no param of train)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git_commit(root, "three single images")
    ran = repro_in_process(root, due_only=True)
    assert "select@0" in ran and not [name for name in ran if name.startswith("train@")], ran
    assert json.loads((root / "metrics/masks/N-s0.json").read_text())["single_n"] <= 3
    text = (root / "reports/report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 11, text[:2000]
    for link in links:
        assert (root / "reports" / link).stat().st_size > 0, f"report names a missing figure: {link}"
    assert [c["claim"] for c in json.loads((root / "results/claims.json").read_text())] == [c.number for c in CLAIMS]
