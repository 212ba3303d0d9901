"""External checkpoints: entry validation, and fetching from a loopback HTTP server or a local path."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from freqbias.checkpoints import CheckpointSpec, fetch_checkpoint, parse_checkpoint_entries
from freqbias.config import DataError, ParamError
from freqbias.io import sha256_file
from freqbias.models import build_model, checkpoint_dict, load_checkpoint

TIMEOUT = 5


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> tuple[Path, bytes, str]:
    """A real small_cnn checkpoint (~0.4 MB): its path, bytes and SHA-256."""
    torch.manual_seed(0)
    meta = {"arch": "small_cnn", "in_channels": 1, "num_classes": 4, "image_size": 28, "mean": [0.5], "std": [0.25]}
    model = build_model(meta["arch"], 1, 4, 28, meta["mean"], meta["std"])
    path = tmp_path_factory.mktemp("src") / "small.pt"
    torch.save(checkpoint_dict(model, meta), path)
    data = path.read_bytes()
    return path, data, hashlib.sha256(data).hexdigest()


@dataclass
class Server:
    """What the loopback server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    drop_after: int | None = None  # close the connection after this many body bytes, once
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    body_bytes: int = 0  # body bytes sent in all
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.ranges.append(rng)
            data = state.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drop_after is not None:
                body, state.drop_after = body[:state.drop_after], None
                self.wfile.write(body)
                state.body_bytes += len(body)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)
            state.body_bytes += len(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def server(ckpt, monkeypatch) -> Server:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    state = Server(files={"small.pt": ckpt[1]})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(TIMEOUT)


def _spec(url: str, sha256: str, arch: str = "small_cnn") -> CheckpointSpec:
    return CheckpointSpec(name="ext", arch=arch, url=url, sha256=sha256)


def _assert_fetched(path: Path, dest: Path, data: bytes) -> None:
    assert path == dest / "ext.pt"
    assert path.read_bytes() == data
    assert not (dest / "ext.pt.part").exists()
    _, meta = load_checkpoint(path)
    assert meta["arch"] == "small_cnn"


def test_download_verifies_and_is_idempotent(ckpt, server, tmp_path):
    _, data, sha = ckpt
    spec = _spec(server.url("small.pt"), sha)
    _assert_fetched(fetch_checkpoint(spec, tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == [None]
    fetch_checkpoint(spec, tmp_path, timeout=TIMEOUT)
    assert server.ranges == [None], "a file already present with the right hash is not downloaded again"


def test_dropped_connection_is_resumed_with_range(ckpt, server, tmp_path):
    _, data, sha = ckpt
    server.drop_after = 100_000
    path = fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT)
    _assert_fetched(path, tmp_path, data)
    assert server.ranges == [None, "bytes=100000-"]
    assert server.body_bytes == len(data), "the second request sent only the rest of the file"


def test_partial_file_from_an_earlier_run_is_continued(ckpt, server, tmp_path):
    _, data, sha = ckpt
    (tmp_path / "ext.pt.part").write_bytes(data[:12345])
    _assert_fetched(fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == ["bytes=12345-"]
    assert server.body_bytes == len(data) - 12345


def test_complete_partial_file_is_accepted_after_416(ckpt, server, tmp_path):
    _, data, sha = ckpt
    (tmp_path / "ext.pt.part").write_bytes(data)
    _assert_fetched(fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == [f"bytes={len(data)}-"]
    assert server.body_bytes == 0


def test_server_ignoring_range_restarts_the_file(ckpt, server, tmp_path):
    _, data, sha = ckpt
    server.ignore_range = True
    (tmp_path / "ext.pt.part").write_bytes(b"x" * 5000)  # appending the full body to this would fail the hash
    _assert_fetched(fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == ["bytes=5000-"], "one request: the 200 answer replaced the partial file"


def test_stale_partial_file_is_downloaded_again(ckpt, server, tmp_path):
    _, data, sha = ckpt
    (tmp_path / "ext.pt.part").write_bytes(b"x" * 5000)  # not a prefix of the file
    _assert_fetched(fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == ["bytes=5000-", None]


def test_hash_mismatch_is_refused_and_deleted(ckpt, server, tmp_path):
    _, _, sha = ckpt
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        fetch_checkpoint(_spec(server.url("small.pt"), wrong), tmp_path, timeout=TIMEOUT)
    message = str(err.value)
    assert "\n" not in message and f"expected {wrong}" in message and f"got {sha}" in message
    assert list(tmp_path.iterdir()) == []


def test_wrong_file_already_present_is_replaced(ckpt, server, tmp_path):
    _, data, sha = ckpt
    (tmp_path / "ext.pt").write_bytes(b"old")
    _assert_fetched(fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path, timeout=TIMEOUT), tmp_path, data)
    assert server.ranges == [None]


def test_http_error_is_a_data_error(ckpt, server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_checkpoint(_spec(server.url("missing.pt"), ckpt[2]), tmp_path, timeout=TIMEOUT)


def test_unreachable_server_fails_after_retries(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr("freqbias.checkpoints.time.sleep", lambda s: None)
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="failed after 2 attempts"):
        fetch_checkpoint(_spec(f"http://127.0.0.1:{port}/x.pt", ckpt[2]), tmp_path, timeout=TIMEOUT, retries=2)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"])
def test_fetched_files_get_the_umask_mode(ckpt, server, tmp_path, umask, mode):
    path, _, sha = ckpt
    source = tmp_path / "source.pt"
    source.write_bytes(path.read_bytes())
    source.chmod(0o640)  # a local copy takes the umask's mode, not its source's
    old = os.umask(umask)
    try:
        fetched = [fetch_checkpoint(_spec(server.url("small.pt"), sha), tmp_path / "http", timeout=TIMEOUT),
                   fetch_checkpoint(_spec(str(source), sha), tmp_path / "local")]
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in fetched] == [mode, mode]


def test_local_path_is_copied(ckpt, tmp_path):
    path, data, sha = ckpt
    dest = tmp_path / "out"
    _assert_fetched(fetch_checkpoint(_spec(str(path), sha), dest), dest, data)
    assert path.read_bytes() == data, "the source is left alone"
    with pytest.raises(DataError, match="not found"):
        fetch_checkpoint(_spec(str(tmp_path / "nope.pt"), sha), tmp_path / "out2")


def test_non_checkpoint_file_is_refused(server, tmp_path):
    junk = b"this is not a checkpoint" * 100
    server.files["junk.pt"] = junk
    with pytest.raises(DataError, match="not a readable checkpoint"):
        fetch_checkpoint(_spec(server.url("junk.pt"), hashlib.sha256(junk).hexdigest()), tmp_path, timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_tensor_file_is_refused(tmp_path):
    source = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(3)}, source)
    with pytest.raises(DataError, match="not a freqbias checkpoint"):
        fetch_checkpoint(_spec(str(source), sha256_file(source)), tmp_path / "out")
    assert not (tmp_path / "out" / "ext.pt").exists()


def test_arch_mismatch_is_refused(ckpt, tmp_path):
    path, _, sha = ckpt
    with pytest.raises(DataError, match="holds a 'small_cnn' model.*'resnet18'"):
        fetch_checkpoint(_spec(str(path), sha, arch="resnet18"), tmp_path)
    assert not (tmp_path / "ext.pt").exists()


GOOD = {"name": "robust-1", "arch": "small_cnn", "url": "https://example.org/a.pt", "sha256": "AB" * 32}


def test_parse_valid_entries():
    specs = parse_checkpoint_entries([GOOD, {**GOOD, "name": "local_2", "url": "ckpts/b.pt"}])
    assert specs == [CheckpointSpec("robust-1", "small_cnn", "https://example.org/a.pt", "ab" * 32),
                     CheckpointSpec("local_2", "small_cnn", "ckpts/b.pt", "ab" * 32)]
    assert specs[0].is_remote and not specs[1].is_remote
    assert parse_checkpoint_entries([]) == []


@pytest.mark.parametrize("entries, message", [
    ({"name": "a"}, r"^fetch\.checkpoints: must be a list"),
    (["x"], r"^fetch\.checkpoints\[0\]: must be a mapping"),
    ([{**GOOD, "sha": "1"}], r"^fetch\.checkpoints\[0\]\.sha: unknown key; did you mean sha256\?$"),
    ([{k: v for k, v in GOOD.items() if k != "url"}], r"^fetch\.checkpoints\[0\]\.url: missing$"),
    ([{**GOOD, "arch": 3}], r"^fetch\.checkpoints\[0\]\.arch: must be a non-empty string"),
    ([{**GOOD, "sha256": "abc"}], r"^fetch\.checkpoints\[0\]\.sha256: must be 64 hex characters"),
    ([{**GOOD, "sha256": "g" * 64}], r"^fetch\.checkpoints\[0\]\.sha256: must be 64 hex characters"),
    ([{**GOOD, "arch": "vit"}], r"^fetch\.checkpoints\[0\]\.arch: unknown architecture 'vit'; allowed: small_cnn"),
    ([{**GOOD, "name": "a b"}], r"^fetch\.checkpoints\[0\]\.name: must match"),
    ([{**GOOD, "name": "../x"}], r"^fetch\.checkpoints\[0\]\.name: must match"),
    ([{**GOOD, "url": "ftp://h/a.pt"}], r"^fetch\.checkpoints\[0\]\.url: must be an http\(s\):// URL or a file path"),
    ([GOOD, GOOD], r"^fetch\.checkpoints\[1\]\.name: duplicate name 'robust-1'$"),
])
def test_parse_bad_entries_name_the_key(entries, message):
    with pytest.raises(ParamError, match=message) as err:
        parse_checkpoint_entries(entries)
    assert "\n" not in str(err.value)
