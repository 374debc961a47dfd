"""Functions the dense engine cannot differentiate as asked get a typed error that names the fix:
checkpointing, random draws, BatchNorm in training mode; stale caches and the sparse hand-over."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev
from torch.utils.checkpoint import checkpoint

import jacobite
from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    InvalidOptionError,
    ModuleStateError,
    UnsupportedOperationError,
)

from ._functions import NoVmapSquare

DT = torch.float64


def _x() -> torch.Tensor:
    return torch.tensor([0.7, -1.3, 2.1], dtype=DT)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("reentrant", "mode"), [(True, "forward"), (True, "reverse"),
                                                 (False, "reverse")])
def test_checkpoint_names_the_fix(reentrant: bool, mode: str) -> None:
    f = lambda v: checkpoint(torch.sin, v, use_reentrant=reentrant)  # noqa: E731
    x = _x().requires_grad_(not reentrant)  # a J differentiable in x goes through torch.func
    with pytest.raises(UnsupportedOperationError, match="checkpoint"):
        jacobite.jacobian(f, x, mode=mode)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_non_reentrant_checkpoint_works_in_reverse_mode_for_a_constant_jacobian() -> None:
    f = lambda v: checkpoint(torch.sin, v, use_reentrant=False)  # noqa: E731
    J = jacobite.jacobian(f, _x(), mode="reverse")
    torch.testing.assert_close(J, torch.diag(torch.cos(_x())))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_non_reentrant_checkpoint_works_in_forward_mode() -> None:
    f = lambda v: checkpoint(torch.sin, v, use_reentrant=False)  # noqa: E731
    J = jacobite.jacobian(f, _x(), mode="forward")
    torch.testing.assert_close(J, torch.diag(torch.cos(_x())))


def test_dropout_in_training_mode_is_one_draw_in_reverse_mode() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 200).double(), torch.nn.Dropout(0.5))
    x = _x()
    assert jacobite.jacobian_plan(net, x).mode == "reverse"  # auto: one evaluation
    torch.manual_seed(1)
    J = jacobite.jacobian(net, x)
    torch.manual_seed(1)
    ref = jacrev(net)(x)  # the same draw
    torch.testing.assert_close(J, ref)
    with pytest.raises(UnsupportedOperationError, match=r"random.*eval\(\)"):
        jacobite.jacobian(net, x, mode="forward")


def test_batch_jacobian_draws_one_mask_per_sample() -> None:
    torch.manual_seed(0)
    drop = torch.nn.Dropout(0.5)
    X = torch.ones(64, 3, dtype=DT)
    J = jacobite.batch_jacobian(drop, X)
    diag = torch.diagonal(J, dim1=1, dim2=2)
    assert set(diag.unique().tolist()) <= {0.0, 2.0}
    assert len({tuple(r) for r in diag.tolist()}) > 1  # the samples' masks differ


@pytest.mark.parametrize("api", ["jacobian", "batch_jacobian"])
def test_batchnorm_in_training_mode(api: str) -> None:
    bn = torch.nn.BatchNorm1d(3).double().train()
    X = torch.randn(4, 3, dtype=DT)
    with pytest.raises(ModuleStateError, match=r"eval\(\)"):
        getattr(jacobite, api)(bn, X)
    bn.eval()
    J = jacobite.batch_jacobian(bn, X) if api == "batch_jacobian" else None  # a batch of one
    if J is not None:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        torch.testing.assert_close(J.reshape(4, 3, 3), torch.diag(scale.detach()).expand(4, 3, 3))


def test_clear_cache_forgets_the_fast_lane() -> None:
    from jacobite.dense.jacobian import _EXPRESS

    jacobite.jacobian(torch.sin, _x())
    jacobite.jacobian(torch.sin, _x())
    assert _EXPRESS
    jacobite.clear_cache()
    assert not _EXPRESS


@pytest.mark.parametrize("api", ["jacobian", "hessian"])
def test_sparse_hand_over_validates_like_the_dense_path(api: str) -> None:
    fn = getattr(jacobite, api)
    f = lambda v: (v ** 2).sum() if api == "hessian" else v ** 2  # noqa: E731
    with pytest.raises(InvalidOptionError, match="chunk_size"):
        fn(f, _x(), sparse=True, chunk_size=-5)
    with pytest.raises(ArgumentTypeError, match="callable"):
        fn(3, _x(), sparse=True)
    for sparse in (False, True):
        with pytest.raises(ArgnumsError, match="out of range"):
            fn(f, _x(), sparse=sparse, argnums=3)
    with pytest.raises(InvalidOptionError, match="memory size"):
        fn(f, _x(), sparse=True, memory_budget=float("inf"))


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_writing_into_a_non_differentiated_argument_is_refused_untouched(mode: str) -> None:
    buf = torch.zeros(3, dtype=DT)

    def f(v, b):
        b.add_(1.0)
        return v * 2

    with pytest.raises(UnsupportedOperationError, match=r"argument 1 in place.*has_aux"):
        jacobite.jacobian(f, _x(), buf, mode=mode)
    assert torch.equal(buf, torch.zeros(3, dtype=DT))
    # reading it is fine
    J = jacobite.jacobian(lambda v, b: v * b.sum(), _x(), buf + 1, mode=mode)
    torch.testing.assert_close(J, 3 * torch.eye(3, dtype=DT))


def test_a_function_without_a_vmap_rule_names_chunk_size_one() -> None:
    f = lambda v: NoVmapSquare.apply(v).sum()  # noqa: E731
    with pytest.raises(UnsupportedOperationError, match="chunk_size=1"):
        jacobite.hessian(f, _x())
    torch.testing.assert_close(jacobite.hessian(f, _x(), chunk_size=1),
                               2 * torch.eye(3, dtype=DT))
    with pytest.raises(UnsupportedOperationError, match="chunk_size=1"):
        jacobite.jacobian(NoVmapSquare.apply, _x(), mode="forward")


@pytest.mark.parametrize("call", [
    lambda x: jacobite.jacobian(torch.sin, x),
    lambda x: jacobite.jacobian(torch.sin, x, mode="forward"),
    lambda x: jacobite.hessian(lambda v: (v ** 3).sum(), x),
    lambda x: jacobite.batch_jacobian(torch.sin, x.expand(2, 3)),
    lambda x: jacobite.jvp(torch.sin, (x,), (x,))[1],
], ids=["jacobian", "forward", "hessian", "batch_jacobian", "jvp"])
def test_meta_tensors_give_meta_results_of_the_reference_shape(call):
    # a meta tensor has no values, so the finiteness check has nothing to read: the shapes
    # must come out as torch.func's do, not a RuntimeError from reading a value
    x = torch.ones(3, device="meta")
    out = call(x)
    assert out.is_meta
    ref = call(torch.ones(3))
    assert out.shape == ref.shape
