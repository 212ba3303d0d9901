"""Run-only settings: environment variables that change how a stage runs, never what it computes.

They are not DVC params, so changing them invalidates no stage.

| variable | values | default |
|---|---|---|
| ``FREQBIAS_PROGRESS`` | ``auto`` \\| ``1`` \\| ``0`` | ``auto``: progress bars only when stderr is a terminal |
| ``FREQBIAS_DEVICE`` | ``auto`` \\| ``cpu`` \\| ``cuda`` \\| ``cuda:N`` | ``auto``: CUDA when available, else CPU |
| ``FREQBIAS_CHUNK_SIZE`` | integer >= 1 | 128 single-image masks fitted together as one batch |
| ``FREQBIAS_MEMORY_MB`` | number > 0 | unset: no cap; else fewer images per chunk to fit this budget |

A bad value raises :class:`SettingError` naming the variable (a one-line error, exit 2, from
:func:`freqbias.cli.run_stage`, which reads them all before a stage starts).
"""

from __future__ import annotations

import math
import os
import re
import sys

import torch

PROGRESS = "FREQBIAS_PROGRESS"
DEVICE = "FREQBIAS_DEVICE"
CHUNK_SIZE = "FREQBIAS_CHUNK_SIZE"
MEMORY_MB = "FREQBIAS_MEMORY_MB"
DEFAULT_CHUNK_SIZE = 128  # cache-sized, like loops.BATCH_SIZE (160 masks: 5.7 s at 128, 6.7 s in one chunk)


class SettingError(ValueError):
    """A bad value of a ``FREQBIAS_*`` environment variable; the message names the variable."""


def _get(name: str) -> str | None:
    """The variable's value, stripped; None when unset or empty."""
    return os.environ.get(name, "").strip() or None


def progress() -> bool:
    """Whether to show progress bars (``auto``: when stderr is a terminal, so logs get no bar frames)."""
    value = (_get(PROGRESS) or "auto").lower()
    if value == "auto":
        return sys.stderr.isatty()
    if value in ("0", "1"):
        return value == "1"
    raise SettingError(f"{PROGRESS}: unknown value {value!r}; allowed: auto, 1, 0")


def device() -> torch.device:
    """The torch device to run on (``auto``: CUDA when available, else CPU)."""
    value = (_get(DEVICE) or "auto").lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if match is None:
        raise SettingError(f"{DEVICE}: unknown value {value!r}; allowed: auto, cpu, cuda, cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(match.group(1) or 0) >= count:
        raise SettingError(f"{DEVICE}: {value} requested but {count} CUDA device(s) are available")
    return torch.device(value)


def fast_layout(device: torch.device) -> torch.memory_format:
    """The memory format to run convolutions in: channels-last on a CPU, where oneDNN's convolutions, BN
    and pooling run natively in it (``benchmarks/bench.py``: about 10-15 % faster training steps, up to
    2x for the frozen nets of mask fitting with BN folded); the default layout elsewhere (GPUs: not
    measured, and fp32 channels-last is not cuDNN's fast path). Results agree up to float rounding."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def chunk_size() -> int:
    """How many single-image masks are fitted together as one batch. Each mask depends on its own image
    only, so results depend on it only through float rounding (which can move an image's stopping step)."""
    value = _get(CHUNK_SIZE)
    if value is None:
        return DEFAULT_CHUNK_SIZE
    if not re.fullmatch(r"\d+", value) or int(value) < 1:
        raise SettingError(f"{CHUNK_SIZE}: must be an integer >= 1, got {value!r}")
    return int(value)


def memory_mb() -> float | None:
    """Memory budget (MiB) that caps the single-image chunk size; None = no cap."""
    value = _get(MEMORY_MB)
    if value is None:
        return None
    try:
        mb = float(value)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise SettingError(f"{MEMORY_MB}: must be a number > 0 (MiB), got {value!r}")
    return mb


def check() -> None:
    """Read every setting, so that a bad value stops a stage before any work."""
    progress(), device(), chunk_size(), memory_mb()
