"""Understanding a Jacobian: the *understand* layer of jacobite.

* :func:`properties` — a report on a square Jacobian (symmetry, row/column sums, positive
  semidefiniteness, rank and null space, eigenvalues, condition number, determinant) as a frozen
  :class:`JacobianProperties` with ``to_dict()`` and a readable ``str()``.
* :mod:`~jacobite.analysis.spectra` — matrix-free spectra of a Jacobian operator or of ``f`` at
  ``x``: :func:`spectral_norm`, :func:`top_singular` (Golub–Kahan–Lanczos),
  :func:`frobenius_norm` (Hutchinson, exact with ``nproj=-1``), :func:`condition_number`,
  :func:`logabsdet` (exact from structure, else stochastic Lanczos quadrature).
* :func:`eigenvalues` — extreme eigenpairs of a symmetric operator (a curvature matrix) by
  thick-restart Lanczos, as :class:`Eigenpairs`; :func:`spectral_density` — stochastic Lanczos
  quadrature: the broadened spectrum and ``tr f(A)`` with an error bar.
* :func:`logdet` — per-sample ``log|det J|`` of a square map of a batch (exact, structured,
  SLQ, Hutchinson / Hutch++ on the log series) as a :class:`LogDet`.
* :func:`divergence` — ``tr J_f`` per sample of a vector field, exact or by Hutchinson,
  Hutch++ or XTrace with a standard error (continuous normalizing flows, score matching).
* :mod:`~jacobite.analysis.layers` — :func:`layer_report`: each layer's Jacobian spectral norm,
  the cumulative product and vanishing / exploding flags; :func:`compare_initialisations`.
* :mod:`~jacobite.analysis.sensitivity` — per-sample input Jacobians, saliency maps, the most
  sensitive input directions; :mod:`~jacobite.analysis.adversarial` — FGSM, PGD and accuracy
  against ε.

>>> import torch, jacobite.analysis as ja
>>> ja.properties(torch.tensor([[2.0, 1.0], [1.0, 2.0]])).eigenvalues
(1.0, 3.0)
>>> float(ja.spectral_norm(torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.float64)))
2.0
"""

from .adversarial import (
    accuracy,
    accuracy_vs_eps,
    fgsm,
    input_gradient,
    pgd,
    plot_accuracy_vs_eps,
)
from .divergence import Divergence, divergence
from .eigen import Eigenpairs, eigenvalues
from .layers import (
    LayerReport,
    LayerRow,
    compare_initialisations,
    comparison_table,
    layer_report,
    plot_comparison,
)
from .logdet import LogDet, logdet
from .properties import JacobianProperties, properties
from .sensitivity import SensitiveDirections, input_jacobians, saliency, sensitive_directions
from .slq import SpectralDensity, TraceEstimate, spectral_density
from .spectra import (
    FrobeniusEstimate,
    LogDetEstimate,
    SingularTriplets,
    condition_number,
    frobenius_norm,
    logabsdet,
    spectral_norm,
    top_singular,
)

__all__ = [
    "Divergence",
    "Eigenpairs",
    "FrobeniusEstimate",
    "JacobianProperties",
    "LayerReport",
    "LayerRow",
    "LogDet",
    "LogDetEstimate",
    "SensitiveDirections",
    "SingularTriplets",
    "SpectralDensity",
    "TraceEstimate",
    "accuracy",
    "accuracy_vs_eps",
    "compare_initialisations",
    "comparison_table",
    "condition_number",
    "divergence",
    "eigenvalues",
    "fgsm",
    "frobenius_norm",
    "input_gradient",
    "input_jacobians",
    "layer_report",
    "logabsdet",
    "logdet",
    "pgd",
    "plot_accuracy_vs_eps",
    "plot_comparison",
    "properties",
    "saliency",
    "sensitive_directions",
    "spectral_density",
    "spectral_norm",
    "top_singular",
]
