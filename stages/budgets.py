"""budgets: accuracy against budget for one trained model, and its fold masks at the claims' budget.

Usage: ``python stages/budgets.py --model A-s0 --seed 0``. Fits a budgeted mask (:mod:`freqbias.budgeted`) at each
budget of ``budgets.ladder`` on the masks stage's fit images, scores each on the test split beside a low-pass disc of
the same budget, and fits the fold masks at ``budgets.claims``. Reads params ``masks.kind``, the fit constants of
``masks.budget``, ``masks.dataset.fit_n`` / ``folds`` and ``budgets``; writes ``budgets/<model>.pt`` and
``metrics/budgets/<model>.json`` (see :mod:`freqbias.stage_budgets`).
"""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import LoadedModel
from freqbias.budget_curve import LadderConfig
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import load_splits
from freqbias.io import save_json
from freqbias.stage_budgets import fit_model_budgets
from freqbias.stage_masks import MasksConfig


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model name, e.g. N-s0 (models/<name>.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the fit images' folds (as the masks stage)")
    args = parser.parse_args()
    log = setup_logging(f"budgets {args.model}")
    params = load_params()
    masks_cfg, cfg = MasksConfig.from_params(params), LadderConfig.from_params(params)
    subject = LoadedModel.load(args.model, runtime.device())
    ladder, metrics = fit_model_budgets(subject, args.seed, load_splits("val", "test"), masks_cfg, cfg, log=log.info)
    ladder.save(paths.budget_file(args.model))
    save_json(metrics, paths.budget_metrics(args.model))


if __name__ == "__main__":
    main()
