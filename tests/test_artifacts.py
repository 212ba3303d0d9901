"""freqbias.artifacts (the masks stage's files as types) and freqbias.stage_masks (the masks stage's work):
save / load round trips, files in the older dict format, and one small real run of the masks stage's
library call whose outputs aggregate's loader reads back."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from freqbias import paths
from freqbias.artifacts import ClassMasks, DatasetMask, LoadedModel, SingleMasks, load_checkpoint, save_checkpoint
from freqbias.attacks import PGD
from freqbias.config import DataError, load_params
from freqbias.fitting import SingleMaskResult
from freqbias.io import save_json, save_torch
from freqbias.mask_groups import MaskGroups
from freqbias.measures import dataset_correct, load_records
from freqbias.models import build_model
from freqbias.parametrisation import Rfft
from freqbias.stage_masks import MasksConfig, fit_model_masks, masks_metrics, ratio_or_none, single_metrics
from freqbias.stage_selection import load_selection, save_selection, select_images

H = W = 28
WM = W // 2 + 1
META = {"arch": "small_cnn", "in_channels": 1, "num_classes": 4, "image_size": H, "mean": [0.5], "std": [0.25]}

pytestmark = pytest.mark.usefixtures("one_thread")


def single_masks(n: int = 5, adv: bool = False) -> SingleMasks:
    g = torch.Generator().manual_seed(0)
    s = SingleMasks(index=torch.arange(n) * 3, y=torch.arange(n) % 4, target=torch.arange(n) % 2,
                    masks=torch.rand(n, H, WM, generator=g), steps=torch.full((n,), 7),
                    kept=torch.ones(n, dtype=torch.bool),
                    pool=40, kind="rfft", x_adv=torch.rand(n, 1, H, W, generator=g))
    if adv:
        s.masks_adv, s.target_adv = torch.rand(n, H, WM, generator=g), torch.arange(n) % 3
        s.steps_adv, s.kept_adv = torch.full((n,), 4), torch.zeros(n, dtype=torch.bool)
    return s


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    for key, value in vars(a).items():
        other = getattr(b, key)
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other), key
        else:
            assert value == other, key


@pytest.mark.parametrize("adv", [False, True])
def test_single_masks_round_trip(tmp_path, adv):
    s = single_masks(adv=adv)
    s.save(tmp_path / "single.pt")
    raw = torch.load(tmp_path / "single.pt", weights_only=True)
    assert ("masks_adv" in raw) == adv and "x_adv" in raw and raw["pool"] == 40   # the keys the stage always wrote
    back = SingleMasks.load(tmp_path / "single.pt")
    assert_same(back, s)
    assert back.has_adv == adv and len(back) == 5


RECORD = {"n_images": 8, "clean_acc": 1.0, "masked_acc": 1.0, "met": True, "converged": True, "steps": 40,
          "mean": 0.3, "support": 0.4, "min": 0.0, "lam": 0.5, "history": [{"step": 10, "masked_acc": 1.0}]}


def test_dataset_and_class_masks_round_trip(tmp_path):
    d = DatasetMask(mask=torch.rand(H, WM), record=RECORD, folds=torch.rand(3, H, WM), fold_records=[RECORD] * 3,
                    kind="rfft", meta=dict(META))
    c = ClassMasks(masks=torch.rand(4, H, WM), index=torch.arange(8), kind="rfft", records=[RECORD] * 4,
                   counts=torch.tensor([2, 2, 2, 2]))
    d.save(tmp_path / "d.pt")
    c.save(tmp_path / "c.pt")
    assert_same(DatasetMask.load(tmp_path / "d.pt"), d)
    assert_same(ClassMasks.load(tmp_path / "c.pt"), c)


def test_files_in_the_older_format_still_load(tmp_path):
    """single.pt without x_adv, as earlier masks stages wrote it."""
    raw = {k: v for k, v in single_masks().to_dict().items() if k != "x_adv"}
    save_torch(raw, tmp_path / "single.pt")
    assert SingleMasks.load(tmp_path / "single.pt").x_adv is None


def test_missing_or_incomplete_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"d\.pt: not found \(run the masks stage first\)"):
        DatasetMask.load(tmp_path / "d.pt")
    save_torch({"mask": torch.ones(H, WM), "kind": "rfft"}, tmp_path / "d.pt")   # a file of the epoch-based fit
    with pytest.raises(DataError, match=r"d\.pt: not a DatasetMask file .*record"):
        DatasetMask.load(tmp_path / "d.pt")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(**META).eval()
    save_checkpoint(model, {**META, "variant": "N"}, tmp_path / "m.pt")
    back, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["variant"] == "N"
    x = torch.rand(2, 1, H, W)
    torch.testing.assert_close(back(x), model(x))


def test_ratio_is_none_without_a_denominator():
    assert ratio_or_none(0.5, 0.25) == 2.0
    assert ratio_or_none(0.0, 0.0) is None and ratio_or_none(0.3, 0.0) is None
    assert ratio_or_none(math.nan, 0.5) is None


def test_metrics_with_zero_clean_accuracy_are_json(tmp_path):
    """A model that gets no image right: the masked / clean ratios are n/a (null), not a crash."""
    scores = {"val_clean_acc": 0.0, "val_masked_acc": 0.0, "test_clean_acc": 0.5, "test_masked_acc": 0.25}
    clean = SingleMaskResult(masks=torch.ones(3, H, WM), steps_used=torch.tensor([1, 2, 3]),
                             kept=torch.ones(3, dtype=torch.bool), mean_mask=torch.ones(3))
    absent = {"n_images": 0, "converged": None, "history": []}
    records = MaskGroups({**RECORD, "mean": 1.0}, [RECORD] * 2, [RECORD] * 3 + [absent])
    metrics = masks_metrics(LoadedModel("N-s0", None, META), 0, Rfft(H, W), scores, records,
                            single_metrics(clean, 3, {"masked_agreement": 1.0}), 1.23)
    save_json(metrics, tmp_path / "m.json")
    back = json.loads((tmp_path / "m.json").read_text())
    assert back["val_ratio"] is None and back["test_ratio"] == 0.5
    assert back["variant"] == "external" and back["single_n"] == 3 and back["single_steps_mean"] == 2.0
    assert back["dataset_mask_mean"] == pytest.approx(1.0) and back["class_steps_mean"] == 40
    assert back["dataset_converged"] is True and back["class_converged"] == 1.0
    assert back["single_converged"] == pytest.approx(2 / 3)


def tiny_masks_config() -> MasksConfig:
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params["masks"]["dataset"].update(fit_n=30, folds=2, class_fit_n=4, batch_size=8, max_steps=10, check_every=5,
                                      patience=1)
    params["masks"]["single"].update(max_steps=3)
    params["masks"]["budget"].update(TINY_BUDGET)  # the budget search's own caps (default: up to 11 fits of 60 steps)
    return MasksConfig.from_params(params)


TINY_BUDGET = {"step": 0.25, "rounds": 1, "budget_min": 0.05, "max_steps": 10, "check_every": 5, "eval_n": 16,
               "patience": 1}


def test_fit_model_masks_writes_what_aggregate_reads(tmp_path):
    """The masks stage's library call on random models and images, saved where the stage saves, then
    read back by aggregate's loader: shapes, the adversarial-only fields and the metrics agree."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (60, 1, H, W), dtype=torch.uint8)
    y = torch.arange(60) % 4
    splits = {"val": (x[:40], y[:40]), "test": (x[20:], y[20:])}
    models = {v: build_model(**META).eval() for v in ("N", "A")}
    cfg, attack = tiny_masks_config(), PGD(0.3, 0.1, 3)
    save_selection(select_images(models["N"], models["A"], splits["test"][0], splits["test"][1], attack, 4, seed=0),
                   paths.selection_file(0, tmp_path))
    sel = load_selection(paths.selection_file(0, tmp_path), splits["test"][0])   # as the masks stage reads it
    lines = []
    for v, model in models.items():
        name = paths.model_name(v, 0)
        out = fit_model_masks(LoadedModel(name, model, {**META, "variant": v, "seed": 0}), 0, sel, splits, cfg,
                              adv_masks=v == "N", log=lines.append)
        masks = out.masks
        n = len(masks.single)
        assert 0 < n <= 4 and masks.single.masks.shape == (n, H, WM) and masks.single.x_adv.shape == (n, 1, H, W)
        assert masks.single.has_adv == (v == "N") and masks.dataset.mask.shape == (H, WM)
        assert masks.classes.masks.shape == (4, H, WM) and len(masks.classes.records) == 4
        assert masks.dataset.folds.shape == (2, H, WM) and len(masks.dataset.fold_records) == 2
        assert isinstance(out.metrics["dataset_converged"], bool) and "converged" in masks.dataset.record
        assert masks.classes.index.tolist() == [i for k in range(4) for i in range(k, 16, 4)]   # first 4 of each class
        assert out.metrics["model"] == name and out.metrics["single_n"] == n and out.metrics["dataset_fit_n"] == 30
        assert ("single_adv_masked_agreement" in out.metrics) == (v == "N")
        save_checkpoint(model, {**META, "variant": v, "seed": 0}, paths.checkpoint(name, tmp_path))
        masks.save(name, tmp_path)
        save_json(out.metrics, paths.mask_metrics(name, tmp_path))
        save_json({"train_seconds": 1.0}, paths.train_metrics(name, tmp_path))
        save_json({"test_acc": 0.5}, paths.eval_metrics(name, tmp_path))
    assert lines[0].startswith("dataset mask: mean") and lines[1].startswith("fold masks: mean")
    n_rec, a_rec = load_records(["N", "A"], [0], torch.device("cpu"), tmp_path)
    assert torch.equal(n_rec.single.index, a_rec.single.index)          # the same images for both models
    assert n_rec.single.has_adv and not a_rec.single.has_adv and n_rec.par == Rfft(H, W)
    assert n_rec.mask_metrics["model"] == "N-s0" and n_rec.dataset_mask.shape == (H, WM)
    # each image's correctness under the dataset mask, stored by the masks stage, is what aggregate would score
    for split, (xs, ys) in splits.items():
        stored = n_rec.dataset_correct[split]
        assert stored.dtype == torch.bool and stored.shape == (2, len(ys))
        assert stored.float().mean(1).tolist() == pytest.approx(
            [n_rec.mask_metrics[f"{split}_clean_acc"], n_rec.mask_metrics[f"{split}_masked_acc"]])
        for n in (None, 25):
            read = dataset_correct(n_rec, xs, ys, split, n)
            scored = dataset_correct(dataclasses.replace(n_rec, dataset_correct=None), xs, ys, split, n)
            assert all(np.array_equal(r, s) and len(r) == (n or len(ys)) for r, s in zip(read, scored))
    wrong = dataclasses.replace(n_rec, dataset_correct={"val": torch.zeros(2, 39, dtype=torch.bool)})
    read = dataset_correct(wrong, *splits["val"], "val")   # stored for another split (39 images): scored instead
    assert np.array_equal(read[0], n_rec.dataset_correct["val"][0].double().numpy()) and read[0].any()
