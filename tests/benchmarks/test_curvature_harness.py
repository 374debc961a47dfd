"""The curvature benchmark's harness: its problems have the stated sizes, its peer adapters
(curvlinops' products, BackPACK's diagonal) agree with dense matrices built by torch.func in the
same parameter order, and a missing peer skips its rows instead of failing the run."""

from __future__ import annotations

import pytest
import torch

from benchmarks import _curv_cases as cc
from benchmarks import bench_curvature as bc


def _tiny() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.nn.Module]:
    model = cc.mlp((5, 4, 3)).double()
    X, y = cc.data((5,), 3, 6, seed=0)
    return model, X.double(), y, torch.nn.CrossEntropyLoss()


def _dense(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor,
           loss: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The GGN and the Hessian of the mean loss in the flat parameters, by torch.func."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflat(w: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, s in zip(names, shapes, strict=True):
            out[k] = w[i:i + s.numel()].reshape(s)
            i += s.numel()
        return out

    def outputs(w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, unflat(w), (X,))

    J = torch.func.jacrev(outputs)(flat).reshape(-1, flat.numel())
    Hz = torch.func.hessian(lambda z: loss(z.reshape(len(X), -1), y))(outputs(flat))
    Hz = Hz.reshape(J.shape[0], J.shape[0])
    H = torch.func.hessian(lambda w: loss(outputs(w), y))(flat)
    return J.T @ Hz @ J, H


def test_mnist_mlp_has_curvlinops_sizes() -> None:
    model = cc.mlp(cc.MNIST_DIMS)
    assert sum(p.numel() for p in model.parameters()) == 1_501_770
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [
        1024, 512, 256, 128, 64, 10]


def test_cnn_has_layernorm_and_ten_outputs() -> None:
    cnn = cc.cnn_layernorm(12)
    X, _ = cc.data((1, 12, 12), 10, 3, seed=0)
    assert cnn(X).shape == (3, 10)
    assert any(isinstance(m, torch.nn.LayerNorm) for m in cnn)


def test_column_backward_is_the_vjp_to_the_first_activation() -> None:
    cnn = cc.cnn_layernorm(8)
    X, _ = cc.data((1, 8, 8), 10, 2, seed=0)
    got = cc.column_backward(cnn, X, columns=3, seed=4)()
    U = torch.randn(3, 2, 10, generator=torch.Generator().manual_seed(4))
    a1 = torch.relu(cnn[0](X)).detach().requires_grad_()
    out = cnn[2:](a1)
    want = torch.stack([torch.autograd.grad(out, a1, u, retain_graph=True)[0] for u in U])
    torch.testing.assert_close(got, want)


def test_gradient_unit_is_the_loss_gradient() -> None:
    model, X, y, loss = _tiny()
    params = {k: p.detach() for k, p in model.named_parameters()}
    g = torch.func.grad(lambda p: loss(torch.func.functional_call(model, p, (X,)), y))(params)
    want = torch.cat([t.reshape(-1) for t in g.values()])
    torch.testing.assert_close(cc.gradient(model, loss, X, y)(), want)


@pytest.mark.parametrize("kind", ["ggn", "hessian"])
def test_curvlinops_products_match_the_dense_matrices(kind: str) -> None:
    pytest.importorskip("curvlinops")
    model, X, y, loss = _tiny()
    G, H = _dense(model, X, y, loss)
    want = {"ggn": G, "hessian": H}[kind]
    v = torch.randn(want.shape[0], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cc.curvlinops_product(kind, model, loss, X, y)(v), want @ v)


def test_backpack_diagonal_matches_the_dense_ggn_and_leaves_the_model_alone() -> None:
    pytest.importorskip("backpack")
    model, X, y, loss = _tiny()
    G, _ = _dense(model, X, y, loss)
    torch.testing.assert_close(cc.backpack_diagonal(model, loss, X, y)(), G.diagonal())
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.children())


def test_relative_difference() -> None:
    assert cc.relative(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 5.0])) == pytest.approx(
        (9 + 1) ** 0.5 / 5)


def test_missing_peers_skip_their_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cc, "have", lambda module: False)
    ggn_sec, diag_sec, hess_sec = bc.run(quick=True)
    assert ggn_sec.rows == [["skipped: install curvlinops-for-pytorch"]]
    assert hess_sec.rows == [["skipped: install curvlinops-for-pytorch"]]
    peer_rows = [r for r in diag_sec.rows if r[1] == "BackPACK DiagGGNExact"]
    assert [r[2] for r in peer_rows] == ["skipped: install backpack-for-pytorch"] * 2
    assert all(isinstance(r[3], float) for r in diag_sec.rows if str(r[1]).startswith("jacobite"))


def test_quick_run_with_the_peers_reports_agreement() -> None:
    pytest.importorskip("curvlinops")
    pytest.importorskip("backpack")
    ggn_sec, diag_sec, hess_sec = bc.run(quick=True)
    for sec in (ggn_sec, hess_sec):
        errs = [r[4] for r in sec.rows if str(r[0]).startswith("jacobite") and r[4] != ""]
        assert errs and all(isinstance(e, float) and e <= bc.TOL for e in errs)
    err = diag_sec.rows[2][4]
    assert isinstance(err, float) and err <= bc.TOL
    assert str(diag_sec.rows[4][2]).startswith("cannot: `NotImplementedError")
