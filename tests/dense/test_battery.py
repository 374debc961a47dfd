"""Every battery case through the dense engine, against two independent oracles.

Oracle 1 (dense): ``torch.func.jacrev`` — same structure, values to 1e-12.
Oracle 2 (numeric): ``jacobite.numeric.jacobian(..., method="richardson")`` on the flattened
problem — to 1e-6 relative or within its own error estimate.
Plus the analytic Jacobian (``case.expected``) and the SymPy transcription where a case has them.

Oracles are computed once per case and process (``functools.cache``: pure and deterministic, so
safe under ``pytest -n``); every test regenerates its own arguments from the case's seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_map

import jacobite
from tests.battery import (
    CASES,
    DT,
    Case,
    assert_tree_close,
    by_kind,
    dense_oracle,
    diff_inputs,
    flat_function,
    flat_jacobian,
    ids,
    sympy_jacobian,
)

PLAIN = by_kind("all", exclude=("batched",))
BY_NAME = {c.name: c for c in CASES}
MODES = ("forward", "reverse", "auto")
CHUNKS = (None, 1, "auto", 3)  # 3: an odd chunk that does not divide most sizes


def _detach(tree: Any) -> Any:
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


@dataclass(frozen=True)
class Reference:
    out: Any  # f(*args)
    J: Any  # jacrev, structured
    Jflat: torch.Tensor  # (m, n)
    numeric: Any  # jacobite.numeric.NumericJacobian of the flattened problem
    analytic: torch.Tensor | None  # case.expected, flattened
    symbolic: torch.Tensor | None  # case.sympy, differentiated by SymPy and evaluated
    m: int
    n: int


@functools.cache
def reference(name: str) -> Reference:
    case = BY_NAME[name]
    args = case.args()
    out = _detach(case.fn(*args))
    J = _detach(dense_oracle(case, args))
    x = diff_inputs(case, args)
    Jflat = flat_jacobian(J, out, x)
    g, v0 = flat_function(case, args)
    num = jacobite.numeric.jacobian(g, v0.detach(), method="richardson")
    analytic = None if case.expected is None else flat_jacobian(case.expected(*args), out, x)
    symbolic = None if case.sympy is None else sympy_jacobian(case, args)
    return Reference(out, J, Jflat, num, analytic, symbolic, Jflat.shape[0], Jflat.shape[1])


def assert_matches_numeric(Jflat: torch.Tensor, num: Any, what: str) -> None:
    """Within 1e-6 relative (to the largest entry, at least 1) or within 4x the error estimate."""
    Jn = torch.as_tensor(num.jacobian, dtype=DT).reshape(Jflat.shape)
    err = torch.as_tensor(num.error, dtype=DT).reshape(Jflat.shape)
    d = (Jflat.detach() - Jn).abs()
    scale = max(1.0, float(Jn.abs().max())) if Jn.numel() else 1.0
    bad = d > 1e-6 * scale + 4 * err
    assert not bad.any(), (f"{what}: differs from the numeric Jacobian at "
                           f"{bad.nonzero().tolist()[:5]} by up to {float(d.max()):.3e}")


def check_all_oracles(case: Case, args: tuple[Any, ...], J: Any, flat: bool, what: str) -> None:
    ref = reference(case.name)
    if flat:
        assert isinstance(J, torch.Tensor) and J.shape == (ref.m, ref.n), \
            f"{what}: flat result has shape {getattr(J, 'shape', type(J))}, want {(ref.m, ref.n)}"
        assert_tree_close(J, ref.Jflat, what=f"{what} vs jacrev (flat)")
        Jf = J.detach()
    else:
        assert_tree_close(J, ref.J, what=f"{what} vs jacrev")
        Jf = flat_jacobian(_detach(J), ref.out, diff_inputs(case, args))
    assert_matches_numeric(Jf, ref.numeric, what)
    if ref.analytic is not None:
        torch.testing.assert_close(Jf, ref.analytic.detach(), rtol=1e-12, atol=1e-12,
                                   msg=lambda m: f"{what} vs analytic: {m}")
    if ref.symbolic is not None:
        torch.testing.assert_close(Jf, ref.symbolic, rtol=1e-12, atol=1e-12,
                                   msg=lambda m: f"{what} vs SymPy: {m}")


# ------------------------------------------------------------------------------ the oracles


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_battery_case_is_sound(case: Case) -> None:
    """The battery itself: jacrev == jacfwd, analytic and SymPy agree, numeric agrees."""
    args = case.args()
    assert all(t.dtype == DT for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor))
    if "batched" in case.kinds:  # per-sample: vmap(jacrev) == vmap(jacfwd) (test_batched.py
        rev = torch.func.vmap(torch.func.jacrev(case.fn, argnums=case.argnums),  # has the rest)
                              in_dims=case.in_dims)(*args)
        fwd = torch.func.vmap(torch.func.jacfwd(case.fn, argnums=case.argnums),
                              in_dims=case.in_dims)(*args)
        assert_tree_close(_detach(fwd), _detach(rev), what="vmap(jacfwd) vs vmap(jacrev)")
        return
    ref = reference(case.name)
    fwd = _detach(torch.func.jacfwd(case.fn, argnums=case.argnums)(*args))
    assert_tree_close(fwd, ref.J, what="jacfwd vs jacrev")
    assert_matches_numeric(ref.Jflat, ref.numeric, "jacrev")
    assert case.args() is not args and all(
        torch.equal(a, b) for a, b in zip(tree_flatten(case.args())[0], tree_flatten(args)[0],
                                          strict=True)), "make_args must be deterministic"


def test_battery_size_and_coverage() -> None:
    assert len(PLAIN) >= 30
    # the pairwise cover really covers every pair of settings
    for a, b in ((0, 1), (0, 2), (1, 2)):
        full_pairs = {(t[a], t[b]) for t in FULL}
        assert {(t[a], t[b]) for t in PAIRWISE} == full_pairs
    kinds = set().union(*(c.kinds for c in CASES))
    for k in ("elementwise", "reduction", "matmul", "softmax", "norm", "broadcast", "scalar_in",
              "scalar_out", "matrix", "pytree_in", "pytree_out", "multi_argnums", "cumulative",
              "indexing", "nonsmooth", "conv", "network", "module", "reference", "batched",
              "symbolic", "analytic", "linear"):
        assert k in kinds, k
        assert by_kind(k)


def test_reference_example_value() -> None:
    """F(x, y) = [x² + y, xy] at (1, 2) has Jacobian [[2, 1], [2, 1]] (the textbook example)."""
    for name in ("ref_xy", "ref_xy_args"):
        case = BY_NAME[name]
        J = jacobite.jacobian(case.fn, *case.args(), argnums=case.argnums, flat=True)
        assert J.tolist() == [[2.0, 1.0], [2.0, 1.0]]


# ------------------------------------------------------------------------------ jacobian


#: Cases whose result has structure to assemble (pytrees, several argnums, 0-d ends): these run
#: the full mode x chunk_size x flat product; the others a pairwise cover of it (every pair of
#: settings occurs), which keeps the suite fast without losing an interaction of two settings.
STRUCTURED = {"pytree_in", "pytree_out", "multi_argnums", "scalar_in", "scalar_out"}
FULL = [(m, c, f) for m in MODES for c in CHUNKS for f in (False, True)]
PAIRWISE = [(m, c, (i + j) % 2 == 1) for i, m in enumerate(MODES) for j, c in enumerate(CHUNKS)]
JACOBIAN_PARAMS = [
    pytest.param(case, m, c, f, id=f"{case.name}-{m}-chunk{c}-{'flat' if f else 'tree'}")
    for case in PLAIN for (m, c, f) in (FULL if STRUCTURED & case.kinds else PAIRWISE)
]


@pytest.mark.parametrize(("case", "mode", "chunk_size", "flat"), JACOBIAN_PARAMS)
def test_jacobian(case: Case, mode: str, chunk_size: Any, flat: bool) -> None:
    args = case.args()
    J = jacobite.jacobian(case.fn, *args, argnums=case.argnums, mode=mode,
                          chunk_size=chunk_size, flat=flat)
    check_all_oracles(case, args, J, flat, f"jacobian({case.name}, {mode}, {chunk_size})")


@pytest.mark.parametrize(("mode", "flat"), [("forward", False), ("reverse", True),
                                             ("auto", False)])
@pytest.mark.parametrize("case", PLAIN, ids=ids)
def test_value_and_jacobian(case: Case, mode: str, flat: bool) -> None:
    args = case.args()
    value, J = jacobite.value_and_jacobian(case.fn, *args, argnums=case.argnums, mode=mode,
                                           flat=flat)
    assert_tree_close(value, reference(case.name).out, rtol=1e-14, atol=1e-14, what="value")
    check_all_oracles(case, args, J, flat, f"value_and_jacobian({case.name}, {mode})")


@pytest.mark.parametrize("case", PLAIN, ids=ids)
def test_linearize_to_dense(case: Case) -> None:
    args = case.args()
    ref = reference(case.name)
    op = jacobite.linearize(case.fn, *args, argnums=case.argnums)
    assert tuple(op.shape) == (ref.m, ref.n)
    assert_tree_close(op.value, ref.out, rtol=1e-14, atol=1e-14, what="linearize value")
    D = op.to_dense()
    check_all_oracles(case, args, D, True, f"linearize({case.name}).to_dense()")
    g = torch.Generator().manual_seed(7)
    v = torch.randn(ref.n, generator=g, dtype=DT)
    u = torch.randn(ref.m, generator=g, dtype=DT)
    torch.testing.assert_close(op.mv(v).detach(), ref.Jflat @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.rmv(u).detach(), ref.Jflat.T @ u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("case", PLAIN, ids=ids)
def test_chunked_equals_unchunked(case: Case, mode: str) -> None:
    """Chunking only changes how the result is computed: equal to 1e-14 (usually bit-for-bit)."""
    args = case.args()
    kw = dict(argnums=case.argnums, mode=mode, flat=True)
    whole = jacobite.jacobian(case.fn, *args, chunk_size=None, **kw).detach()
    for c in (1, 3):
        part = jacobite.jacobian(case.fn, *args, chunk_size=c, **kw).detach()
        torch.testing.assert_close(part, whole, rtol=1e-14, atol=1e-14,
                                   msg=lambda m, c=c: f"chunk_size={c}: {m}")
    torch.testing.assert_close(whole, reference(case.name).Jflat, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", [c for c in PLAIN if c.name in {
    "sin", "tuple_out", "dict_in", "three_args", "sum", "mlp_params"}], ids=ids)
def test_has_aux(case: Case, mode: str) -> None:
    def with_aux(*a: Any) -> tuple[Any, Any]:
        out = case.fn(*a)
        return out, {"first": tree_flatten(out)[0][0] * 2, "tag": (torch.tensor(3.5, dtype=DT),)}

    args = case.args()
    ref = reference(case.name)
    J, aux = jacobite.jacobian(with_aux, *args, argnums=case.argnums, mode=mode, has_aux=True)
    check_all_oracles(case, args, J, False, f"jacobian(has_aux, {mode})")
    assert float(aux["tag"][0]) == 3.5
    torch.testing.assert_close(aux["first"].detach(), tree_flatten(ref.out)[0][0] * 2,
                               rtol=1e-14, atol=1e-14)
    value, J2, aux2 = jacobite.value_and_jacobian(with_aux, *args, argnums=case.argnums,
                                                  mode=mode, has_aux=True, flat=True)
    assert_tree_close(value, ref.out, rtol=1e-14, atol=1e-14, what="value")
    check_all_oracles(case, args, J2, True, f"value_and_jacobian(has_aux, {mode})")
    torch.testing.assert_close(aux2["first"].detach(), aux["first"].detach())


@pytest.mark.parametrize("case", [BY_NAME["mlp_input"], BY_NAME["mlp_params"]], ids=ids)
def test_battery_does_not_modify_the_module(case: Case) -> None:
    from tests.battery import MLP

    before = {k: v.detach().clone() for k, v in MLP.state_dict().items()}
    for mode in ("forward", "reverse"):
        jacobite.jacobian(case.fn, *case.args(), argnums=case.argnums, mode=mode)
    after = MLP.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in MLP.parameters())
