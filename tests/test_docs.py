"""The code in the docs pages runs as written."""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize(
    "page", ["sparse.md", "robustness.md", "multiobjective.md", "conventions.md", "jenn.md",
             "flows.md", "kinematics.md", "distributed.md", "vision.md", "curvature.md",
             "worked-examples/000-softmax-classification.md",
             "worked-examples/001-gentle-introduction.md",
             "worked-examples/002-jacobians-day-20.md",
             "worked-examples/003-gaussian-integral-to-deep-learning.md",
             "worked-examples/004-softmax-jacobian.md"])
def test_docs_code_runs(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    scope: dict = {}
    for block in blocks:
        exec(compile(block, page, "exec"), scope)  # trusted: our own docs
