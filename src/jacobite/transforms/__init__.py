"""Change of variables and integration: ``∫ f(x) dx = ∫ f(T(u)) |det J_T(u)| du``.

Transforms (:class:`Polar`, :class:`Cylindrical`, :class:`Spherical`, :class:`Affine`, or
your own :class:`Transform`) map new coordinates ``u`` to the original ones ``x`` and get their
Jacobian determinant by automatic differentiation; :func:`integrate` pulls an integrand back and
hands it to SciPy's adaptive quadrature.

The Gaussian integral the polar way (reference 003 §2): ``∬ e^{-(x²+y²)} = π``, so
``∫ e^{-x²} dx = √π``.

>>> import math, torch
>>> from jacobite.transforms import integrate
>>> res = integrate(lambda p: torch.exp(-(p ** 2).sum()), "polar", epsabs=1e-12, epsrel=1e-12)
>>> abs(math.sqrt(res.value) - math.sqrt(math.pi)) < 1e-10
True
"""

from .base import Transform
from .flows import LogDetCheck, Planar, Radial, Sylvester, TransformedDensity, check_logdet
from .integrate import METHODS, IntegrationResult, integrate
from .named import TRANSFORMS, Affine, Cylindrical, Polar, Spherical, get_transform

__all__ = [
    "METHODS",
    "TRANSFORMS",
    "Affine",
    "Cylindrical",
    "IntegrationResult",
    "LogDetCheck",
    "Planar",
    "Polar",
    "Radial",
    "Spherical",
    "Sylvester",
    "Transform",
    "TransformedDensity",
    "check_logdet",
    "get_transform",
    "integrate",
]
