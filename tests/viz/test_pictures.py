"""The pictures: each renders a valid, non-trivial PNG; colormaps are centred at 0; the data
drawn equals independent oracles (closed-form softmax Jacobian, torch.func determinants)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.func import jacrev, vmap

import jacobite
from jacobite.operators import DenseOperator, DiagonalOperator, SparseOperator

plt_image = pytest.importorskip("matplotlib.image")
from jacobite.viz import (  # noqa: E402
    deformed_grid,
    heatmap,
    nonzero_pattern,
    save_figure,
    softmax_panels,
    spy,
)

DT = torch.float64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path, min_bytes: int = 5000) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    img = plt_image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a uniform image
    return img


def assert_centred(norm) -> None:
    assert norm.vmin == pytest.approx(-norm.vmax)
    assert getattr(norm, "vcenter", 0.0) == 0.0


# ---------------------------------------------------------------------- heatmap
def test_heatmap_png_colorbar_centred_and_data(tmp_path):
    f = lambda x: torch.stack([x[0] * x[1], torch.sin(x[2]) - x[0], x[1] ** 2])  # noqa: E731
    x = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    J = jacobite.jacobian(f, x)
    fig = heatmap(J, labels=(["f1", "f2", "f3"], ["x1", "x2", "x3"]), title="J",
                  save=tmp_path / "J.png")
    assert_valid_png(tmp_path / "J.png")
    ax, cbar = fig.axes
    image = ax.images[0]
    assert_centred(image.norm)
    assert image.norm.vmax == pytest.approx(J.abs().max().item())
    np.testing.assert_allclose(np.asarray(image.get_array()), jacrev(f)(x).numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x1", "x2", "x3"]
    assert len(ax.texts) == 9  # small matrices are annotated
    assert cbar.get_ylabel() == "∂fᵢ/∂xⱼ"


@pytest.mark.parametrize("kind", ["numpy", "dense_op", "diag_op", "scipy", "torch_sparse"])
def test_heatmap_accepts_arrays_operators_and_sparse(kind):
    A = np.array([[0.0, 1.0, -3.0], [2.0, 0.0, 0.5]])
    J = {"numpy": A, "dense_op": DenseOperator(torch.tensor(A)),
         "diag_op": DiagonalOperator(torch.tensor([1.0, -4.0], dtype=DT)),
         "scipy": sp.csr_array(A), "torch_sparse": torch.tensor(A).to_sparse()}[kind]
    fig = heatmap(J, annotate=False)
    norm = fig.axes[0].images[0].norm
    assert_centred(norm)
    assert norm.vmax == pytest.approx(4.0 if kind == "diag_op" else 3.0)
    assert len(fig.axes[0].texts) == 0


def test_heatmap_into_given_axes_all_positive_still_centred():
    from jacobite.viz._common import new_figure

    fig0 = new_figure((8, 4))
    _, ax2 = fig0.subplots(1, 2)
    fig = heatmap(torch.rand(50, 60) + 1.0, ax=ax2, colorbar=False)
    assert fig is fig0 and len(fig.axes) == 2
    assert_centred(ax2.images[0].norm)
    assert len(ax2.texts) == 0  # 3000 cells: not annotated automatically


def test_heatmap_respects_memory_budget():
    big = DiagonalOperator(torch.ones(2000, dtype=DT))
    with jacobite.config.memory_budget("1 MiB"), \
            pytest.raises(jacobite.errors.JacobianTooLarge, match="spy"):
        heatmap(big)


# ---------------------------------------------------------------------- softmax
def test_softmax_panels_match_reference_004(tmp_path):
    z = torch.tensor([2.0, 1.0, 0.5, -0.5, 0.0], dtype=DT)
    fig = softmax_panels(z, title="softmax", save=tmp_path / "softmax.png")
    assert_valid_png(tmp_path / "softmax.png", min_bytes=20000)
    ax_j, ax_d, ax_p, cbar = fig.axes
    sigma = torch.softmax(z, 0)
    closed = torch.diag(sigma) - torch.outer(sigma, sigma)  # diag(σ) − σσᵀ
    np.testing.assert_allclose(np.asarray(ax_j.images[0].get_array()), closed.numpy(),
                               atol=1e-15)
    assert_centred(ax_j.images[0].norm)
    heights = [p.get_height() for p in ax_d.patches]
    np.testing.assert_allclose(heights, (sigma * (1 - sigma)).numpy(), atol=1e-15)
    np.testing.assert_allclose([p.get_height() for p in ax_p.patches], sigma.numpy())
    assert ax_p.get_title() == "Softmax probabilities σ"
    assert cbar.get_ylabel() == "∂σᵢ/∂zⱼ"


# ---------------------------------------------------------------------- deformed grid
def polar(u: torch.Tensor) -> torch.Tensor:
    return torch.stack([u[0] * torch.cos(u[1]), u[0] * torch.sin(u[1])])


def test_deformed_grid_polar_is_coloured_by_det_equal_r(tmp_path):
    fig = deformed_grid(polar, (0.2, 1.0), (0.0, 1.5 * math.pi), n=9, refine=4,
                        save=tmp_path / "grid.png")
    assert_valid_png(tmp_path / "grid.png", min_bytes=20000)
    ax, cbar = fig.axes
    mesh = ax.collections[0]
    D = np.asarray(mesh.get_array()).reshape(33, 33)
    r = np.linspace(0.2, 1.0, 33)
    np.testing.assert_allclose(D, np.broadcast_to(r, (33, 33)), atol=1e-12)  # det J = r
    assert cbar.get_ylabel() == "det J"
    assert len(ax.collections[1].get_segments()) == 18  # 9 + 9 grid lines


def test_deformed_grid_fold_uses_a_diverging_norm_centred_at_zero():
    fold = lambda p: torch.stack([p[0], p[1] ** 3 - 0.5 * p[1]])  # noqa: E731
    fig = deformed_grid(fold, (-1, 1), (-1, 1), n=5, refine=2)
    mesh = fig.axes[0].collections[0]
    assert mesh.norm.vcenter == 0.0 and mesh.norm.vmin < 0 < mesh.norm.vmax
    pts = torch.tensor([[0.3, 0.1], [0.2, 0.9]], dtype=DT)
    dets = torch.linalg.det(vmap(jacrev(fold))(pts))
    assert dets[0] < 0 < dets[1]


def test_deformed_grid_linear_map_has_constant_det():
    A = torch.tensor([[2.0, 1.0], [0.0, 1.5]], dtype=DT)
    fig = deformed_grid(lambda p: A @ p, n=4, refine=1)
    D = np.asarray(fig.axes[0].collections[0].get_array())
    np.testing.assert_allclose(D, 3.0)


# ---------------------------------------------------------------------- spy
def test_spy_sparse_operator_dense_and_scipy_agree(tmp_path):
    M = sp.random(40, 50, density=0.08, random_state=2, format="csr") + sp.eye(40, 50)
    fig = spy(SparseOperator(M), save=tmp_path / "spy.png")
    assert_valid_png(tmp_path / "spy.png")
    nnz = M.nnz
    assert fig.axes[0].get_title() == f"sparsity: 40×50, nnz = {nnz} ({nnz / 2000:.2%})"
    want = set(zip(*M.nonzero(), strict=True))
    for source in (M, M.toarray(), torch.tensor(M.toarray()), torch.tensor(M.toarray()) != 0,
                   SparseOperator(M), torch.tensor(M.toarray()).to_sparse_csr()):
        rows, cols, shape = nonzero_pattern(source)
        assert shape == (40, 50)
        assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == want


def test_spy_precision_and_explicit_zeros():
    M = sp.csr_array((np.array([1.0, 0.0, 1e-9]), (np.array([0, 1, 2]), np.array([0, 1, 2]))),
                     shape=(3, 3))
    assert nonzero_pattern(M)[0].tolist() == [0, 2]
    assert nonzero_pattern(M, "present")[0].tolist() == [0, 1, 2]
    assert nonzero_pattern(M, 1e-6)[0].tolist() == [0]
    fig = spy(np.zeros((4, 4)))
    assert "nnz = 0" in fig.axes[0].get_title()


# ---------------------------------------------------------------------- saving
def test_save_figure_formats(tmp_path):
    fig = heatmap(torch.eye(3))
    assert save_figure(fig, tmp_path / "J.svg").read_text().lstrip().startswith("<?xml")
    assert save_figure(fig, str(tmp_path / "J.pdf")).read_bytes()[:4] == b"%PDF"
