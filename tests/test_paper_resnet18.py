"""The `paper-resnet18` profile's code path without a GPU, as :mod:`test_paper_path` runs `paper`: a
generated Imagenette folder, sizes cut to toy scale, every stage through the report on the CPU. The two
profiles differ in ``model.arch`` alone and :mod:`test_paper_path` runs `paper`'s stages through `dvc
repro`: here the same stages run in this process (:func:`conftest.repro_in_process`, DVC's stage order and
declared outputs checked), without a fresh interpreter and DVC's hashing per stage (about 4-5 s each on a
slow core). A file of its own, so that pytest-xdist (``--dist loadfile``) can run it beside the VGG11-BN run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_project, repro_in_process
from test_paper_path import TOY, check_report, use_profile, write_imagenette

pytestmark = pytest.mark.slow


def test_paper_resnet18_profile_runs_end_to_end(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    params = use_profile(root, "paper-resnet18")
    assert params["model"]["arch"] == "resnet18" and params["data"]["image_size"] == 128
    write_imagenette(root / params["data"]["root"])
    ran = repro_in_process(root)
    assert {"fetch", "train@N-0", "train@A-0", "masks@A-0", "controls@N-0", "aggregate", "report"} <= set(ran), ran
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    assert manifest["dataset"] == "imagenette" and manifest["image_size"] == 128
    assert manifest["counts"] == {"train": TOY["data"]["max_train"], "val": TOY["data"]["val_size"],
                                  "test": TOY["data"]["max_test"]}
    check_report(root, "resnet18")
