"""Guards on where the newest logic takes its values from: a source (raw or size-matched energies), a sign, a seed
or a row position (issue 42).

Each of these choices can go wrong without a crash: the claim is still judged, only on the wrong numbers, and the
fast tests of the modules passed with such a bug planted (claim 7 on the raw energies, claim 11's difference with its
sign swapped, the yardstick stage on the seed's own images, ``MaskGroups.like`` one row early). Every test here is a
planted case whose right answer is known and differs from the answer each such bug gives:

- claim 7 (``claims.claim_low_share``): raw and size-matched energies that disagree; the size-matched ones decide;
- claim 11 (``randomisation.randomisation_results``): trained seeds that agree and a re-initialised network that
  does not; the paired difference is seed-to-seed minus re-initialised, > 0;
- the yardstick stage (``stages/yardstick.py``, ``stage_yardstick.yardstick``): a seed's standard model fits its
  masks on the NEXT seed's selected images, cyclically in the numeric order of ``train.seeds``;
- ``mask_groups.MaskGroups``: ``flat()`` / ``like()`` round trips by role, with folds and classes of other sizes;
- claim 4 with A - N below zero (the existing tests have it above zero only, where a dropped sign goes unseen);
- claims 9 and 10 (``control_claims.controls_results``): fold rows after the dataset mask's row, and each variant's
  isotropic masks set against that variant's own free fold masks.

All are fast (no training; the yardstick stage fits a few single-image masks of an untrained small_cnn for a few
steps).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, run_script
from freqbias import paths
from freqbias.artifacts import ControlsData, YardstickData, save_checkpoint
from freqbias.claims import claim_augmentations, claim_low_share
from freqbias.control_claims import controls_results
from freqbias.fitting import SingleMaskConfig
from freqbias.mask_groups import MaskGroups, shared_groups
from freqbias.models import build_model, load_checkpoint
from freqbias.parametrisation import Rfft
from freqbias.randomisation import randomisation_results, similarity
from freqbias.runs import AggregateConfig, Run
from freqbias.stage_controls import fit_own_masks
from freqbias.stage_masks import MasksConfig
from freqbias.stage_selection import Selection, save_selection

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = AggregateConfig(n_boot=50)
SIZE = 28                                    # the smallest image size a model accepts
RINGS = CFG.radial_bands
PAR = Rfft(SIZE, SIZE)


def _radius() -> torch.Tensor:
    """Distance of each rfft-layout frequency (SIZE, SIZE//2+1) from the zero frequency."""
    ky = torch.fft.fftfreq(SIZE, 1 / SIZE)[:, None]
    kx = torch.arange(SIZE // 2 + 1)[None, :]
    return (ky ** 2 + kx ** 2).sqrt().double()


# ----------------------------------------------------------------------------- claim 7: size-matched decides


def _claim_7(raw_favours_a: bool, sized_favours_a: bool) -> dict:
    """Claim 7 on planted radial energies of 30 images (one seed) where A's low rings beat N's raw iff
    ``raw_favours_a`` and beat them after subtracting the radial twins' iff ``sized_favours_a`` (N's twin equals
    N: its excess is 0)."""
    rng = np.random.default_rng(7)
    n = 0.2 + 0.05 * rng.random((30, RINGS))
    a = n * (1.5 if raw_favours_a else 0.6)
    twin_a = a * (0.5 if sized_favours_a else 1.5)
    return claim_low_share({"N": [n], "A": [a]}, CFG, twin={"N": [n.copy()], "A": [twin_a]})


@pytest.mark.parametrize("raw,sized", [(True, False), (False, True)])
def test_claim_7_takes_its_verdict_from_the_size_matched_energies(raw, sized):
    """Raw and size-matched energies disagree: the verdict and headline follow the size-matched share, the raw
    share is the secondary line (bug: judged on the raw single-image energies)."""
    c7 = _claim_7(raw, sized)
    assert "size-matched" in c7["statistic"]
    assert c7["estimate"] == (1.0 if sized else 0.0)
    assert c7["verdict"] == ("holds" if sized else "does not hold")
    [raw_line] = c7["secondary"]
    assert "size-matched" not in raw_line["statistic"]
    assert raw_line["estimate"] == (1.0 if raw else 0.0)
    assert raw_line["verdict"] == ("holds" if raw else "does not hold")


# ----------------------------------------------------------------------------- claim 11: the sign of the difference


def _profile_masks(n: int, g: torch.Generator, rising: bool) -> torch.Tensor:
    """n rfft masks (n, SIZE, SIZE//2+1) whose values fall (or, ``rising``, grow) with the radius, with 20 % noise:
    masks of one shape have nearly the same radial energy ranks."""
    r = _radius()
    shape = r / r.max() if rising else torch.exp(-r / 3)
    return (shape * (1 + 0.2 * torch.rand(n, *r.shape, generator=g, dtype=torch.float64))).float()


def _claim_11_case(n: int = 12):
    """Two seeds of N and A with single-image masks on disjoint images: the other seed's N (the yardstick) has
    masks of the same shape as N's, the re-initialised network masks of the opposite shape. Returns the run, the
    controls and the expected mean paired difference (seed-to-seed minus re-initialised) of N."""
    g = torch.Generator().manual_seed(11)
    records, controls, expected = [], {}, []
    for s in (0, 1):
        index = torch.arange(n) + 100 * s
        trained = _profile_masks(n, g, rising=False)
        for v in ("N", "A"):
            masks = trained if v == "N" else _profile_masks(n, g, rising=False)
            records.append(SimpleNamespace(name=f"{v}-s{s}", variant=v, seed=s, par=PAR,
                                           single=SimpleNamespace(masks=masks, index=index)))
        rand = _profile_masks(n, g, rising=True)
        controls[f"N-s{s}"] = ControlsData(
            model=f"N-s{s}", equal_budget=[], faithfulness={}, class_specificity=[], default_class={},
            isotropic={"records": []},
            randomised={"masks": rand, "index": index, "converged": torch.ones(n, dtype=torch.bool),
                        "modal_share": 0.5})
        other = _profile_masks(n, g, rising=False)           # N of the other seed on this seed's images
        controls[f"yardstick-s{1 - s}"] = YardstickData(seed=s, index=index, masks=other,
                                                        converged=torch.ones(n, dtype=torch.bool))
        expected.append(np.mean(similarity(trained, other, PAR, RINGS) - similarity(trained, rand, PAR, RINGS)))
    return Run(records, CFG, ["a", "b"], (SIZE, SIZE)), controls, float(np.mean(expected))


def test_claim_11_is_seed_to_seed_minus_re_initialised():
    """Two trained seeds agree, the re-initialised network does not: the paired difference is clearly > 0 and
    the claim holds (bug: re-initialised minus seed-to-seed, which makes it < 0 and fail)."""
    run, controls, expected = _claim_11_case()
    assert expected > 0.5                                   # the planted case is what it says
    _, claim, _ = randomisation_results(run, controls)
    assert claim["claim"] == 11 and claim["statistic"].startswith("N: seed-to-seed - re-initialised")
    assert claim["estimate"] == pytest.approx(expected)
    assert claim["verdict"] == "holds" and claim["lo"] > 0
    assert claim["info"]["seed_to_seed"] > claim["info"]["re_initialised"]
    [a_line] = claim["secondary"]
    assert a_line["statistic"].startswith("A: ") and a_line["verdict"] == "holds" and a_line["estimate"] > 0


def test_claim_11_pairs_each_seed_with_the_yardstick_on_its_own_images():
    """Seed s's masks are compared with the yardstick fitted on seed s's images (``seed`` s, same index), not
    with the one the seed's own model fitted on the next seed's images: swapping the two yardsticks' seeds leaves
    no pair of masks on the same images, and the claim unmeasured."""
    run, controls, _ = _claim_11_case()
    rows = randomisation_results(run, controls)[0]["randomisation"]
    seed_rows = [r for r in rows if r["compared_with"] == "another trained seed"]
    assert [r["model"] for r in seed_rows] == ["N-s0"] * 12 + ["N-s1"] * 12
    assert [r["image"] for r in seed_rows] == list(range(12)) + list(range(100, 112))
    for y in ("yardstick-s0", "yardstick-s1"):
        controls[y].seed = 1 - controls[y].seed
    _, claim, _ = randomisation_results(run, controls)
    assert claim["verdict"] == "not measured"


# ----------------------------------------------------------------------------- the yardstick stage: the next seed


def _stage_project(tmp_path, seeds: list[int], n: int = 3) -> tuple[dict, torch.Tensor, SingleMaskConfig]:
    """A project in ``tmp_path`` for ``stages/yardstick.py``: params with ``train.seeds`` = ``seeds`` and a short
    single-image fit, a test split of random images, an untrained small_cnn checkpoint ``N-s<seed>`` per seed and
    per seed a selection of ``n`` test images disjoint from the others'. Returns ``{seed: selection index}``, the
    test images and the single-image fit's config."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["seeds"] = seeds
    params["masks"]["single"].update(max_steps=4, patience=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "yardstick.py").write_text((REPO / "stages" / "yardstick.py").read_text())
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (n * len(seeds) + 2, 1, SIZE, SIZE), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (len(x),), generator=g)
    paths.split_file("test", tmp_path).parent.mkdir(parents=True)
    torch.save({"x": x, "y": y}, paths.split_file("test", tmp_path))
    meta = {"arch": "small_cnn", "in_channels": 1, "num_classes": 10, "image_size": SIZE, "mean": [0.5], "std": [0.25]}
    index = {}
    for k, s in enumerate(seeds):
        torch.manual_seed(s)
        save_checkpoint(build_model(**meta), meta, paths.checkpoint(f"N-s{s}", tmp_path))
        index[s] = torch.arange(n) + n * k + 1                # disjoint, none starts at 0
        sel = Selection(index=index[s], x=x[index[s]].float() / 255, x_adv=x[index[s]].float() / 255,
                        y=y[index[s]], pool=len(x))
        paths.selection_file(s, tmp_path).parent.mkdir(exist_ok=True)
        save_selection(sel, paths.selection_file(s, tmp_path))
    return index, x, MasksConfig.from_params(params).single


def test_yardstick_stage_fits_on_the_next_seeds_images(tmp_path, monkeypatch):
    """``N-s0`` fits its masks on seed 1's selected images (its index, its pixels: the masks equal a fit of the
    model on those images), not on seed 0's own (bug: the seed's own selection)."""
    monkeypatch.setenv("FREQBIAS_DEVICE", "cpu")              # the stage's fit and this test's on one device
    index, x, single = _stage_project(tmp_path, [0, 1])
    assert run_script(tmp_path, "stages/yardstick.py", "--seed", "0") == 0
    out = YardstickData.load(paths.yardstick_file(0, tmp_path))
    assert out.fitted and out.seed == 1
    assert torch.equal(out.index, index[1])
    model, _ = load_checkpoint(paths.checkpoint("N-s0", tmp_path))
    expected = fit_own_masks(model, x[index[1]].float() / 255, single)
    assert torch.allclose(out.masks, expected["masks"], atol=1e-5)
    own = fit_own_masks(model, x[index[0]].float() / 255, single)
    assert (out.masks - own["masks"]).abs().max() > 1e-3    # the planted images give masks apart


def test_yardstick_stage_next_seed_is_cyclic_in_numeric_order(tmp_path, monkeypatch):
    """With ``train.seeds: [3, 0, 1]`` (not sorted) each seed's yardstick is on the next larger seed's images and
    the largest wraps to the smallest: 0 -> 1, 1 -> 3, 3 -> 0, so every seed has exactly one partner."""
    monkeypatch.setenv("FREQBIAS_DEVICE", "cpu")
    seeds = [3, 0, 1]
    index, _, _ = _stage_project(tmp_path, seeds, n=2)
    partner = {}
    for s in seeds:
        assert run_script(tmp_path, "stages/yardstick.py", "--seed", str(s)) == 0
        out = YardstickData.load(paths.yardstick_file(s, tmp_path))
        assert torch.equal(out.index, index[out.seed])
        partner[s] = out.seed
    assert partner == {0: 1, 1: 3, 3: 0}


# ----------------------------------------------------------------------------- MaskGroups: rows by role


def test_mask_groups_like_reads_back_flat_by_role():
    """``like(flat())`` is the identity for lists and tensors, with folds and classes of different counts
    (bug: the folds read one row early, from the dataset mask's row)."""
    groups = MaskGroups("d", ["f1", "f2"], ["c0", "c1", "c2"])
    assert groups.flat() == ["d", "f1", "f2", "c0", "c1", "c2"]
    assert groups.fit == ["d", "f1", "f2"]
    assert groups.like(groups.flat()) == groups
    back = groups.like(torch.arange(6) * 10)
    assert int(back.dataset) == 0
    assert back.folds.tolist() == [10, 20] and back.classes.tolist() == [30, 40, 50]
    with pytest.raises(ValueError):
        groups.like(list(range(5)))


def test_shared_groups_round_trip_keeps_each_class_with_its_images():
    """Per-group values computed in ``flat()`` order and read back with ``like()``: class k's group holds class k's
    images only, the folds split the dataset mask's images, and the dataset group is first."""
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0, 2, 1, 0, 1, 2, 0])
    groups = shared_groups(y, n_fit=9, folds=3, class_fit_n=2, num_classes=3, seed=0)
    labels = groups.like([y[g].float() for g in groups.flat()])
    assert [sorted(set(c.tolist())) for c in labels.classes] == [[0.0], [1.0], [2.0]]
    sizes = groups.like(torch.tensor([len(g) for g in groups.flat()]))
    assert int(sizes.dataset) == 9 and sizes.folds.tolist() == [3, 3, 3] and sizes.classes.tolist() == [2, 2, 2]
    assert sorted(torch.cat(groups.folds).tolist()) == groups.dataset.tolist()


# ----------------------------------------------------------------------------- claim 4 with A - N below zero


def test_claim_4_compares_signs_with_a_negative_a_minus_n():
    """A has LESS low-ring energy than N (sign -1): R more (opposite sign), S less but by less (same sign,
    smaller), T hardly different. Every part holds only if the sign of A - N multiplies R's and S's differences
    (bug: the sign dropped, which the existing test, A - N > 0, cannot see)."""
    rng = np.random.default_rng(4)
    low = np.zeros(RINGS, dtype=bool)
    low[: len(np.array_split(np.arange(RINGS), 3)[0])] = True
    n = 0.3 + 0.05 * rng.random((40, RINGS))

    def shifted(by: float) -> np.ndarray:
        return n + np.where(low, by, 0.0) + 0.005 * rng.standard_normal(n.shape)

    radial = {"N": [n], "A": [shifted(-0.2)], "R": [shifted(0.15)], "S": [shifted(-0.08)], "T": [shifted(0.0)]}
    c4 = claim_augmentations({"masks": radial}, CFG)
    assert c4["info"]["sign_of_A_minus_N_low"] == -1.0
    assert [p["verdict"] for p in c4["parts"]] == ["holds"] * 4, [(p["statistic"], p["estimate"]) for p in c4["parts"]]
    assert c4["parts"][0]["estimate"] < 0 and c4["parts"][2]["estimate"] > 0


# ----------------------------------------------------------------------------- claims 9 and 10: rows and variants


def _budget_row(mask: int, support_minus_disc: float) -> dict:
    row = {"mask": mask, "budget": 0.1}
    for split in ("fit", "test"):
        row.update({f"{split}_mask": 0.8, f"{split}_support": 0.5 + support_minus_disc, f"{split}_disc": 0.5,
                    f"{split}_random": 0.3})
    return row


def test_claims_9_and_10_read_fold_rows_and_each_variants_own_masks():
    """Claim 9 averages the fold rows of ``equal_budget`` (after the dataset mask's row, planted far off); claim 10
    sets each variant's isotropic fold masks against that variant's free fold masks (``fit_records.folds``, not
    the dataset mask's record): N's free masks are sparser than its isotropic ones (holds), A's denser (fails)."""
    folds = [0.1, 0.2, 0.3]
    free = {"N": [0.10, 0.12, 0.14], "A": [0.50, 0.52, 0.54]}
    records, controls = [], {}
    for s in (0, 1):
        for v in ("N", "A"):
            rec = lambda mean: {"mean": mean, "n_images": 10, "converged": True}  # noqa: E731
            records.append(SimpleNamespace(
                name=f"{v}-s{s}", variant=v, seed=s,
                fit_records=MaskGroups(rec(0.9), [rec(m + 0.01 * s) for m in free[v]], [rec(0.7)] * 2)))
            iso = [{"mean": 0.3 + 0.01 * k, "n_images": 10, "met": True, "converged": True, "steps": 5}
                   for k in range(3)]
            controls[f"{v}-s{s}"] = ControlsData(
                model=f"{v}-s{s}",
                equal_budget=[_budget_row(0, -0.6)] + [_budget_row(k + 1, d + 0.01 * s) for k, d in enumerate(folds)],
                faithfulness={}, class_specificity=[], default_class={"dc_class": 0, "dc_share": [1.0, 0.0]},
                isotropic={"records": iso})
    run = Run(records, CFG, ["a", "b"], (SIZE, SIZE))
    tables, rows, _ = controls_results(run, controls)
    c9, c10 = rows["disc"], rows["isotropic"]
    assert [p["statistic"].split(":")[0] for p in c9["parts"]] == ["N", "A"]
    for p in c9["parts"]:
        assert p["estimate"] == pytest.approx(0.205) and p["verdict"] == "holds"
    by_variant = {p["statistic"].split(":")[0]: p for p in c10["parts"]}
    assert by_variant["N"]["estimate"] == pytest.approx(0.31 - 0.125)
    assert by_variant["A"]["estimate"] == pytest.approx(0.31 - 0.525)
    assert by_variant["N"]["verdict"] == "holds" and by_variant["A"]["verdict"] == "does not hold"
    iso_rows = [r for r in tables["isotropic"] if r["model"] == "A-s1"]
    assert [(r["fold"], r["free_mean"]) for r in iso_rows] == [(1, pytest.approx(0.51)), (2, pytest.approx(0.53)),
                                                              (3, pytest.approx(0.55))]


def test_claim_9_leaves_out_fold_masks_that_keep_the_whole_plane():
    """A fold mask whose support is the whole plane has a disc of its size that is the identity: support - disc is
    a 0 that says nothing (the committed run's 'does not hold' at 0 [0, 0]). Such folds are left out; a variant
    whose folds all keep the whole plane is n/a with that reason, never a verdict."""
    from freqbias.control_claims import WHOLE_PLANE, claim_equal_budget

    def data(name: str, budgets: list[float]) -> ControlsData:
        rows = [_budget_row(0, 0.0)] + [{**_budget_row(k + 1, 0.2 if b < 1 else 0.0), "budget": b}
                                        for k, b in enumerate(budgets)]
        return ControlsData(model=name, equal_budget=rows, faithfulness={}, class_specificity=[], default_class={},
                            isotropic={})
    by_variant = {"N": [data(f"N-s{s}", [1.0, 1.0, 1.0]) for s in (0, 1)],
                  "A": [data(f"A-s{s}", [0.3, 1.0, 0.2 + 0.01 * s]) for s in (0, 1)]}
    c9 = claim_equal_budget(by_variant, CFG)
    n, a = c9["parts"]
    assert n["verdict"] == "not measured" and n["reason"] == WHOLE_PLANE, n
    assert a["estimate"] == pytest.approx(0.2) and a["verdict"] == "holds", a   # the full-support fold is left out
