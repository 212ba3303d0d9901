"""A damaged ``dvc.lock`` set aside before ``dvc repro`` (``make repro`` runs ``python -m freqbias.lockfile``).

DVC rewrites ``dvc.lock`` in place after each stage; a Ctrl-C during that write can leave it empty or cut
short, and then every ``dvc repro`` and ``dvc status`` stops with "'dvc.lock' validation failed". A lock
file that is empty, is not YAML, has no ``schema`` / ``stages`` mapping or fails DVC's own lock file
schema is moved to ``dvc.lock.damaged-<UTC time>`` (kept, git-ignored) with one line saying so, and git
HEAD's ``dvc.lock`` (when it has a readable one) takes its place. The ``dvc repro`` that follows checks
every stage against it: a stage whose deps, params and outputs still match HEAD's entry is skipped, another
finished stage is restored from DVC's run-cache, the rest rerun. DVC keeps no run-cache entry for a stage
with a ``persist`` or a ``cache: false`` output (not a metric or plot): select, aggregate and report. A
missing or readable lock file is left alone. The standard library, PyYAML and git only, plus DVC's schema
when DVC is installed; no stage depends on this module."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

LOCK = Path("dvc.lock")
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster on a 300 KB lock


def lock_problem(text: str) -> str | None:
    """Why DVC cannot read a lock file with this ``text`` (a few words), or None when it can."""
    if not text.strip():
        return "empty"
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return f"not YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}{where}"
    if not isinstance(data, dict) or "schema" not in data or not isinstance(data.get("stages"), dict):
        return "no schema/stages mapping"
    return dvc_schema_problem(data)


def dvc_schema_problem(data: dict[str, Any]) -> str | None:
    """The first error of DVC's lock file schema on parsed ``data``, or None (also when DVC is missing)."""
    try:
        import voluptuous
        from dvc.schema import COMPILED_LOCKFILE_SCHEMA
    except ImportError:
        return None
    try:
        COMPILED_LOCKFILE_SCHEMA(data)
    except voluptuous.MultipleInvalid as exc:
        where = " -> ".join(str(p) for p in exc.path)
        return f"fails DVC's lock file schema: {exc.msg}" + (f" in {where}" if where else "")
    return None


def file_problem(path: Path) -> str | None:
    """:func:`lock_problem` of the file at ``path``; None when there is no such file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return lock_problem(text)


def damaged_path(path: Path, now: datetime) -> Path:
    """``<name>.damaged-<UTC time>`` beside ``path``, with ``-2``, ``-3``, ... when that name is taken."""
    stem = path.with_name(f"{path.name}.damaged-{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}")
    candidate, n = stem, 1
    while candidate.exists():
        n += 1
        candidate = stem.with_name(f"{stem.name}-{n}")
    return candidate


def set_aside(path: Path, now: datetime | None = None) -> tuple[str, Path] | None:
    """Move a damaged lock file at ``path`` to :func:`damaged_path`: (its problem, where it went), or None
    when the file is missing or readable (nothing moved)."""
    problem = file_problem(path)
    if problem is None:
        return None
    dest = damaged_path(path, now or datetime.now(timezone.utc))
    path.rename(dest)
    return problem, dest


def head_lock(path: Path) -> str | None:
    """The text of ``path`` at git HEAD when git has it and :func:`lock_problem` finds none, else None."""
    try:
        shown = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                               capture_output=True, text=True)
    except OSError:  # no git
        return None
    if shown.returncode != 0 or lock_problem(shown.stdout) is not None:
        return None
    return shown.stdout


def recover(path: Path, now: datetime | None = None) -> str | None:
    """Set a damaged lock file at ``path`` aside and put git HEAD's copy in its place (:func:`head_lock`):
    the one line that says what was done, or None when the file is missing or readable."""
    moved = set_aside(path, now)
    if moved is None:
        return None
    problem, dest = moved
    said = f"{path} was damaged ({problem}; an interrupt while DVC wrote it?): moved it to {dest}"
    head = head_lock(path)
    if head is None:
        return f"{said}; dvc repro restores finished stages from DVC's run-cache and reruns the rest"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(head)
    os.replace(tmp, path)
    return (f"{said} and put git HEAD's {path.name} in its place; dvc repro skips the stages that match it, "
            "restores others from DVC's run-cache and reruns the rest")


def main(argv: list[str] | None = None) -> int:
    """``python -m freqbias.lockfile [LOCK]``: :func:`recover` a damaged lock file (default ``dvc.lock``) with
    one line on stderr; exit status 0, or 1 with one line when it cannot be moved."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else LOCK
    try:
        said = recover(path)
    except OSError as exc:
        print(f"error: {path} is damaged but could not be moved aside: {exc}", file=sys.stderr)
        return 1
    if said is not None:
        print(said, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
