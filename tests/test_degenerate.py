"""Data-dependent gaps never crash the aggregation or the report: each case below drives run_aggregate,
write_results and the report (figures and markdown) through one degenerate input built from
``synthetic_run``, and checks that what cannot be measured is an explicit n/a with its reason in the
CSV rows (empty cell + ``reason`` column), in the claims and in report.md."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch

from freqbias import stage_aggregate as ag
from freqbias import stage_report as rp
from freqbias.na import NA, cell
from test_aggregate import SMALL, synthetic_run

pytestmark = pytest.mark.usefixtures("one_thread")

RAW = re.compile(r"(?<![\w/-])(?:[Nn]a[Nn]|None|null|-?[Ii]nf)(?![\w/])")


def aggregate_and_report(records, splits, names, folder: Path) -> tuple[str, list[dict]]:
    """Run the aggregation and the report into ``folder``; the report text and the claims.
    Fails on a raw nan / None / inf in the report's table and list lines, and on a figure the report
    links but did not draw."""
    res = ag.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    res.summary.update({"dataset": "synthetic", "arch": "small_cnn", "counts": {"train": 1, "val": 20, "test": 40}})
    ag.write_results(res, folder / "results")
    figdata, claims, summary, tables = rp.load_results(folder / "results")
    cfg = rp.ReportConfig(dpi=30, panel_images=2)
    figures = rp.make_figures(figdata, tables, folder / "figures", cfg, claims)
    text = rp.render(summary, claims, tables, figures, cfg, "abc1234", "today")
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (folder / link).read_bytes()[:4] == b"\x89PNG", link
    raw = [line for line in text.splitlines() if line.startswith(("|", "- ")) and RAW.search(line)]
    assert not raw, "raw nan / None / inf in the report:\n" + "\n".join(raw[:5])
    return text, claims


def rows(folder: Path, table: str, **match) -> list[dict]:
    with open(folder / "results" / f"{table}.csv", newline="") as fh:
        found = [r for r in csv.DictReader(fh) if all(r[k] == str(v) for k, v in match.items())]
    assert found, f"{table}: no row {match}"
    return found


def assert_na(folder: Path, table: str, column: str, reason: str, **match) -> None:
    """The matching rows have an empty ``column`` whose reason (read back by na.cell) contains ``reason``."""
    for row in rows(folder, table, **match):
        assert row[column] == "", (column, row)
        value = cell(row, column)
        assert isinstance(value, NA) and reason in value.reason, (reason, row)


def claim(claims: list[dict], number: int) -> dict:
    return next(c for c in claims if c["claim"] == number)


def assert_claim_na(claims: list[dict], text: str, number: int, reason: str) -> None:
    """The claim is not measured, its note gives ``reason`` and the report shows that note."""
    c = claim(claims, number)
    assert c["verdict"] == "not measured" and reason in c["note"], c
    assert c["note"] in text


def section(text: str, heading: str) -> str:
    match = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, heading
    return match.group(1)


def with_images(records, keep: torch.Tensor):
    """Restrict every model's single-image tensors to the images ``keep``."""
    for r in records:
        n = len(r.single.index)
        r.single = dataclasses.replace(r.single, **{
            f.name: getattr(r.single, f.name)[keep] for f in dataclasses.fields(r.single)
            if isinstance(getattr(r.single, f.name), torch.Tensor) and getattr(r.single, f.name).dim() >= 1
            and len(getattr(r.single, f.name)) == n})
    return records


def record(records, name: str):
    return next(r for r in records if r.name == name)


# ----------------------------------------------------------------------------- too few images, none at all


def test_one_single_image(tmp_path):
    records, splits, names = synthetic_run()
    text, claims = aggregate_and_report(with_images(records, torch.tensor([0])), splits, names, tmp_path)
    assert_na(tmp_path, "probe", "test_acc", "too few images per class")
    assert "n/a (too few images per class" in section(text, "Linear probe")
    assert_claim_na(claims, text, 6, "Not probed: N (too few images per class")
    single = rows(tmp_path, "single_image", model="N-s0", metric="masked")[0]
    assert single["n"] == "1" and math.isfinite(float(single["value"]))   # one image is still a measurement


def test_no_single_images(tmp_path):
    """Zero selected images: every single-image quantity, claims 5-8 and four figures are n/a; claims 2-4 keep
    their dataset-mask headline and say in their secondary line why the single-image one is missing."""
    records, splits, names = synthetic_run()
    text, claims = aggregate_and_report(with_images(records, torch.zeros(0, dtype=torch.long)), splits, names,
                                        tmp_path)
    assert_na(tmp_path, "single_image", "value", "no single-image masks (0 images)")
    assert_na(tmp_path, "probe", "test_acc", "no single-image masks (0 images)")
    assert_na(tmp_path, "band_differences", "diff", "no single-image masks (0 images)", source="single")
    assert_na(tmp_path, "shares", "share", "no single-image masks (0 images)")
    assert_na(tmp_path, "band_energies", "energy", "no single-image masks (0 images)", mask="single:mean")
    for number in (5, 7, 8):
        assert_claim_na(claims, text, number, "no single-image masks (0 images)")
    for number in (2, 3):
        c = claim(claims, number)
        assert c["verdict"] != "not measured" and "dataset masks" in c["statistic"], c
        single = [p for p in c["secondary"] if "single-image" in p["statistic"]]  # beside the folds' raw parts
        assert single and all(p["verdict"] == "not measured" and "0 images" in p["reason"]
                              for p in single), c["secondary"]
    assert_claim_na(claims, text, 6, "Not probed")
    assert claim(claims, 1)["verdict"] != "not measured"                    # dataset masks are unaffected
    for figure in ("mask grid single", "single panel", "seen through masks", "probe"):
        assert re.search(rf"### Figure \d+\. {figure}\n\n\*\*Not drawn: n/a \(", text), figure
    assert "n/a (no single-image masks (0 images))" in section(text, "Single-image masks")
    assert "single-image: masked image keeps the prediction (N) | 100 | 100 | n/a (no single-image" in text


# ----------------------------------------------------------------------------- classes


def test_single_images_of_one_class_and_an_absent_class_mask(tmp_path):
    records, splits, names = synthetic_run()
    y = records[0].single.y
    with_images(records, (y == 1).nonzero().squeeze(1))
    record(records, "A-s0").class_masks[2] = math.nan                        # no val image of class 2: no mask
    text, claims = aggregate_and_report(records, splits, names, tmp_path)
    assert_na(tmp_path, "probe", "test_acc", "per class {1: 4}")
    assert_claim_na(claims, text, 6, "too few images per class")
    assert_na(tmp_path, "band_energies", "energy", "mask not fitted (no finite entry)", model="A-s0",
              mask="class:class 2")
    assert_na(tmp_path, "band_differences", "diff", "A-s0: mask not fitted (no finite entry)", variant="A",
              source="class:class 2")
    assert rows(tmp_path, "band_differences", variant="A", source="class:class 1", band=0)[0]["diff"] != ""


# ----------------------------------------------------------------------------- degenerate masks


def test_all_zero_masks(tmp_path):
    """A's dataset and single-image masks are all zero: no band energies, a constant mask for the heat
    map's rank correlation, constant masked images (no pixel correlation), constant probe features."""
    records, splits, names = synthetic_run()
    a = record(records, "A-s0")
    a.dataset_mask, a.fold_masks = torch.zeros_like(a.dataset_mask), torch.zeros_like(a.fold_masks)
    a.single.masks = torch.zeros_like(a.single.masks)
    text, claims = aggregate_and_report(records, splits, names, tmp_path)
    assert_na(tmp_path, "band_energies", "energy", "all-zero mask", model="A-s0", mask="dataset")
    assert_na(tmp_path, "heatmaps", "corr_with_dataset_mask", "dataset mask constant", model="A-s0")
    assert_na(tmp_path, "single_image", "value", "12 with a constant masked image", model="A-s0", metric="corr")
    assert_na(tmp_path, "band_differences", "diff", "no image on which both single-image masks have band energies",
              variant="A", source="single")
    assert_na(tmp_path, "band_differences", "diff", "no fold on which both fold masks have band energies",
              variant="A", source="dataset")
    assert rows(tmp_path, "band_differences", variant="R", source="single", band=0)[0]["diff"] != ""
    assert_na(tmp_path, "shares", "share", "no image on which both", variant="A")
    assert_claim_na(claims, text, 7, "no image on which both single-image masks have band energies")
    for number in (2, 3):
        assert_claim_na(claims, text, number, "no fold on which both fold masks have band energies")
        secondary = claim(claims, number)["secondary"]
        single = [p for p in secondary if "single-image" in p["statistic"]]
        assert single and all("no image on which both single-image masks" in p["reason"] for p in single)
        assert all("no fold on which both fold masks" in p["reason"] for p in secondary if p not in single)
    probe = rows(tmp_path, "probe", model="A-s0")[0]                        # constant features: a valid probe
    assert math.isfinite(float(probe["test_acc"])) and probe["converged"] in ("True", "False")
    assert re.search(r"\| A-s0 \|.*\| n/a \([^|]*dataset mask constant", section(text, "Fourier heat maps"))


def test_all_one_masks(tmp_path):
    records, splits, names = synthetic_run()
    a = record(records, "A-s0")
    a.dataset_mask, a.class_masks = torch.ones_like(a.dataset_mask), torch.ones_like(a.class_masks)
    a.single.masks = torch.ones_like(a.single.masks)
    text, _ = aggregate_and_report(records, splits, names, tmp_path)
    assert_na(tmp_path, "heatmaps", "corr_with_dataset_mask", "dataset mask constant", model="A-s0")
    ssim = rows(tmp_path, "single_image", model="A-s0", metric="ssim")[0]
    assert float(ssim["value"]) == pytest.approx(1.0)                       # the identity mask keeps the image
    assert re.search(r"\| A-s0 \|.*\| n/a \([^|]*dataset mask constant", section(text, "Fourier heat maps"))


def test_nan_in_masks(tmp_path):
    """A NaN in A's dataset mask, in one class mask and in one single-image mask."""
    records, splits, names = synthetic_run()
    a = record(records, "A-s0")
    a.dataset_mask[0, 0] = a.class_masks[1, 0, 0] = a.single.masks[3, 0, 0] = math.nan
    text, claims = aggregate_and_report(records, splits, names, tmp_path)
    for column in ("val_masked", "val_ratio", "test_masked", "test_ratio", "mask_mean"):
        assert_na(tmp_path, "accuracy", column, "non-finite entries in the dataset mask", model="A-s0")
    assert_na(tmp_path, "band_energies", "energy", "non-finite entries in the mask", model="A-s0", mask="dataset")
    assert_na(tmp_path, "band_energies", "energy", "non-finite entries in the mask", model="A-s0", mask="class:class 1")
    assert_na(tmp_path, "heatmaps", "corr_with_dataset_mask", "non-finite entries in the dataset mask", model="A-s0")
    masked = rows(tmp_path, "single_image", model="A-s0", metric="masked")[0]
    assert masked["n"] == "11" and "1 of 12 images left out (1 with non-finite mask entries)" in masked["reason"]
    probe = rows(tmp_path, "probe", model="A-s0")[0]
    assert "1 single-image masks with non-finite entries left out" in probe["reason"]
    assert "A-s0 on val (non-finite entries in the dataset mask)" in claim(claims, 1)["note"]
    assert "n/a (non-finite entries in the dataset mask)" in section(text, "Dataset masks")


# ----------------------------------------------------------------------------- metrics


def test_zero_clean_accuracy_and_missing_metrics(tmp_path):
    """R always predicts class 0 and no image is of class 0: clean accuracy 0, masked / clean undefined;
    the masks stage logged null accuracies (with its reason) for R."""
    records, splits, names = synthetic_run()
    splits = {k: (x, 1 + torch.arange(len(y)) % 2) for k, (x, y) in splits.items()}
    r = record(records, "R-s0")
    last = [m for m in r.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, 0.0, 0.0]))
    r.mask_metrics.update(val_clean_acc=None, na={"val_clean_acc": "no val images"})
    text, claims = aggregate_and_report(records, splits, names, tmp_path)
    row = rows(tmp_path, "accuracy", model="R-s0")[0]
    assert float(row["val_clean"]) == 0.0
    assert_na(tmp_path, "accuracy", "val_ratio", "val clean accuracy is 0: masked / clean undefined", model="R-s0")
    assert_na(tmp_path, "accuracy", "test_ratio", "test clean accuracy is 0", model="R-s0")
    assert_na(tmp_path, "accuracy", "val_clean_all", "metrics/masks/R-s0.json: no val images", model="R-s0")
    assert rows(tmp_path, "accuracy", model="N-s0")[0]["val_ratio"] != ""
    c1 = claim(claims, 1)
    assert "R-s0 on val (clean accuracy 0, masked / clean undefined)" in c1["note"] and c1["note"] in text
    assert c1["verdict"] != "not measured"                                  # N and A still measure it
    assert "n/a (val clean accuracy is 0: masked / clean undefined)" in section(text, "Dataset masks")


def test_two_seeds_one_without_single_images(tmp_path):
    """Seed 1 selected no image: pooled single-image values and claims rest on seed 0 alone."""
    records, splits, names = synthetic_run(variants=("N", "A"), seeds=(0, 1), n_img=8)
    with_images([r for r in records if r.seed == 1], torch.zeros(0, dtype=torch.long))
    text, claims = aggregate_and_report(records, splits, names, tmp_path)
    assert_na(tmp_path, "single_image", "value", "no single-image masks (0 images)", model="N-s1", metric="masked")
    pooled = rows(tmp_path, "single_image", model="N-all", metric="masked")[0]
    assert pooled["n"] == "8" and math.isfinite(float(pooled["value"]))
    assert claim(claims, 5)["verdict"] != "not measured"
    c6 = claim(claims, 6)                                                   # probed on seed 0 alone
    assert c6["verdict"] != "not measured" and c6["note"] in text
    assert "Not probed: N, seed 2 of 2 (no single-image masks (0 images))" in c6["note"], c6
    assert_na(tmp_path, "band_differences", "seed_lo", "fewer than 2 seeds", variant="A", source="single")
