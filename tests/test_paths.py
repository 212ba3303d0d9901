"""freqbias.paths agrees with dvc.yaml, which repeats the layout as strings: expand each stage's templates
for a sample model and compare them with what the paths module says (so the two cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from freqbias import paths

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
VARIANT, SEED, EXTERNAL = "T", 3, "ext"  # a sample model; any would do


def expand(text: str, values: dict[str, object]) -> str:
    """Substitute dvc.yaml's ``${...}`` templates; fail on one that is not in ``values``."""
    out = re.sub(r"\$\{([^}]+)\}", lambda m: str(values[m.group(1)]), text)
    assert "${" not in out, out
    return out


def entries(body: dict, key: str, values: dict[str, object]) -> list[str]:
    """A stage's deps / outs / metrics / plots as expanded path strings (``path: {options}`` -> path)."""
    return [expand(e if isinstance(e, str) else next(iter(e)), values) for e in body.get(key, [])]


def p(path: Path) -> str:
    return path.as_posix()


def test_model_names():
    assert paths.model_name("N", 0) == "N-s0" and paths.model_name(VARIANT, SEED) == "T-s3"
    assert paths.external_name("ext") == "external/ext"
    assert paths.checkpoint(paths.external_name("ext")).parent == paths.EXTERNAL
    assert paths.mask_file("N-s0", "single", Path("/x")) == Path("/x/masks/N-s0/single.pt")
    with pytest.raises(ValueError, match="mask kind 'foo'"):
        paths.mask_file("N-s0", "foo")


def test_fetch_outs():
    assert set(entries(STAGES["fetch"], "outs", {})) == {p(paths.DATA), p(paths.EXTERNAL)}
    assert p(paths.split_file("val")).startswith(p(paths.DATA) + "/")
    assert p(paths.manifest_file()).startswith(p(paths.DATA) + "/")


def test_train_outs():
    body, name = STAGES["train"], paths.model_name(VARIANT, SEED)
    values = {"item.variant": VARIANT, "item.seed": SEED}
    assert f"--variant {VARIANT} --seed {SEED}" in expand(body["cmd"], values)
    assert entries(body, "outs", values) == [p(paths.checkpoint(name))]
    assert entries(body, "metrics", values) == [p(paths.train_metrics(name))]
    assert entries(body, "plots", values) == [p(paths.train_history(name))]
    assert p(paths.DATA) in entries(body, "deps", values)


def test_masks_outs():
    body, name = STAGES["masks"], paths.model_name(VARIANT, SEED)
    values = {"item.variant": VARIANT, "item.seed": SEED}
    assert f"--model {name} --seed {SEED}" in expand(body["cmd"], values)
    assert entries(body, "outs", values) == [p(paths.mask_dir(name))]
    assert entries(body, "metrics", values) == [p(paths.mask_metrics(name))]
    deps = entries(body, "deps", values)
    assert {p(paths.checkpoint(name)), p(paths.selection_file(SEED)), p(paths.DATA)} <= set(deps)
    assert p(paths.checkpoint(paths.model_name("A", SEED))) not in deps  # A reaches it through the selection only


def test_evaluate_and_select_outs():
    body, name = STAGES["evaluate"], paths.model_name(VARIANT, SEED)
    values = {"item.variant": VARIANT, "item.seed": SEED}
    assert f"--variant {VARIANT} --seed {SEED}" in expand(body["cmd"], values)
    assert entries(body, "metrics", values) == [p(paths.eval_metrics(name))]
    assert {p(paths.checkpoint(name)), p(paths.DATA)} <= set(entries(body, "deps", values))
    body, values = STAGES["select"], {"item.seed": SEED}
    assert f"--seed {SEED}" in expand(body["cmd"], values)
    assert entries(body, "outs", values) == [p(paths.selection_file(SEED))]
    deps = entries(body, "deps", values)
    for model in (paths.model_name("N", SEED), paths.model_name("A", SEED)):
        assert p(paths.checkpoint(model)) in deps


def test_masks_external_outs():
    body = STAGES["masks-external"]["do"]
    values = {"item.name": EXTERNAL, "train.seeds[0]": SEED}
    name = paths.external_name(EXTERNAL)
    assert f"--model {name} --seed {SEED}" in expand(body["cmd"], values)
    assert entries(body, "outs", values) == [p(paths.mask_dir(name))]
    assert entries(body, "metrics", values) == [p(paths.mask_metrics(name))]
    deps = entries(body, "deps", values)
    assert {p(paths.EXTERNAL), p(paths.DATA), p(paths.selection_file(SEED))} <= set(deps)


def test_aggregate_and_report():
    deps = entries(STAGES["aggregate"], "deps", {})
    assert {p(paths.DATA), p(paths.MODELS), p(paths.MASKS), p(paths.METRICS), p(paths.SELECTIONS)} <= set(deps)
    outs = entries(STAGES["aggregate"], "outs", {}) + entries(STAGES["aggregate"], "metrics", {})
    assert outs and all(o.startswith(p(paths.RESULTS) + "/") for o in outs)
    report_deps = [d for d in entries(STAGES["report"], "deps", {}) if not d.startswith(("src/", "stages/"))]
    assert report_deps and set(report_deps) <= set(outs)
    assert set(entries(STAGES["report"], "outs", {})) == {p(paths.report_file()), p(paths.figures_dir())}


def test_train_stage_tracks_the_shared_train_params_and_its_variant_entry():
    """A train stage depends on every shared ``train`` key (listed one by one: a new key must join the list,
    or DVC would not see it), on the base augmentation and on its own variant's entry
    ``train.variant.${item.variant}``; not on ``variants`` / ``seeds`` (adding a variant trains only it),
    other variants' entries or ``eval`` (the evaluate stage's)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    tracked = STAGES["train"]["params"]
    assert "train" not in tracked and "model" in tracked and "train.variant.${item.variant}" in tracked
    shared = set(params["train"]) - {"variants", "seeds", "variant", "eval"}
    assert {k.removeprefix("train.") for k in tracked if k.startswith("train.")} == shared | {"variant.${item.variant}"}
    assert STAGES["evaluate"]["params"] == ["train.eval"]  # its own attacks: an eps experiment re-evaluates A alone
