"""The rooms of the package and the one-way arrows between them (STYLE.md): a change that adds an
arrow the other way fails here, and the message says which file and which import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vsr_pipe"

# room -> what it must not import (other vsr_pipe rooms or outside packages)
FORBIDDEN = {
    "models": {"av", "vsr_pipe.io", "vsr_pipe.engines", "vsr_pipe.pipeline", "vsr_pipe.quality", "vsr_pipe.train"},
    "engines": {"av", "vsr_pipe.io", "vsr_pipe.pipeline", "vsr_pipe.quality", "vsr_pipe.train"},
    "io": {"torch", "vsr_pipe.pipeline", "vsr_pipe.engines", "vsr_pipe.models", "vsr_pipe.quality"},
    "pipeline": {"av", "vsr_pipe.quality", "vsr_pipe.train"},
    "quality": {"vsr_pipe.pipeline", "vsr_pipe.engines", "vsr_pipe.train"},
    "weights": {"av", "vsr_pipe.io", "vsr_pipe.pipeline", "vsr_pipe.engines"},
    # jobs and the cli are above delivery: what both need to run tasks lives below them, in runners
    "delivery": {"vsr_pipe.jobs", "vsr_pipe.cli"},
    # runners run any picklable function: nothing about video, models or engines; config and errors only
    "runners": {
        "av",
        "torch",
        "numpy",
        "vsr_pipe.cli",
        "vsr_pipe.jobs",
        "vsr_pipe.delivery",
        "vsr_pipe.pipeline",
        "vsr_pipe.io",
        "vsr_pipe.engines",
        "vsr_pipe.models",
        "vsr_pipe.train",
        "vsr_pipe.quality",
        "vsr_pipe.weights",
    },
}


def imports_of(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports, relative imports resolved."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def violations(room: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for name in imports_of(path):
            for banned in FORBIDDEN[room]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_imports_flow_one_way(room):
    assert violations(room) == []


def test_nothing_imports_the_cli():
    """Only the package's own ``__main__`` (and the cli package itself) may import ``vsr_pipe.cli``."""
    cli = PACKAGE / "cli"
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py" and cli not in p.parents and any(n.startswith("vsr_pipe.cli") for n in imports_of(p))
    ]
    assert users == []


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_nothing_inside_imports_the_package_top():
    """``vsr_pipe/__init__.py`` is the public API and imports the rooms; a room importing it back
    (``from .. import __version__``) makes a cycle through the whole package. ``__version__`` lives
    in the leaf ``_version.py``."""
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p != PACKAGE / "__init__.py" and "vsr_pipe" in imports_of(p)
    ]
    assert users == []


def _runs_at_import(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` that run when the module is imported: into ``if``/``try``/``with``
    and class bodies, not into functions (lazy imports) nor ``if TYPE_CHECKING:`` (never run)."""
    found = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += _runs_at_import(node.orelse)
            continue
        found.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(node, field, []):
                found += _runs_at_import(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return found


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time; with ``lazy``, also those its
    functions import when called."""
    paths = {module_of(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)  # as imports_of resolves them
        targets = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if lazy else _runs_at_import(tree.body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                within = parts[: len(parts) - node.level] + ([node.module] if node.module else [])
                base = ".".join(within) if node.level else node.module
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as [a, b, ..., a], or [] if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_import_graph_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


@pytest.mark.parametrize("lazy", [False, True], ids=["at-import", "functions-too"])
def test_no_import_cycle_inside_the_package(lazy):
    """Modules import each other one way: the graph of the package's imports, read from the source,
    has no cycle, neither at import time nor counting the imports functions make when called
    (``engines/base.py`` dispatches to the engines; they take ``match_state`` from
    ``engines/state.py``, not from ``base``)."""
    graph = import_graph(lazy)
    assert graph["vsr_pipe.engines.onnxruntime_engine"] >= {"vsr_pipe.engines.state"}  # the graph sees relative imports
    assert find_cycle(graph) == []


@pytest.mark.parametrize("folder, other", [("tests", "bench"), ("bench", "tests")])
def test_tests_and_bench_do_not_import_each_other(folder, other):
    """The tests make their own media and run the fuzz campaign from ``tests/fuzz/``; the benches share
    ``bench/common.py``. Neither imports the other, lazily or not."""
    users = [
        f"{p.relative_to(PACKAGE.parent)} imports {name}"
        for p in sorted((PACKAGE.parent / folder).rglob("*.py"))
        for name in sorted(imports_of(p))
        if name == other or name.startswith(other + ".")
    ]
    assert users == []


TEST_WORDS = {"delay", "hook", "hooks", "test", "tests", "testing"}


def test_no_test_hook_in_the_package_s_dataclasses():
    """Options are what a user may set; a test that needs a slower model or a hook wraps the package
    from outside (``tests/support/slow_model.py``) rather than adding a field to its dataclasses."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                found += [
                    f"{path.relative_to(PACKAGE.parent)}: {node.name}.{st.target.id}"
                    for st in node.body
                    if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                    if TEST_WORDS & set(st.target.id.lower().split("_"))
                ]
    assert found == []


def test_the_cli_has_no_hidden_option():
    """Every option of every command shows in ``--help``: none exists for tests only."""
    from vsr_pipe.cli import main

    def hidden(command, path):
        found = [f"{path} {p.name}" for p in command.params if getattr(p, "hidden", False)]
        for name, sub in getattr(command, "commands", {}).items():
            found += hidden(sub, f"{path} {name}")
        return found

    assert hidden(main, "vsr-pipe") == []
