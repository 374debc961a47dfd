r"""Griffe extensions for the API pages: doctests and roles as code, exports over modules.

jacobite's docstrings carry bare doctests (``>>>`` lines and their output) that pytest runs.
Markdown would read them as paragraphs (and ``[a, b]`` outputs as links), so before the
docstrings are rendered each run of doctest lines — from a ``>>>`` line to the next blank
line — is wrapped in a fenced block at its own indentation. The sources are not touched.
Cross-reference roles (``:func:`name```, ``:class:`~pkg.Name```) become code spans, written as
Python's help shows them: the name, without the path where ``~`` asks for that.

Several packages re-export a function from a module of the same name (``jacobite.dense`` exports
``jacobian`` from ``jacobite/dense/jacobian.py``). Python binds the package attribute to the
function; griffe binds it to the module, which the pages (submodules hidden) would then leave out.
:class:`PreferExports` restores Python's binding.

>>> fence(">>> 1 + 1\n2\n\nText.").splitlines()
['```pycon', '>>> 1 + 1', '2', '```', '', 'Text.']
>>> plain_roles("See :func:`jacobite.hessian` and :class:`~jacobite.errors.JacobiteError`.")
'See `jacobite.hessian` and `JacobiteError`.'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["DoctestFences", "PreferExports", "fence", "plain_roles"]

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")


def fence(text: str) -> str:
    """``text`` with every run of doctest lines wrapped in a ```` ```pycon ```` block."""
    out: list[str] = []
    in_fence = in_doctest = False
    indent = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if in_doctest and not stripped:
            out.append(f"{indent}```")
            in_doctest = False
        elif not in_doctest and stripped.startswith("```"):
            in_fence = not in_fence
        elif not in_doctest and not in_fence and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            in_doctest = True
        out.append(line)
    if in_doctest:
        out.append(f"{indent}```")
    return "\n".join(out)


def plain_roles(text: str) -> str:
    """``text`` with every cross-reference role written as a Markdown code span."""
    return _ROLE.sub(lambda m: f"`{m[2].rpartition('.')[2] if m[1] else m[2]}`", text)


class DoctestFences(griffe.Extension):
    """Fence the doctests and unwrap the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(fence(obj.docstring.value))


class PreferExports(griffe.Extension):
    """Where a package imports a name that is also one of its submodules, the import wins."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        moved: dict[str, griffe.Object] = {}
        _prefer_exports(pkg, moved)
        _retarget(pkg, moved)


def _prefer_exports(module: griffe.Module, moved: dict[str, griffe.Object]) -> None:
    for name, member in list(module.members.items()):
        if not isinstance(member, griffe.Module):
            continue
        _prefer_exports(member, moved)
        target = module.imports.get(name, "")
        inner = member.members.get(target.rpartition(".")[2])
        if target.startswith(member.path + ".") and isinstance(inner, griffe.Object):
            module.members[name] = griffe.Alias(name, inner, parent=module)
            moved[member.path] = inner


def _retarget(module: griffe.Module, moved: dict[str, griffe.Object]) -> None:
    for member in list(module.members.values()):
        if isinstance(member, griffe.Alias):
            if member.target_path in moved:
                member.target = moved[member.target_path]
        elif isinstance(member, griffe.Module):
            _retarget(member, moved)
