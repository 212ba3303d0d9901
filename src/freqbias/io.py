"""Atomic writes: every output goes to a temporary file beside its target and is renamed into place,
so an interrupted stage never leaves a half-written file for DVC to cache. Outputs get the mode of any
newly created file, ``0o666 & ~umask`` (0644 under umask 022), not ``tempfile.mkstemp``'s 0600.
Also the one file hash, :func:`sha256_file`."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success only.

    The temporary file is created with mode ``0o666`` filtered by the umask (and the folder's default
    ACL, if any), as ``open(path, "w")`` would, so the renamed output is readable by whom it should be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _create_temp(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` beside ``path``, created with mode 0o666 & ~umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically, byte for byte the same for the same ``obj``: through a file object, so
    the zip archive is not named after the (random) temporary file, and an unchanged output keeps its
    DVC hash (a rerun stage does not rerun everything after it)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Write a list of dicts as CSV (columns from the first row) atomically. Every table of the project
    is written here and read back with :class:`csv.DictReader` (all cells text; :func:`freqbias.na.cell`
    parses them): the standard library, no pandas."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (``hashlib.file_digest`` needs Python 3.11)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
