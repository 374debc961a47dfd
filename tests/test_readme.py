"""The README's first code example runs as written."""

from __future__ import annotations

import pathlib
import re

import torch


def test_readme_first_look_runs():
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # trusted: our own README
    J = scope["jacobite"].jacobian(scope["f"], scope["x"])
    torch.testing.assert_close(J, torch.tensor([[2.0, 1.0], [2.0, 1.0]], dtype=torch.float64))
