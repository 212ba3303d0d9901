"""The variant registry: the built-in entries, registering a variant, and one registered in the copied
project's variants.py run through the whole pipeline (slow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from conftest import git_commit, make_project, repro_in_process
from freqbias import plots
from freqbias import stage_report as report
from freqbias.attacks import AttackConfig
from freqbias.config import ParamError
from freqbias.training import TrainConfig, augment_batch, random_affine
from freqbias.variants import VARIANTS, AugmentConfig, NoSettings, colour, label, register_variant

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry():
    """The live registry; entries a test adds are removed afterwards."""
    before = dict(VARIANTS)
    yield VARIANTS
    VARIANTS.clear()
    VARIANTS.update(before)


def _pattern(batch: int = 8, size: int = 16) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(0))


def test_builtin_entries():
    assert {v: (e.label, e.colour) for v, e in VARIANTS.items()} == {
        "N": ("standard", "black"), "A": ("adversarial", "tab:red"), "S": ("scale", "tab:blue"),
        "T": ("translation", "tab:green"), "R": ("rotation", "tab:purple"), "G": ("gaussian noise", "tab:orange")}
    assert [v for v, e in VARIANTS.items() if e.adversarial] == ["A"]
    assert VARIANTS["A"].settings is AttackConfig and VARIANTS["N"].settings is NoSettings
    assert label("external") == "external" and colour("external") == "gray"


def test_register_rejects_duplicates_and_bad_names(registry):
    with pytest.raises(ValueError, match="already registered"):
        register_variant("N", "again", "red")
    for bad in ("", "V-1", "a b"):
        with pytest.raises(ValueError, match="letters and digits"):
            register_variant(bad, "bad", "red")
    with pytest.raises(ValueError, match="from_section"):
        register_variant("V", "no reader", "red", settings=dict)
    with pytest.raises(ValueError, match="build"):
        register_variant("V", "adversarial without attack", "red", adversarial=True)
    assert list(registry) == list("NASTRG")


def test_registered_augment_runs_after_the_base(registry):
    """A pixel hook sees the base-augmented batch; without base augmentation it alone acts."""
    register_variant("V", "vertical flip", "tab:brown", augment=lambda x, cfg, g: x.flip(-2))
    x = _pattern()
    assert torch.equal(augment_batch(x, "V", AugmentConfig(hflip=False), torch.Generator()), x.flip(-2))
    out = augment_batch(x, "V", AugmentConfig(hflip=True), torch.Generator().manual_seed(0))
    flipped = torch.rand(len(x), generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(out, torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x).flip(-2)) and flipped.any()


def test_registered_warp_joins_the_base_warp(registry):
    """A warp hook's scale range is multiplied by the crop zoom and applied in the same single warp."""
    register_variant("Z", "zoom", "tab:cyan", warp=lambda cfg: {"scale": (2.0, 2.0), "degrees": 30.0})
    x, cfg = _pattern(), AugmentConfig(hflip=True, crop_scale=(0.25, 0.25))
    out = augment_batch(x, "Z", cfg, torch.Generator().manual_seed(3))
    expected = random_affine(x, torch.Generator().manual_seed(3), hflip=True, scale=(4.0, 4.0), degrees=30.0)
    assert torch.equal(out, expected)


def test_params_plots_and_report_read_the_registry(registry):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["variants"] = ["N", "A", "V"]
    params["train"]["variant"]["V"] = {}  # its own settings entry (none)
    with pytest.raises(ParamError, match="train.variants: unknown value 'V'"):
        TrainConfig.from_params(params)
    register_variant("V", "brightness", "tab:brown", augment=lambda x, cfg, g: x)
    assert TrainConfig.from_params(params).variants == ["N", "A", "V"]
    assert plots._color("V-s0") == "tab:brown" and plots._color("external/x") == "gray"
    summary = {"variants": ["N", "V"], "seeds": [0], "image_size": [8, 8], "classes": ["a", "b"],
               "config": {"radial_bands": 4, "angular_bands": 4, "n_boot": 10, "alpha": 0.05, "seed": 0},
               "aggregate_seconds": {"all": 1.0}, "single_n": {"0": 8}, "kind": "rfft", "train_seconds": 1.0,
               "masks_seconds": 1.0}
    header = report.header_section(summary, SimpleNamespace(title="t"), "abc", "now", 0.0)
    assert "N (standard), V (brightness)" in header


# ---------------------------------------------------------------------------------------------
# End to end: one entry in the copied project's variants.py is all a new variant needs


ENTRY = '''

@dataclass(frozen=True)
class BrightnessSettings:
    shift: float = 0.1

    @classmethod
    def from_section(cls, sec: Section) -> "BrightnessSettings":
        return cls(sec.number("shift", min=0, max=1))


register_variant("V", "brightness", "tab:brown", settings=BrightnessSettings,
                 augment=lambda x, s, g: (x + s.shift).clamp(0, 1))
'''


@pytest.mark.slow
def test_a_registered_variant_runs_through_the_pipeline(tmp_path: Path, registry) -> None:
    """The copy's variants.py with ENTRY appended, and every stage of the copy's pipeline. V's training runs in a
    fresh interpreter that imports the copy's library (as `dvc repro` runs it): the file's entry alone registers
    V there. The other stages run in this process (:func:`conftest.repro_in_process`; the tiny run of
    test_pipeline covers `dvc repro` itself), where the same entry is executed in the loaded variants module."""
    import freqbias.variants

    root = make_project(tmp_path / "project")
    with (root / "src/freqbias/variants.py").open("a") as f:
        f.write(ENTRY)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["variants"] = ["N", "A", "V"]
    params["train"]["variant"]["V"] = {"shift": 0.1}  # its own settings entry
    # one seed, fewer fitting steps and resamples than the tiny profile: this test is about the variant's rows
    params["train"]["seeds"] = [0]
    params["masks"]["dataset"]["max_steps"] = 20
    params["masks"]["single"]["max_steps"] = 10
    params["aggregate"]["n_boot"] = 50
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git_commit(root, "variant V")
    exec(compile(ENTRY, str(root / "src/freqbias/variants.py"), "exec"), vars(freqbias.variants))
    with pytest.MonkeyPatch.context() as mp:  # the fresh interpreter imports the copy's library, with its entry
        mp.setenv("PYTHONPATH", str(root / "src"))
        ran = repro_in_process(root, fresh=("train@V-0",))
    assert {"train@V-0", "masks@V-0", "controls@V-0", "aggregate", "report"} <= set(ran), ran

    assert json.loads((root / "metrics/train/V-s0.json").read_text())["variant"] == "V"
    assert "V (brightness)" in (root / "reports/report.md").read_text()
    for table in ("accuracy", "single_image", "probe", "band_energies", "band_differences"):
        with (root / f"results/{table}.csv").open() as f:
            variants = {row["variant"] for row in csv.DictReader(f)}
        assert "V" in variants, f"results/{table}.csv has no V rows: {sorted(variants)}"
