"""Reference 000's worked example, checked against independent computations (not just constants)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.func as tf
import torch.nn.functional as F

from jacobite.errors import ShapeError
from jacobite.nn import SoftmaxExample, softmax_example

DT = torch.float64
Z = [2.5, 1.0, 3.0]


@pytest.fixture(scope="module")
def ex() -> SoftmaxExample:
    return softmax_example(Z, 0)


def test_published_values(ex: SoftmaxExample) -> None:
    assert ex.sigma == pytest.approx([0.348207, 0.077696, 0.574097], abs=5e-7)
    assert ex.ce_gradient == pytest.approx([-0.651793, 0.077696, 0.574097], abs=5e-7)
    assert ex.jacobian_times_error == pytest.approx([-0.264797, -0.002406, 0.267203], abs=5e-7)
    assert ex.labels == ("dog", "cat", "tiger")


def test_sigma_and_jacobian_match_independent_oracles(ex: SoftmaxExample) -> None:
    e = [math.exp(v) for v in Z]
    assert ex.sigma == pytest.approx([v / math.fsum(e) for v in e], rel=1e-15)
    J = tf.jacrev(lambda v: torch.softmax(v, 0))(torch.tensor(Z, dtype=DT))
    np.testing.assert_allclose(np.array(ex.jacobian), J.numpy(), rtol=0, atol=1e-16)
    np.testing.assert_allclose(ex.eigenvalues, np.linalg.eigvalsh(J.numpy()), atol=1e-15)
    assert min(ex.eigenvalues) > -1e-15 and max(ex.eigenvalues) <= 0.5


def test_gradients_match_autograd(ex: SoftmaxExample) -> None:
    z = torch.tensor(Z, dtype=DT, requires_grad=True)
    (ce,) = torch.autograd.grad(F.cross_entropy(z, torch.tensor(0)), z)
    assert ex.ce_gradient == pytest.approx(ce.tolist(), abs=1e-15)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=DT)
    (sq,) = torch.autograd.grad(0.5 * ((torch.softmax(z, 0) - y) ** 2).sum(), z)
    # J (sigma - y) is the gradient of the squared error on the probabilities ...
    assert ex.jacobian_times_error == pytest.approx(sq.tolist(), abs=1e-15)
    assert ex.squared_error_gradient == pytest.approx(sq.tolist(), abs=1e-15)
    # ... and not the cross-entropy gradient, which reference 000 conflates with it.
    assert not np.allclose(ex.jacobian_times_error, ex.ce_gradient, atol=1e-3)
    assert ex.cross_entropy == pytest.approx(-math.log(ex.sigma[0]), rel=1e-14)


def test_the_texts_rounding_and_sign(ex: SoftmaxExample) -> None:
    assert ex.rounded_sigma == pytest.approx([0.35, 0.08, 0.57])
    s = np.array([0.35, 0.08, 0.57])
    e = s - np.array([1.0, 0.0, 0.0])
    by_hand = (np.diag(s) - np.outer(s, s)) @ e
    assert ex.rounded_jacobian_times_error == pytest.approx(by_hand.tolist(), abs=1e-15)
    # The text prints +0.0019 for "cat": rounded sigma gives -0.0019; the exact value -0.002406.
    assert round(ex.rounded_jacobian_times_error[1], 4) == -0.0019
    assert ex.jacobian_times_error[1] < 0
    notes = " ".join(ex.notes)
    assert "three" in notes and "sign" in notes and "1/2 |sigma - y|^2" in notes
    assert "1/4" in notes


def test_to_dict_is_json_and_has_cli_keys(ex: SoftmaxExample) -> None:
    d = json.loads(json.dumps(ex.to_dict(), allow_nan=False))
    for key in ("sigma", "jacobian", "eigenvalues", "ce_gradient", "jacobian_times_error"):
        assert key in d
    assert d["jacobian"][0] == pytest.approx(list(ex.jacobian[0]))
    text = str(ex)
    assert "dog" in text and "-0.002406" in text


def test_other_inputs() -> None:
    ex = softmax_example(torch.tensor([0.0, 0.0]), 1, labels=["a", "b"])
    assert ex.labels == ("a", "b") and ex.sigma == pytest.approx([0.5, 0.5])
    assert max(ex.eigenvalues) == pytest.approx(0.5)  # the 1/2 bound is attained
    assert not any("Reference 000" in n for n in ex.notes)
    with pytest.raises(ShapeError, match="one per class"):
        softmax_example([1.0, 2.0], 0, labels=["x"])
    with pytest.raises(ShapeError, match="one vector"):
        softmax_example([[1.0, 2.0]], 0)


def test_labels_must_be_names() -> None:
    from jacobite.errors import ArgumentTypeError
    from jacobite.nn import softmax_example

    with pytest.raises(ArgumentTypeError, match="labels must be"):
        softmax_example(labels=3)  # type: ignore[arg-type]
