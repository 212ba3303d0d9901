"""End to end: the real pipeline (`dvc repro`) on the tiny profile, in a throwaway git repo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import copy_project, git_commit, make_project, run
from freqbias.claim_registry import CLAIMS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of the tiny profile's run with one external checkpoint added, run again. The fetch stage
    reruns and writes byte-identical splits, so `dvc repro` reruns only what the checkpoint changes: its
    masks, aggregate and report, no training."""
    root = copy_project(tiny_run, tmp_path_factory.mktemp("project") / "p")
    add_external_checkpoint(root)
    git_commit(root, "external checkpoint")
    out = run(["dvc", "repro"], root).stdout
    assert "Running stage 'masks-external@" in out and "Running stage 'train@" not in out, out
    return root


def add_external_checkpoint(root: Path) -> None:
    """An external model (a random small_cnn saved outside the repo) listed in fetch.checkpoints."""
    import torch
    import yaml

    from freqbias.io import sha256_file
    from freqbias.models import build_model, checkpoint_dict

    meta = {"arch": "small_cnn", "in_channels": 1, "num_classes": 4, "image_size": 28, "mean": [0.5], "std": [0.25]}
    torch.manual_seed(0)
    path = root.parent / "outside.pt"
    torch.save(checkpoint_dict(build_model(**meta), meta), path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["fetch"]["checkpoints"] = [{"name": "ext", "arch": "small_cnn", "url": str(path),
                                       "sha256": sha256_file(path)}]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def variants(root: Path) -> list[str]:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    return [f"{v}-s{s}" for v in params["train"]["variants"] for s in params["train"]["seeds"]]


def test_dvc_repro_from_scratch_writes_what_the_in_process_run_wrote(tiny_run: Path, tmp_path: Path) -> None:
    """`dvc repro` in a fresh project, a fresh interpreter per stage, writes the bytes that
    :func:`conftest.repro_in_process` wrote for the shared tiny run (its stages in the test's process,
    then `dvc commit`): the splits, two trained models, a selection and an evaluation, by their hashes in
    dvc.lock (the train stages' metrics hold their run time and differ). What the in-process runs of the other
    tests (and of test_paper_path, test_paper_resnet18, test_variants) check stands for `dvc repro` too."""
    import yaml

    root = make_project(tmp_path / "p")
    out = run(["dvc", "repro", "select@0", "evaluate@A-0"], root).stdout
    ran = re.findall(r"Running stage '([^']+)'", out)
    assert sorted(ran) == ["evaluate@A-0", "fetch", "select@0", "train@A-0", "train@N-0"], out

    def hashes(lock: Path) -> dict[str, str]:
        stages = yaml.safe_load(lock.read_text())["stages"]
        return {o["path"]: o["md5"] for name in ran for o in stages[name]["outs"]
                if not o["path"].startswith("metrics/train/")}

    fresh, shared = hashes(root / "dvc.lock"), hashes(tiny_run / "dvc.lock")
    assert {"data/prepared", "models/N-s0.pt", "models/A-s0.pt", "selections/s0.pt",
            "metrics/evaluate/A-s0.json"} <= set(fresh), fresh
    assert fresh == shared


def test_repro_writes_every_output(project: Path) -> None:
    manifest = json.loads((project / "data/prepared/manifest.json").read_text())
    assert manifest["dataset"] == "planted" and manifest["counts"]["val"] == 200
    for name in variants(project):
        assert (project / f"models/{name}.pt").stat().st_size > 0
        train = json.loads((project / f"metrics/evaluate/{name}.json").read_text())
        assert 0 <= train["test_acc"] <= 1 and set(train["pgd_acc"]) == {"0.05"}
        assert (project / f"metrics/train/{name}.csv").read_text().startswith("epoch,")
        masks = json.loads((project / f"metrics/masks/{name}.json").read_text())
        assert 0 <= masks["dataset_mask_mean"] <= 1 and masks["single_n"] > 0
        for kind in ("dataset", "class", "single"):
            assert (project / f"masks/{name}/{kind}.pt").exists()
    external = json.loads((project / "metrics/masks/external/ext.json").read_text())
    assert external["variant"] == "external" and (project / "masks/external/ext/single.pt").exists()
    assert not list(project.rglob("*.tmp")), "a temporary file was left behind"


def test_second_repro_is_a_noop(project: Path) -> None:
    out = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in out, out
    status = run(["dvc", "status"], project).stdout
    assert "up to date" in status, status


def test_run_only_settings_are_not_params_and_leave_status_clean(project: Path, monkeypatch) -> None:
    """FREQBIAS_* settings change how stages run, not what they compute: DVC tracks none of them."""
    import yaml

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    tracked = [f"{name}:{key}" for name, stage in lock["stages"].items()
               for section in stage.get("params", {}).values() for key in _dotted(section)]
    run_only = ("progress", "device", "chunk_size", "memory_mb")
    assert tracked and not [k for k in tracked if k.rsplit(".", 1)[-1] in run_only]
    for name, value in {"FREQBIAS_PROGRESS": "1", "FREQBIAS_CHUNK_SIZE": "3", "FREQBIAS_MEMORY_MB": "50",
                        "FREQBIAS_DEVICE": "cpu"}.items():
        monkeypatch.setenv(name, value)
    status = run(["dvc", "status"], project).stdout
    assert "up to date" in status, status


def _dotted(node: dict, prefix: str = "") -> list[str]:
    """Dotted keys of the leaves of a nested mapping."""
    return [k for key, value in node.items()
            for k in (_dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])]


def test_adding_a_variant_trains_only_it(project: Path, tmp_path: Path) -> None:
    """train.variants is no param of the train stages: a new variant leaves the trained models and
    their masks up to date: only its own stages and aggregate are due (the report follows aggregate)."""
    import yaml

    root = copy_project(project, tmp_path / "p")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["variants"].append("S")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    due = set(re.findall(r"^(\S+):$", run(["dvc", "status"], root).stdout, re.M))
    own = {f"{stage}@S-{s}" for stage in ("train", "evaluate", "masks", "budgets", "controls")
           for s in params["train"]["seeds"]}
    assert due == own | {"aggregate"}, due


def test_metrics_show_lists_accuracies(project: Path) -> None:
    out = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "test_acc" in out and "val_masked_acc" in out


def test_report_names_existing_figures_and_eleven_claims(project: Path) -> None:
    text = (project / "reports/report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 11, text[:2000]
    for link in links:
        assert (project / "reports" / link).stat().st_size > 0, f"report names a missing figure: {link}"
    claims = json.loads((project / "results/claims.json").read_text())
    assert [c["claim"] for c in claims] == [c.number for c in CLAIMS]  # the study's 8, the controls 9-11, then 12
    assert "## What the masks show, and what they do not" in text and "## Appendix C. Controls" in text
    assert all(c["verdict"] in ("holds", "does not hold", "inconclusive", "negligible", "not measured") for c in claims)
    assert (project / "results/figdata.pt").exists() and not list(project.rglob("*.tmp"))


def test_plots_show_renders_the_curves(project: Path) -> None:
    out = run(["dvc", "plots", "show", "--json"], project).stdout
    for series in ("results/curves/fold_radial_diff.csv", "results/curves/fold_angular_diff.csv",
                   "results/curves/filtered.csv"):
        assert series in out, out[:2000]
    assert "failed to load" not in out.lower() and '"errors"' not in out, out[:2000]


def test_exp_run_with_a_param_change(project: Path) -> None:
    """An experiment reruns the stages its param feeds, and only those (training takes the time)."""
    out = run(["dvc", "exp", "run", "-S", "aggregate.n_boot=100"], project).stdout
    assert "Running stage 'aggregate'" in out and "Running stage 'train@" not in out, out
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    assert shown, "dvc exp show listed nothing"
    text = json.dumps(shown)
    assert '"n_boot": 100' in text.replace('"n_boot":100', '"n_boot": 100')
