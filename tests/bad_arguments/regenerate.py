"""Rewrite ``known_failures.py`` from the cases that fail now: ``python -m
tests.bad_arguments.regenerate`` (after a fix, so its strict xfails stop failing the run)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

from jacobite.errors import JacobiteError

from . import case_id
from .table import TABLE

matplotlib.use("Agg")

OWNERS = [("jacobite.multiobjective", "multiobjective"), ("jacobite.sparse", "sparse"),
          ("jacobite.config", "config"), ("jacobite.", "dense")]
HEAD = ('"""Bad-argument cases that do not yet raise a typed error naming the fix:\n'
        "each is xfail(strict=True) with the behaviour observed, so a change that fixes one\n"
        'fails the run (XPASS) until its line is removed here."""\n\n')


def observe() -> dict[tuple[str, str], str]:
    from tests.test_bad_arguments import HINT

    out: dict[tuple[str, str], str] = {}
    for e in TABLE:
        owner = next(o for p, o in OWNERS if e.name.startswith(p))
        for slot, value in e.cases:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e.call(slot, value)
                why = "accepted without an error"
            except JacobiteError as ex:
                if HINT.search(str(ex)):
                    continue
                why = f"{type(ex).__name__} without a fix in its message: {str(ex)[:70]}"
            except Exception as ex:
                why = f"untyped {type(ex).__name__}: {str(ex).splitlines()[0][:70]}"
            out[(e.name, case_id(slot, value))] = f"{owner}: {why}"[:86]
    return out


def _kept(path: Path) -> str:
    """What follows the KNOWN_FAILURES table in ``path`` (the hand-kept tables), kept as is."""
    if not path.exists():
        return ""
    text = path.read_text()
    start = text.find("KNOWN_FAILURES:")
    end = text.find("\n}\n", start)
    return text[end + 3:] if start >= 0 and end >= 0 else ""


def main() -> None:
    path = Path(__file__).with_name("known_failures.py")
    lines = [HEAD, "KNOWN_FAILURES: dict[tuple[str, str], str] = {\n"]
    for (name, cid), why in sorted(observe().items()):
        lines.append(f"    ({name!r}, {cid!r}):\n        {why!r},\n")
    lines.append("}\n")
    path.write_text("".join(lines) + _kept(path))


if __name__ == "__main__":
    main()
