"""Sparse Jacobians treat ``x`` as its values, as the dense path does: an expanded (stride-0)
or otherwise overlapping view gives the Jacobian of its contiguous copy in every mode."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import jacrev

import jacobite
import jacobite.sparse as js

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
MODES = ["auto", "forward", "reverse", "bidirectional"]


def chain(v: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.sin(v[:1]), v[1:] * v[:-1], torch.exp(v[-1:])])


@settings(max_examples=15, deadline=None)
@given(value=st.floats(-3, 3), n=st.integers(2, 9), mode=st.sampled_from(MODES))
def test_an_expanded_input_gives_the_jacobian_of_its_values(value, n, mode):
    x = torch.tensor([value], dtype=torch.float64).expand(n)
    J = jacobite.jacobian(chain, x, sparse=True, mode=mode).to_dense()
    torch.testing.assert_close(J, jacrev(chain)(x.contiguous()), rtol=1e-14, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_a_plan_evaluated_at_an_expanded_point_keeps_its_graph(mode):
    plan = js.prepare(chain, torch.zeros(4, dtype=torch.float64), mode=mode)
    base = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    J = plan.jacobian(base.expand(4)).to_dense()
    (g,) = torch.autograd.grad(J.sum(), base)
    want = torch.func.grad(lambda b: jacrev(chain)(b.expand(4)).sum())(base.detach())
    torch.testing.assert_close(g, want, rtol=1e-13, atol=0)
