"""Lazy re-exports for a package (PEP 562): names load from their module on first use.

>>> import types
>>> pkg = types.ModuleType("pkg")
>>> pkg.__getattr__, pkg.__dir__ = lazy_exports("json", vars(pkg), {"dumps": "json"}, ())
>>> pkg.dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, namespace: dict[str, Any], sources: dict[str, str],
                 modules: Collection[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: ``sources`` maps a name to the module (absolute,
    or relative to ``package``) it is re-exported from; ``modules`` names submodules loaded as
    themselves. A loaded value is stored in ``namespace`` (the package's globals), so each loads
    once; ``__dir__`` lists the namespace and ``__all__``."""
    def getattr_(name: str) -> Any:
        if name in sources:
            value: Any = getattr(importlib.import_module(sources[name], package), name)
        elif name in modules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return getattr_, dir_
