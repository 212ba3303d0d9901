"""Tests of freqbias.analysis: params, bootstrap over images and seeds, claims on synthetic masks with a
known answer, per-image measures, and one small run of the whole aggregation on random models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from freqbias import analysis as an
from freqbias import spectral as sp
from freqbias.config import DataError, ParamError
from freqbias.models import build_model

H = W = 28


pytestmark = pytest.mark.usefixtures("one_thread")
CFG = an.AggregateConfig(n_boot=300, probe_max_iter=100)


def params(**aggregate) -> dict:
    base = {"radial_bands": 14, "angular_bands": 16, "n_boot": 100, "alpha": 0.05, "seed": 0, "accuracy_n": None,
            "figure_images": 4, "probe": {"train_frac": 0.7, "weight_decay": 1e-3, "max_iter": 50},
            "filtered": {"n": 10, "radii": [2, 6]}, "heatmap": {"n": 5, "grid": 3, "norm": 2.0},
            "claims": {"ratio_min": 0.99, "small_ratio": 0.5, "agreement_min": 0.9, "ssim_max": 0.5}}
    return {"aggregate": {**base, **aggregate}}


# ----------------------------------------------------------------------------- params


def test_config_reads_params_and_rejects_empty_bands():
    cfg = an.AggregateConfig.from_params(params(), (H, W))
    assert cfg.radial_bands == 14 and cfg.filter_radii == (2.0, 6.0) and cfg.accuracy_n is None
    assert sp.empty_bands(H, W, 64, 16)["radial"]                     # 64 rings do not fit a 28 x 28 spectrum
    with pytest.raises(ParamError, match=r"^aggregate\.radial_bands: 64 bands leave band\(s\) \[.*empty"):
        an.AggregateConfig.from_params(params(radial_bands=64), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.angular_bands"):
        an.AggregateConfig.from_params(params(angular_bands=200), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.alpha"):
        an.AggregateConfig.from_params(params(alpha=0), (H, W))
    with pytest.raises(ParamError, match=r"^aggregate\.filtered\.radii"):
        an.AggregateConfig.from_params(params(filtered={"n": 10, "radii": []}), (H, W))


# ----------------------------------------------------------------------------- bootstrap


def test_cluster_bootstrap_one_group_is_the_image_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=(200, 3))
    ours = an.cluster_bootstrap([x], None, 500, 0.05, 7)
    ref = sp.bootstrap_ci(x, np.mean, 500, 0.05, 7)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b)
    est, lo, hi = an.cluster_bootstrap([x[:, 0]], lambda m: 2 * m, 500, 0.05, 7)
    assert isinstance(est, float) and lo < est < hi and abs(est - 2 * x[:, 0].mean()) < 1e-12


def test_cluster_bootstrap_over_seeds_carries_the_seed_to_seed_spread():
    rng = np.random.default_rng(1)
    offsets = [-1.0, 0.0, 1.0, 0.5]                     # seeds disagree far more than images within a seed
    groups = [rng.normal(o, 0.1, size=100) for o in offsets]
    est, lo, hi = an.cluster_bootstrap(groups, None, 1000, 0.05, 0)
    assert est == pytest.approx(np.mean([g.mean() for g in groups]))
    _, plo, phi = sp.bootstrap_ci(np.concatenate(groups), np.mean, 1000, 0.05, 0)   # seeds ignored
    assert hi - lo > 5 * (phi - plo)                     # the seed level dominates the interval
    assert lo < est < hi and lo > -1.0 and hi < 1.0
    slo, shi = an.seed_interval([g.mean() for g in groups], 500, 0.05, 0)
    assert slo < est < shi
    assert all(math.isnan(v) for v in an.seed_interval([groups[0].mean()], 500, 0.05, 0))


def test_strata_bootstrap_resamples_each_stratum():
    a = np.ones((50, 1))
    b = np.r_[np.zeros(25), np.ones(25)][:, None]
    est, lo, hi = an.strata_bootstrap([a, b], lambda means: float(min(m[0] for m in means)), 500, 0.05, 0)
    assert est == 0.5 and 0.3 < lo < 0.5 < hi < 0.7


# ----------------------------------------------------------------------------- synthetic masks with a known answer


def _low_disc(radius: float) -> torch.Tensor:
    """rfft-layout bool (H, W//2+1): frequencies within ``radius`` of zero."""
    ky = torch.fft.fftfreq(H, 1 / H)[:, None]
    kx = torch.arange(W // 2 + 1)[None, :]
    return (ky ** 2 + kx ** 2).sqrt() <= radius


def _energies(masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    r, a = sp.band_profiles(masks.double(), W, CFG.radial_bands, CFG.angular_bands)
    return r.numpy(), a.numpy()


def _masks(n: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, H, W // 2 + 1, generator=g)


def test_more_low_band_energy_in_A_makes_claims_2_and_7_hold():
    n_masks = _masks()
    a_masks = torch.where(_low_disc(6), (n_masks * 2.5).clamp(max=1), n_masks * 0.6)
    radial = {"N": [_energies(n_masks)[0]], "A": [_energies(a_masks)[0]]}
    c2, c7 = an.claim_radial(radial, CFG), an.claim_low_share(radial, CFG)
    assert c2["verdict"] == "holds" and [p["verdict"] for p in c2["parts"]] == ["holds", "holds"]
    assert c2["estimate"] > 0 and c2["parts"][1]["estimate"] < 0 and c2["note"] == ""
    assert c7["verdict"] == "holds" and c7["estimate"] == 1.0


def test_identical_masks_do_not_show_the_bias():
    masks = _masks()
    radial, angular = _energies(masks)
    rad, ang = {"N": [radial], "A": [radial.copy()]}, {"N": [angular], "A": [angular.copy()]}
    c2 = an.claim_radial(rad, CFG)
    assert c2["verdict"] == "does not hold" and (c2["estimate"], c2["lo"], c2["hi"]) == (0, 0, 0)
    assert c2["note"].startswith("This run disagrees with the study: A - N mean energy over low rings")
    assert an.claim_low_share(rad, CFG)["verdict"] == "does not hold"      # ties are not "greater"
    assert an.claim_angular(ang, CFG)["verdict"] == "does not hold"        # a flat (zero) curve has range 0


def test_noise_alone_does_not_make_claim_2_hold():
    radial = {"N": [_energies(_masks(seed=1))[0]], "A": [_energies(_masks(seed=2))[0]]}
    assert an.claim_radial(radial, CFG)["verdict"] != "holds"


def test_direction_dependent_masks_make_claim_3_hold():
    n_masks = _masks()
    ky = torch.fft.fftfreq(H, 1 / H)[:, None]
    horizontal = (ky.abs() <= 1).expand(H, W // 2 + 1)            # frequencies along the kx axis
    a_masks = torch.where(horizontal, torch.ones_like(n_masks), n_masks * 0.5)
    angular = {"N": [_energies(n_masks)[1]], "A": [_energies(a_masks)[1]]}
    c3 = an.claim_angular(angular, CFG)
    assert c3["verdict"] == "holds", c3
    assert c3["info"]["sign_changes"] >= 2
    est, lo, hi = c3["estimate"], c3["lo"], c3["hi"]
    assert 0 < lo <= est <= hi


def test_claim_4_signs_and_sizes():
    n_masks = _masks()
    low = _low_disc(6)
    a_masks = torch.where(low, (n_masks * 2).clamp(max=1), n_masks * 0.7)        # A: more low energy
    r_masks = torch.where(low, n_masks * 0.4, n_masks)                             # R: less (opposite sign)
    s_masks = torch.where(low, (n_masks * 1.3).clamp(max=1), n_masks * 0.95)       # S: like A, smaller
    t_masks = n_masks + 0.01                                                       # T: barely different
    radial = {v: [_energies(m)[0]] for v, m in (("N", n_masks), ("A", a_masks), ("R", r_masks),
                                                  ("S", s_masks), ("T", t_masks))}
    c4 = an.claim_augmentations(radial, CFG)
    assert [p["verdict"] for p in c4["parts"]] == ["holds"] * 4 and c4["verdict"] == "holds"
    c4_missing = an.claim_augmentations({k: radial[k] for k in ("N", "A", "R")}, CFG)
    assert len(c4_missing["parts"]) == 1 and "T, S not trained" in c4_missing["note"]
    assert an.claim_augmentations({k: radial[k] for k in ("N", "R")}, CFG)["verdict"] == "not measured"


def test_claims_pool_several_seeds():
    low = _low_disc(6)
    per = [(_masks(seed=s), None) for s in range(3)]
    radial = {"N": [], "A": []}
    for n_masks, _ in per:
        radial["N"].append(_energies(n_masks)[0])
        radial["A"].append(_energies(torch.where(low, (n_masks * 2).clamp(max=1), n_masks))[0])
    c2 = an.claim_radial(radial, CFG, dataset_diff=np.zeros(CFG.radial_bands))
    assert c2["verdict"] == "holds" and c2["info"] == {"dataset_mask_low": 0.0, "dataset_mask_mid": 0.0}


# ----------------------------------------------------------------------------- other claims


def test_claim_1_accuracy_ratio():
    rng = np.random.default_rng(0)
    clean = (rng.random((400, 3)) < 0.8).astype(float)
    same = an.claim_accuracy({"val": (clean, clean), "test": (clean, clean)}, CFG)
    assert same["verdict"] == "holds" and same["estimate"] == 1.0 and len(same["parts"]) == 3
    worse = clean.copy()
    worse[: 150, 1] = 0                                   # model 1 loses many correct answers under its mask
    c1 = an.claim_accuracy({"val": (clean, clean), "test": (clean, worse)}, CFG)
    assert c1["verdict"] == "does not hold" and c1["estimate"] < 0.9
    assert [p["verdict"] for p in c1["parts"]] == ["does not hold", "holds", "does not hold"]


def test_claims_5_and_8_from_outcomes():
    n = 100
    good = {"masked": np.ones(n), "complement": np.r_[np.ones(20), np.zeros(80)], "pgd": np.zeros(n),
            "restored": np.r_[np.ones(60), np.zeros(40)], "restored_binary": np.ones(n),
            "ssim": np.full(n, 0.2), "corr": np.full(n, 0.3)}
    assert an.claim_complement([good], CFG)["verdict"] == "holds"
    c8 = an.claim_texture([good], CFG)
    assert c8["verdict"] == "holds" and c8["info"]["pixel_correlation"] == pytest.approx(0.3)
    bad = {**good, "complement": np.ones(n), "ssim": np.full(n, 0.9)}
    assert an.claim_complement([bad], CFG)["verdict"] == "does not hold"
    assert an.claim_texture([bad], CFG)["verdict"] == "does not hold"


def _probe_on(features: np.ndarray, labels: np.ndarray) -> dict:
    return sp.linear_probe(features, labels, CFG.probe_train_frac, 0, CFG.probe_weight_decay, 100)


def test_probe_on_random_masks_stays_at_chance():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 160)
    result = _probe_on(_masks(160).flatten(1).numpy(), labels)
    assert abs(result["permuted_test_acc"] - 0.25) < 0.2 and abs(result["test_acc"] - 0.25) < 0.2
    assert an.claim_probe({"N": [result]}, CFG)["verdict"] != "holds"


def test_probe_on_class_carrying_masks_beats_the_permuted_control():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 160)
    masks = _masks(160).flatten(1).numpy()
    for k in range(4):                                    # each class keeps its own block of frequencies
        masks[labels == k, 10 * k:10 * k + 10] += 0.5
    result = _probe_on(masks, labels)
    c6 = an.claim_probe({"N": [result], "A": [None]}, CFG)
    assert c6["parts"][0]["verdict"] == "holds" and result["test_acc"] > 0.8
    assert c6["verdict"] == "holds" and "Too few images to probe A." in c6["note"]


# ----------------------------------------------------------------------------- verdict rule


def test_part_and_combined_verdicts():
    assert an.part("s", 0.5, 0.2, 0.8, 0.0, ">")["verdict"] == "holds"
    assert an.part("s", 0.5, -0.2, 0.8, 0.0, ">")["verdict"] == "inconclusive"
    assert an.part("s", -0.5, -0.8, 0.0, 0.0, ">")["verdict"] == "does not hold"
    assert an.part("s", math.nan, 0.0, 1.0, 0.0, ">")["verdict"] == "not measured"
    widened = an.part("s", 5.0, 0.1, 3.0, 0.0, ">")            # a percentile interval that misses its estimate
    assert (widened["lo"], widened["hi"], widened["verdict"]) == (0.1, 5.0, "holds")
    assert an.combine_verdicts(["holds", "holds"]) == "holds"
    assert an.combine_verdicts(["holds", "inconclusive"]) == "inconclusive"
    assert an.combine_verdicts(["inconclusive", "does not hold"]) == "does not hold"
    assert an.combine_verdicts(["holds", "not measured"]) == "inconclusive"
    assert an.combine_verdicts([]) == an.combine_verdicts(["not measured"]) == "not measured"
    row = an.claim_row(5, [an.part("a", 0.5, 0.2, 0.8, 0.0, ">"), an.part("b", 0.1, -0.1, 0.3, 0.0, ">")])
    assert row["verdict"] == "inconclusive" and row["statistic"] == "a"
    assert row["note"] == "Not settled by this run (interval contains the threshold): b."
    assert row["study"] == an.CLAIMS[5][1]


def test_sign_changes_on_a_circle():
    assert an.sign_changes(np.array([1.0, -1.0, 1.0, -1.0])) == 4
    assert an.sign_changes(np.array([1.0, 0.0, 2.0])) == 0
    assert an.sign_changes(np.array([1.0, 1.0, -1.0, -1.0])) == 2


# ----------------------------------------------------------------------------- per-image measures


def test_ssim_and_correlation():
    torch.manual_seed(0)
    x = torch.rand(3, 1, H, W)
    assert torch.allclose(an.ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(an.pixel_correlation(x, 2 * x + 1), torch.ones(3, dtype=torch.float64))
    noise = torch.rand(3, 1, H, W)
    assert (an.ssim(x, noise) < 0.2).all() and (an.pixel_correlation(x, noise).abs() < 0.2).all()


def test_masked_pixels_with_ones_mask_is_the_image():
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3, H, [0.4], [0.3])
    x = torch.rand(2, 1, H, W)
    torch.testing.assert_close(an.masked_pixels(model, x, torch.ones(2, H, W // 2 + 1), "rfft"), x)


def test_band_helpers():
    low, mid = an.band_thirds(14)
    assert list(low) == [0, 1, 2, 3, 4] and list(mid) == [5, 6, 7, 8, 9]
    rc, ac = an.band_centres(H, W, 14, 16)
    assert rc[0] == pytest.approx(math.hypot(14, 14) / 28) and ac[-1] == pytest.approx(348.75)
    e = np.array([[0.6, 0.8, 0.0]])
    assert an.low_energy(e, np.array([0, 1]))[0] == pytest.approx(1.0)
    a, b = an.paired(np.array([[1.0], [np.nan]]), np.array([[2.0], [3.0]]))
    assert a.tolist() == [[1.0]] and b.tolist() == [[2.0]]


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
            single = {"index": index, "y": y[index], "target": target, "masks": torch.rand(n_img, H, W // 2 + 1),
                      "kind": "rfft"}
            if v == "N":
                with torch.no_grad():
                    target_adv = model(x_adv).argmax(1)
                single.update(x_adv=x_adv, masks_adv=torch.rand(n_img, H, W // 2 + 1), target_adv=target_adv)
            records.append(an.ModelRecord(
                name=f"{v}-s{seed}", variant=v, seed=seed, model=model, kind="rfft",
                dataset_mask=torch.rand(H, W // 2 + 1), class_masks=torch.rand(classes, H, W // 2 + 1), single=single,
                train_metrics={"train_seconds": 1.0}, mask_metrics={"seconds": 1.0, "val_clean_acc": 0.5}))
    return records, {"val": (x[:20], y[:20]), "test": (x, y)}, [f"class {k}" for k in range(classes)]


SMALL = an.AggregateConfig(n_boot=20, accuracy_n=None, probe_max_iter=20, filter_n=10, filter_radii=(3.0, 9.0),
                           heatmap_n=5, heatmap_grid=3, figure_images=3)


def test_run_aggregate_on_random_models(tmp_path):
    records, splits, names = synthetic_run()
    res = an.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    assert [c["claim"] for c in res.claims] == list(range(1, 9))
    assert all(c["verdict"] in ("holds", "does not hold", "inconclusive", "not measured") for c in res.claims)
    single = {(r["model"], r["metric"]): r["value"] for r in res.tables["single_image"]}
    assert single["N-s0", "target_ok"] == 1.0 and ("A-s0", "pgd") not in single and ("N-s0", "restored") in single
    assert {r["variant"] for r in res.tables["band_differences"]} == {"A", "R"}
    sources = {r["source"] for r in res.tables["band_differences"]}
    assert sources == {"single", "dataset", "class:class 0", "class:class 1", "class:class 2"}
    assert set(res.curves) >= {"radial_diff/A", "angular_diff/R", "shares_radial/A", "filtered/N-s0"}
    assert res.figdata["dataset_masks"]["N"].shape == (H, W) and res.figdata["panel"]["x"].shape[0] == 3
    an.write_results(res, tmp_path)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert len(claims) == 8 and json.loads((tmp_path / "metrics.json").read_text())["claim_1"]["verdict"]
    assert (tmp_path / "curves/radial_diff/A.csv").read_text().startswith("band,radius,diff,lo,hi")
    torch.load(tmp_path / "figdata.pt", weights_only=True)           # tensors and plain values only
    (tmp_path / "curves/radial_diff/X.csv").write_text("stale")
    an.write_results(res, tmp_path)
    assert not (tmp_path / "curves/radial_diff/X.csv").exists()


def test_run_aggregate_with_two_seeds_and_mismatched_images():
    records, splits, names = synthetic_run(variants=("N", "A"), seeds=(0, 1), n_img=8)
    res = an.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    assert {r["seed"] for r in res.tables["single_image"]} == {0, 1, "all"}
    assert all(math.isfinite(r["seed_lo"]) for r in res.tables["band_differences"])     # intervals over seeds
    assert res.figdata["dataset_masks"]["A"].shape == (H, W)
    records[1].single["index"] = records[1].single["index"].flip(0)
    with pytest.raises(DataError, match="images differ"):
        an.run_aggregate(records, SMALL, splits, attack=None, class_names=names)


def test_load_records_needs_N_and_the_files(tmp_path):
    with pytest.raises(ParamError, match=r"^train\.variants"):
        an.load_records(["A"], [0], torch.device("cpu"), tmp_path)
    with pytest.raises(DataError, match="not found"):
        an.load_records(["N"], [0], torch.device("cpu"), tmp_path)
