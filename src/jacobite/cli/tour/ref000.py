"""Source text 000: softmax in classification, its Jacobian, an output error mapped back."""

from __future__ import annotations

import functools

import numpy as np

from ._base import Example

Z = [2.5, 1.0, 3.0]


def _sigma() -> np.ndarray:  # independent closed form
    e = np.exp(np.array(Z) - max(Z))
    return e / e.sum()


def _J() -> np.ndarray:
    s = _sigma()
    return np.diag(s) - np.outer(s, s)


def _err() -> np.ndarray:
    return _sigma() - np.array([1.0, 0.0, 0.0])


@functools.cache
def _ex():  # jacobite's worked example (float64)
    from ...nn import softmax_example

    return softmax_example(Z, 0)


def _jte(i: int | None = None):
    def f():
        v = np.array(_ex().jacobian_times_error)
        return v if i is None else float(v[i])
    return f


def _jte_correct(i: int | None = None):
    def f():
        v = _J() @ _err()
        return v if i is None else float(v[i])
    return f


HOW = "jacobite softmax 2.5 1.0 3.0 --target 0"

EXAMPLES = [
    Example("000", "3.1.1 The Softmax function", "σ = softmax([2.5, 1.0, 3.0])",
            lambda: np.array(_ex().sigma), [0.35, 0.08, 0.57], _sigma, decimals=2,
            how=HOW),
    Example("000", "3.1.1 The Softmax function", "number of classes (dog, cat, tiger)",
            lambda: len(_ex().sigma), 4, lambda: len(Z), decimals=0, text_ok=False,
            claim="four classes",
            note="z has three logits and the source text names three animals: there are three "
                 "classes",
            how=HOW),
    Example("000", "3.1.2 Derivative of Softmax", "J = diag(σ) − σσᵀ at z",
            lambda: np.array(_ex().jacobian), None, _J,
            note="the source text's matrices are illegible; off the diagonal the entries are −σᵢσⱼ",
            how="jacobite.nn.softmax_jacobian(z).to_dense()"),
    Example("000", "3.1.2 Training", "Δy = σ − y (y = dog)", lambda: np.array(_ex().error),
            [-0.65, 0.08, 0.57], _err, decimals=2, how=HOW),
    Example("000", "3.1.2 Training", "Δz₁ (dog) = [J(σ − y)]₁", _jte(0), -0.26,
            _jte_correct(0), decimals=2, how=HOW),
    Example("000", "3.1.2 Training", "Δz₂ (cat) = [J(σ − y)]₂", _jte(1), 0.0019,
            _jte_correct(1), decimals=4, text_ok=False,
            note="0.0019 is J(σ − y) evaluated at σ rounded to two decimals (−0.001904) with its "
                 "sign dropped; the source text also labels the cat entry Δz₃",
            how=HOW),
    Example("000", "3.1.2 Training", "Δz₃ (tiger) = [J(σ − y)]₃", _jte(2), 0.2657,
            _jte_correct(2), decimals=4, text_ok=False,
            note="0.2657 is J(σ − y) evaluated at σ rounded to two decimals (0.265734). Each "
                 "column of the softmax Jacobian sums to 0, so J·v sums to 0 for every v; the "
                 "printed Δz sums to 0.0076",
            how=HOW),
    Example("000", "3.1.2 Training", "the gradient of cross-entropy w.r.t. the logits",
            lambda: np.array(_ex().ce_gradient), [-0.26, 0.0019, 0.2657], _err, decimals=4,
            text_ok=False,
            note="the source text calls Δz = J(σ − y) the gradient of the cross-entropy loss; "
                 "that gradient is σ − y itself. J(σ − y) is the gradient of ½‖σ − y‖²",
            how=HOW),
    Example("000", "3.1.2 Training", "J(σ − y) = ∇_z ½‖σ(z) − y‖²",
            lambda: np.array(_ex().squared_error_gradient), None, _jte_correct(),
            how="jacobite.nn.softmax_example(z, 0).squared_error_gradient"),
]
