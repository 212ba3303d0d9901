"""The whole of ``params.yaml``, checked before a stage does any work.

There is no list of keys here: the schema is what the section readers read. :func:`validate_params`
runs every reader (each stage's ``from_params``) while :func:`freqbias.config.recording` notes each
key a :class:`~freqbias.config.Section` reads, then walks the params and reports the first key that
no reader read, with the closest known key::

    train.variant.A.alhpa: unknown key; did you mean alpha?

Readers therefore read every key of their section unconditionally (with a default where a key may be
left out), so that a valid key is never reported. A typo of a required key (``masks.datset`` for
``masks.dataset``) is reported as the unknown key, not as the required one missing.

The readers are imported inside :func:`_read_all`, and dvc.yaml deliberately does not list them as deps
of every stage (``tests/test_dependencies.py``): they can stop a stage, never change its outputs.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Mapping

from .config import MissingParam, ParamError, recording, unknown_key


def _read_all(params: Mapping[str, Any]) -> None:
    """Run every section reader on ``params`` (imported here: the readers' modules import config)."""
    from .budget_curve import LadderConfig
    from .checkpoints import checkpoints_from_params
    from .controls import ControlsConfig
    from .data import DataConfig
    from .runs import AggregateConfig
    from .stage_masks import MasksConfig
    from .stage_report import ReportConfig
    from .stage_selection import SelectConfig
    from .training import TrainConfig

    size = DataConfig.from_params(params).image_size  # prepared images are resized to data.image_size
    checkpoints_from_params(params)
    TrainConfig.from_params(params)
    MasksConfig.from_params(params)
    if "budgets" in params:
        LadderConfig.from_params(params)
    ControlsConfig.from_params(params)
    SelectConfig.from_params(params)
    AggregateConfig.from_params(params, (size, size))
    ReportConfig.from_params(params)


def _node(params: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` ("" = the root)."""
    node: Any = params
    for part in filter(None, path.split(".")):
        node = node[part]
    return node


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def first_unknown(params: Mapping[str, Any], known: set[str], prefix: str = "") -> ParamError | None:
    """The error for the first key (depth first, in file order) under ``prefix`` that is not in
    ``known`` (dotted keys); nested mappings of known keys are walked, lists are not."""
    node = _node(params, prefix)
    for key, value in node.items():
        path = _join(prefix, key)
        if path not in known:
            depth = prefix.count(".") + 1 if prefix else 0
            siblings = {k.split(".")[depth] for k in known if k.startswith(prefix + "." if prefix else "")}
            return unknown_key(path, sorted(siblings))
        if isinstance(value, Mapping):
            error = first_unknown(params, known, path)
            if error is not None:
                return error
    return None


def validate_params(params: Mapping[str, Any]) -> None:
    """Raise :class:`ParamError` (one line, naming the key) on the first bad value or unknown key."""
    missing = None
    with recording() as known:
        try:
            _read_all(params)
        except MissingParam as exc:
            missing = exc
    if missing is not None:
        _raise_typo_of(params, missing, known)
        raise missing
    error = first_unknown(params, known)
    if error is not None:
        raise error


def _raise_typo_of(params: Mapping[str, Any], missing: MissingParam, known: set[str]) -> None:
    """When a required key is missing but an unread sibling is close to it (``datset`` for
    ``dataset``), raise that sibling's unknown-key error instead, provided the params then validate
    with the sibling's value under the required key and the sibling is still unknown (so ``tol_gap``
    is never taken for a typo of a missing ``tol``)."""
    parent, _, name = missing.key.rpartition(".")
    node = _node(params, parent)
    unread = {str(k): k for k in node if _join(parent, k) not in known}
    close = difflib.get_close_matches(name, list(unread), n=1)
    if not close:
        return
    patched = copy.deepcopy(dict(params))
    _node(patched, parent)[name] = node[unread[close[0]]]
    try:
        validate_params(patched)
    except ParamError as exc:
        if str(exc).startswith(f"{_join(parent, close[0])}: unknown key"):
            raise exc from None
