"""The tour that `make demo` runs agrees with the hand-computed Jacobian."""

from __future__ import annotations

import io
import subprocess
import sys

from jacobite.__main__ import tour


def test_tour_agrees():
    buf = io.StringIO()
    assert tour(buf)
    text = buf.getvalue()
    assert "[[2.0, 1.0], [2.0, 1.0]]" in text
    assert "They agree." in text


def test_python_dash_m_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "jacobite"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "forward mode" in proc.stdout and "reverse mode" in proc.stdout
