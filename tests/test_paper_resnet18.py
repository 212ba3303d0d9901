"""The `paper-resnet18` profile's code path without a GPU, as :mod:`test_paper_path` runs `paper`: a
generated Imagenette folder, sizes cut to toy scale, `dvc repro` through the report on the CPU. A file
of its own, so that pytest-xdist (``--dist loadfile``) can run it beside the VGG11-BN run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_project, run
from test_paper_path import check_report, use_profile, write_imagenette

pytestmark = pytest.mark.slow


def test_paper_resnet18_profile_runs_end_to_end(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    params = use_profile(root, "paper-resnet18")
    assert params["model"]["arch"] == "resnet18" and params["data"]["image_size"] == 128
    write_imagenette(root / params["data"]["root"])
    run(["dvc", "repro"], root)
    check_report(root, "resnet18")
