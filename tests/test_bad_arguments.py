"""Every public callable, called with bad arguments, raises a typed error that names the fix.

The table (``tests/bad_arguments``) holds, per callable, a call that works and variants of it
that each change one argument: a non-callable ``f``, a string or ``None`` where a tensor
belongs, an integer or NaN tensor, a wrong shape, bad integer options, unknown modes, NaN or
infinite tolerances. Each variant must raise a :class:`~jacobite.errors.JacobiteError` whose
message says what to do; a variant built by a helper of ``tests/bad_arguments`` must raise the
class its kind of mistake calls for (``ArgumentTypeError`` for a wrong type,
``InvalidOptionError`` for a value out of range, ``ArgnumsError``, ``NonFiniteInputError``).
A public callable without an entry fails the completeness test.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import matplotlib
import pytest

import jacobite
from jacobite.errors import JacobiteError
from tests.bad_arguments import Entry, case_id, expected_error
from tests.bad_arguments.known_failures import KNOWN_TYPE_MISMATCHES
from tests.bad_arguments.table import EXEMPT, TABLE

matplotlib.use("Agg")

MIN_CASES = 8

# a message names the fix when it says what the argument must be or what to write instead
HINT = re.compile(r"e\.g\.|\b(must|use|pass|write|one of|expects?|expected|needs?|install|"
                  r"give|choose|set|add|call|clean|drop|make|raise|lower|keep|wrap|convert|"
                  r"start|remove|list|leave|replace|reshape|try|instead|return|allowed|"
                  r"compute|mark|pick)\b", re.I)


def _public_modules() -> Iterator[ModuleType]:
    yield jacobite
    for info in pkgutil.walk_packages(jacobite.__path__, "jacobite."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        mod = importlib.import_module(info.name)
        if info.ispkg or (hasattr(mod, "__all__") and info.name.count(".") == 1):
            yield mod


def _is_exception(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseException)


def public_callables() -> dict[str, Any]:
    """``{qualified name: object}`` over the ``__all__`` of jacobite and its public modules,
    each object once (under the first module that exports it)."""
    seen: dict[int, str] = {}
    out: dict[str, Any] = {}
    for mod in _public_modules():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj) or _is_exception(obj):
                continue
            if id(obj) not in seen:
                seen[id(obj)] = f"{mod.__name__}.{name}"
                out[seen[id(obj)]] = obj
    return out


def _resolve(qualified: str) -> Any:
    """The object a table name stands for: a module attribute, or an attribute of one (a
    method such as ``jacobite.kinematics.Chain.fk``)."""
    mod, _, name = qualified.removesuffix("()").rpartition(".")
    try:
        return getattr(importlib.import_module(mod), name)
    except ModuleNotFoundError:
        return getattr(_resolve(mod), name)


def test_table_covers_every_public_callable() -> None:
    public = public_callables()
    covered = {id(_resolve(e.name)) for e in TABLE} | {id(_resolve(n)) for n in EXEMPT}
    missing = sorted(n for n, obj in public.items() if id(obj) not in covered)
    assert not missing, (f"public callables without an entry in tests/bad_arguments: {missing}; "
                         "add a baseline call and its bad variants there")
    both = sorted({e.name for e in TABLE} & set(EXEMPT))
    assert not both, f"both tabled and exempt: {both}"


@pytest.mark.parametrize("entry", TABLE, ids=lambda e: e.name)
def test_each_entry_has_enough_cases(entry: Entry) -> None:
    assert len(entry.cases) >= MIN_CASES, f"{entry.name}: {len(entry.cases)} bad cases"
    ids = [case_id(s, v) for s, v in entry.cases]
    assert len(set(ids)) == len(ids), f"{entry.name}: duplicate cases"
    assert set(entry.xfail) <= set(ids), f"{entry.name}: xfail for an unknown case"


@pytest.mark.parametrize("entry", TABLE, ids=lambda e: e.name)
def test_baseline_call_works(entry: Entry) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entry.call()


def test_known_type_mismatches_name_real_cases() -> None:
    cases = {(e.name, case_id(s, v)) for e in TABLE for s, v in e.cases}
    assert set(KNOWN_TYPE_MISMATCHES) <= cases, sorted(set(KNOWN_TYPE_MISMATCHES) - cases)


def _cases() -> Iterator[Any]:
    for e in TABLE:
        for case in e.cases:
            slot, value = case
            cid = case_id(slot, value)
            marks = ([pytest.mark.xfail(strict=True, reason=e.xfail[cid])]
                     if cid in e.xfail else [])
            yield pytest.param(e, slot, value, expected_error(case), id=f"{e.name}[{cid}]",
                               marks=marks)


@pytest.mark.parametrize(("entry", "slot", "value", "expected"), list(_cases()))
def test_bad_argument_raises_a_typed_error_naming_the_fix(entry: Entry, slot: Any, value: Any,
                                                          expected: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(JacobiteError) as info:
            entry.call(slot, value)
    msg = str(info.value)
    assert HINT.search(msg), f"{type(info.value).__name__} without a fix: {msg!r}"
    if (entry.name, case_id(slot, value)) in KNOWN_TYPE_MISMATCHES:
        assert not isinstance(info.value, expected), "fixed: drop it from KNOWN_TYPE_MISMATCHES"
    else:
        assert isinstance(info.value, expected), (
            f"{type(info.value).__name__} where {expected} belongs: {msg!r}")
