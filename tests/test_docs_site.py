"""The documentation site builds with ``mkdocs build --strict`` and covers every page and image.

Strict mode makes every warning an error: a broken link or anchor, a page missing from the
navigation, an API target that does not resolve, a docstring griffe cannot parse.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
CONFIG = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
HAVE_MKDOCS = all(importlib.util.find_spec(m) is not None
                  for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"))
PUBLIC = ["analysis", "config", "dense", "errors", "extrema", "multiobjective", "nn", "numeric",
          "operators", "solvers", "sparse", "symbolic", "transforms", "viz", "kinematics",
          "vision", "curvature"]


@pytest.mark.skipif(not HAVE_MKDOCS,
                    reason="the docs extra (mkdocs, mkdocstrings) is not installed")
def test_site_builds_strictly(tmp_path: pathlib.Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    dense = (site / "api" / "dense" / "index.html").read_text(encoding="utf-8")
    # functions exported over a same-named module are documented; doctests render as code
    for name in ("jacobian", "hessian", "linearize", "value_and_jacobian"):
        assert f'id="jacobite.dense.{name}"' in dense
    assert '<span class="gp">&gt;&gt;&gt; </span>' in dense
    solvers = (site / "api" / "solvers" / "index.html").read_text(encoding="utf-8")
    for name in ("least_squares", "curve_fit", "root"):
        assert f'id="jacobite.solvers.{name}"' in solvers
    assert (site / "gallery" / "index.html").is_file() and (site / "img").is_dir()


def test_every_docs_page_is_in_the_navigation() -> None:
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    missing = [p for p in sorted(pages) if not re.search(rf"^\s*-\s*(.*: )?{re.escape(p)}\s*$",
                                                          CONFIG, re.M)]
    assert not missing, f"add these pages to the nav of mkdocs.yml: {missing}"


def test_every_public_package_has_an_api_page() -> None:
    for name in PUBLIC:
        page = DOCS / "api" / f"{name}.md"
        assert f"::: jacobite.{name}\n" in page.read_text(encoding="utf-8"), page
        assert importlib.util.find_spec(f"jacobite.{name}") is not None
    assert "::: jacobite\n" in (DOCS / "api" / "jacobite.md").read_text(encoding="utf-8")


def test_gallery_shows_every_image() -> None:
    gallery = (DOCS / "gallery.md").read_text(encoding="utf-8")
    for image in sorted((DOCS / "img").iterdir()):
        assert f"](img/{image.name})" in gallery, image.name


def test_readme_links_are_absolute_for_the_package_index() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links
    relative = [link for link in links if not re.match(r"https?://", link)]
    assert not relative, f"the package index cannot follow relative links: {relative}"


def test_doctest_fences_wrap_examples_and_leave_fenced_code() -> None:
    spec = importlib.util.spec_from_file_location("doctest_fences",
                                                  DOCS / "api" / "doctest_fences.py")
    if importlib.util.find_spec("griffe") is None:
        pytest.skip("griffe (from the docs extra) is not installed")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Intro.\n\n>>> f(1)\n[1, 2]\n\n```python\n>>> kept\n```\n    >>> g()\n    3"
    assert module.fence(text).splitlines() == [
        "Intro.", "", "```pycon", ">>> f(1)", "[1, 2]", "```", "", "```python", ">>> kept",
        "```", "    ```pycon", "    >>> g()", "    3", "    ```"]
    assert module.plain_roles(":meth:`~jacobite.operators.DenseOperator.solve` and "
                              ":mod:`jacobite.sparse`") == "`solve` and `jacobite.sparse`"
