"""The README's table of common experiments is what DVC does: in a copy of the tiny run, set each row's
param and compare ``dvc status --json`` with the row's "dvc status lists" column (parsed from README.md, so
the doc and this test cannot drift)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_project, dvc_repo, run

TABLE = re.compile(r"<!-- experiments-table -->\n(.*?)<!-- /experiments-table -->", re.S)


def experiments() -> list[tuple[str, object, list[str]]]:
    """(dotted param, value, stage patterns) of each row of README.md's experiments table."""
    rows = TABLE.search((REPO / "README.md").read_text()).group(1).strip().splitlines()[2:]
    out = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        key, _, value = cells[1].strip("`").partition("=")
        out.append((key, yaml.safe_load(value), re.findall(r"`([^`]+)`", cells[2])))
    return out


def test_the_table_parses():
    rows = experiments()
    assert len(rows) >= 6 and all(patterns for _, _, patterns in rows)
    assert {"train.variant.A.eps", "masks.dataset.acc_ratio", "masks.single.lam"} <= {k for k, _, _ in rows}


def _set(params: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    assert last in node, dotted
    node[last] = value


def _status(root: Path) -> dict:
    """What `dvc status --json` prints (its command calls ``Repo.status``), from DVC in this process: a fresh
    `dvc` costs 3-4 s of CPU in its interpreter's start, once per row."""
    with dvc_repo(root) as repo:
        return repo.status()


@pytest.mark.slow
def test_each_experiment_invalidates_the_stages_the_readme_lists(tiny_run: Path, tmp_path: Path):
    root = copy_project(tiny_run, tmp_path / "run")
    original = (root / "params.yaml").read_text()
    names = run(["dvc", "stage", "list", "--name-only"], root).stdout.split()
    assert run(["dvc", "status", "--json"], root).stdout.strip() in ("{}", "")
    for key, value, patterns in experiments():
        params = yaml.safe_load(original)
        _set(params, key, value)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        status = _status(root)
        expected = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
        assert set(status) == expected, f"{key}={value}: dvc status lists {sorted(status)}, README says {patterns}"
    (root / "params.yaml").write_text(original)
