"""The masks stage never crashes on what a trained model's data can give it: 0 clean accuracy, a class
without val images, no image meeting the single-image rule. Each gap is null with its reason (``na``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import copy_project, run_script

pytestmark = pytest.mark.slow  # on a copy of conftest.tiny_run: `make test-fast` builds no end-to-end run


@pytest.fixture(scope="module")
def project(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of ``conftest.tiny_run`` (the tiny profile's data: 4 planted classes) with N / A models that have a
    fifth class they always predict, and without the run's own selection and N-s0 masks."""
    from freqbias.models import build_model, checkpoint_dict

    root = copy_project(tiny_run, tmp_path_factory.mktemp("masks-stage") / "run")
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    meta = {"arch": "small_cnn", "in_channels": 1, "num_classes": 5, "image_size": 28,
            "mean": manifest["mean"], "std": manifest["std"]}
    torch.manual_seed(0)
    model = build_model(**meta)
    with torch.no_grad():
        model.net[-1].weight.zero_()
        model.net[-1].bias.copy_(torch.tensor([0.0, 0, 0, 0, 10]))  # class 4: never a label
    for variant in ("N", "A"):
        torch.save(checkpoint_dict(model, {**meta, "variant": variant, "seed": 0}), root / f"models/{variant}-s0.pt")
    for old in ("selections/s0.pt", "metrics/masks/N-s0.json"):  # what the stages below must write afresh
        (root / old).unlink()
    shutil.rmtree(root / "masks/N-s0")
    return root


def test_masks_stage_reports_undefined_values_instead_of_crashing(project: Path, capsys) -> None:
    """The selection and masks stages run in this process (``conftest.run_script``: the scripts' code without a
    fresh interpreter's torch import); their stderr is the captured one."""
    capsys.readouterr()
    assert run_script(project, "stages/selection.py", "--seed", "0") == 0
    selected = capsys.readouterr().err
    assert "Traceback" not in selected, selected[-3000:]
    assert run_script(project, "stages/masks.py", "--model", "N-s0", "--seed", "0") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    metrics = json.loads((project / "metrics/masks/N-s0.json").read_text())
    assert metrics["val_clean_acc"] == metrics["test_clean_acc"] == 0.0
    assert metrics["val_ratio"] is None and "clean accuracy is 0" in metrics["na"]["val_ratio"]
    assert metrics["test_ratio"] is None and "test_ratio" in metrics["na"]
    assert metrics["single_n"] == 0
    for key in ("single_masked_agreement", "single_adv_agreement", "single_steps_mean", "single_adv_masked_agreement"):
        assert metrics[key] is None and "no test image met the selection rule" in metrics["na"][key], key
    assert metrics["class_mask_mean"] is not None and "class_mask_mean" not in metrics["na"]
    classes = torch.load(project / "masks/N-s0/class.pt", weights_only=True)
    assert classes["counts"].tolist()[4] == 0 and classes["masks"][4].isnan().all()
    assert classes["masks"][:4].isfinite().all()
    single = torch.load(project / "masks/N-s0/single.pt", weights_only=True)
    assert single["masks"].shape == (0, 28, 15) and single["masks_adv"].shape == (0, 28, 15)
    assert "class(es) [4]" in err and "only 0 of the 8 images" in selected
