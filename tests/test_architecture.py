"""docs/ARCHITECTURE.md stays true: every package imports only what its row allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "jacobite"
FOUNDATION = {"errors", "config", "_validate", "_modules", "_inference", "_lazy", "_compile"}


def _table() -> dict[str, set[str] | None]:
    """package -> allowed jacobite imports (None: anything)."""
    rows: dict[str, set[str] | None] = {}
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        m = re.match(r"\| `jacobite\.(\w+)` \|[^|]*\|[^|]*\| (.*) \|$", line)
        if not m:
            continue
        name, allowed = m.group(1), m.group(2)
        if "everything" in allowed:
            rows[name] = None
            continue
        names = set(re.findall(r"\b([a-z_]+)\b", re.sub(r"\([^)]*\)", "", allowed)))
        rows[name] = names & {p.stem if p.is_file() else p.name for p in SRC.iterdir()}
    return rows


def _imports(path: Path, package: str) -> set[str]:
    """Top-level jacobite subpackages imported by a module of ``package``."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(SRC).parts) - 1  # directories below jacobite/
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("jacobite."):
                found.add(node.module.split(".")[1])
            elif node.level > depth and node.level == depth + 1:  # from ..X (to jacobite/)
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jacobite."):
                    found.add(a.name.split(".")[1])
    return found - {package}


TABLE = _table()


def test_every_package_has_a_row() -> None:
    here = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists())
            or (p.suffix == ".py" and not p.name.startswith("_"))}
    missing = here - set(TABLE) - FOUNDATION
    assert not missing, f"add rows for {sorted(missing)} to docs/ARCHITECTURE.md"


@pytest.mark.parametrize("package", sorted(TABLE))
def test_imports_follow_the_table(package: str) -> None:
    allowed = TABLE[package]
    if allowed is None:
        return
    base = SRC / package
    files = list(base.rglob("*.py")) if base.is_dir() else [SRC / f"{package}.py"]
    bad = {}
    for f in files:
        extra = _imports(f, package) - allowed - FOUNDATION
        if extra:
            bad[str(f.relative_to(SRC))] = sorted(extra)
    assert not bad, f"imports not allowed by docs/ARCHITECTURE.md's row for {package}: {bad}"


def _importers(target: str) -> set[str]:
    """Modules (relative to jacobite/) outside ``target`` that import the package ``target``."""
    out = set()
    for f in SRC.rglob("*.py"):
        top = f.relative_to(SRC).parts[0]
        if top != target and target in _imports(f, top.removesuffix(".py")):
            out.add(str(f.relative_to(SRC)))
    return out


# packages that sit on top of the layers: only these may build on them. kinematics and
# vision are use-layer leaves (the top level re-exports them lazily); curvature builds on
# compute and structure, and use-layer code (Laplace, second-order training) may build on it
BUILT_ON_BY = {
    "kinematics": {"cli", "__init__.py"},
    "vision": {"cli", "__init__.py"},
    "curvature": {"cli", "__init__.py", "solvers", "transforms", "multiobjective",
                  "kinematics", "vision"},
}


@pytest.mark.parametrize("target", sorted(BUILT_ON_BY))
def test_only_the_layers_above_import(target: str) -> None:
    users = {m for m in _importers(target) if m.split("/")[0] not in BUILT_ON_BY[target]}
    assert not users, f"jacobite.{target} imported from below its layer: {sorted(users)}"
