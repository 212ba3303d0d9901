"""Shared plumbing for the stage scripts in ``stages/``: logging and clean failure."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

from .config import DataError, ParamError, load_params
from .runtime import SettingError, check as check_settings
from .schema import validate_params

log = logging.getLogger("freqbias")


def setup_logging(stage: str) -> logging.Logger:
    """Log ``HH:MM:SS stage: message`` lines to stderr."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {stage}: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)
    return log


def run_stage(main: Callable[[], None]) -> Callable[[], None]:
    """Decorate a stage's ``main``: check the whole ``params.yaml`` first (every section's values, no
    unknown keys; :func:`freqbias.schema.validate_params`) and the run-only settings
    (:mod:`freqbias.runtime`), then run it; bad params, bad settings or missing data exit with one
    line and status 2."""

    @functools.wraps(main)
    def wrapper() -> None:
        try:
            validate_params(load_params())
            check_settings()
            main()
        except ParamError as exc:
            print(f"error: bad params: {exc}", file=sys.stderr)
            sys.exit(2)
        except SettingError as exc:
            print(f"error: bad setting: {exc}", file=sys.stderr)
            sys.exit(2)
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: nothing half-written was kept", file=sys.stderr)
            sys.exit(130)

    return wrapper
