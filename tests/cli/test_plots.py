"""--plot / --grid write real PNG pictures (checked by reading them back)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jacobite.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _image(path) -> np.ndarray:
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5_000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01  # not a blank picture
    return img


def test_jacobian_plot_and_grid(tmp_path, capsys):
    heat, grid = tmp_path / "J.png", tmp_path / "grid.png"
    code = main(["jacobian", "x**2 - y**2, 2*x*y", "--at", "x=1,y=2", "--plot", str(heat),
                 "--grid", str(grid), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plot"] == str(heat) and data["grid"] == str(grid)
    _image(heat)
    _image(grid)


def test_softmax_panels(tmp_path, capsys):
    out = tmp_path / "panels.png"
    assert main(["softmax", "2.0", "1.0", "0.5", "-0.5", "0", "--plot", str(out)]) == 0
    img = _image(out)
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    assert "panels saved" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["jacobian", "x + y, x*y, y", "--grid", "g.png"],
    ["jacobian", "x**2 + y, x*y", "--plot", "p.png"],
    ["jacobian", "x**2 + y, x*y", "--grid", "g.png", "--range", "3:1"],
])
def test_plot_errors_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jacobite: error:")
