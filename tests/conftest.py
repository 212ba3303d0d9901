"""Shared helpers for the tests that run the real pipeline in a throwaway git repository."""

from __future__ import annotations

import contextlib
import logging
import os
import runpy
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

# Before torch loads OpenMP: threads that wait sleep rather than spin. Beside a busy core (the other
# pytest-xdist worker) a spinning 2-thread fit can stall for minutes: next to a busy process the
# thread-count test took 200 s spinning and 33-38 s passive (idle machine: 29 s spinning, 34 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

if TYPE_CHECKING:
    from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (``make test``: one worker per core) each worker, and the stages it spawns,
    # runs torch on one thread: more would oversubscribe the cores the workers already share.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
GENERATED = ("metrics/", "reports/", "results/")  # committed outputs of a run: not copied


def run(cmd: list[str], cwd: Path, check: bool = True, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the test interpreter's bin folder (dvc, python) first on PATH. With ``log``, its
    output goes to that file instead of a pipe, so that daemons it leaves running (``dvc queue start``'s
    workers) hold no pipe this call would wait on; ``stdout`` then holds the file's text."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if log is None:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    else:
        with log.open("w") as out:
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        proc.stdout, proc.stderr = log.read_text(), ""
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def run_script(cwd: Path, script: str, *args: str) -> int:
    """``python <script> <args>`` in ``cwd`` but in this process (``runpy``, as ``__main__``); its exit
    status. The script's code path from its first line to its exit, without the 1.5 s a fresh interpreter
    spends importing torch (`dvc repro` and :func:`run` cover the real interpreter). The working
    directory, ``sys.argv``, the SIGINT handler and the root logger (``setup_logging`` adds a handler on this process's
    stderr) are restored afterwards."""
    cwd_before, argv_before, root = Path.cwd(), sys.argv, logging.getLogger()
    sigint = signal.getsignal(signal.SIGINT)  # the script installs freqbias._interrupt's handler
    handlers, level = root.handlers[:], root.level
    os.chdir(cwd)
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(cwd / script), run_name="__main__")
        return 0
    except SystemExit as exc:  # run_stage's one-line errors: status 2
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(cwd_before)
        sys.argv = argv_before
        root.handlers[:], root.level = handlers, level
        signal.signal(signal.SIGINT, sigint)


@contextlib.contextmanager
def dvc_repo(root: Path) -> Iterator["Repo"]:
    """DVC's ``Repo`` of ``root``, opened in ``root`` as the `dvc` command runs there (DVC names a stage by its
    dvc.yaml's path relative to the working directory), without DVC's own DeprecationWarnings."""
    import warnings

    from dvc.repo import Repo

    with contextlib.chdir(root), warnings.catch_warnings(), Repo(".") as repo:
        warnings.simplefilter("ignore", DeprecationWarning)  # DVC's own, from its pygtrie calls
        yield repo


def repro_in_process(root: Path, fresh: tuple[str, ...] = (), due_only: bool = False) -> list[str]:
    """Every stage of ``root``'s dvc.yaml, dependencies first (DVC's own stage graph, params resolved by
    DVC), run in this process by :func:`run_script` (those named in ``fresh``: by a fresh interpreter,
    :func:`run`); the names of the stages run. Each must exit 0 and write every output it declares.
    `dvc repro`'s stage code without its 4-5 s a stage (a fresh interpreter's torch import, DVC's hashing);
    no dvc.lock is written. For a test whose subject is what the stages compute (a profile, a variant),
    where another test runs the same pipeline through `dvc repro`. With ``due_only``, only what `dvc repro` would
    rerun: the stages `dvc status` lists and those downstream of one that ran."""
    import shlex

    import networkx as nx

    with dvc_repo(root) as repo:
        graph = repo.index.graph  # an edge from each stage to the stages it depends on
        stages = [(stage.name, stage.cmd, [out.def_path for out in stage.outs],
                   {dep.name for dep in graph.successors(stage)}) for stage in nx.dfs_postorder_nodes(graph)]
        due = set(repo.status()) if due_only else {name for name, *_ in stages}  # named as in root's dvc.yaml
    ran: list[str] = []
    for name, cmd, outs, upstream in stages:
        if name not in due and not upstream & set(ran):
            continue
        python, script, *args = shlex.split(cmd)
        assert python == "python", f"{name}: {cmd}"
        if name in fresh:
            run(shlex.split(cmd), root)
        else:
            code = run_script(root, script, *args)
            assert code == 0, f"stage {name} ({cmd}) exited {code}"
        missing = [out for out in outs if not (root / out).exists()]
        assert not missing, f"stage {name} did not write {missing}"
        ran.append(name)
    return ran


def git_commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", message], root)


def make_project(root: Path, profile: str = "tiny") -> Path:
    """Copy the repository's source files (not its run outputs) to ``root``, apply ``profile`` and
    commit it as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(GENERATED) and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    run([sys.executable, "-m", "freqbias.profiles", "apply", profile], root)
    run(["git", "init", "-q"], root)
    git_commit(root, profile)
    return root


def copy_project(src: Path, dest: Path) -> Path:
    """A copy of a project with its git history and DVC cache (not DVC's temporary state)."""
    shutil.copytree(src, dest, ignore=lambda folder, _: ["tmp"] if Path(folder).name == ".dvc" else [])
    return dest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny profile run end to end and committed, ONCE per pytest run: under pytest-xdist the first
    worker to ask builds it under a file lock, the others wait, and all share it. Read it, or change a copy
    (:func:`copy_project`), never the run itself.

    Its 37 stages run in this process (:func:`repro_in_process`, DVC's stage graph and params) and `dvc commit`
    records them (dvc.lock and DVC's run-cache, as `dvc repro` writes them): 130 s instead of `dvc repro`'s
    330 s on one core of a 110 GFLOP/s machine, most of which was a fresh interpreter's torch import and DVC's
    bookkeeping per stage. DVC must then find the run up to date (checked here); `dvc repro` itself runs where
    it is the subject: from scratch in test_paper_path, and on copies of this run (test_pipeline,
    test_edge_cases, test_lockfile, test_dvc_workflows)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's common basetemp
    root, done = shared / "tiny-run", shared / "tiny-run.done"
    with FileLock(str(shared / "tiny-run.lock")):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed in another worker
            root.mkdir()
            make_project(root)
            repro_in_process(root)
            run(["dvc", "commit", "--force", "--quiet"], root)
            status = run(["dvc", "status"], root).stdout
            assert "up to date" in status, f"dvc status after the tiny run's commit:\n{status[-3000:]}"
            git_commit(root, "tiny run")
            done.touch()
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one thread is as fast and does not slow to a crawl when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The longest files first, so that under pytest-xdist (``--dist loadfile --no-loadscope-reorder``,
# ``make test``) the first worker builds the shared tiny run (test_pipeline asks for it first) while the second
# takes the VGG11-BN run, the files that read the tiny run start once it is built, and short files fill the end.
# Seconds: CPU of the file on one thread of a 110 GFLOP/s machine (issue 41's cuts; `--durations` prints the
# slowest tests in CI).
LONG_FILES = (
    "test_pipeline.py",        # about 135 s for conftest.tiny_run (37 stages in process), then 150 s of its own
    "test_paper_path.py",      # about 180 s: VGG11-BN at 128 x 128, 15 stages in process
    "test_edge_cases.py",      # about 250 s: on copies of the tiny run (one reruns 10 stages through dvc repro)
    "test_dvc_workflows.py",   # about 110 s: queued experiments, a shared cache
    "test_lockfile.py",        # about 105 s: `make repro` from DVC's run-cache
    "test_variants.py",        # about 70 s: its own tiny pipeline with a registered variant, in process
    "test_paper_resnet18.py",  # about 60 s: its stages in process
    "test_shared_masks.py",    # about 95 s: converged fits on planted data, with 1 and 2 threads
    "test_bench.py",           # 16 s: the benchmarks at toy size, bench.py's fp32 and (native bf16 only) bf16 rows
    "test_config.py",          # 20 s: stage scripts that must stop with one line
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONG_FILES` first, in that order, then the others (those with slow tests
    first); each file's tests stay together and in order."""
    slow_files = {item.path.name for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in LONG_FILES:
            return 0, LONG_FILES.index(name)
        return (1 if name in slow_files else 2), 0

    items.sort(key=rank)


def train_small_cnn(x: "torch.Tensor", y: "torch.Tensor", classes: int, seed: int, epochs: int = 2):
    """small_cnn (1 channel, mean 0.5, std 0.25) trained with Adam (lr 3e-3, batches of 32) for ``epochs`` on
    images ``x`` (N, 1, H, W; pixels in [0, 1], H == W) and labels ``y``; ``seed`` sets initialisation and data
    order. Returned in eval mode."""
    from torch.nn import functional as F

    from freqbias.models import build_model
    torch.manual_seed(seed)
    model = build_model("small_cnn", 1, classes, x.shape[-1], [0.5], [0.25])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    z = model.normalize(x)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(model.net(z[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
