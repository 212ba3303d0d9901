"""freqbias.sweep on a saved `dvc exp show --json` (tests/data/exp_show_n_boot.json: a tiny run, committed as
master with aggregate.n_boot=200, and two experiments, `dvc exp run -S aggregate.n_boot=150` / `=250`; the last
one applied, so the workspace row repeats it; params and metrics trimmed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

from freqbias.sweep import COLUMNS, SweepError, main, sweep_frame, swept_variant  # noqa: E402

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
    assert sorted(set(sparsity["series"])) == ["A", "N", "T"] and len(sparsity) == 9
    assert sparsity["lo"].isna().all()                      # one seed: no interval over seeds
    for stat in ("clean test accuracy", "robust test accuracy, PGD eps 0.1 (train.eval)"):
        assert len(frame[frame["statistic"] == stat]) == 9


def _experiment(name: str, eps: float, sparsity: dict[str, float], claim_9: dict) -> dict:
    metrics = {f"metrics/masks/{m}.json": {"data": {"dataset_mask_mean": v}} for m, v in sparsity.items()}
    metrics["results/metrics.json"] = {"data": {"claim_9": claim_9}}
    return {"name": name, "rev": name * 8, "data": {"rev": name * 8, "metrics": metrics,
                                                       "params": {"params.yaml": {"data": {"train": {
                                                           "variant": {"A": {"eps": eps}}}}}}}}


def test_pools_seeds_and_shows_the_swept_variants_parts() -> None:
    """Per-variant statistics are the mean over seeds with a t interval (1.96 would be too narrow at 3 seeds);
    claims 9-11 show N's headline and the swept variant's part, found by its variant, not its position."""
    part = {"estimate": 0.3, "lo": 0.2, "hi": 0.4, "variant": "A"}
    claim = {"estimate": 0.5, "lo": 0.4, "hi": 0.6, "part_2": {"estimate": 9, "variant": "T"}, "part_3": part}
    rows = [_experiment("a", 0.1, {"A-s0": 0.1, "A-s1": 0.2, "A-s2": 0.3, "N-s0": 0.5}, claim),
            _experiment("b", 0.2, {"A-s0": 0.1, "A-s1": 0.1, "A-s2": 0.1, "N-s0": 0.5}, claim)]
    frame = sweep_frame(rows, "train.variant.A.eps")
    a = frame[(frame["statistic"] == "dataset mask sparsity (mean value)") & (frame["series"] == "A")]
    first = a[a["experiment"] == "a"].iloc[0]
    half = 4.303 * 0.1 / 3 ** 0.5                             # t(0.975, 2 df) x sd / sqrt(3)
    assert first["estimate"] == pytest.approx(0.2) and first["hi"] - 0.2 == pytest.approx(half, rel=1e-3)
    c9 = frame[frame["statistic"] == "claim 9: mask vs low-pass disc"]
    assert sorted(set(c9["series"])) == ["A", "N"] and set(c9[c9["series"] == "A"]["estimate"]) == {0.3}
    assert swept_variant("train.variant.A.eps") == "A" and swept_variant("masks.single.lam") is None


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
