"""evaluate: clean and PGD test accuracy of one trained model.

Usage: ``python stages/evaluate.py --variant N --seed 0``. Reads params ``train.eval`` (its own attacks, not A's
training attack) and ``models/<variant>-s<seed>.pt``; writes ``metrics/evaluate/<variant>-s<seed>.json``
(:func:`freqbias.stage_evaluate.evaluate_model`). Its own stage, so that a change of the evaluation retrains no model
and a change of A's training re-evaluates A alone."""

import freqbias._interrupt  # noqa: F401  # isort: skip  (first: Ctrl-C while importing ends with one line)
import argparse

from freqbias import paths, runtime
from freqbias.artifacts import load_checkpoint
from freqbias.cli import run_stage, setup_logging
from freqbias.config import load_params
from freqbias.data import load_split
from freqbias.io import save_json
from freqbias.stage_evaluate import evaluate_model
from freqbias.training import TrainConfig


@run_stage
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    name = paths.model_name(args.variant, args.seed)
    log = setup_logging(f"evaluate {name}")
    cfg = TrainConfig.from_params(load_params())
    model, _ = load_checkpoint(paths.checkpoint(name), map_location=runtime.device())
    metrics = evaluate_model(model.eval(), args.variant, args.seed, cfg.evaluation, load_split("test"), log=log.info)
    save_json(metrics, paths.eval_metrics(name))


if __name__ == "__main__":
    main()
