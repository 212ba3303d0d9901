"""Ctrl-C ends a stage with one line and exit status 130 from its first line on, imports included.

Each stage script imports this module first (standard library only: it must not wait for torch). Until
:func:`freqbias.cli.run_stage` starts the stage's ``main`` (which turns Ctrl-C back into
``KeyboardInterrupt``, so that atomic writes clean up), SIGINT prints the line and exits at once:
nothing has been written yet."""

from __future__ import annotations

import os
import signal
import sys

MESSAGE = "interrupted: nothing half-written was kept"


def quiet_exit(signum: int, frame: object) -> None:
    """SIGINT handler: the one line, then exit 130 without unwinding a half-finished import."""
    try:
        sys.stderr.write(MESSAGE + "\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def install() -> None:
    """Make SIGINT end the process with :data:`MESSAGE` and status 130 (main thread only)."""
    try:
        signal.signal(signal.SIGINT, quiet_exit)
    except ValueError:  # not the main thread: leave the handler as it is
        pass


install()
