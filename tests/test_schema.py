"""Strict params: the section readers are the schema; unknown keys are named with the closest known key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from freqbias.config import ParamError, Section, load_params, recording
from freqbias.profiles import flatten
from freqbias.schema import first_unknown, validate_params

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")


def _rename(node: dict, old: str, new: str) -> None:
    """Rename key ``old`` to ``new`` in place, keeping its position in the file order."""
    items = [(new if k == old else k, v) for k, v in node.items()]
    node.clear()
    node.update(items)


def test_sections_record_every_key_they_read_present_or_not():
    params = {"train": {"attack": {"steps": 5}}}
    with recording() as keys:
        Section(params, "train.attack").integer("steps")
        Section(params, "train").sub("attack").raw("alpha", None)
        Section(params, "train").sub("augment", {}).boolean("hflip", True)
    assert keys == {"train", "train.attack", "train.attack.steps", "train.attack.alpha", "train.augment",
                    "train.augment.hflip"}
    Section(params, "train").raw("outside", None)  # nothing is recorded outside the block
    assert "train.outside" not in keys


def test_the_default_params_are_valid_and_every_key_is_read():
    validate_params(PARAMS)
    from freqbias.schema import _read_all

    with recording() as keys:
        _read_all(PARAMS)
    assert set(flatten(PARAMS)) <= keys


@pytest.mark.parametrize("edit,message", [
    (lambda p: _rename(p["train"]["variant"]["A"], "alpha", "alhpa"),
     "train.variant.A.alhpa: unknown key; did you mean alpha?"),
    (lambda p: p["train"]["variant"].update(X={}), "train.variant.X: unknown key"),
    (lambda p: p["train"]["variant"]["R"].update(scale=[1, 1]), "train.variant.R.scale: unknown key"),
    (lambda p: _rename(p["masks"], "dataset", "datset"), "masks.datset: unknown key; did you mean dataset?"),
    (lambda p: _rename(p, "train", "trian"), "trian: unknown key; did you mean train?"),
    (lambda p: p.update(bogus={"a": 1}), "bogus: unknown key"),
    (lambda p: p["data"]["planted"].update(sed=1), "data.planted.sed: unknown key; did you mean seed?"),
    (lambda p: p["aggregate"]["probe"].update(max_iters=5),
     "aggregate.probe.max_iters: unknown key; did you mean max_iter?"),
    (lambda p: p["report"].update(zzz=1), "report.zzz: unknown key"),
    (lambda p: p["fetch"].update(checkpoints=[{"name": "m", "arch": "small_cnn", "url": "m.pt", "sah256": "0" * 64}]),
     "fetch.checkpoints[0].sah256: unknown key; did you mean sha256?"),
    (lambda p: p["train"].update(seeds=[]), "train.seeds: must list at least one seed, got []"),
    (lambda p: p["train"].update(variants=[]), "train.variants: must be a non-empty list, got []"),
    (lambda p: p["train"].update(variants=["N", "T"]),
     "train.variants: must include N and A (N is the reference of every difference, A the adversarial model; "
     "both pick the single images), missing A"),
    (lambda p: p["train"].update(variants=["S"]), "train.variants: must include N and A (N is the reference of "
     "every difference, A the adversarial model; both pick the single images), missing N, A"),
    # a missing required key whose close sibling is a valid key is reported missing, not as a typo
    (lambda p: p["masks"]["single"].pop("tol"), "masks.single.tol: missing"),
    (lambda p: _rename(p["masks"]["single"], "tol", "tl"), "masks.single.tl: unknown key; did you mean tol?"),
])
def test_validate_params_names_the_first_bad_key(edit, message):
    params = copy.deepcopy(PARAMS)
    edit(params)
    with pytest.raises(ParamError) as info:
        validate_params(params)
    assert str(info.value) == message


def test_unknown_keys_are_reported_in_file_order():
    params = copy.deepcopy(PARAMS)
    params["data"]["zz_first"] = 1
    params["report"]["aa_second"] = 1
    with pytest.raises(ParamError, match=r"^data\.zz_first: unknown key"):
        validate_params(params)


def test_first_unknown_walks_mappings_not_lists():
    params = {"a": {"b": {"c": 1, "d": [{"x": 1}]}}}
    assert first_unknown(params, {"a", "a.b", "a.b.c", "a.b.d"}) is None
    assert str(first_unknown(params, {"a", "a.b", "a.b.d"})) == "a.b.c: unknown key"
    assert str(first_unknown({"a": {"bb": 1}}, {"a", "a.b"})) == "a.bb: unknown key; did you mean b?"
