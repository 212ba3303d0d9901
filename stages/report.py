"""report: figures and the markdown report from the aggregate stage's outputs.

Usage: ``python stages/report.py``. Reads params ``report`` and ``results/`` (figdata.pt, claims.json,
summary.json, tables); writes ``reports/figures/*.png`` and ``reports/report.md``.
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import time
from datetime import datetime, timezone

from freqbias import paths
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.io import save_text
from freqbias.report_figures import make_figures
from freqbias.stage_report import ReportConfig, git_commit, load_results, render


@run_stage
def main() -> None:
    log = setup_logging("report")
    t0 = time.perf_counter()
    cfg = ReportConfig.from_params(load_params())
    figdata, claims, summary, tables = load_results(paths.RESULTS)
    figures = make_figures(figdata, tables, paths.figures_dir(), cfg, claims)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = render(summary, claims, tables, figures, cfg, git_commit(), generated, time.perf_counter() - t0)
    save_text(text, paths.report_file())
    log.info(f"{len(figures)} figures and {paths.report_file()} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
