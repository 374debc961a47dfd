"""The softmax Jacobian of half-precision logits: built, factorised and answered in the logits'
dtype (factorisations in float32) — against torch.func.jacrev of softmax in float64."""

from __future__ import annotations

import pytest
import torch

from jacobite.nn import softmax_jacobian


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_softmax_jacobian_of_half_precision_logits(dt, shape):
    z = torch.linspace(-2.0, 3.0, torch.Size(shape).numel()).reshape(shape).to(dt)
    op = softmax_jacobian(z)
    assert op.dtype == dt
    want = torch.func.jacrev(lambda t: torch.softmax(t, -1))(z.double().reshape(-1, shape[-1]))
    want = torch.block_diag(*[want[i, :, i] for i in range(want.shape[0])])
    dense = op.to_dense()
    assert dense.dtype == dt
    tol = 8 * torch.finfo(dt).eps
    torch.testing.assert_close(dense.double(), want, rtol=tol, atol=tol)
    sign, lad = op.slogdet()  # rows sum to zero: singular
    assert float(sign) == 0 and lad == -torch.inf and lad.dtype == dt
