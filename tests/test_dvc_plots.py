"""`dvc plots show` / `dvc plots diff` draw every plot of dvc.yaml without a load error, and `dvc exp show` has
the claims' numbers (with a numeric verdict code) as columns: on a copy of the tiny run (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import copy_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of the tiny profile's run (committed)."""
    return copy_project(tiny_run, tmp_path_factory.mktemp("plots") / "p")


def _finite(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def check_plots(out: dict) -> list[str]:
    """Each plot of ``dvc plots show --json``'s output: its y field has a finite value in every revision shown."""
    assert not out.get("errors"), out["errors"]
    names = []
    for name, plots in out["data"].items():
        for plot in plots:
            assert plot["type"] == "vega", name
            values = plot["content"]["data"]["values"]
            assert values, f"empty plot: {name}"
            # top-level plots name their y column in "field"; a stage's own plot (one file, one y) has no "field"
            ys = [row[row["field"]] if "field" in row else row.get("val_acc") for row in values]
            assert any(_finite(y) for y in ys), f"no finite value: {name}"
            assert set(plot["revisions"]) == {row["rev"] for row in values}, name
        names.append(name)
    return names


def test_plots_show_and_diff_draw(project: Path) -> None:
    proc = run(["dvc", "plots", "show", "--json"], project)
    assert "failed to load" not in proc.stderr + proc.stdout
    names = check_plots(json.loads(proc.stdout))
    for part in ("fold", "Angular", "sparsity", "Validation accuracy per epoch, per model", "filtered"):
        assert any(part in n for n in names), (part, names)
    diff = run(["dvc", "plots", "diff", "HEAD", "--json"], project)
    assert "failed to load" not in diff.stderr + diff.stdout
    check_plots(json.loads(diff.stdout))


def test_exp_show_has_claim_columns(project: Path) -> None:
    rows = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    metrics = rows[0]["data"]["metrics"]["results/metrics.json"]["data"]
    assert {"estimate", "lo", "hi", "verdict", "verdict_code"} <= set(metrics["claim_2"])
    # the mid rings (its variant, None for a comparison, and a not-measured code are nulls: dvc drops them)
    assert set(metrics["claim_2"]["part_2"]) == {"estimate", "lo", "hi", "verdict_code", "seeds_holding"}
    assert metrics["claim_9"]["part_2"]["variant"] == "A"
    codes = {"holds": 1, "inconclusive": 0, "negligible": -0.5, "does not hold": -1, "not measured": None}
    assert all(m.get("verdict_code") == codes[m["verdict"]] for m in metrics.values())
