"""Fuzzing the sparse path with what hides derivatives from the operations f runs.

Random programs mix custom autograd Functions, values read into Python (``.tolist()``,
``.item()``, ``.numpy()``, ``float()``), ``torch.no_grad`` / ``inference_mode`` regions (with
in-place writes autograd does not see), ``.detach()`` and in-place writes through views with
ordinary ops. At the preparation point and at fresh points: the pattern holds every nonzero of the
dense reverse-mode Jacobian (a local pattern only at its point), and the plan gives that Jacobian
— or, evaluated away from the point of a local pattern, says so with a LocalPatternWarning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jacobite.sparse as js
from jacobite.errors import JacobiteWarning, LocalPatternWarning, UnsupportedOperationError
from tests.sparse.test_soundness import NumpySin, RoundSTE, dense

N = 8
DT = torch.float64


def _step(kind: str, a: int, b: int):
    """One step ``state -> state`` of a program; ``a``, ``b`` pick positions and shifts."""
    k = 1 + a % (N - 1)
    perm = torch.roll(torch.arange(N), b % N)
    if kind == "ste":
        return lambda v: RoundSTE.apply(v) * 0.5 + v[perm]
    if kind == "npfunction":
        return lambda v: NumpySin.apply(v)
    if kind == "tolist":
        return lambda v: v * torch.tensor([1.0 if t > 0 else -1.0 for t in v.tolist()],
                                          dtype=v.dtype)
    if kind == "item":
        return lambda v: v * v[k] if v[a % N].item() > 0 else v[perm].sin()
    if kind == "no_grad":
        def f(v):
            with torch.no_grad():
                s = v[:k].sum()
            return v * s + v[perm]
        return f
    if kind == "numpy":
        return lambda v: v * torch.from_numpy(np.sign(v.detach().numpy()) + 2.0)
    if kind == "float":
        return lambda v: v.tanh() if float(v[k]) > 0 else v * v[perm]
    if kind == "inference":
        def h(v):
            with torch.inference_mode():
                s = v[perm][:k].prod()
            return v * s.clone() + v[perm]
        return h
    if kind == "no_grad_inplace":
        def u(v):
            y = v * v[perm]
            with torch.no_grad():
                y[k:].mul_(v[:-k])
            return y
        return u
    if kind == "detach":
        return lambda v: v * v.detach()[perm] + v[perm] ** 2
    if kind == "inplace":
        def g(v):
            y = v.clone()
            y[k:] += v[:-k]
            y.view(-1)[a % N] *= 2
            y[b % 2::2].mul_(v[perm][b % 2::2].cos())
            return y
        return g
    if kind == "shift":
        return lambda v: v[perm] * v.tanh()
    return torch.sin


KINDS = ["ste", "npfunction", "numpy", "tolist", "item", "float", "no_grad", "inference",
         "no_grad_inplace", "detach", "inplace", "shift", "sin"]


@st.composite
def programs(draw) -> list[tuple[str, int, int]]:
    steps = st.tuples(st.sampled_from(KINDS), st.integers(0, 50), st.integers(0, 50))
    return draw(st.lists(steps, min_size=1, max_size=4))


def compose(program):
    fns = [_step(*s) for s in program]

    def f(v):
        for fn in fns:
            v = fn(v)
        return v
    return f


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        return fn(*args, **kwargs)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # f's float()
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from(["auto", "reverse", "forward", "bidirectional"]),
       st.integers(0, 2**31 - 1))
def test_fuzz_patterns_hold_and_plans_agree(program, mode, seed) -> None:
    f = compose(program)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, generator=g, dtype=DT)
    p = _quiet(js.detect, f, x)
    pat = p.to_scipy().toarray()
    others = [torch.randn(N, generator=g, dtype=DT) for _ in range(2)]
    for pt in [x] + ([] if p.local else others):
        nz = dense(f, pt).numpy() != 0
        assert not (nz & ~pat).any(), f"missed nonzeros at {np.argwhere(nz & ~pat)[:4]}"
    try:
        plan = _quiet(js.prepare, f, x, mode=mode, vectorize=False)
    except UnsupportedOperationError as exc:  # forward passes that cannot give this Jacobian
        assert mode in ("forward", "bidirectional") and "mode='reverse'" in str(exc)
        assert p.needs_reverse or p.custom_functions
        return
    for pt in [x, *others]:
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                J = plan.jacobian(pt).to_dense()
        except UnsupportedOperationError as exc:  # an old-style custom Function or .numpy()
            assert mode in ("forward", "bidirectional") and (p.custom_functions or p.local)
            assert "mode='reverse'" in str(exc)
            return
        moved = [w for w in seen if issubclass(w.category, LocalPatternWarning)]
        if pt is x or not p.local:
            assert not moved
            torch.testing.assert_close(J, dense(f, pt), rtol=1e-10, atol=1e-10)
        else:
            assert moved, "a local plan used away from its point must warn"
