"""Bad inputs: each raises the typed error, and the message names the fix."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from torch.func import jacrev
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import jacobite
from jacobite.errors import (
    ArgnumsError,
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    JacobiteError,
    JacobiteWarning,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)

DT = torch.float64
MODES = ["forward", "reverse", "auto"]
RETURN_TENSORS = r"return (a tensor|torch tensors \(e\.g\. torch\.stack)"
RETURN_FLOAT = "return a floating-point tensor"


def _x() -> torch.Tensor:
    return torch.tensor([0.5, -1.0, 2.0], dtype=DT)


# ------------------------------------------------------------------------------ inputs


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("api", ["jacobian", "value_and_jacobian", "hessian", "linearize",
                                 "jacobian_plan"])
def test_non_finite_input(api: str, bad: float) -> None:
    x = _x()
    x[1] = bad
    f = (lambda v: v.pow(2).sum()) if api == "hessian" else torch.sin
    with pytest.raises(NonFiniteInputError, match=r"nan_to_num|check_finite=False") as info:
        if api == "jacobian_plan":
            # a dry run does not evaluate at the point; it may accept NaN — but jacobian may not
            jacobite.jacobian(f, x)
        else:
            getattr(jacobite, api)(f, x)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, JacobiteError)


def test_non_finite_in_one_pytree_leaf_and_check_finite_false() -> None:
    p = {"a": _x(), "b": torch.tensor([1.0, float("nan")], dtype=DT)}

    def f(q):
        return q["a"] * q["b"].sum()

    with pytest.raises(NonFiniteInputError, match="leaf 1"):
        jacobite.jacobian(f, p)
    # opting out computes through the NaN, exactly like torch.func
    J = jacobite.jacobian(f, p, check_finite=False, mode="reverse")
    ref = jacrev(f)(p)
    for k in ("a", "b"):
        torch.testing.assert_close(J[k], ref[k], equal_nan=True)


def test_non_finite_non_differentiated_argument_is_allowed() -> None:
    x = _x()
    s = torch.tensor([float("nan")], dtype=DT)

    def f(v, w):
        return v * torch.nan_to_num(w, nan=3.0)

    J = jacobite.jacobian(f, x, s)
    torch.testing.assert_close(J, 3.0 * torch.eye(3, dtype=DT))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_and_bool_inputs(dtype: torch.dtype) -> None:
    x = torch.tensor([1, 0, 1]).to(dtype)
    with pytest.raises(DtypeError, match=r"\.double\(\)") as info:
        jacobite.jacobian(torch.sin, x)
    assert isinstance(info.value, TypeError)
    with pytest.raises(DtypeError, match=r"\.double\(\)"):
        jacobite.hessian(lambda v: v.sum(), x)
    with pytest.raises(DtypeError, match=r"\.double\(\)"):
        jacobite.jacobian(lambda a, b: a * b, _x(), x, argnums=(0, 1))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_input(dtype: torch.dtype) -> None:
    with pytest.raises(DtypeError, match="view_as_real") as info:
        jacobite.jacobian(torch.sin, torch.ones(2, dtype=dtype))
    assert isinstance(info.value, TypeError)


# ------------------------------------------------------------------------------ outputs


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("f", "err", "phrase"), [
    pytest.param(lambda v: 1.5, OutputTypeError, RETURN_TENSORS, id="float"),
    pytest.param(lambda v: [1.0, 2.0], OutputTypeError, RETURN_TENSORS, id="list_of_floats"),
    pytest.param(lambda v: None, OutputTypeError, RETURN_TENSORS, id="none"),
    pytest.param(lambda v: 3, OutputTypeError, RETURN_TENSORS, id="int"),
    pytest.param(lambda v: "x", OutputTypeError, RETURN_TENSORS, id="string"),
    pytest.param(lambda v: (v * 10).long(), DtypeError, RETURN_FLOAT, id="int_tensor"),
    pytest.param(lambda v: v > 0, DtypeError, RETURN_FLOAT, id="bool_tensor"),
    pytest.param(lambda v: (v * 2, 1.0), OutputTypeError, RETURN_TENSORS, id="mixed_tree"),
    pytest.param(lambda v: (), OutputTypeError, RETURN_TENSORS, id="empty_tuple"),
])
def test_bad_outputs(f, err, phrase, mode: str) -> None:
    with pytest.raises(err, match=phrase) as info:
        jacobite.jacobian(f, _x(), mode=mode)
    assert isinstance(info.value, TypeError)


def test_has_aux_needs_a_pair() -> None:
    with pytest.raises(OutputTypeError, match="pair"):
        jacobite.jacobian(torch.sin, _x(), has_aux=True)


@pytest.mark.parametrize("mode", MODES)
def test_has_aux_with_non_tensor_aux(mode: str) -> None:
    """Aux data that is not a tensor (a Python number, a string): passed through, or refused
    with a typed error that names the fix — not torch.func's bare RuntimeError."""
    def f(v):
        return torch.sin(v), {"n": 3.5, "tag": "x"}

    try:
        J, aux = jacobite.jacobian(f, _x(), has_aux=True, mode=mode)
    except JacobiteError as exc:
        assert isinstance(exc, OutputTypeError)
        assert "aux" in str(exc) and "tensor" in str(exc)
    else:
        assert aux == {"n": 3.5, "tag": "x"}
        torch.testing.assert_close(J, torch.diag(torch.cos(_x())))


def test_not_callable() -> None:
    with pytest.raises(JacobiteError, match="callable"):
        jacobite.jacobian(_x(), _x())


# ------------------------------------------------------------------------------ argnums


@pytest.mark.parametrize(("argnums", "phrase"), [
    (2, "out of range"), (-3, "out of range"), ((0, 5), "out of range"),
    ((0, 0), "twice"), ((1, -1), "twice"), ((), "empty"),
    ("0", "int"), (0.0, "int"), (True, "int"), ((0, None), "int"),
])
def test_bad_argnums(argnums, phrase: str) -> None:
    with pytest.raises(ArgnumsError, match=phrase) as info:
        jacobite.jacobian(lambda a, b: a * b, _x(), _x(), argnums=argnums)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [3.0, "abc", None, {"k": 1.0}, [1.0, 2.0]])
def test_argnums_pointing_at_a_non_tensor(value) -> None:
    with pytest.raises(ArgnumsError, match=r"tensor") as info:
        jacobite.jacobian(lambda a, b: a, _x(), value, argnums=1)
    assert "argnums" in str(info.value)


def test_no_arguments() -> None:
    with pytest.raises(ArgnumsError, match="jacobian\\(f, x\\)"):
        jacobite.jacobian(lambda: torch.ones(2))


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize("mode", ["fwd", "rev", "", None, "Forward"])
def test_bad_mode(mode) -> None:
    for api in (jacobite.jacobian, jacobite.jacobian_plan, jacobite.batch_jacobian):
        with pytest.raises(JacobiteError, match=r"auto.*forward.*reverse") as info:
            api(torch.sin, _x().reshape(1, 3), mode=mode)
        assert isinstance(info.value, (InvalidOptionError, ValueError))


@pytest.mark.parametrize("chunk_size", [0, -1, 1.5, "big", True, "None"])
def test_bad_chunk_size(chunk_size) -> None:
    for api in (jacobite.jacobian, jacobite.jacobian_plan, jacobite.hessian):
        with pytest.raises(JacobiteError, match="int ≥ 1") as info:
            api(lambda v: v.pow(2).sum(), _x(), chunk_size=chunk_size)
        # a value out of range is a ValueError, a value of the wrong type a TypeError
        expected = TypeError if isinstance(chunk_size, (bool, float)) else ValueError
        assert isinstance(info.value, expected)


@pytest.mark.parametrize("budget", ["lots", "-1 MiB", 0, -5, "12 parsecs", True])
def test_bad_memory_budget(budget) -> None:
    with pytest.raises(JacobiteError, match="memory size"):
        jacobite.jacobian(torch.sin, _x(), memory_budget=budget)


# ------------------------------------------------------------------------------ in-place writes


_BUFFER = torch.zeros(3, dtype=DT)


def _setitem_fresh(x):
    out = torch.zeros(3, dtype=DT)
    out[0] = x[0] * x[1]
    out[1:] = x[1:] ** 2
    return out


def _copy_fresh(x):
    return torch.zeros(3, dtype=DT).copy_(x) * x


def _add_fresh(x):
    y = torch.zeros(3, dtype=DT)
    y.add_(x * x)
    return y


def _index_put_fresh(x):
    out = torch.zeros(3, dtype=DT)
    out.index_put_((torch.tensor([2, 0, 1]),), x)
    return out


def _scatter_add_fresh(x):
    out = torch.zeros(3, dtype=DT)
    out.scatter_add_(0, torch.tensor([0, 0, 2]), x)
    return out


def _diagonal_view_fresh(x):
    out = torch.zeros(3, 3, dtype=DT)
    out.diagonal().copy_(x)
    return out.sum(0) * x


def _copy_into_captured(x):
    _BUFFER.copy_(x)
    return _BUFFER * 2


def _setitem_captured(x):
    _BUFFER[0] = x[0]
    return _BUFFER * x


def _clone_then_inplace(x):
    y = x.clone()
    y.mul_(2)
    return y


# what each function means, written out of place: the Jacobian it must give (if any)
_INPLACE = {
    _setitem_fresh: lambda x: torch.stack([x[0] * x[1], x[1] ** 2, x[2] ** 2]),
    _copy_fresh: lambda x: x * x,
    _add_fresh: lambda x: x * x,
    _index_put_fresh: lambda x: x[[1, 2, 0]],
    _scatter_add_fresh: lambda x: torch.stack([x[0] + x[1], torch.zeros((), dtype=DT), x[2]]),
    _diagonal_view_fresh: lambda x: x * x,
    _copy_into_captured: lambda x: 2 * x,
    _setitem_captured: lambda x: torch.stack([x[0] * x[0], 0 * x[1], 0 * x[2]]),
    _clone_then_inplace: lambda x: 2 * x,
}


@pytest.mark.parametrize("chunk_size", [None, 1, "auto"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("f", list(_INPLACE), ids=lambda f: f.__name__)
def test_inplace_writes_are_right_or_refused(f, mode: str, chunk_size) -> None:
    """Writing in place: the right Jacobian, or UnsupportedOperationError — never a wrong one."""
    x = _x()
    _BUFFER.zero_()
    try:
        J = jacobite.jacobian(f, x, mode=mode, chunk_size=chunk_size)
    except UnsupportedOperationError as exc:
        assert "out of place" in str(exc) or "torch.stack" in str(exc)
        return
    torch.testing.assert_close(J, jacrev(_INPLACE[f])(_x()), rtol=1e-12, atol=1e-12)


def test_captured_buffer_write_is_refused() -> None:
    """torch.func refuses to mutate a captured tensor: a typed error naming the fix."""
    for mode in ("forward", "reverse"):
        with pytest.raises(UnsupportedOperationError, match="out of place"):
            jacobite.jacobian(_copy_into_captured, _x(), mode=mode)


@pytest.mark.parametrize("chunk_size", [None, 1, "auto"])
@pytest.mark.parametrize("mode", MODES)
def test_function_mutating_its_input(mode: str, chunk_size) -> None:
    """f writes into its own argument: the right Jacobian or a refusal, and the caller's tensor
    is left alone either way."""
    def f(v):
        v.mul_(2)
        return v

    x = _x()
    try:
        J = jacobite.jacobian(f, x, mode=mode, chunk_size=chunk_size)
    except UnsupportedOperationError:
        pass
    else:
        torch.testing.assert_close(J, 2 * torch.eye(3, dtype=DT))
    assert x.tolist() == _x().tolist(), f"the caller's input was modified: {x.tolist()}"


# ------------------------------------------------------------------------------ leaving torch


@pytest.mark.parametrize("mode", MODES)
def test_numpy_inside_f(mode: str) -> None:
    def f(v):
        return torch.as_tensor(np.sin(v.numpy()))

    with pytest.raises(UnsupportedOperationError, match="numeric") as info:
        jacobite.jacobian(f, _x(), mode=mode)
    assert ".numpy()" in str(info.value)


@pytest.mark.parametrize("shape", [(3,), (2, 4)])
def test_numpy_inside_f_forward_when_auto_picks_forward(shape) -> None:
    """Auto mode picks forward for few inputs; the .numpy() failure must still be typed."""
    def f(v):
        return torch.as_tensor(np.repeat(v.numpy(), 100))  # m = 100 n: auto picks forward

    with pytest.raises(UnsupportedOperationError, match=r"\.numpy\(\)"):
        jacobite.jacobian(f, torch.ones(shape, dtype=DT))


def test_item_used_arithmetically_warns() -> None:
    def f(v):
        return v * v[0].item()  # the factor is treated as a constant

    with pytest.warns(JacobiteWarning, match=r"\.item\(\)"):
        J = jacobite.jacobian(f, _x())
    # the warning is right about what happened: d/dv (v * c) with c = v[0] frozen
    torch.testing.assert_close(J, 0.5 * torch.eye(3, dtype=DT))


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_float_of_tensor_warns() -> None:
    def f(v):
        return v * float(v.sum())

    with pytest.warns(JacobiteWarning, match="constant"):
        jacobite.jacobian(f, _x())


def test_no_warning_for_clean_functions() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        J = jacobite.jacobian(lambda v: torch.sin(v) * v.sum(), _x())
    torch.testing.assert_close(J, jacrev(lambda v: torch.sin(v) * v.sum())(_x()))


# ------------------------------------------------------------------------------ too large


class _AllocationGuard(TorchDispatchMode):
    """Refuses any factory call asking for more than ``limit`` elements; tracks the largest
    tensor produced by any operation."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        size = args[0] if args and isinstance(args[0], (list, tuple)) else None
        if size is not None and all(isinstance(s, int) for s in size) \
                and math.prod(size) > self.limit:
            raise AssertionError(f"{func} tried to allocate {list(size)} "
                                 "before refusing the request")
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_too_large_is_refused_fast() -> None:
    """J of x.repeat(1000) with 10**5 inputs: 10**8 x 10**5 entries, refused at once.

    The time is mostly f's own evaluation (an 800 MB output, ~0.5 s on an idle machine); the
    guard is 5 s — well below what building any part of the 80 TB result would take — and the
    best of three attempts is taken, so a busy shared machine does not fail a correctness test
    (that nothing large is allocated is checked exactly by the next test).
    """
    x = torch.zeros(10**5, dtype=DT)
    jacobite.jacobian(lambda v: v.repeat(2), x[:3])  # one-time imports are not the point
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with pytest.raises(JacobianTooLarge, match=r"linearize") as info:
            jacobite.jacobian(lambda v: v.repeat(1000), x)
        times.append(time.perf_counter() - t0)
        if times[-1] < 5.0:
            break
    assert min(times) < 5.0, f"took {min(times):.2f} s to refuse"
    msg = str(info.value)
    assert "memory_budget" in msg and "TiB" in msg
    assert isinstance(info.value, MemoryError)


def test_too_large_allocates_nothing_big() -> None:
    x = torch.zeros(10**5, dtype=DT)
    guard = _AllocationGuard(limit=2 * 10**8)
    with guard, pytest.raises(JacobianTooLarge):
        jacobite.jacobian(lambda v: v.repeat(1000), x)
    assert guard.largest <= 10**8  # f's own output; nothing the size of the result


@pytest.mark.parametrize(("mode", "chunk_size"), [("forward", None), ("reverse", None),
                                                  ("forward", 10), ("reverse", 10),
                                                  ("forward", "auto"), ("reverse", "auto")])
def test_too_large_is_refused_before_allocating_in_every_mode(mode, chunk_size) -> None:
    """10**4 inputs, 10**7 outputs: the result would be 800 GB. Nothing much larger than f's
    own output (10**7 entries) may be allocated before JacobianTooLarge."""
    x = torch.zeros(10**4, dtype=DT)
    guard = _AllocationGuard(limit=5 * 10**7)
    with guard, pytest.raises(JacobianTooLarge, match="linearize"):
        jacobite.jacobian(lambda v: v.repeat(1000), x, mode=mode, chunk_size=chunk_size)
    assert guard.largest <= 2 * 10**7, f"allocated a tensor of {guard.largest:,} entries"


def test_too_large_plan_and_budget() -> None:
    x = torch.zeros(10**5, dtype=DT)
    with pytest.raises(JacobianTooLarge, match="set_memory_budget"):
        jacobite.jacobian_plan(lambda v: v.repeat(1000), x)
    with pytest.raises(JacobianTooLarge):
        jacobite.jacobian(torch.sin, torch.zeros(100, dtype=DT), memory_budget=100 * 100 * 8 - 1)
    J = jacobite.jacobian(torch.sin, torch.zeros(100, dtype=DT), memory_budget=100 * 100 * 8 * 4)
    torch.testing.assert_close(J, torch.eye(100, dtype=DT))


def test_hessian_of_a_vector_function() -> None:
    with pytest.raises(ShapeError, match="scalar") as info:
        jacobite.hessian(torch.sin, _x())
    assert "jacobian(lambda x: jacobian(f, x), x)" in str(info.value)
    with pytest.raises(ShapeError, match="scalar"):
        jacobite.hessian(lambda v: torch.stack([v.sum(), v.prod()]), _x())


def test_linearize_checks_vector_lengths() -> None:
    op = jacobite.linearize(torch.sin, _x())
    with pytest.raises(ShapeError, match="length 3"):
        op.mv(torch.ones(4, dtype=DT))
    with pytest.raises(ShapeError, match="rmm"):
        op.rmv(torch.ones(3, 1, dtype=DT))
