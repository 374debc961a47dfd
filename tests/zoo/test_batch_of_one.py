"""How a model that expects a batch is told from a function of one sample, and the errors that
name the fix when the two are mixed up."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import jacrev

import jacobite
from jacobite.analysis import spectral_norm
from jacobite.errors import ArgumentTypeError, ShapeError

from .models import DT, ZOO


def _cnn() -> nn.Module:
    return next(a for a in ZOO if a.name == "cnn_flatten").make()


def test_a_function_of_a_batch_is_told_by_batched_model() -> None:
    X = torch.randn(4, 1, 6, 6, dtype=DT)
    cnn = _cnn()

    def of_a_batch(b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(cnn(b))

    J = jacobite.batch_jacobian(of_a_batch, X, batched_model=True)
    ref = torch.stack([jacrev(lambda v: of_a_batch(v[None])[0])(x) for x in X])
    torch.testing.assert_close(J, ref)
    with pytest.raises(RuntimeError):  # a plain function is called on one unbatched sample
        jacobite.batch_jacobian(of_a_batch, X)


def test_a_module_of_one_sample_opts_out() -> None:
    lin = nn.Linear(3, 2).double()
    X = torch.randn(5, 3, dtype=DT)
    for flag in (None, True, False):  # a Linear maps a sample and a batch alike
        torch.testing.assert_close(jacobite.batch_jacobian(lin, X, batched_model=flag),
                                   lin.weight.detach().expand(5, 2, 3))
    with pytest.raises(ArgumentTypeError, match="batched_model"):
        jacobite.batch_jacobian(lin, X, batched_model="yes")


def test_an_output_without_the_batch_first_is_refused() -> None:
    X = torch.randn(4, 3, dtype=DT)
    with pytest.raises(ShapeError, match="batch dimension first"):
        jacobite.batch_jacobian(lambda b: b.sum(0), X, batched_model=True)


def test_batch_dimension_where_in_dims_puts_it() -> None:
    X = torch.randn(3, 5, dtype=DT)  # the batch is dimension 1: 5 samples of 3
    W = torch.randn(2, 3, dtype=DT)
    J = jacobite.batch_jacobian(lambda b: (W @ b).T, X, in_dims=1, batched_model=True)
    torch.testing.assert_close(J, W.expand(5, 2, 3))


def test_spectral_norm_of_one_sample_names_the_option() -> None:
    cnn, x = _cnn(), torch.randn(1, 6, 6, dtype=DT)
    with pytest.raises(ShapeError, match="batched_model=True"):
        spectral_norm(cnn, x)
    ref = torch.linalg.matrix_norm(jacrev(lambda v: cnn(v[None])[0])(x).reshape(3, -1), ord=2)
    assert float(spectral_norm(cnn, x, batched_model=True).detach()) == pytest.approx(
        float(ref.detach()), rel=1e-9)
    torch.testing.assert_close(spectral_norm(cnn, x, batched_model=True),
                               spectral_norm(cnn, x[None]))


@settings(max_examples=15)
@given(batch=st.integers(1, 4), width=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_a_module_per_sample_equals_a_loop(batch: int, width: int, seed: int) -> None:
    """BatchNorm (eval) and Flatten in one model: each sample's block is its own Jacobian."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * width, 3), nn.BatchNorm1d(3),
                          nn.Tanh()).double().eval()
    with torch.no_grad():
        model[2].running_var.uniform_(0.5, 2.0)
    X = torch.randn(batch, 2, width, dtype=DT)
    J = jacobite.batch_jacobian(model, X)
    ref = torch.stack([jacrev(lambda v: model(v[None])[0])(x) for x in X])
    torch.testing.assert_close(J, ref)
