"""External checkpoints: validate the ``fetch.checkpoints`` entries and fetch each file.

An entry names a checkpoint file (written by :func:`freqbias.models.checkpoint_dict`) at an http(s)
URL or a local path. :func:`fetch_checkpoint` puts it at ``<dest_dir>/<name>.pt``, where it joins the
pipeline like a trained model:

- downloads go to ``<name>.pt.part`` and resume from it with an HTTP ``Range`` request (after a
  dropped connection, within the same call, or from an earlier interrupted run);
- the SHA-256 is checked before the file is renamed into place, so ``<name>.pt`` is never partial;
- a file already present with the right hash is not fetched again;
- the file must load with :func:`freqbias.models.load_checkpoint` as the architecture the entry names.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import runtime
from .config import DataError, ParamError, Section, unknown_key
from .io import sha256_file
from .models import ARCHITECTURES, load_checkpoint

log = logging.getLogger(__name__)

SECTION = "fetch.checkpoints"
FIELDS = ("name", "arch", "url", "sha256")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-\d+/(?:\d+|\*)")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class CheckpointSpec:
    """One ``fetch.checkpoints`` entry.

    ``url`` is an ``http(s)://`` URL or a local file path; ``sha256`` is 64 lower-case hex digits."""

    name: str
    arch: str
    url: str
    sha256: str

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(("http://", "https://"))


def checkpoints_from_params(params: dict) -> list[CheckpointSpec]:
    """The ``fetch.checkpoints`` entries of the params (none when the key is absent or null)."""
    return parse_checkpoint_entries(Section(params, "fetch").raw("checkpoints", []) or [])


def parse_checkpoint_entries(entries: list) -> list[CheckpointSpec]:
    """Validate the ``fetch.checkpoints`` list; raise :class:`ParamError` naming the key on the first problem."""
    if not isinstance(entries, list):
        raise ParamError(f"{SECTION}: must be a list of entries with keys {', '.join(FIELDS)}, got {entries!r}")
    specs: list[CheckpointSpec] = []
    for i, entry in enumerate(entries):
        key = f"{SECTION}[{i}]"
        if not isinstance(entry, dict):
            raise ParamError(f"{key}: must be a mapping with keys {', '.join(FIELDS)}, got {entry!r}")
        unknown = [k for k in entry if k not in FIELDS]
        if unknown:
            raise unknown_key(f"{key}.{unknown[0]}", FIELDS)
        values: dict[str, str] = {}
        for field in FIELDS:
            if field not in entry:
                raise ParamError(f"{key}.{field}: missing")
            value = entry[field]
            if not isinstance(value, str) or not value.strip():
                raise ParamError(f"{key}.{field}: must be a non-empty string, got {value!r}")
            values[field] = value.strip()
        name, arch, url, sha256 = (values[f] for f in FIELDS)
        if not _NAME.fullmatch(name):
            raise ParamError(f"{key}.name: must match [A-Za-z0-9_-]+, got {name!r}")
        if any(spec.name == name for spec in specs):
            raise ParamError(f"{key}.name: duplicate name {name!r}")
        if arch not in ARCHITECTURES:
            raise ParamError(f"{key}.arch: unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        if "://" in url and not url.startswith(("http://", "https://")):
            raise ParamError(f"{key}.url: must be an http(s):// URL or a file path, got {url!r}")
        if not _SHA256.fullmatch(sha256):
            raise ParamError(f"{key}.sha256: must be 64 hex characters, got {sha256!r}")
        specs.append(CheckpointSpec(name, arch, url, sha256.lower()))
    return specs


def fetch_checkpoint(spec: CheckpointSpec, dest_dir: str | os.PathLike, *, timeout: float = 30,
                     retries: int = 3) -> Path:
    """Fetch ``spec`` to ``<dest_dir>/<name>.pt``, verify its hash and that it loads; return the path.

    ``timeout`` (seconds) bounds each network wait; a download interrupted by the network is resumed
    up to ``retries`` attempts in all. Raise :class:`DataError` (one line) when the source cannot be
    read, the hash differs (the download is deleted), or the file is not a checkpoint of ``spec.arch``
    (the file is deleted)."""
    dest = Path(dest_dir) / f"{spec.name}.pt"
    if dest.exists() and sha256_file(dest) == spec.sha256:
        log.info("%s: %s already present with the right hash", spec.name, dest)
    else:
        if dest.exists():
            log.warning("%s: %s has the wrong hash; fetching it again", spec.name, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        if spec.is_remote:
            _download_verified(spec, part, timeout, retries)
        else:
            _copy_verified(spec, part)
        os.replace(part, dest)
        log.info("%s: fetched %s", spec.name, dest)
    _check_checkpoint(spec, dest)
    return dest


def _copy_verified(spec: CheckpointSpec, part: Path) -> None:
    source = Path(spec.url).expanduser()
    if not source.is_file():
        raise DataError(f"{spec.name}: local checkpoint {source} not found (check {SECTION} url)")
    shutil.copyfile(source, part)
    _verify_hash(spec, part)


def _download_verified(spec: CheckpointSpec, part: Path, timeout: float, retries: int) -> None:
    """Download to ``part`` (resuming what it holds) and check the hash. A resumed file that fails the
    check may have started from a stale partial download, so it is fetched once more from the start."""
    resumed = part.exists() and part.stat().st_size > 0
    _download(spec, part, timeout, retries)
    if resumed and sha256_file(part) != spec.sha256:
        log.warning("%s: resumed download fails the hash check; downloading again from the start", spec.name)
        part.unlink()
        _download(spec, part, timeout, retries)
    _verify_hash(spec, part)


def _verify_hash(spec: CheckpointSpec, part: Path) -> None:
    actual = sha256_file(part)
    if actual != spec.sha256:
        part.unlink()
        raise DataError(f"{spec.name}: SHA-256 mismatch for {spec.url}: expected {spec.sha256}, got {actual}; "
                        "the fetched copy was deleted")


def _download(spec: CheckpointSpec, part: Path, timeout: float, retries: int) -> None:
    """Complete ``part``, resuming after network failures; HTTP errors (404, 403, ...) fail at once."""
    reason = ""
    for attempt in range(1, retries + 1):
        try:
            _download_once(spec, part, timeout)
            return
        except urllib.error.HTTPError as exc:
            raise DataError(f"{spec.name}: download of {spec.url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            detail = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            reason = f"{exc.__class__.__name__}: {detail}".splitlines()[0]
        if attempt < retries:
            log.warning("%s: download interrupted (%s); resuming (attempt %d of %d)",
                        spec.name, reason, attempt + 1, retries)
            time.sleep(0.5 * attempt)
    raise DataError(f"{spec.name}: download of {spec.url} failed after {retries} attempts ({reason}); "
                    f"run again to resume from {part}")


def _download_once(spec: CheckpointSpec, part: Path, timeout: float) -> None:
    """One request: continue ``part`` from its size (``Range: bytes=N-``), or restart it when the server
    answers with the whole file. Raise ``ConnectionError`` when the body ends early."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "freqbias"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(spec.url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left past `offset`: the partial file is already whole
            exc.close()
            return
        raise
    with response:
        mode = "wb"
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise ConnectionError(f"server resumed at {response.headers.get('Content-Range')!r}, "
                                      f"not at byte {offset}; restarting")
            mode = "ab"
        elif offset:
            log.info("%s: server ignored the Range request; restarting from the start", spec.name)
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        received = offset
        with open(part, mode) as fh, tqdm(total=expected, initial=offset, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=spec.name, disable=not runtime.progress(),
                                          leave=False) as bar:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise ConnectionError(f"connection closed after {received} of {expected} bytes")


def _check_checkpoint(spec: CheckpointSpec, dest: Path) -> None:
    """Load ``dest`` as a checkpoint of ``spec.arch``; delete it and raise :class:`DataError` if it is not."""
    try:
        _, meta = load_checkpoint(dest)
    except DataError as exc:
        problem = str(exc)
    except (KeyError, TypeError, ValueError) as exc:  # a freqbias-format file with malformed meta
        problem = f"{dest}: malformed checkpoint meta ({exc.__class__.__name__}: {exc})"
    else:
        if meta["arch"] == spec.arch:
            return
        problem = f"{dest}: holds a {meta['arch']!r} model, but {SECTION} says arch {spec.arch!r}"
    dest.unlink()
    raise DataError(f"{spec.name} from {spec.url}: {problem}; the file was deleted")
