"""Atomic writes and the one read path of every artifact.

Writes: every output goes to a temporary file beside its target and is renamed into place,
so an interrupted stage never leaves a half-written file for DVC to cache. Outputs get the mode of any
newly created file, ``0o666 & ~umask`` (0644 under umask 022), not ``tempfile.mkstemp``'s 0600.
Also the one file hash, :func:`sha256_file`.

Reads: :func:`load_torch`, :func:`load_json` and :func:`load_csv` read checkpoints, prepared splits, masks,
the manifest, metrics, result tables and figure data; a missing, truncated or malformed file is a
:class:`~freqbias.config.DataError` of one line naming the file and the stage that rewrites it
(``dvc repro -f <stage>``, :func:`freqbias.paths.owner_stage`), which the stages print with exit status 2."""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import io
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from . import paths
from .config import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success only.

    The temporary file is created with mode ``0o666`` filtered by the umask (and the folder's default
    ACL, if any), as ``open(path, "w")`` would, so the renamed output is readable by whom it should be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp_path = _create_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files ``.<name>.<8 hex>.tmp`` that a killed write of ``path`` left beside it
    (a kill skips the cleanup); the paths removed. Called by every write of ``path``."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")
    removed = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if pattern.fullmatch(p.name)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


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


def rewrite_hint(path: str | os.PathLike) -> str:
    """``"; rewrite it with `dvc repro -f <stage>`"`` for a file of the layout, else ``""``."""
    stage = paths.owner_stage(path)
    return f"; rewrite it with `dvc repro -f {stage}`" if stage else ""


def missing_error(path: str | os.PathLike, what: str = "file") -> DataError:
    """The one line for a missing input: which stage writes it."""
    stage = paths.owner_stage(path)
    how = f"run the {stage.split('@')[0]} stage first: `dvc repro {stage}`" if stage else "run the stage that writes it"
    return DataError(f"{path}: {what} not found ({how})")


def bad_file_error(path: str | os.PathLike, problem: str) -> DataError:
    """The one line for an unreadable or malformed input, naming the stage that rewrites it."""
    return DataError(f"{path}: {' '.join(problem.split())}{rewrite_hint(path)}")


def _reason(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


def _check_type(obj: Any, expected: type | None, path: Path, what: str) -> Any:
    if expected is not None and not isinstance(obj, expected):
        raise bad_file_error(path, f"malformed {what}: holds a {type(obj).__name__}, expected a {expected.__name__}")
    return obj


def load_torch(path: str | os.PathLike, what: str = "file", expected: type | None = dict,
               map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` of an artifact; :class:`DataError` (one line) when it is missing,
    truncated or unreadable, or is not an ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise missing_error(path, what)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, garbage, unpickling: all "unreadable"
        raise bad_file_error(path, f"not a readable {what}, truncated or malformed ({_reason(exc)})") from None
    return _check_type(obj, expected, path, what)


def load_json(path: str | os.PathLike, what: str = "JSON file", expected: type | None = None) -> Any:
    """A JSON artifact; :class:`DataError` (one line) when it is missing, truncated or malformed, or is
    not an ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise missing_error(path, what)
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise bad_file_error(path, f"not a readable {what}, truncated or malformed ({_reason(exc)})") from None
    return _check_type(obj, expected, path, what)


class Row(dict):
    """A table row read from a file (:func:`load_csv`): a dict of text cells that knows where
    it came from, ``where`` (``"<file>: row <i>"``) and ``hint`` (how to rewrite the file). A missing
    column, or a cell that :func:`freqbias.na.cell` cannot read as a number, is a one-line error naming both."""

    def __init__(self, cells: Mapping[str, Any], where: str, hint: str = "") -> None:
        super().__init__(cells)
        self.where, self.hint = where, hint

    def __missing__(self, column: str) -> Any:
        raise self.error(f"no column {column!r}")

    def error(self, problem: str) -> Exception:
        return DataError(f"{self.where}: {problem}{self.hint}")


def load_csv(path: str | os.PathLike, what: str = "table") -> list[Row]:
    """A table written by :func:`save_csv`: its rows as :class:`Row` dicts (text cells; a
    missing column or a non-numeric cell read as a number is an error naming the file, row and column).
    :class:`DataError` (one line) when it is missing, truncated (no final newline, a short row) or has
    no row."""
    path = Path(path)
    if not path.is_file():
        raise missing_error(path, what)
    hint = rewrite_hint(path)
    try:
        text = path.read_text()
        if not text.endswith("\n"):
            raise ValueError("no final newline")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = []
        for i, row in enumerate(reader, 1):
            if None in row or None in row.values():
                raise ValueError(f"row {i} has {'more' if None in row else 'fewer'} cells than the header")
            rows.append(Row(row, where=f"{path}: row {i}", hint=hint))
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise bad_file_error(path, f"not a readable {what}, truncated or malformed ({exc})") from None
    if not rows:
        raise bad_file_error(path, f"malformed {what}: no rows")
    return rows
