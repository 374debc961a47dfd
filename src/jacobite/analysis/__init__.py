"""Understanding a Jacobian: the *understand* layer of jacobite.

* :func:`properties` — a report on a square Jacobian (symmetry, row/column sums, positive
  semidefiniteness, rank and null space, eigenvalues, condition number, determinant) as a frozen
  :class:`JacobianProperties` with ``to_dict()`` and a readable ``str()``.

>>> import torch, jacobite.analysis as ja
>>> ja.properties(torch.tensor([[2.0, 1.0], [1.0, 2.0]])).eigenvalues
(1.0, 3.0)
"""

from .properties import JacobianProperties, properties

__all__ = ["JacobianProperties", "properties"]
