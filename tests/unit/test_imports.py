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
    users = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("cli.py", "__main__.py") and any(n.startswith("vsr_pipe.cli") for n in imports_of(p))
    ]
    assert users == []
