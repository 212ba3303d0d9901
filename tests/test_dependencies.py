"""dvc.yaml's code deps are exact: each stage depends on every project .py its script runs (its import
closure over src/ and stages/, computed here with ``ast``) and on no other src/ or stages/ file.

Data and model deps (data/prepared, models/..., masks, metrics) are outside this check. A package's
``__init__.py`` is part of the closure of any module under it: Python executes it on import, unless it holds
nothing but a docstring (``freqbias/__init__.py``, the module map: editing it cannot change an output, so it is
no stage's dep; :func:`test_package_init_is_a_docstring_listing_every_module` keeps it so).

One exception, by design: the function-local imports of ``freqbias.schema`` (every stage checks the
whole params.yaml with every section reader before it starts) are not followed. Those readers can only
stop a stage with a one-line error, never change its outputs; following them would make every stage
depend on every module, so that editing a plot re-ran training."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = re.compile(r"(?:^|\s)(stages/[\w/]+\.py)(?:\s|$)")
CODE_ROOTS = ("src/", "stages/")


def module_files(name: str, src: Path) -> list[Path]:
    """Files Python executes for ``import name`` with ``src`` on sys.path: each enclosing package's
    ``__init__.py``, then the module itself; [] when ``name`` is not under ``src`` (a third-party module)."""
    files, folder = [], src
    for part in name.split("."):
        if (folder / part / "__init__.py").is_file():
            folder = folder / part
            if not docstring_only(folder / "__init__.py"):
                files.append(folder / "__init__.py")
        elif (folder / f"{part}.py").is_file():
            files.append(folder / f"{part}.py")
            break
        else:
            break
    return files


def docstring_only(path: Path) -> bool:
    """Whether ``path`` holds no statement but its docstring (importing it runs nothing)."""
    body = ast.parse(path.read_text(), filename=str(path)).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
               for n in body) and len(body) <= 1


def _is_module(name: str, src: Path) -> bool:
    path = src.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _package_of(path: Path, src: Path) -> list[str]:
    """Dotted package (as parts) that relative imports in ``path`` resolve against."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    return parts if path.name == "__init__.py" else parts[:-1]


VALIDATION_ONLY = ("freqbias/schema.py",)  # files whose function-local imports only validate params


def imported_files(path: Path, src: Path, script_dir: Path | None = None) -> set[Path]:
    """Project files one file's imports execute (anywhere in it, function-local imports included).

    ``src`` is the library root on sys.path; ``script_dir`` (for a script run as ``python <file>``) is
    also on sys.path, so ``import sibling`` finds ``script_dir/sibling.py``."""
    out: set[Path] = set()

    def add(name: str) -> None:
        out.update(module_files(name, src))
        if script_dir is not None and "." not in name and (script_dir / f"{name}.py").is_file():
            out.add(script_dir / f"{name}.py")

    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if path.as_posix().endswith(VALIDATION_ONLY) else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only meaningful inside a package under src
                if not path.is_relative_to(src):
                    continue
                package = _package_of(path, src)
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module:
                continue
            add(module)
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule too
                if alias.name != "*" and _is_module(f"{module}.{alias.name}", src):
                    add(f"{module}.{alias.name}")
    return out


def import_closure(script: Path, src: Path) -> set[Path]:
    """``script`` and every project file it imports, directly or transitively."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imported_files(path, src, None if path.is_relative_to(src) else script.parent))
    return seen


def dvc_stages() -> dict[str, tuple[str, list[str]]]:
    """Each dvc.yaml stage (``matrix:`` and ``foreach:`` stages as written, unexpanded) -> (script, deps)."""
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stages = {}
    for name, body in raw.items():
        body = body.get("do", body)  # foreach: the stage body sits under do:
        match = SCRIPT.search(body["cmd"])
        assert match, f"stage {name}: cmd {body['cmd']!r} does not run a stages/<x>.py script"
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])]
        stages[name] = (match.group(1), deps)
    return stages


STAGES = dvc_stages()


def test_every_stage_is_checked() -> None:
    assert {"fetch", "train", "masks", "masks-external", "aggregate", "report"} <= set(STAGES)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_code_deps_are_its_import_closure(stage: str) -> None:
    script, deps = STAGES[stage]
    assert (REPO / script).is_file(), f"stage {stage}: script {script} does not exist"
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(REPO / script, REPO / "src")}
    code_deps = {d.rstrip("/") for d in deps if d.startswith(CODE_ROOTS)}
    missing = sorted(closure - code_deps)
    unused = sorted(code_deps - closure)
    problems = ([f"{script} imports {missing} but they are not deps"] if missing else []) + (
        [f"deps {unused} are not in {script}'s import closure (code deps must be the exact .py files it runs, "
         "no folders)"] if unused else [])
    assert not problems, f"stage {stage} in dvc.yaml: " + "; ".join(problems)


def test_closure_follows_every_import_form(tmp_path: Path) -> None:
    """The resolver on a made-up project: absolute, from-package, relative and function-local imports,
    transitively; enclosing packages' __init__; sibling scripts; third-party and unused modules left out."""
    src, pkg = tmp_path / "src", tmp_path / "src" / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "src/pkg/__init__.py": "X = 1\n",
        "src/pkg/a.py": "from . import b\nfrom .sub.c import f\n",
        "src/pkg/b.py": "def g():\n    from .d import h\n",
        "src/pkg/d.py": "import os\n",
        "src/pkg/sub/__init__.py": "Y = 1\n",
        "src/pkg/sub/c.py": "from .. import e\nf = 1\n",
        "src/pkg/e.py": "import numpy\n",
        "src/pkg/unused.py": "",
        "src/pkg/x.py": "from pkg.y import z\n",
        "src/pkg/y.py": "z = 1\n",
        "stages/run.py": "import pkg.a\nimport helper\nfrom pkg import x\nimport yaml\n",
        "stages/helper.py": "",
        "stages/other.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    closure = {p.relative_to(tmp_path).as_posix() for p in import_closure(tmp_path / "stages/run.py", src)}
    assert closure == set(files) - {"src/pkg/unused.py", "stages/other.py"}


def test_package_init_is_a_docstring_listing_every_module() -> None:
    """``freqbias/__init__.py`` runs nothing (so it is no stage's dep) and its module map names every module."""
    init = REPO / "src" / "freqbias" / "__init__.py"
    assert docstring_only(init), "src/freqbias/__init__.py must hold only its docstring (it is no stage's dep)"
    listed = set(re.findall(r":mod:`freqbias\.(\w+)`", init.read_text()))
    modules = {p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py"}
    assert not modules - listed, f"modules missing from the map in __init__.py: {sorted(modules - listed)}"
    assert not listed - modules, f"__init__.py lists modules that do not exist: {sorted(listed - modules)}"


def test_closure_skips_a_docstring_only_init(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""Only a docstring."""\n')
    (tmp_path / "pkg" / "m.py").write_text("")
    assert module_files("pkg.m", tmp_path) == [tmp_path / "pkg" / "m.py"]
    (tmp_path / "pkg" / "__init__.py").write_text('"""Doc."""\nX = 1\n')
    assert module_files("pkg.m", tmp_path) == [tmp_path / "pkg" / "__init__.py", tmp_path / "pkg" / "m.py"]
