"""Profiles: every overlay yields valid params, and a profile whose data is missing stops at fetch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from freqbias.config import ParamError, load_params
from freqbias.profiles import apply, deep_merge, flatten, load_profile, set_args
from freqbias.schema import validate_params

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))


def test_deep_merge_replaces_leaves_and_keeps_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 3}
    merged = deep_merge(base, {"a": {"c": [9]}})
    assert merged == {"a": {"b": 1, "c": [9]}, "d": 3}
    assert base["a"]["c"] == [1, 2], "the base must not be modified"


def test_flatten_gives_dotted_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": None}) == {"a.b": 1, "a.c.d": [1], "e": None}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_overlays_only_known_keys_and_validates(name: str, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    default = load_params(REPO / "params.yaml")
    overlay = load_profile(name)
    unknown = set(flatten(overlay)) - set(flatten(default))
    assert not unknown, f"profile {name} sets keys the default does not have: {sorted(unknown)}"
    validate_params(deep_merge(default, overlay))  # the data folders need not exist for validation


def test_base_key_chains_profiles(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    merged = load_profile("paper-resnet18")
    assert merged["model"]["arch"] == "resnet18" and merged["data"]["dataset"] == "imagenette"


def test_set_args_round_trip_through_yaml(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    args = set_args("tiny")
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[0::2] == ["-S"] * len(pairs)
    assert yaml.safe_load(pairs["train.variants"]) == load_profile("tiny")["train"]["variants"]


def test_unknown_profile_names_the_known_ones(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(ParamError, match="allowed: .*paper"):
        load_profile("nope")


def test_paper_profile_without_imagenette_stops_at_fetch_with_a_hint(tmp_path: Path) -> None:
    # not __pycache__: a parallel worker may be writing it (pytest-xdist)
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply("paper", tmp_path / "params.yaml", tmp_path / "profiles")
    proc = subprocess.run([sys.executable, "stages/fetch.py"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:] and "data.root" in lines[-1] and "imagenette" in lines[-1]
