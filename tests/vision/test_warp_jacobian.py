"""warp_jacobian equals the dense reverse-mode Jacobian of warp (every model, sampling mode,
padding, batch layout), and its operator products agree with its matrix."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.vision import (
    WARPS,
    CoordinateMap,
    ThinPlateSpline,
    WarpJacobian,
    get_warp,
    warp,
    warp_jacobian,
)

DT = torch.float64


def _params(model: str, batch: int | None, seed: int = 0) -> torch.Tensor:
    """Small random parameters that move points by a pixel or two (not onto the lattice)."""
    g = torch.Generator().manual_seed(seed)
    p = get_warp(model).num_params
    scale = torch.tensor({2: [1.3, 0.7], 3: [0.05, 0.9, 0.4], 4: [0.04, 0.03, 0.6, 0.8],
                          6: [0.04, 0.03, 0.7, -0.02, 0.05, 0.4],
                          8: [0.04, 0.03, 0.7, -0.02, 0.05, 0.4, 2e-3, -1e-3]}[p], dtype=DT)
    shape = (p,) if batch is None else (batch, p)
    return (torch.rand(shape, generator=g, dtype=DT) * 2 - 1) * scale + 0.013


def _image(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=DT)


def _dense(image, model, params, **kw) -> torch.Tensor:
    out = torch.func.jacrev(lambda t: warp(image, model, t, **kw))(params)
    return out.reshape(-1, params.numel())


@pytest.mark.parametrize("model", WARPS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_every_model_matches_jacrev(model, mode):
    img, theta = _image((7, 9)), _params(model, None)
    J = warp_jacobian(img, model, theta, mode=mode)
    assert isinstance(J, WarpJacobian) and J.shape == (63, theta.numel())
    torch.testing.assert_close(J.to_dense(), _dense(img, model, theta, mode=mode),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_paddings_and_align_corners_match_jacrev(padding_mode, align_corners):
    img, theta = _image((2, 6, 8)), _params("homography", None, seed=4) * 4
    kw = {"padding_mode": padding_mode, "align_corners": align_corners}
    J = warp_jacobian(img, "homography", theta, **kw)
    torch.testing.assert_close(J.to_dense(), _dense(img, "homography", theta, **kw),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(J.warped, warp(img, "homography", theta, **kw), rtol=0, atol=0)


@pytest.mark.parametrize("image_batch,param_batch", [(3, 3), (1, 3), (3, 1), (3, None)])
def test_batches_match_jacrev(image_batch, param_batch):
    img, theta = _image((image_batch, 2, 5, 6)), _params("affine", param_batch, seed=2)
    J = warp_jacobian(img, "affine", theta, size=(4, 7))
    dense = _dense(img, "affine", theta, size=(4, 7))
    assert J.shape == dense.shape
    torch.testing.assert_close(J.to_dense(), dense, rtol=0, atol=1e-10)


def test_thin_plate_spline_matches_jacrev():
    ctrl = torch.tensor([[1.0, 1.0], [6.0, 0.5], [0.5, 5.0], [6.5, 6.0], [3.2, 3.1]], dtype=DT)
    tps = ThinPlateSpline(ctrl)
    theta = (torch.rand(2, 10, generator=torch.Generator().manual_seed(5), dtype=DT) - 0.5)
    img = _image((2, 1, 8, 8))
    torch.testing.assert_close(warp_jacobian(img, tps, theta).to_dense(),
                               _dense(img, tps, theta), rtol=0, atol=1e-10)


def test_thin_plate_spline_interpolates_the_control_displacements():
    ctrl = torch.tensor([[1.0, 1.0], [6.0, 0.5], [0.5, 5.0], [6.5, 6.0]], dtype=DT)
    d = torch.randn(1, 8, generator=torch.Generator().manual_seed(0), dtype=DT)
    moved = ThinPlateSpline(ctrl).apply(d, ctrl)
    torch.testing.assert_close(moved[0] - ctrl, d.reshape(4, 2), rtol=0, atol=1e-12)


def test_coordinate_function_matches_jacrev():
    def swirl(t, p):
        r2 = ((p - 3.0) ** 2).sum(-1, keepdim=True)
        return p + t[:2] + t[2] * torch.sin(r2 / 10) * (p - 3.0).flip(-1)

    img, theta = _image((1, 7, 7)), torch.tensor([0.3, -0.2, 0.15], dtype=DT)
    J = warp_jacobian(img, swirl, theta)
    torch.testing.assert_close(J.to_dense(), _dense(img, CoordinateMap(swirl, 3), theta),
                               rtol=0, atol=1e-10)


def test_closed_form_coordinate_jacobians_match_jacfwd():
    pts = torch.rand(11, 2, dtype=DT) * 20
    for model in WARPS:
        w, theta = get_warp(model), _params(model, 3, seed=7)
        auto = torch.func.vmap(torch.func.jacfwd(lambda t, w=w: w.apply(t[None], pts)[0]))(theta)
        torch.testing.assert_close(w.jacobian(theta, pts), auto, rtol=0, atol=1e-12)


def test_products_agree_with_the_matrix():
    img, theta = _image((2, 3, 5, 5)), _params("similarity", 2)
    J = warp_jacobian(img, "similarity", theta)
    dense = J.to_dense()
    v, u = torch.randn(J.shape[1], dtype=DT), torch.randn(J.shape[0], dtype=DT)
    torch.testing.assert_close(J.mv(v), dense @ v)
    torch.testing.assert_close(J.rmv(u), dense.T @ u)
    V, U = torch.randn(J.shape[1], 3, dtype=DT), torch.randn(J.shape[0], 2, dtype=DT)
    torch.testing.assert_close(J.mm(V), dense @ V)
    torch.testing.assert_close(J.rmm(U), dense.T @ U)
    torch.testing.assert_close(J.blocks(), torch.stack([dense[:75, :4], dense[75:, 4:]]))


def test_nearest_sampling_has_a_zero_jacobian():
    J = warp_jacobian(_image((6, 6)), "translation", torch.tensor([0.3, 0.2], dtype=DT),
                      mode="nearest")
    assert not J.to_dense().any()


def test_float32_on_a_larger_image_matches_float64():
    img = _image((1, 1, 40, 48))
    theta = _params("homography", None, seed=9)
    J64 = warp_jacobian(img, "homography", theta).to_dense()
    J32 = warp_jacobian(img.float(), "homography", theta.float()).to_dense()
    assert J32.dtype == torch.float32
    torch.testing.assert_close(J32.double(), J64, rtol=1e-4, atol=1e-4 * J64.abs().max().item())


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(WARPS), mode=st.sampled_from(["bilinear", "bicubic"]),
       padding_mode=st.sampled_from(["zeros", "border", "reflection"]),
       align_corners=st.booleans(), h=st.integers(1, 6), w=st.integers(1, 6),
       channels=st.integers(1, 3), batch=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_random_problems_match_jacrev(model, mode, padding_mode, align_corners, h, w, channels,
                                      batch, seed):
    img = _image((batch or 1, channels, h, w), seed=seed)
    theta = _params(model, batch, seed=seed) * 3
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    J = warp_jacobian(img, model, theta, **kw)
    torch.testing.assert_close(J.to_dense(), _dense(img, model, theta, **kw),
                               rtol=0, atol=1e-10)
