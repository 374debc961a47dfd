"""``jacobite tour``: every worked example of the reference texts, in order, checked.

Each line names the text and section, jacobite's value, the text's printed value, whether they
agree at the text's printed precision, and a note where the text is wrong.

>>> from jacobite.cli.tour import EXAMPLES
>>> len(EXAMPLES) > 40
True
"""

from . import ref000, ref001, ref002, ref003, ref004
from ._base import Example, Outcome, agrees, close, evaluate, fmt

EXAMPLES: list[Example] = [
    *ref000.EXAMPLES, *ref001.EXAMPLES, *ref002.EXAMPLES, *ref003.EXAMPLES, *ref004.EXAMPLES,
]

__all__ = ["EXAMPLES", "Example", "Outcome", "agrees", "close", "evaluate", "fmt"]
