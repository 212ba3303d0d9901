"""Shared plumbing for the stage scripts in ``stages/``: logging and clean failure.

Progress bars (tqdm) show only when stderr is a terminal or ``FREQBIAS_PROGRESS=1``
(:func:`freqbias.runtime.progress`); while a stage runs, log lines go through tqdm
(``logging_redirect_tqdm``) so that they do not break a live bar."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from typing import Callable

from tqdm.contrib.logging import logging_redirect_tqdm

from ._interrupt import MESSAGE
from .config import DataError, ParamError, load_params
from .runtime import SettingError
from .runtime import check as check_settings
from .schema import validate_params

log = logging.getLogger("freqbias")


def setup_logging(stage: str) -> logging.Logger:
    """Log ``HH:MM:SS stage: message`` lines to stderr: format the root logger's console handlers
    (under :func:`run_stage`, the one that writes through tqdm), adding one if there is none."""
    root = logging.getLogger()
    console = [h for h in root.handlers
               if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout)]
    if not console:
        console = [logging.StreamHandler(sys.stderr)]
        root.addHandler(console[0])
    formatter = logging.Formatter(f"%(asctime)s {stage}: %(message)s", datefmt="%H:%M:%S")
    for handler in console:
        handler.setFormatter(formatter)
    root.setLevel(logging.INFO)
    return log


def run_stage(main: Callable[[], None]) -> Callable[[], None]:
    """Decorate a stage's ``main``: check the whole ``params.yaml`` first (every section's values, no
    unknown keys; :func:`freqbias.schema.validate_params`) and the run-only settings
    (:mod:`freqbias.runtime`), then run it; bad params, bad settings or missing data exit with one
    line and status 2, Ctrl-C with one line and status 130."""

    @functools.wraps(main)
    def wrapper() -> None:
        # Ctrl-C as KeyboardInterrupt while the stage runs (atomic writes remove their temporary files);
        # before and after, freqbias._interrupt's handler (one line, status 130) where the script installed it.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            validate_params(load_params())
            check_settings()
            with logging_redirect_tqdm():
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
            print(MESSAGE, file=sys.stderr)
            sys.exit(130)
        finally:
            signal.signal(signal.SIGINT, previous)

    return wrapper
