"""Hypothesis strategies: random operators paired with an independently built dense oracle.

Every strategy yields ``(op, M)`` where ``M`` is the float64 matrix ``op`` should represent,
computed from the raw ingredients with plain torch (never through the operator methods).
"""

from __future__ import annotations

import math

import scipy.sparse as sp
import torch
from hypothesis import strategies as st

from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    LowRankOperator,
    ScaledIdentity,
    SparseOperator,
    Transposed,
)

DT = torch.float64
SIZES = st.integers(1, 8)


def _gen(draw) -> torch.Generator:
    return torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=DT)


def _function(M: torch.Tensor, tags=()) -> FunctionOperator:
    # torch.mv rather than @ so that vmap is exercised on a plain closure
    return FunctionOperator(tuple(M.shape), lambda v: torch.mv(M, v), lambda u: torch.mv(M.T, u),
                            dtype=DT, tags=tags, name="f")


STRUCTURED = ("lower", "upper", "psd", "diagonal", "diagonal_psd", "scaled", "identity",
              "block_lower", "block_psd", "softmax", "lowrank_sym", "sym")


@st.composite
def leaf(draw, m: int, n: int, kinds: tuple[str, ...] | None = None):
    g = _gen(draw)
    if kinds is None:
        kinds = ("dense", "function", "sparse", "transposed", "lowrank", "block")
        if m == n:
            kinds += ("dplr", "dplr_sym", "dplr_psd", "function_psd", "sparse_sym", *STRUCTURED)
    kind = draw(st.sampled_from(kinds))
    A = randn(g, m, n)
    if kind == "dense":
        return DenseOperator(A), A
    if kind == "function":
        if m == n:  # keep GMRES well conditioned
            A = A / math.sqrt(n) + 3 * torch.eye(n, dtype=DT)
        return _function(A), A
    if kind == "function_psd":
        P = A @ A.T / n + torch.eye(n, dtype=DT)
        return _function(P, tags=("psd",)), P
    if kind == "sparse":
        S = A * (torch.rand(m, n, generator=g, dtype=DT) < 0.4)
        return SparseOperator(sp.csr_array(S.numpy())), S
    if kind == "sparse_sym":
        S = A * (torch.rand(m, n, generator=g, dtype=DT) < 0.4)
        S = S + S.T
        return SparseOperator(sp.coo_array(S.numpy()), tags=("symmetric",)), S
    if kind == "transposed":
        B = randn(g, n, m)
        return Transposed(DenseOperator(B)), B.T
    if kind in ("lowrank", "lowrank_sym"):
        k = draw(st.integers(1, min(m, n)))
        U = randn(g, m, k)
        if kind == "lowrank_sym":
            c = randn(g, k, k)
            core = c @ c.T if draw(st.booleans()) else c + c.T
            return LowRankOperator(U, core=core), U @ core @ U.T
        Vt, core = randn(g, n, k), randn(g, k, k)
        return LowRankOperator(U, Vt, core=core), U @ core @ Vt.T
    if kind.startswith("block"):
        gcd = math.gcd(m, n)
        nb = draw(st.sampled_from([b for b in range(1, gcd + 1) if gcd % b == 0]))
        p, q = m // nb, n // nb
        blocks = randn(g, nb, p, q)
        tags: tuple[str, ...] = ()
        if kind == "block_lower":
            blocks, tags = blocks.tril(), ("lower_triangular",)
        elif kind == "block_psd":
            blocks, tags = blocks @ blocks.mT, ("psd",)
        return BlockDiagonal(blocks, tags), torch.block_diag(*blocks)
    if kind == "lower":
        return DenseOperator(A.tril(), tags=("lower_triangular",)), A.tril()
    if kind == "upper":
        return DenseOperator(A.triu(), tags="infer"), A.triu()
    if kind == "sym":
        return DenseOperator(A + A.T, tags=("symmetric",)), A + A.T
    if kind == "psd":
        return DenseOperator(A @ A.T, tags=("psd",)), A @ A.T
    if kind in ("diagonal", "diagonal_psd"):
        d = randn(g, n)
        d = d.abs() if kind == "diagonal_psd" else d
        return DiagonalOperator(d), torch.diag(d)
    if kind == "scaled":
        s = float(randn(g, 1))
        return ScaledIdentity(s, n, dtype=DT), s * torch.eye(n, dtype=DT)
    if kind == "identity":
        return ScaledIdentity.identity(n, dtype=DT), torch.eye(n, dtype=DT)
    if kind == "softmax":
        s = torch.softmax(randn(g, n), 0)
        return DiagonalPlusLowRank.softmax(s), torch.diag(s) - torch.outer(s, s)
    k = draw(st.integers(1, 3))
    d, U = randn(g, n), randn(g, n, k)
    if kind == "dplr":
        Vt, core = randn(g, n, k), randn(g, k, k)
        return DiagonalPlusLowRank(d, U, Vt, core=core), torch.diag(d) + U @ core @ Vt.T
    if kind == "dplr_psd":
        d = d.abs() + 0.1
        c = float(-torch.rand(1, generator=g, dtype=DT))
        op = DiagonalPlusLowRank(d, U, core=c)
        return op, torch.diag(d) + c * U @ U.T
    c = randn(g, k, k)
    core = c + c.T
    return DiagonalPlusLowRank(d, U, core=core), torch.diag(d) + U @ core @ U.T


@st.composite
def operators(draw, m: int, n: int, depth: int = 2):
    """Random operator trees of at most ``depth`` levels over the leaves above."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaf(m, n))
    ops = ["compose", "sum", "scale", "transpose", "neg"] + (["gram"] if m == n else [])
    how = draw(st.sampled_from(ops))
    if how == "compose":
        k = draw(SIZES)
        A, MA = draw(operators(m, k, depth - 1))
        B, MB = draw(operators(k, n, depth - 1))
        return A @ B, MA @ MB
    if how == "gram":
        k = draw(SIZES)
        if draw(st.booleans()):
            A, MA = draw(operators(k, n, depth - 1))
            return A.T @ A, MA.T @ MA
        A, MA = draw(operators(m, k, depth - 1))
        return A @ A.T, MA @ MA.T
    if how == "sum":
        A, MA = draw(operators(m, n, depth - 1))
        B, MB = draw(operators(m, n, depth - 1))
        return (A + B, MA + MB) if draw(st.booleans()) else (A - B, MA - MB)
    if how == "scale":
        A, MA = draw(operators(m, n, depth - 1))
        c = draw(st.sampled_from([2.0, -0.5, 0.0, 1.0, 3]))
        return (c * A, c * MA) if draw(st.booleans()) else (A * c, MA * c)
    if how == "neg":
        A, MA = draw(operators(m, n, depth - 1))
        return -A, -MA
    A, MA = draw(operators(n, m, depth - 1))
    return A.T, MA.T


@st.composite
def any_operator(draw, depth: int = 2):
    m, n = draw(SIZES), draw(SIZES)
    return draw(operators(m, n, depth))


@st.composite
def square_operator(draw, depth: int = 2):
    n = draw(SIZES)
    return draw(operators(n, n, depth))


@st.composite
def structured_operator(draw, depth: int = 3):
    """Square trees over structured leaves only, so that the propagation rules fire often."""
    n = draw(SIZES)

    @st.composite
    def tree(draw, d: int):
        if d == 0 or draw(st.integers(0, 3)) == 0:
            return draw(leaf(n, n, STRUCTURED))
        how = draw(st.sampled_from(["compose", "compose", "gram", "sum", "scale", "transpose"]))
        A, MA = draw(tree(d - 1))
        if how == "gram":
            return (A.T @ A, MA.T @ MA) if draw(st.booleans()) else (A @ A.T, MA @ MA.T)
        if how == "scale":
            c = draw(st.sampled_from([2.0, -1.0, 0.5]))
            return c * A, c * MA
        if how == "transpose":
            return A.T, MA.T
        B, MB = draw(tree(d - 1))
        return (A @ B, MA @ MB) if how == "compose" else (A + B, MA + MB)

    return draw(tree(depth))
