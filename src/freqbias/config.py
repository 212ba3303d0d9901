"""Params loading and validation.

Every stage reads its own section of ``params.yaml`` through :class:`Section`, which checks types,
ranges and allowed values and raises :class:`ParamError` with a one-line message naming the key,
e.g. ``train.variant.A.eps: must be >= 0, got -0.1``. Stage scripts turn these errors into a non-zero
exit without a traceback (:func:`freqbias.cli.run_stage`).

Inside :func:`recording`, every Section notes the dotted key of each entry it reads (present or not):
the section readers are the schema, and :mod:`freqbias.schema` reports keys that no reader reads.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml

_MISSING = object()
_recorders: list[set[str]] = []


class ParamError(ValueError):
    """A bad or missing value in ``params.yaml``; the message names the key."""


class DataError(RuntimeError):
    """Missing, corrupt or unreadable data or checkpoint files; the message says how to fix it."""


class MissingParam(ParamError):
    """A required key or section absent from the params; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def unknown_key(path: str, known: Iterable[str]) -> ParamError:
    """The error for key ``path`` (dotted) that is not one of its parent's ``known`` keys, naming
    the closest known key when one is close (``difflib.get_close_matches``)."""
    name = path.rpartition(".")[2]
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    return ParamError(f"{path}: unknown key" + (f"; did you mean {close[0]}?" if close else ""))


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the dotted key of every params entry any :class:`Section` reads inside the block."""
    keys: set[str] = set()
    _recorders.append(keys)
    try:
        yield keys
    finally:
        _recorders.remove(keys)


def _note(key: str) -> None:
    for keys in _recorders:
        keys.add(key)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` (a mapping) or raise :class:`ParamError`."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path}: params file not found (run from the repository root)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(params, dict):
        raise ParamError(f"{path}: top level must be a mapping")
    return params


class Section:
    """Typed, validated access to one section of the params, e.g. ``Section(params, "train")``."""

    def __init__(self, params: Mapping[str, Any], name: str):
        node: Any = params
        parts = name.split(".")
        for i, part in enumerate(parts):
            path = ".".join(parts[:i + 1])
            _note(path)
            if not isinstance(node, Mapping) or part not in node:
                raise MissingParam(path, f"{name}: section missing from params.yaml")
            node = node[part]
        if not isinstance(node, Mapping):
            raise ParamError(f"{name}: must be a mapping, got {node!r}")
        self.name = name
        self.data: Mapping[str, Any] = node

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def sub(self, key: str, default: Any = _MISSING) -> "Section":
        """The nested section ``<name>.<key>`` (``default``, a mapping, when absent)."""
        value = self.raw(key, default)
        if not isinstance(value, Mapping):
            raise ParamError(f"{self.key(key)}: must be a mapping, got {value!r}")
        section = Section.__new__(Section)
        section.name, section.data = self.key(key), value
        return section

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        _note(self.key(key))
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise MissingParam(self.key(key), f"{self.key(key)}: missing")
        return default

    def number(self, key: str, default: Any = _MISSING, *, integer: bool = False,
               min: float | None = None, max: float | None = None, strict_min: bool = False,
               optional: bool = False) -> Any:
        """A number (``int`` when ``integer``) within ``[min, max]`` (``(min, max]`` if ``strict_min``)."""
        value = self.raw(key, default)
        if value is None and optional:
            return None
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = "an integer" if integer else "a number"
            raise ParamError(f"{self.key(key)}: must be {want}, got {value!r}")
        if min is not None and (value <= min if strict_min else value < min):
            raise ParamError(f"{self.key(key)}: must be {'>' if strict_min else '>='} {min}, got {value}")
        if max is not None and value > max:
            raise ParamError(f"{self.key(key)}: must be <= {max}, got {value}")
        return int(value) if integer else float(value)

    def integer(self, key: str, default: Any = _MISSING, **kw: Any) -> int:
        return self.number(key, default, integer=True, **kw)

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ParamError(f"{self.key(key)}: must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: Any = _MISSING, *, optional: bool = False) -> str | None:
        value = self.raw(key, default)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise ParamError(f"{self.key(key)}: must be a non-empty string, got {value!r}")
        return value

    def choice(self, key: str, allowed: Iterable[str], default: Any = _MISSING) -> str:
        allowed = list(allowed)
        value = self.raw(key, default)
        if value not in allowed:
            raise ParamError(f"{self.key(key)}: unknown value {value!r}; allowed: {', '.join(map(str, allowed))}")
        return value

    def choices(self, key: str, allowed: Iterable[str], default: Any = _MISSING) -> list[str]:
        """A non-empty list of distinct values, each from ``allowed``."""
        allowed = list(allowed)
        values = self.raw(key, default)
        if not isinstance(values, list) or not values:
            raise ParamError(f"{self.key(key)}: must be a non-empty list, got {values!r}")
        for v in values:
            if v not in allowed:
                raise ParamError(f"{self.key(key)}: unknown value {v!r}; allowed: {', '.join(map(str, allowed))}")
        if len(set(values)) != len(values):
            raise ParamError(f"{self.key(key)}: values must be distinct, got {values!r}")
        return values

    def numbers(self, key: str, default: Any = _MISSING, *, length: int | None = None,
                integer: bool = False, min: float | None = None) -> list:
        values = self.raw(key, default)
        if not isinstance(values, (list, tuple)) or (length is not None and len(values) != length):
            shape = f"a list of {length} numbers" if length else "a list of numbers"
            raise ParamError(f"{self.key(key)}: must be {shape}, got {values!r}")
        kinds = (int,) if integer else (int, float)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, kinds) or (min is not None and v < min):
                bound = f" >= {min}" if min is not None else ""
                kind = "an integer" if integer else "a number"
                raise ParamError(f"{self.key(key)}: every entry must be {kind}{bound}, got {v!r}")
        return [int(v) if integer else float(v) for v in values]
