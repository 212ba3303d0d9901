"""Atomic writes: outputs get the umask's mode (not mkstemp's 0600), and a failed write leaves nothing."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
import torch

from freqbias.io import atomic_path, load_json, save_csv, save_json, save_text, save_torch, sha256_file

WRITERS = {
    "torch": lambda p: save_torch({"x": torch.zeros(2)}, p),
    "json": lambda p: save_json({"a": 1}, p),
    "text": lambda p: save_text("hello\n", p),
    "csv": lambda p: save_csv([{"a": 1, "b": 2}], p),
}


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], indirect=["umask"],
                         ids=["022", "077", "002"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_saved_files_get_the_umask_mode(umask, mode, kind, tmp_path: Path) -> None:
    path = tmp_path / "sub" / f"out.{kind}"
    WRITERS[kind](path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    path.chmod(0o600 if mode != 0o600 else 0o644)  # an overwrite gets the umask's mode again
    WRITERS[kind](path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file is left behind"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    save_json({"a": 1}, path)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert load_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("size", [0, 5, (1 << 20) * 2 + 7], ids=["empty", "small", "three-blocks"])
def test_sha256_file_matches_hashlib(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_save_torch_writes_the_same_bytes_for_the_same_object(tmp_path: Path) -> None:
    """An unchanged output keeps its DVC hash: the archive is not named after the random temporary file."""
    obj = {"x": torch.arange(12, dtype=torch.uint8).view(3, 4), "y": torch.ones(3)}
    first, second = tmp_path / "a.pt", tmp_path / "b" / "a.pt"
    save_torch(obj, first)
    save_torch(obj, second)
    save_torch(obj, first)  # over an existing file
    assert first.read_bytes() == second.read_bytes()
    assert torch.equal(torch.load(first, weights_only=True)["x"], obj["x"])
