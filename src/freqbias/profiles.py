"""Profiles: named overlays on the default ``params.yaml`` (the CPU profile).

``profiles/<name>.yaml`` holds only the keys that differ from the default. Apply one either as a
DVC experiment (keeps ``dvc exp`` semantics; nothing is edited)::

    dvc exp run $(python -m freqbias.profiles set-args paper)

or by rewriting ``params.yaml`` in place (then ``dvc repro``)::

    python -m freqbias.profiles apply paper
"""

from __future__ import annotations

import argparse
import copy
import shlex
from pathlib import Path
from typing import Any

import yaml

from .config import ParamError, load_params
from .io import save_text

PROFILES = Path("profiles")


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overlay``'s keys replaced recursively (lists are replaced whole)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(overlay: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in overlay.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_profile(name: str, folder: Path = PROFILES) -> dict[str, Any]:
    """The overlay of profile ``name``; a ``base: <other>`` key merges it over that profile first."""
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ParamError(f"profile: unknown profile {name!r}; allowed: {', '.join(known)}")
    overlay = yaml.safe_load(path.read_text()) or {}
    base = overlay.pop("base", None)
    return deep_merge(load_profile(base, folder), overlay) if base else overlay


def set_args(name: str, folder: Path = PROFILES) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run`` that turn the default into profile ``name``."""
    args = []
    for key, value in flatten(load_profile(name, folder)).items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        text = text.removesuffix("...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def apply(name: str, params_path: Path = Path("params.yaml"), folder: Path = PROFILES) -> None:
    """Rewrite ``params_path`` as the default with profile ``name`` merged in."""
    merged = deep_merge(load_params(params_path), load_profile(name, folder))
    header = f"# params.yaml with profile '{name}' applied (python -m freqbias.profiles apply {name})\n"
    save_text(header + yaml.safe_dump(merged, sort_keys=False), params_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["apply", "set-args"])
    parser.add_argument("profile")
    args = parser.parse_args()
    try:
        if args.command == "apply":
            apply(args.profile)
        else:
            print(" ".join(shlex.quote(a) for a in set_args(args.profile)))
    except ParamError as exc:
        raise SystemExit(f"error: {exc}")


if __name__ == "__main__":
    main()
