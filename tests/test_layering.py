"""The dependency direction of the design: features never touch platform libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLATFORM_LIBRARIES = {"telegram", "discord"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["handlers", "storage", "scheduler"])
def test_no_platform_imports(package):
    offenders = {
        str(p.relative_to(REPO)): sorted(_imports(p) & PLATFORM_LIBRARIES)
        for p in _modules(package)
        if _imports(p) & PLATFORM_LIBRARIES
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("storage", {"handlers", "bot"}),
        ("scheduler", {"handlers", "bot", "storage"}),
        ("handlers", {"bot"}),
    ],
)
def test_dependencies_point_one_way(package, forbidden):
    offenders = {
        str(p.relative_to(REPO)): sorted(_imports(p) & forbidden)
        for p in _modules(package)
        if _imports(p) & forbidden
    }
    assert offenders == {}


def test_layering_check_sees_imports():
    assert "sqlalchemy" in _imports(REPO / "storage" / "db.py")
