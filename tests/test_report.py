"""Tests of freqbias.stage_report and freqbias.plots: the report renders every figure it names, from the
aggregate outputs alone, with the claims and the reference numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import git_commit, run
from freqbias import stage_aggregate as ag
from freqbias import stage_report as rp
from freqbias.config import DataError, ParamError
from test_aggregate import SMALL, synthetic_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """results/ of a small aggregation over random models (variants N, A, R; one seed)."""
    folder = tmp_path_factory.mktemp("run") / "results"
    records, splits, names = synthetic_run()
    res = ag.run_aggregate(records, SMALL, splits, attack=None, class_names=names)
    res.summary.update({"dataset": "synthetic", "arch": "small_cnn", "counts": {"train": 1, "val": 20, "test": 40}})
    ag.write_results(res, folder)
    return folder


def test_report_renders_every_figure_it_names(results: Path, tmp_path: Path):
    cfg = rp.ReportConfig(dpi=40, panel_images=2)
    figdata, claims, summary, tables = rp.load_results(results)
    figures = rp.make_figures(figdata, tables, tmp_path / "figures", cfg, claims)
    text = rp.render(summary, claims, tables, figures, cfg, "abc1234", "today", 1.0)
    (tmp_path / "report.md").write_text(text)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len([f for f in figures if not f.na]) >= 13 and len(figures) >= 14
    assert figures[0].name == "claims.png"                    # the claims figure comes first
    body = text.split("## Appendix A.", 1)[0]                   # read in two minutes: short, no wall of prose
    assert len(body.splitlines()) <= 250
    long = [p for p in re.split(r"\n\n|\n- ", body) if not p.startswith("|") and len(p.split()) > 120]
    assert not long, [p[:80] for p in long]
    assert "## Appendix D. Figures per model" in text
    from PIL import Image
    for link in links:                                         # readable at page width: no strip of panels
        width, height = Image.open(tmp_path / link).size
        assert max(width / height, height / width) <= 3, (link, width, height)
    for link in links:
        png = tmp_path / link
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(Path(link).name for link in links)
    for f in figures:                                          # every figure has a caption in the text
        assert f.caption in text
    # a complete run has every figure; this one has no controls stage, whose figures say so
    missing = {f.name: f.na for f in figures if f.na}
    assert set(missing) == {"faithfulness.png", "cascade.png"}
    assert "no controls measured" in missing["faithfulness.png"] and "not fitted" in missing["cascade.png"]


def test_faithfulness_figure_draws_each_model_and_names_what_is_missing(tmp_path: Path):
    """The faithfulness figure from the controls stage's mean curves: one row per model, an n/a panel naming why
    a model has none; no figure at all (with the reason) without any controls."""
    from freqbias.artifacts import ControlsData
    from freqbias.figdata import faithfulness_curves
    from freqbias.plots import faithfulness

    budgets = [0.0, 0.5, 1.0]
    curve = {o: {"insertion": [0.1, 0.6, 0.9], "deletion": [0.9, 0.3, 0.1]} for o in ("mask", "radius", "random")}
    def measured(name: str, faithfulness: dict) -> ControlsData:
        return ControlsData(name, [], faithfulness, [], {}, {})

    both = {"budgets": budgets, "dataset": {"curves": curve}, "single": {"curves": curve}}
    controls = {"N-s0": measured("N-s0", both),
                "A-s0": measured("A-s0", {"budgets": budgets})}
    data, na = faithfulness_curves(controls)
    assert set(data) == {"budgets", "N-s0"} and na == {"faithfulness/A-s0": "no finite mask to order"}
    assert data["N-s0"]["single"]["radius"]["deletion"].tolist() == pytest.approx([0.9, 0.3, 0.1])
    png = faithfulness(data, tmp_path / "f.png", 40, {"A-s0": na["faithfulness/A-s0"]})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert faithfulness_curves({}) == ({}, {"faithfulness": "no controls measured (the controls stage did not run "
                                                             "for these models)"})


def test_empty_cells_render_as_na_and_never_crash_a_figure(results: Path, tmp_path: Path):
    """The user's crash: a probe.csv row of empty cells (no reason column) stopped plots.probe_results on
    float(''). Empty cells read as n/a, with the row's reason when there is one."""
    cfg = rp.ReportConfig(dpi=40, panel_images=2)
    figdata, claims, summary, tables = rp.load_results(results)
    probe, heat = tables["probe"][1], tables["heatmaps"][0]
    for key in [k for k in probe if k not in ("model", "variant", "seed")]:
        probe[key] = ""                                       # a row of empty cells, no reason
    heat["corr_with_dataset_mask"], heat["reason"] = "", "corr_with_dataset_mask: constant dataset mask"
    figures = rp.make_figures(figdata, tables, tmp_path / "figures", cfg)
    assert (tmp_path / "figures/probe.png").exists()
    text = rp.render(summary, claims, tables, figures, cfg, "abc1234", "today")
    assert f"| {probe['model']} | n/a (no value recorded) |" in text
    assert f"| {heat['model']} |" in text and "| n/a (constant dataset mask) |" in text


def test_report_has_header_reference_numbers_and_claims(results: Path, tmp_path: Path):
    cfg = rp.ReportConfig(dpi=40, panel_images=2)
    figdata, claims, summary, tables = rp.load_results(results)
    text = rp.render(summary, claims, tables, [], cfg, "abc1234", "today")
    assert text.startswith(f"# {cfg.title}") and "`abc1234`" in text and "N (standard), A (adversarial), R" in text
    found = text.split("## What this run found", 1)[1].split("\n## ", 1)[0]   # the answer comes first
    assert text.index("## What this run found") < text.index("## Set-up") < text.index("## Claims")
    assert len(text[:text.index("## Set-up")].splitlines()) <= 20
    for c in claims:
        assert f"claim {c['claim']} " in found.lower(), f"claim {c['claim']} missing from the summary"
    assert "| clean val accuracy, N | 89.56 | - | 50.0 |" in text            # study vs this run (masks metrics)
    assert "| clean val accuracy, S | 86.62 | - | not trained |" in text
    assert "| single-image: complement keeps the prediction (N) | 55.5 | 58.3 |" in text
    claims_table = text.split("## Claims", 1)[1].split("\n## ", 1)[0]
    claim_rows = [line for line in claims_table.splitlines() if re.match(r"^\| [1-8] \| ", line)]
    assert len(claim_rows) == 8
    assert "**Verdict rule.** A part holds when its whole 95% interval" in text
    for c in claims:
        assert f"**{c['verdict']}**" in text
    single = text.split("### Single-image masks", 1)[1]           # no column that is empty by design
    assert "\n| model | metric | value [95% interval] | n |\n|---|---|---|---|\n" in single
    assert "masks stage" not in single.split("### Linear probe", 1)[0]
    assert rp.FIGURES == "figures"


def test_config_and_missing_results(tmp_path: Path):
    params = {"report": {"title": "T", "dpi": 80, "panel_images": 3}}
    assert rp.ReportConfig.from_params(params) == rp.ReportConfig("T", 80, 3)
    with pytest.raises(ParamError, match=r"^report\.dpi"):
        rp.ReportConfig.from_params({"report": {"title": "T", "dpi": 0, "panel_images": 3}})
    with pytest.raises(DataError, match="run the aggregate stage first"):
        rp.load_results(tmp_path)


def test_git_commit_outside_a_repository(tmp_path: Path):
    assert rp.git_commit(tmp_path) == "unknown"


def test_git_commit_marks_changed_inputs_only(tmp_path: Path):
    """The marker says the run's inputs (code, params) differ from HEAD; rewritten outputs do not count."""
    files = {"src/freqbias/x.py": "a = 1\n", "stages/s.py": "", "params.yaml": "k: 1\n", "dvc.yaml": "stages: {}\n",
             "pyproject.toml": "", "results/t.csv": "a\n1\n", "metrics/m.json": "{}\n", "reports/report.md": "r\n",
             "dvc.lock": "schema: '2.0'\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run(["git", "init", "-q"], tmp_path)
    git_commit(tmp_path, "initial")
    head = run(["git", "rev-parse", "--short", "HEAD"], tmp_path).stdout.strip()
    assert rp.git_commit(tmp_path) == head

    for name in ("results/t.csv", "metrics/m.json", "reports/report.md", "dvc.lock"):  # a run rewrote its outputs
        (tmp_path / name).write_text("rewritten\n")
    (tmp_path / "results/new.csv").write_text("a\n")
    assert rp.git_commit(tmp_path) == head, "outputs differing from HEAD are not uncommitted inputs"

    for name in ("src/freqbias/x.py", "stages/s.py", "params.yaml", "dvc.yaml", "pyproject.toml"):
        original = (tmp_path / name).read_text()
        (tmp_path / name).write_text(original + "# edit\n")
        assert rp.git_commit(tmp_path) == f"{head} + uncommitted changes", name
        (tmp_path / name).write_text(original)
        assert rp.git_commit(tmp_path) == head

    (tmp_path / "src/freqbias/new.py").write_text("")  # an untracked module a stage may import
    assert rp.git_commit(tmp_path) == f"{head} + uncommitted changes"
