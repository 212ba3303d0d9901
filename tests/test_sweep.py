"""freqbias.sweep on a saved `dvc exp show --json` (tests/data/exp_show_n_boot.json: a tiny run, committed as
master with aggregate.n_boot=200, and two experiments, `dvc exp run -S aggregate.n_boot=150` / `=250`; the last
one applied, so the workspace row repeats it; params and metrics trimmed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from freqbias.sweep import COLUMNS, SweepError, main, sweep_frame  # noqa: E402

ROWS = json.loads((Path(__file__).parent / "data" / "exp_show_n_boot.json").read_text())


def test_frame_has_one_row_per_experiment_and_statistic() -> None:
    frame = sweep_frame(ROWS, "aggregate.n_boot")
    assert list(frame.columns) == COLUMNS
    assert frame["rev"].nunique() == 3  # master and two experiments; the workspace repeats one
    low = frame[frame["statistic"] == "A - N energy, low rings (fold masks)"]
    assert low["value"].tolist() == [150, 200, 250]
    assert sorted(low["experiment"]) == ["master", "naggy-loss", "ninth-fils"]
    assert (low["lo"] <= low["estimate"]).all() and (low["estimate"] <= low["hi"]).all()
    mid = frame[frame["statistic"] == "A - N energy, mid rings (fold masks)"]
    master = ROWS[1]["data"]["metrics"]["results/metrics.json"]["data"]["claim_2"]["part_2"]
    assert mid[mid["experiment"] == "master"]["hi"].item() == pytest.approx(master["hi"])
    sparsity = frame[frame["statistic"] == "dataset mask sparsity (mean value)"]
    assert sorted(set(sparsity["series"])) == ["A-s0", "N-s0", "T-s0"] and len(sparsity) == 9
    assert sparsity["lo"].isna().all()
    for stat in ("clean test accuracy", "robust test accuracy, PGD eps 0.1 (train.eval)"):
        assert len(frame[frame["statistic"] == stat]) == 9


def test_writes_table_and_figure(tmp_path: Path) -> None:
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(ROWS))
    assert main(["--param", "aggregate.n_boot", "--out", str(tmp_path / "sweep"), "--exp-json", str(saved)]) == 0
    md = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "# Sweep over `aggregate.n_boot`" in md and "| 150 | A - N |" in md and "ninth-fils" in md
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("rows, param, message", [
    (ROWS, "train.epochs", "no experiment varies it"),
    (ROWS, "train.nope", "not in params.yaml"),
    ([], "aggregate.n_boot", "no finished experiment"),
])
def test_nothing_to_report_is_one_line(rows, param, message, tmp_path: Path, capsys) -> None:
    with pytest.raises(SweepError, match=message):
        sweep_frame(rows, param)
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(rows))
    assert main(["--param", param, "--out", str(tmp_path / "out"), "--exp-json", str(saved)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
