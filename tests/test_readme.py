"""The README's code examples run as written."""

from __future__ import annotations

import pathlib
import re

import torch

TEXT = (pathlib.Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def test_readme_first_look_runs():
    scope: dict = {}
    exec(compile(BLOCKS[0], "README.md", "exec"), scope)  # trusted: our own README
    J = scope["jacobite"].jacobian(scope["f"], scope["x"])
    torch.testing.assert_close(J, torch.tensor([[2.0, 1.0], [2.0, 1.0]], dtype=torch.float64))


def test_readme_sparse_and_solver_examples_run():
    assert len(BLOCKS) >= 3
    sparse: dict = {}
    exec(compile(BLOCKS[1], "README.md", "exec"), sparse)
    assert sparse["plan"].colors == 3 and sparse["J"].to_scipy().nnz == 3 * 10_000 - 2
    solve: dict = {}
    exec(compile(BLOCKS[2], "README.md", "exec"), solve)
    torch.testing.assert_close(solve["fit"].x, torch.tensor([2.5, 1.3, 0.5], dtype=torch.float64))
    torch.testing.assert_close(solve["sol"].x, torch.full((2,), 2.0**0.5, dtype=torch.float64))
