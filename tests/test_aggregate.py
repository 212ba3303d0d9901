"""Tests of freqbias.stage_aggregate: params, and small runs of the whole aggregation on random models."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from freqbias import bands as bd
from freqbias import measures as ms
from freqbias import probe as pb
from freqbias import stage_aggregate as ag
from freqbias.artifacts import SingleMasks
from freqbias.baselines import HeatmapConfig
from freqbias.claim_registry import CLAIMS
from freqbias.config import DataError, ParamError
from freqbias.mask_groups import MaskGroups
from freqbias.models import build_model
from freqbias.na import NA, csv_rows
from freqbias.parametrisation import Rfft
from freqbias.tables import probe_table

H = W = 28

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- params


def params(**aggregate) -> dict:
    base = {"radial_bands": 14, "angular_bands": 16, "n_boot": 100, "alpha": 0.05, "seed": 0, "accuracy_n": None,
            "figure_images": 4, "budget_needed": 0.9,
            "probe": {"folds": 3, "permutations": 2, "weight_decay": 1e-3, "max_iter": 50},
            "filtered": {"n": 10, "radii": [2, 6]}, "heatmap": {"n": 5, "grid": 3, "norm": 2.0},
            "claims": {"ratio_min": 0.99, "small_ratio": 0.5, "agreement_min": 0.9, "ssim_max": 0.5}}
    return {"aggregate": {**base, **aggregate}}


def test_config_reads_params_and_rejects_empty_bands():
    cfg = ag.AggregateConfig.from_params(params(), (H, W))
    assert cfg.radial_bands == 14 and cfg.filter_radii == (2.0, 6.0) and cfg.accuracy_n is None
    assert bd.empty_bands(H, W, 64, 16)["radial"]                     # 64 rings do not fit a 28 x 28 spectrum
    with pytest.raises(ParamError, match=r"^aggregate\.radial_bands: 64 bands leave band\(s\) \[.*empty"):
        ag.AggregateConfig.from_params(params(radial_bands=64), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.angular_bands"):
        ag.AggregateConfig.from_params(params(angular_bands=200), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.alpha"):
        ag.AggregateConfig.from_params(params(alpha=0), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.filtered\.radii"):
        ag.AggregateConfig.from_params(params(filtered={"n": 10, "radii": []}), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.budget_needed"):
        ag.AggregateConfig.from_params(params(budget_needed=1.5), (H, W))


# ----------------------------------------------------------------------------- the whole aggregation, small


def synthetic_run(variants=("N", "A", "R"), seeds=(0,), n_img: int = 12, classes: int = 3):
    """Random models and masks in the masks stage's format (PGD images stored in N's single.pt):
    ``(records, splits, class_names)``."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (40, 1, H, W), dtype=torch.uint8)
    y = torch.arange(40) % classes
    index = torch.arange(n_img)
    x_adv = (x[index].float() / 255 + 0.05 * torch.randn(n_img, 1, H, W)).clamp(0, 1)
    records = []
    for seed in seeds:
        for v in variants:
            model = build_model("small_cnn", 1, classes, H, [0.5], [0.25]).eval()
            with torch.no_grad():
                target = model(x[index].float() / 255).argmax(1)
            single = SingleMasks(index=index, y=y[index], target=target, masks=torch.rand(n_img, H, W // 2 + 1),
                                 steps=torch.zeros(n_img, dtype=torch.long), kept=torch.ones(n_img, dtype=torch.bool),
                                 pool=n_img, kind="rfft")
            if v == "N":
                with torch.no_grad():
                    target_adv = model(x_adv).argmax(1)
                single.x_adv, single.masks_adv, single.target_adv = x_adv, torch.rand(n_img, H, W // 2 + 1), target_adv
            records.append(ms.ModelRecord(
                name=f"{v}-s{seed}", variant=v, seed=seed, model=model, par=Rfft(H, W),
                dataset_mask=torch.rand(H, W // 2 + 1), class_masks=torch.rand(classes, H, W // 2 + 1), single=single,
                train_metrics={"train_seconds": 1.0}, mask_metrics={"seconds": 1.0, "val_clean_acc": 0.5},
                fold_masks=torch.rand(3, H, W // 2 + 1), fit_records=fit_records(classes)))
    return records, {"val": (x[:20], y[:20]), "test": (x, y)}, [f"class {k}" for k in range(classes)]


def fit_records(classes: int) -> MaskGroups[dict]:
    """Shared-mask fitting records as the masks stage writes them (:mod:`freqbias.shared_masks`)."""
    rec = {"n_images": 10, "clean_acc": 0.9, "masked_acc": 0.9, "met": True, "converged": True, "steps": 30,
           "mean": 0.5, "support": 0.6, "min": 0.0, "lam": 0.3, "history": []}
    return MaskGroups(rec, [rec] * 3, [rec] * classes)


SMALL = ag.AggregateConfig(n_boot=20, accuracy_n=None, probe_max_iter=20, probe_folds=3, probe_permutations=2,
                           filter_n=10, filter_radii=(3.0, 9.0), heatmap=HeatmapConfig(n=5, grid=3, norm=3.0),
                           figure_images=3)


def test_run_aggregate_on_random_models(tmp_path):
    records, splits, names = synthetic_run()
    res = ag.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    assert [c["claim"] for c in res.claims] == [c.number for c in CLAIMS]
    assert all(c["verdict"] in ("holds", "does not hold", "inconclusive", "negligible", "not measured")
               for c in res.claims)
    single = {(r["model"], r["metric"]): r["value"] for r in res.tables["single_image"]}
    assert single["N-s0", "target_ok"] == 1.0 and ("A-s0", "pgd") not in single and ("N-s0", "restored") in single
    assert {r["variant"] for r in res.tables["band_differences"]} == {"A", "R"}
    sources = {r["source"] for r in res.tables["band_differences"]}
    assert sources == {"single", "dataset", "dataset_size_matched", "class:class 0", "class:class 1", "class:class 2"}
    assert set(res.curves) >= {"radial_diff/A", "angular_diff/R", "shares_radial/A", "filtered/N-s0"}
    assert res.figdata["dataset_masks"]["N"].shape == (H, W) and res.figdata["panel"]["x"].shape[0] == 3
    ag.write_results(res, tmp_path)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert len(claims) == len(CLAIMS) and json.loads((tmp_path / "metrics.json").read_text())["claim_1"]["verdict"]
    assert (tmp_path / "curves/radial_diff/A.csv").read_text().startswith("band,radius,diff,lo,hi")
    torch.load(tmp_path / "figdata.pt", weights_only=True)           # tensors and plain values only
    (tmp_path / "curves/radial_diff/X.csv").write_text("stale")
    ag.write_results(res, tmp_path)
    assert not (tmp_path / "curves/radial_diff/X.csv").exists()


def test_run_aggregate_with_two_seeds_and_mismatched_images():
    records, splits, names = synthetic_run(variants=("N", "A"), seeds=(0, 1), n_img=8)
    res = ag.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    assert {r["seed"] for r in res.tables["single_image"]} == {0, 1, "all"}
    assert all(math.isfinite(r["seed_lo"]) for r in res.tables["band_differences"])     # intervals over seeds
    assert res.figdata["dataset_masks"]["A"].shape == (H, W)
    records[1].single.index = records[1].single.index.flip(0)
    with pytest.raises(DataError, match="images differ"):
        ag.run_aggregate(records, SMALL, splits, attack=None, class_names=names)


def test_probe_table_reports_left_out_classes_unconverged_fits_and_the_permuted_spread():
    rng = np.random.default_rng(0)
    y = np.array([0] * 6 + [1] * 6 + [2] * 2)
    result = pb.linear_probe(rng.random((14, 5)), y, folds=3, max_iter=1, permutations=3)
    run = SimpleNamespace(variants=["N", "A"], seeds=[0], by={("N", 0): SimpleNamespace(name="N-s0"),
                                                               ("A", 0): SimpleNamespace(name="A-s0")},
                          boot={"n_boot": 50, "alpha": 0.05, "seed": 0})
    rows = csv_rows(probe_table(run, {"N": [{**result, "excluded": 1}], "A": [NA("too few images per class")]}))
    n, a = rows
    assert n["n"] == 12 and n["folds"] == 3 and n["permutations"] == 3 and n["converged"] is False
    assert n["permuted_sd"] == pytest.approx(np.std(result["permuted_accs"], ddof=1))
    assert n["permuted_test_acc"] == pytest.approx(result["permuted_accs"].mean())
    assert n["test_acc_lo"] <= n["test_acc"] <= n["test_acc_hi"]
    assert n["reason"] == ("1 single-image masks with non-finite entries left out; left out with fewer images than "
                           "aggregate.probe.folds: class 2 (2 images); 12 of 12 L-BFGS fits stopped at "
                           "aggregate.probe.max_iter before converging")
    assert a["test_acc"] is None and "too few images per class" in a["reason"]
