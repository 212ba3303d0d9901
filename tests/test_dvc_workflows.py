"""Team workflows on the tiny profile: parallel experiments through DVC's queue, and a shared cache
(a local-directory remote) that makes a fresh clone's `dvc repro` a no-op."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import copy_project, git_commit, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of the tiny profile's run (committed)."""
    return copy_project(tiny_run, tmp_path_factory.mktemp("workflows") / "p")


def _kill_workers(project: Path) -> None:
    """End the queue's worker processes that are still alive (pids in ``.dvc/tmp/exps/celery``)."""
    for pid_file in (project / ".dvc/tmp/exps/celery").glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def _settled(project: Path, n: int) -> bool:
    """Whether DVC has stored ``n`` experiments' results (git refs ``refs/exps/<sha[:2]>/<sha[2:]>/<name>``) or
    failed one (``refs/exps/celery/failed``). Cheap: a `dvc queue status` costs a fresh interpreter's start (3-4 s
    of CPU), and polled every second it kept a core busy beside the queue's two workers."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], project).stdout.split()
    stored = [r for r in refs if len(r.split("/")) == 5 and len(r.split("/")[2]) == 2]
    return len(stored) >= n or "refs/exps/celery/failed" in refs


def test_queue_runs_two_experiments_in_parallel(project: Path) -> None:
    for n_boot in ("100", "300"):  # the tiny run is done: each experiment reruns aggregate only
        run(["dvc", "exp", "run", "--queue", "-n", f"boot{n_boot}", "-S", f"aggregate.n_boot={n_boot}",
             "aggregate"], project)
    # a worker can hang in its shutdown after the queue is empty (seen once: dvc's celery worker, "Warm
    # shutdown", 20 min): its output goes to a file, not a pipe that would keep this call waiting
    run(["dvc", "queue", "start", "--jobs", "2"], project, log=project.parent / "queue-start.log")
    deadline = time.monotonic() + 600
    while not _settled(project, 2) and time.monotonic() < deadline:  # cheap: no dvc process beside the workers
        time.sleep(1)
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(1)
    run(["dvc", "queue", "stop", "--kill"], project, check=False)
    _kill_workers(project)
    assert status.count("Success") == 2, status
    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    for name in ("boot100", "boot300"):
        assert name in shown, shown[-2000:]
    diff = json.loads(run(["dvc", "exp", "diff", "boot100", "boot300", "--json"], project).stdout)
    assert "aggregate.n_boot" in json.dumps(diff["params"]), diff


def test_shared_cache_makes_a_fresh_clone_a_noop(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], project)
    run(["dvc", "repro"], project)
    run(["dvc", "push"], project)
    git_commit(project, "run and remote")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    out = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in out, out
    assert "up to date" in run(["dvc", "status"], clone).stdout
