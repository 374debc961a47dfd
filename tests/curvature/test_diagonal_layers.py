"""The pieces of the exact diagonal's layer shortcuts against torch: the strided unfolding
against ``F.unfold``, the flipped-kernel input gradient against torch's convolution backward,
and cross-entropy's ``C − 1`` columns against ``diag(p) − ppᵀ``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from jacobite.curvature._diagonal import _rank_columns
from jacobite.curvature._layer_diagonal import InputGradientConv, unfold
from jacobite.curvature._loss import LossCurvature

F64 = torch.float64


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"),
                         [(3, 1, 0, 1), (3, 2, 1, 2), ((2, 3), (1, 2), (1, 0), (2, 1)),
                          (1, 1, 0, 1)])
def test_unfold_equals_torch(kernel, stride, padding, dilation):
    conv = nn.Conv2d(3, 2, kernel, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(4, 3, 9, 8, dtype=F64)
    assert torch.equal(unfold(x, conv), F.unfold(x, kernel, dilation, padding, stride))


@pytest.mark.parametrize(("kernel", "padding", "dilation"),
                         [(3, 0, 1), (3, 1, 1), (3, 2, 1), ((3, 2), (1, 0), (2, 1)), (1, 0, 1)])
def test_flipped_kernel_input_gradient_equals_torch(kernel, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, kernel, padding=padding, dilation=dilation).double().requires_grad_(
        False)
    x = torch.randn(2, 3, 7, 6, dtype=F64, requires_grad=True)
    with InputGradientConv():
        out = conv(x)
    assert "Flipped" in type(out.grad_fn).__name__
    u = torch.randn_like(out)
    got = torch.autograd.grad(out, x, u)[0]
    conv.requires_grad_(True)
    ref = torch.autograd.grad(conv(x), x, u)[0]
    torch.testing.assert_close(out, conv(x), rtol=0, atol=0)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_convolutions_outside_the_flipped_form_keep_torchs_backward():
    x = torch.randn(2, 3, 7, 7, dtype=F64, requires_grad=True)
    frozen = [nn.Conv2d(3, 4, 3, stride=2), nn.Conv2d(3, 3, 3, groups=3),
              nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(3, 4, 3, padding=3)]
    for conv in [c.requires_grad_(False) for c in frozen] + [nn.Conv2d(3, 4, 3)]:
        with InputGradientConv():
            out = conv.double()(x)  # the last one: its weight requires grad
        assert "Flipped" not in type(out.grad_fn).__name__


@settings(max_examples=40, deadline=None)
@given(C=st.integers(2, 7), peak=st.floats(0.0, 40.0), seed=st.integers(0, 2**16))
def test_c_minus_one_columns_give_the_softmax_hessian(C, peak, seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(5, C, generator=g, dtype=F64)
    out[:, -1] += peak  # up to a nearly one-hot p on the reflection's pivot class
    y = torch.randint(0, C, (5,), generator=g)
    S = LossCurvature.of(nn.CrossEntropyLoss(reduction="sum")).sqrt_columns(out, y)
    R = _rank_columns(S, out)
    assert R.shape == (5, C - 1, C)
    p = torch.softmax(out, dim=1)
    H = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    torch.testing.assert_close(R.transpose(1, 2) @ R, H, rtol=0, atol=1e-14)
