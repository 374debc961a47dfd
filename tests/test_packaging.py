"""The published package: one version, the license inside, a wheel that installs and runs.

The wheel test builds the sdist and, from it, the wheel (as ``python -m build`` does for a
release), installs the wheel with ``--no-deps`` into a fresh virtual environment that sees this
environment's torch, NumPy and SciPy but not the editable checkout, and runs ``jacobite tour``
from it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

import jacobite

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

ROOT = pathlib.Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_defined_once_and_the_installed_metadata_agrees() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "jacobite.__version__"
    installed = importlib.metadata.version("jacobite")
    assert installed == jacobite.__version__, (
        f"the installed metadata says {installed}, jacobite.__version__ says "
        f"{jacobite.__version__}: reinstall with `pip install -e .[dev]`")
    assert all(part.isdigit() for part in jacobite.__version__.split("."))


def test_metadata_names_the_license_urls_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert {"Homepage", "Documentation", "Source", "Changelog"} <= set(project["urls"])
    assert "Typing :: Typed" in project["classifiers"]
    # a license expression and a license classifier together are refused by the index
    assert not any(c.startswith("License ::") for c in project["classifiers"])
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{jacobite.__version__}]" in changelog


def _venv_paths(venv: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    scheme = "nt" if os.name == "nt" else "posix_prefix"
    paths = sysconfig.get_paths(scheme, vars={"base": str(venv), "platbase": str(venv)})
    return pathlib.Path(paths["scripts"]), pathlib.Path(paths["purelib"])


@pytest.mark.skipif(importlib.util.find_spec("build") is None,
                    reason="the `build` package is not installed (it is in the dev extra)")
def test_wheel_builds_installs_and_runs_the_tour(tmp_path: pathlib.Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist),
                    str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name == f"jacobite-{jacobite.__version__}-py3-none-any.whl"
    assert sdist.name == f"jacobite-{jacobite.__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"jacobite-{jacobite.__version__}.dist-info"
        assert f"{info}/licenses/LICENSE" in names
        assert "jacobite/py.typed" in names
        metadata = zf.read(f"{info}/METADATA").decode()
    assert f"Version: {jacobite.__version__}\n" in metadata
    assert "License-Expression: MIT" in metadata
    assert "pip install jacobite" in metadata  # the README is the long description
    if importlib.util.find_spec("twine") is not None:
        check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel),
                                str(sdist)], capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    scripts, purelib = _venv_paths(venv)
    # the dependencies come from this environment; its site directory is added as a plain path,
    # so the editable install's finder (a .pth hook there) is not run and cannot shadow the wheel
    deps = sysconfig.get_paths()["purelib"]
    (purelib / "_jacobite_test_deps.pth").write_text(deps + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(scripts / "python"), "install",
                    "--no-deps", "--no-index", "--disable-pip-version-check", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(scripts / "python"), "-c", "import importlib.metadata as m, "
                            "importlib.util as u; print(u.find_spec('jacobite').origin, "
                            "m.version('jacobite'))"],
                           check=True, capture_output=True, text=True, timeout=300, env=env,
                           cwd=tmp_path)
    file, version = where.stdout.split()
    assert pathlib.Path(file).is_relative_to(venv) and version == jacobite.__version__
    tour = subprocess.run([str(scripts / "jacobite"), "tour", "--json"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert tour.returncode == 0, tour.stderr
    data = json.loads(tour.stdout)
    assert data["passed"] == data["total"] >= 45
