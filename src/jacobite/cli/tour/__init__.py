"""``jacobite tour``: every worked example of five source texts on the Jacobian, checked.

Each line names the source text's section, jacobite's value, the value the source text prints,
and whether they agree at the printed precision. Where the source text is wrong the line says
what it claims, the correct value, and why; each source text has a page under
``docs/worked-examples/`` (see :data:`SOURCES`) with the full derivation.

>>> from jacobite.cli.tour import EXAMPLES
>>> len(EXAMPLES) > 40
True
"""

from . import ref000, ref001, ref002, ref003, ref004
from ._base import Example, Outcome, agrees, close, disagreement, evaluate, fmt
from ._sources import SOURCES, Source

EXAMPLES: list[Example] = [
    *ref000.EXAMPLES, *ref001.EXAMPLES, *ref002.EXAMPLES, *ref003.EXAMPLES, *ref004.EXAMPLES,
]

__all__ = ["EXAMPLES", "SOURCES", "Example", "Outcome", "Source", "agrees", "close", "disagreement",
           "evaluate", "fmt"]
