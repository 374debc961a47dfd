"""Properties of the curvature operators: how the data is split into batches never changes a
mean loss's curvature, the Gauss–Newton quadratic form is a sum of non-negative per-sample
terms, and the cached and uncached products agree."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from jacobite.curvature import ggn, ggn_diagonal, hessian

from ._oracle import make

MODEL, X = make("layernorm", torch.float64)
Y = torch.randint(0, 3, (6,), generator=torch.Generator().manual_seed(3))


@st.composite
def splits(draw: st.DrawFn) -> list[int]:
    cuts = sorted(draw(st.sets(st.integers(1, 5), max_size=4)))
    edges = [0, *cuts, 6]
    return [b - a for a, b in itertools.pairwise(edges)]


@given(sizes=splits(), seed=st.integers(0, 2**16), cache=st.booleans())
def test_a_mean_loss_does_not_depend_on_the_batches(sizes, seed, cache):
    loss = nn.CrossEntropyLoss()
    data = list(zip(X.split(sizes), Y.split(sizes), strict=True))
    v = torch.randn(ggn(MODEL, loss, (X, Y)).shape[1], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    one, split = ggn(MODEL, loss, (X, Y)), ggn(MODEL, loss, data, cache=cache)
    torch.testing.assert_close(split.mv(v), one.mv(v), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hessian(MODEL, loss, data).mv(v),
                               hessian(MODEL, loss, (X, Y)).mv(v), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ggn_diagonal(MODEL, loss, data),
                               ggn_diagonal(MODEL, loss, (X, Y)), rtol=1e-10, atol=1e-13)


@given(seed=st.integers(0, 2**16))
def test_the_quadratic_form_is_the_sum_of_per_sample_terms(seed):
    # vᵀ G v = Σ_n (J_n v)ᵀ H_n (J_n v) ≥ 0 for cross-entropy with sum reduction
    loss = nn.CrossEntropyLoss(reduction="sum")
    G = ggn(MODEL, loss, (X, Y))
    v = torch.randn(G.shape[1], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    per = [ggn(MODEL, loss, (X[i:i + 1], Y[i:i + 1])).mv(v) @ v for i in range(6)]
    assert all(float(q) >= -1e-14 for q in per)
    torch.testing.assert_close(G.mv(v) @ v, torch.stack(per).sum(), rtol=1e-10, atol=1e-13)
