"""Run-only settings (FREQBIAS_* environment variables): defaults, parsing, one-line errors naming
the variable, and that they are not params."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest
import torch

from freqbias import runtime
from freqbias.cli import run_stage
from freqbias.config import ParamError, load_params
from freqbias.runtime import SettingError
from freqbias.schema import validate_params

ROOT = Path(__file__).resolve().parents[1]
VARIABLES = (runtime.PROGRESS, runtime.DEVICE, runtime.CHUNK_SIZE, runtime.MEMORY_MB)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_defaults(monkeypatch):
    assert runtime.chunk_size() == runtime.DEFAULT_CHUNK_SIZE and runtime.memory_mb() is None
    assert runtime.device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert runtime.progress() is False  # auto: not a terminal
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert runtime.progress() is True


@pytest.mark.parametrize("name,value,read,expected", [
    (runtime.PROGRESS, "1", runtime.progress, True),
    (runtime.PROGRESS, "0", runtime.progress, False),
    (runtime.PROGRESS, " AUTO ", runtime.progress, False),
    (runtime.DEVICE, "cpu", runtime.device, torch.device("cpu")),
    (runtime.CHUNK_SIZE, "3", runtime.chunk_size, 3),
    (runtime.CHUNK_SIZE, "", runtime.chunk_size, runtime.DEFAULT_CHUNK_SIZE),  # empty = unset
    (runtime.MEMORY_MB, "20000", runtime.memory_mb, 20000.0),
    (runtime.MEMORY_MB, "0.5", runtime.memory_mb, 0.5),
])
def test_values(monkeypatch, name, value, read, expected):
    monkeypatch.setenv(name, value)
    assert read() == expected


@pytest.mark.parametrize("name,value,read,message", [
    (runtime.PROGRESS, "yes", runtime.progress, "FREQBIAS_PROGRESS: unknown value 'yes'; allowed: auto, 1, 0"),
    (runtime.DEVICE, "gpu", runtime.device, "FREQBIAS_DEVICE: unknown value 'gpu'; allowed: auto, cpu, cuda, cuda:N"),
    (runtime.DEVICE, "cuda:99", runtime.device, "FREQBIAS_DEVICE: cuda:99 requested but "),
    (runtime.CHUNK_SIZE, "0", runtime.chunk_size, "FREQBIAS_CHUNK_SIZE: must be an integer >= 1, got '0'"),
    (runtime.CHUNK_SIZE, "2.5", runtime.chunk_size, "FREQBIAS_CHUNK_SIZE: must be an integer >= 1, got '2.5'"),
    (runtime.MEMORY_MB, "0", runtime.memory_mb, "FREQBIAS_MEMORY_MB: must be a number > 0 (MiB), got '0'"),
    (runtime.MEMORY_MB, "lots", runtime.memory_mb, "FREQBIAS_MEMORY_MB: must be a number > 0 (MiB), got 'lots'"),
    (runtime.MEMORY_MB, "inf", runtime.memory_mb, "FREQBIAS_MEMORY_MB: must be a number > 0 (MiB), got 'inf'"),
])
def test_bad_values_name_the_variable(monkeypatch, name, value, read, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as info:
        read()
    assert str(info.value).startswith(message)
    with pytest.raises(SettingError):
        runtime.check()


def test_run_stage_stops_on_a_bad_setting_before_main(monkeypatch, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(runtime.CHUNK_SIZE, "many")
    calls = []
    with pytest.raises(SystemExit) as info:
        run_stage(lambda: calls.append(1))()
    assert info.value.code == 2 and calls == []
    assert capsys.readouterr().err == "error: bad setting: FREQBIAS_CHUNK_SIZE: must be an integer >= 1, got 'many'\n"


@pytest.mark.parametrize("section,key,value", [
    ("train", "progress", True), ("train", "device", "cpu"), ("masks", "progress", False),
    ("masks", "device", "auto"), ("aggregate", "device", "cuda"),
    ("masks.single", "chunk_size", 512), ("masks.single", "memory_mb", 20000),
])
def test_run_only_settings_are_not_params(section, key, value):
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    node = params
    for part in section.split("."):
        node = node[part]
    assert key not in node
    node[key] = value
    with pytest.raises(ParamError, match=rf"^{section.replace('.', '[.]')}[.]{key}: unknown key"):
        validate_params(params)


# ---------------------------------------------------------------------------------------------
# Progress bars


def _fit_tiny_masks() -> None:
    from freqbias import fitting as mf
    from freqbias import fourier as fm
    from freqbias.models import build_model

    torch.manual_seed(0)
    net = build_model("small_cnn", 1, 4, 28, [0.5], [0.25]).net.eval()
    z = torch.randn(2, 1, 28, 28)
    cfg = mf.SingleMaskConfig(lam=0.07, lr=0.2, pct_start=0.1, max_steps=3, tol=0.0, tol_gap=0.0, patience=5)
    mf.fit_single_masks(net, z, fm.predict(net, z), cfg)


@pytest.mark.parametrize("value,bars", [(None, False), ("0", False), ("1", True)])
def test_bars_only_on_a_terminal_or_when_asked(monkeypatch, capsys, value, bars):
    """Under pytest stderr is not a terminal, as in DVC's queue logs or CI: no carriage-return frames."""
    if value is not None:
        monkeypatch.setenv(runtime.PROGRESS, value)
    _fit_tiny_masks()
    err = capsys.readouterr().err
    assert ("\r" in err and "single masks 1/1" in err) == bars and (bars or err == "")


def test_log_lines_do_not_break_live_bars(monkeypatch, tmp_path, capsys):
    """Inside run_stage, a line logged while a bar is drawn starts on a line of its own."""
    from tqdm import tqdm

    from freqbias.cli import setup_logging

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(runtime.PROGRESS, "1")

    def main() -> None:
        log = setup_logging("demo")
        for i in tqdm(range(3), desc="loop", disable=not runtime.progress()):
            log.info(f"inside the loop {i}")

    run_stage(main)()
    err = capsys.readouterr().err
    assert "loop:" in err
    for i in range(3):
        assert re.search(rf"(^|[\r\n])\d\d:\d\d:\d\d demo: inside the loop {i}\n", err), err
