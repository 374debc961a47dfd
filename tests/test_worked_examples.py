"""The worked examples stand on their own: neither the docs pages nor ``jacobite tour`` send a
reader to a file outside the project, and the tour points each source text to its page."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from jacobite.cli import main
from jacobite.cli.tour import EXAMPLES, SOURCES

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = DOCS / "worked-examples"
OUTSIDE = ("shared/reference", "/work/", "../shared")
TEXT_SUFFIXES = {".md", ".py", ".txt", ".yml", ".yaml", ".css", ".js", ".html", ".json", ".toml"}


def _outside(text: str) -> list[str]:
    squeezed = "".join(text.split())  # a terminal may wrap a path across lines
    return [p for p in OUTSIDE if p in squeezed]


def _project_files() -> list[pathlib.Path]:
    files = [p for p in DOCS.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    files += [p for p in (ROOT / "src/jacobite/cli/tour").rglob("*.py")]
    files.append(ROOT / "src/jacobite/cli/commands/tour.py")
    return files


@pytest.mark.parametrize("path", _project_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_path_outside_the_project(path: pathlib.Path) -> None:
    assert _outside(path.read_text(encoding="utf-8")) == []


def _tour(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        code = main(["tour", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out + err


def test_tour_text_names_pages_and_no_outside_path(capsys: pytest.CaptureFixture[str]) -> None:
    out = _tour(capsys)
    assert _outside(out) == []
    squeezed = "".join(out.split())
    for source in SOURCES.values():
        assert "".join(source.url.split()) in squeezed
    assert "thetextiswrong" not in squeezed
    wrong = sum(not e.text_ok for e in EXAMPLES)
    assert squeezed.count("thesourcetextclaims") == wrong


def test_tour_json_names_pages_and_no_outside_path(capsys: pytest.CaptureFixture[str]) -> None:
    out = _tour(capsys, "--ref", "000", "--json")
    assert _outside(out) == []
    data = json.loads(out)
    assert {e["page"] for e in data["examples"]} == {SOURCES["000"].page}


def test_every_source_has_its_page_titled_by_topic() -> None:
    assert {e.ref for e in EXAMPLES} == set(SOURCES)
    site_url = re.search(r"^site_url:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"),
                         re.M)
    assert site_url is not None
    index = (PAGES / "README.md").read_text(encoding="utf-8")
    for source in SOURCES.values():
        page = ROOT / source.page
        text = page.read_text(encoding="utf-8")
        assert text.splitlines()[0] == f"# {source.topic}"
        assert "the source text" in text.lower()
        assert "| the source text claims | jacobite computes |" in text
        assert f"]({page.name})" in index
        assert source.url == f"{site_url.group(1)}worked-examples/{page.stem}/"
