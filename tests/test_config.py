"""Params validation (Section, load_params), clean stage failures (run_stage and the stage scripts),
and atomic writes (freqbias.io)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import run_script
from freqbias.cli import run_stage
from freqbias.config import DataError, ParamError, Section, load_params
from freqbias.io import atomic_path, load_json, save_csv, save_json, save_text, save_torch

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# Section

PARAMS = {
    "train": {
        "lr": 0.003, "epochs": 4, "flag": True, "name": "adam", "none": None, "variants": ["N", "A"],
        "eps": [0.01, 0.03], "attack": {"eps": 0.1, "steps": 5},
    },
    "scalar": 3,
}


def test_section_reads_values():
    sec = Section(PARAMS, "train")
    assert sec.number("lr") == 0.003 and isinstance(sec.number("epochs"), float)
    assert sec.integer("epochs") == 4 and isinstance(sec.integer("epochs"), int)
    assert sec.number("missing", 1.5) == 1.5
    assert sec.number("none", optional=True) is None
    assert sec.boolean("flag") is True and sec.string("name") == "adam"
    assert sec.string("none", optional=True) is None
    assert sec.choice("name", ["sgd", "adam"]) == "adam"
    assert sec.choices("variants", "NAS") == ["N", "A"]
    assert sec.numbers("eps", length=2, min=0) == [0.01, 0.03]
    assert Section(PARAMS, "train.attack").integer("steps") == 5
    assert sec.sub("attack").number("eps") == 0.1


@pytest.mark.parametrize("call,message", [
    (lambda s: s.number("name"), r"^train\.name: must be a number, got 'adam'$"),
    (lambda s: s.number("flag"), r"^train\.flag: must be a number, got True$"),
    (lambda s: s.number("none"), r"^train\.none: must be a number, got None$"),
    (lambda s: s.number("lr", min=0.01), r"^train\.lr: must be >= 0\.01, got 0\.003$"),
    (lambda s: s.number("epochs", min=4, strict_min=True), r"^train\.epochs: must be > 4, got 4$"),
    (lambda s: s.number("epochs", max=3), r"^train\.epochs: must be <= 3, got 4$"),
    (lambda s: s.integer("lr"), r"^train\.lr: must be an integer, got 0\.003$"),
    (lambda s: s.number("nope"), r"^train\.nope: missing$"),
    (lambda s: s.boolean("name"), r"^train\.name: must be true or false, got 'adam'$"),
    (lambda s: s.boolean("epochs"), r"^train\.epochs: must be true or false, got 4$"),
    (lambda s: s.string("epochs"), r"^train\.epochs: must be a non-empty string, got 4$"),
    (lambda s: s.string("none"), r"^train\.none: must be a non-empty string, got None$"),
    (lambda s: s.choice("name", ["sgd", "rmsprop"]), r"^train\.name: unknown value 'adam'; allowed: sgd, rmsprop$"),
    (lambda s: s.choices("variants", ["N", "S"]), r"^train\.variants: unknown value 'A'; allowed: N, S$"),
    (lambda s: s.choices("name", ["adam"]), r"^train\.name: must be a non-empty list, got 'adam'$"),
    (lambda s: s.numbers("eps", length=3), r"^train\.eps: must be a list of 3 numbers, got \[0\.01, 0\.03\]$"),
    (lambda s: s.numbers("lr"), r"^train\.lr: must be a list of numbers, got 0\.003$"),
    (lambda s: s.numbers("eps", min=0.02), r"^train\.eps: every entry must be a number >= 0\.02, got 0\.01$"),
    (lambda s: s.numbers("eps", integer=True), r"^train\.eps: every entry must be an integer, got 0\.01$"),
    (lambda s: s.numbers("variants"), r"^train\.variants: every entry must be a number, got 'N'$"),
    (lambda s: s.sub("attack").integer("eps"), r"^train\.attack\.eps: must be an integer, got 0\.1$"),
    (lambda s: s.sub("lr"), r"^train\.lr: must be a mapping, got 0\.003$"),
])
def test_section_errors_name_the_key(call, message):
    with pytest.raises(ParamError, match=message):
        call(Section(PARAMS, "train"))


def test_section_choices_must_be_distinct():
    with pytest.raises(ParamError, match=r"^x\.v: values must be distinct"):
        Section({"x": {"v": ["N", "N"]}}, "x").choices("v", "NA")


@pytest.mark.parametrize("name,message", [
    ("model", r"^model: section missing from params\.yaml$"),
    ("train.augment", r"^train\.augment: section missing"),
    ("scalar", r"^scalar: must be a mapping, got 3$"),
])
def test_section_missing_or_not_a_mapping(name, message):
    with pytest.raises(ParamError, match=message):
        Section(PARAMS, name)


def test_errors_are_value_errors_and_data_errors_runtime_errors():
    assert issubclass(ParamError, ValueError) and issubclass(DataError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# load_params


def test_load_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    assert load_params(path) == {"train": {"lr": 0.1}}
    path.write_text("")
    assert load_params(path) == {}


def test_load_params_default_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert {"data", "fetch", "model", "train"} <= set(params)


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ParamError, match=r"params\.yaml: params file not found"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("text,message", [
    ("train: [1, 2\n", r"not valid YAML \(\w+Error\)"),
    ("train:\n  lr: 1\n lr2: 2\n", "not valid YAML"),
    ("- 1\n- 2\n", "top level must be a mapping"),
])
def test_load_params_bad_yaml(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamError, match=message) as info:
        load_params(path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# run_stage


def _raise(exc: BaseException):
    def main() -> None:
        raise exc

    return main


@pytest.fixture
def in_project(tmp_path, monkeypatch) -> Path:
    """A working directory holding a copy of the default params.yaml, which run_stage checks first."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("exc,code,line", [
    (ParamError("train.lr: must be > 0, got 0"), 2, "error: bad params: train.lr: must be > 0, got 0"),
    (DataError("data/prepared/train.pt: prepared data not found"), 2,
     "error: data/prepared/train.pt: prepared data not found"),
    (KeyboardInterrupt(), 130, "interrupted: nothing half-written was kept"),
])
def test_run_stage_turns_errors_into_one_line(capsys, in_project, exc, code, line):
    with pytest.raises(SystemExit) as info:
        run_stage(_raise(exc))()
    assert info.value.code == code
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""


def test_run_stage_checks_the_whole_params_file_before_main(capsys, in_project):
    params = yaml.safe_load((in_project / "params.yaml").read_text())
    params["report"]["dpii"] = 100
    (in_project / "params.yaml").write_text(yaml.safe_dump(params))
    calls = []
    with pytest.raises(SystemExit) as info:
        run_stage(lambda: calls.append(1))()
    assert info.value.code == 2 and calls == []
    assert capsys.readouterr().err == "error: bad params: report.dpii: unknown key; did you mean dpi?\n"


def test_run_stage_passes_other_errors_and_success_through(in_project):
    with pytest.raises(ZeroDivisionError):
        run_stage(_raise(ZeroDivisionError()))()
    calls = []
    wrapped = run_stage(lambda: calls.append(1))
    assert wrapped() is None and calls == [1]


# ---------------------------------------------------------------------------------------------
# The stage scripts, run as `python stages/<x>.py` from a copy of the repository's root


def _workdir(tmp_path: Path, edit=None) -> Path:
    """tmp_path with a copy of stages/ and params.yaml (changed by ``edit(params)``)."""
    shutil.copytree(ROOT / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if edit is not None:
        edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python <args>`` in ``cwd``, a fresh interpreter (what DVC runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def run_here(capsys):
    """:func:`conftest.run_script` with its stderr and stdout captured, shaped like :func:`_run`'s result.
    For the failures that stop a stage before any work; the tests that use :func:`_run` keep a fresh
    interpreter's exit status and stderr covered."""

    def call(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        code = run_script(cwd, *args)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return call


def _assert_clean_failure(proc: subprocess.CompletedProcess, start: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(start), proc.stderr
    assert proc.stderr.splitlines()[-1] == errors[0]


def test_train_stage_bad_params_exit_2(tmp_path):
    cwd = _workdir(tmp_path, lambda p: p["train"]["variant"]["A"].update(eps=-0.1))
    proc = _run(cwd, "stages/train.py", "--variant", "N", "--seed", "0")
    _assert_clean_failure(proc, "error: bad params: train.variant.A.eps: must be >= 0")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_train_stage_unlisted_variant_exit_2(tmp_path, run_here):
    cwd = _workdir(tmp_path)
    proc = run_here(cwd, "stages/train.py", "--variant", "X", "--seed", "0")
    _assert_clean_failure(proc, "error: bad params: train.variants: 'X' is not listed")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_train_stage_without_prepared_data_exit_2(tmp_path, run_here):
    cwd = _workdir(tmp_path)
    proc = run_here(cwd, "stages/train.py", "--variant", "N", "--seed", "0")
    _assert_clean_failure(proc, "error: data/prepared/")
    assert "dvc repro fetch" in proc.stderr


def test_fetch_stage_missing_dataset_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()

    def edit(p):
        p["data"].update(dataset="fashion_mnist", root=str(tmp_path / "empty"), download=False)

    proc = _run(_workdir(tmp_path, edit), "stages/fetch.py")
    _assert_clean_failure(proc, "error: Fashion-MNIST not found")
    assert "apt-get install dataset-fashion-mnist" in proc.stderr
    assert not (tmp_path / "data" / "prepared").exists()


STAGES = {"fetch": [], "train": ["--variant", "N", "--seed", "0"], "evaluate": ["--variant", "N", "--seed", "0"],
          "selection": ["--seed", "0"], "masks": ["--model", "N-s0", "--seed", "0"],
          "budgets": ["--model", "N-s0", "--seed", "0"],
          "controls": ["--model", "N-s0", "--seed", "0"], "yardstick": ["--seed", "0"], "aggregate": [], "report": []}


def _rename(node: dict, old: str, new: str) -> None:
    node[new] = node.pop(old)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_stops_on_an_unknown_key_before_any_work(tmp_path, run_here, stage):
    assert {p.stem for p in (ROOT / "stages").glob("*.py")} == set(STAGES)
    cwd = _workdir(tmp_path, lambda p: _rename(p["train"]["variant"]["A"], "alpha", "alhpa"))
    proc = run_here(cwd, f"stages/{stage}.py", *STAGES[stage])
    assert proc.returncode == 2
    assert proc.stderr == "error: bad params: train.variant.A.alhpa: unknown key; did you mean alpha?\n"
    assert sorted(p.name for p in cwd.iterdir()) == ["params.yaml", "stages"]  # nothing written


@pytest.mark.parametrize("edit,line", [
    (lambda p: _rename(p["masks"], "dataset", "datset"), "masks.datset: unknown key; did you mean dataset?"),
    (lambda p: p.update(bogus={"a": 1}), "bogus: unknown key"),
    (lambda p: p["train"].update(seeds=[]), "train.seeds: must list at least one seed, got []"),
    (lambda p: p["train"].update(variants=[]), "train.variants: must be a non-empty list, got []"),
    (lambda p: p["train"].update(variants=["N", "S", "T"]), "train.variants: must include N and A"),
])
def test_stage_bad_params_one_line_exit_2(tmp_path, run_here, edit, line):
    proc = run_here(_workdir(tmp_path, edit), "stages/train.py", "--variant", "N", "--seed", "0")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: bad params: {line}") and proc.stderr.count("\n") == 1, proc.stderr


def test_fetch_stage_bad_params_exit_2(tmp_path, run_here):
    proc = run_here(_workdir(tmp_path, lambda p: p["data"].update(dataset="mnist")), "stages/fetch.py")
    _assert_clean_failure(proc, "error: bad params: data.dataset: unknown value 'mnist'; allowed: fashion_mnist")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_fetch_then_train_on_tiny_planted_data(tmp_path):
    """The two stage scripts end to end on a tiny planted dataset (seconds)."""

    def edit(p):
        p["data"].update(dataset="planted", val_size=40, max_train=None)
        p["data"]["planted"].update(n_train=160, n_test=40)
        p["train"].update(variants=["N", "A"], epochs=1, batch_size=40)
        p["train"]["eval"].update(n=16, steps=1, eps=[0.01])

    cwd = _workdir(tmp_path, edit)
    proc = _run(cwd, "stages/fetch.py")
    assert proc.returncode == 0, proc.stderr
    manifest = load_json(cwd / "data/prepared/manifest.json")
    assert manifest["counts"] == {"train": 120, "val": 40, "test": 40} and manifest["num_classes"] == 4
    for split in ("train", "val", "test"):
        blob = torch.load(cwd / f"data/prepared/{split}.pt", weights_only=True)
        assert blob["x"].dtype == torch.uint8 and len(blob["y"]) == manifest["counts"][split]

    proc = _run(cwd, "stages/train.py", "--variant", "N", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    metrics = load_json(cwd / "metrics/train/N-s0.json")
    assert metrics["variant"] == "N" and metrics["best_epoch"] == 1 and "test_acc" not in metrics
    proc = _run(cwd, "stages/evaluate.py", "--variant", "N", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    metrics = load_json(cwd / "metrics/evaluate/N-s0.json")
    assert metrics["variant"] == "N" and 0 <= metrics["test_acc"] <= 1
    assert set(metrics["pgd_acc"]) == {"0.01"} and metrics["pgd_eval_n"] == 16
    assert (cwd / "metrics/train/N-s0.csv").read_text().startswith("epoch,")
    from freqbias.models import load_checkpoint

    model, meta = load_checkpoint(cwd / "models/N-s0.pt")
    assert meta["variant"] == "N" and meta["image_size"] == 28
    leftovers = [p for p in cwd.rglob("*.tmp")]
    assert not leftovers


# ---------------------------------------------------------------------------------------------
# Atomic writes


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_functions_write_and_leave_no_temp_files(tmp_path):
    save_json({"b": 1, "a": [1, 2]}, tmp_path / "sub" / "m.json")
    assert load_json(tmp_path / "sub" / "m.json") == {"a": [1, 2], "b": 1}
    text = (tmp_path / "sub" / "m.json").read_text()
    assert text.index('"a"') < text.index('"b"')
    save_csv([{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": 0.75}], tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines() == ["epoch,acc", "1,0.5", "2,0.75"]
    save_text("hello\n", tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_text() == "hello\n"
    save_torch({"x": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["x"], torch.arange(3))
    assert _listing(tmp_path) == ["h.csv", "sub", "t.txt", "x.pt"] and _listing(tmp_path / "sub") == ["m.json"]


def test_save_overwrites(tmp_path):
    save_json({"v": 1}, tmp_path / "m.json")
    save_json({"v": 2}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"v": 2}
    assert _listing(tmp_path) == ["m.json"]


@pytest.mark.parametrize("exc", [RuntimeError("writer failed"), KeyboardInterrupt()])
def test_failed_writer_keeps_the_old_file(tmp_path, exc):
    target = tmp_path / "m.json"
    save_json({"v": "old"}, target)
    with pytest.raises(type(exc)):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_text("half-writ")
            raise exc
    assert load_json(target) == {"v": "old"}
    assert _listing(tmp_path) == ["m.json"]


def test_failed_writer_creates_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_json({"x": object()}, tmp_path / "new.json")
    assert _listing(tmp_path) == []
    with pytest.raises(ValueError, match="no rows"):
        save_csv([], tmp_path / "h.csv")
    assert _listing(tmp_path) == []

