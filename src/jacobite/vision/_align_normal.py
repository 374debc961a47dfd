"""The ``p × p`` normal equations of an alignment step, from their structure.

Row ``(c, q)`` of a pair's Jacobian is the image gradient ``∇I = (gx, gy)`` at the warped point
times the coordinate map's ``2 × p`` Jacobian at pixel ``z = (x, y, 1)``. For the matrix models
that row is a Kronecker product ``f ⊗ z`` of a few per-pixel factors ``f`` with ``z``:

- affine: ``f = (gx, gy)`` and the row is ``f ⊗ z`` (6 entries);
- homography: with ``w`` the homogeneous scale and ``(u, v)`` the source point,
  ``f = (gx, gy, −(gx u + gy v)) / w`` and the row is ``f ⊗ z`` less its last entry (8);
- similarity, euclidean: an affine map ``θ_affine(θ)``, so the row is the affine row times
  ``T = ∂θ_affine/∂θ`` (constant for a similarity, a rotation's derivative for a euclidean map).

So ``A = Jᵀ W J = Σ_q w (f fᵀ) ⊗ (z zᵀ)`` needs the weighted products of the factors per pixel
(3 or 6 of them) against the six monomials of ``z zᵀ`` (``x², xy, x, y², y, 1``), one
``(k × P) @ (P × 6)`` product a pair, and ``g = Jᵀ W r`` the factors times ``w r`` against
``x, y, 1``: no ``P × p`` Jacobian is formed. A translation's rows are the gradients. The
forward-additive step takes the source's gradients at the warped points and the factors at
the current parameters; the inverse-compositional level the target's gradients and the
factors at the identity, once (:mod:`._align_ic`).

>>> import torch
>>> pair_index(2).tolist()
[[0, 1], [1, 2]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ._align_solve import Level

__all__ = ["factors", "gram", "moment", "normal_equations", "pair_index"]

#: similarity parameters as affine ones, ``θ_affine = T θ``
_SIMILARITY = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0],
                            [1, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)


def pair_index(k: int) -> torch.Tensor:
    """``(k, k)``: the position of the product ``f_a f_b`` among the ``k (k + 1) / 2``
    products ``a ≤ b`` taken row by row."""
    idx = torch.zeros(k, k, dtype=torch.int64)
    pos = 0
    for a in range(k):
        for b in range(a, k):
            idx[a, b] = idx[b, a] = pos
            pos += 1
    return idx


_MONO = pair_index(3)  # z_i z_j among (x², xy, x, y², y, 1)
_INDEX = {}
for _k in (2, 3):
    _rows = torch.arange(3 * _k)
    _INDEX[_k] = (pair_index(_k)[_rows[:, None] // 3, _rows[None, :] // 3],
                  _MONO[_rows[:, None] % 3, _rows[None, :] % 3])


def factors(G: torch.Tensor, lvl: Level, params: torch.Tensor) -> list[torch.Tensor]:
    """The per-pixel factors ``f`` ``(n, C, P)`` each, float64, of the image gradients ``G``
    ``(n, C, P, 2)`` at ``params`` (a translation's rows are ``f`` itself)."""
    G = G.double()
    gx, gy = G[..., 0], G[..., 1]
    if lvl.model != "homography":
        return [gx, gy]
    m = lvl.warp.matrix(params.double())  # (n, 3, 3)
    h, w = lvl.target.shape[-2:]
    xs = torch.arange(w, dtype=torch.float64, device=m.device)
    ys = torch.arange(h, dtype=torch.float64, device=m.device)
    col = m[:, None, :, 0] * xs[None, :, None]  # (n, w, 3)
    row = torch.addcmul(m[:, None, :, 2], m[:, None, :, 1], ys[None, :, None])  # (n, h, 3)
    hom = (row[:, :, None] + col[:, None]).reshape(m.shape[0], h * w, 3)  # u w, v w, w
    inv_w = 1 / hom[..., 2]
    u, v = hom[..., 0] * inv_w, hom[..., 1] * inv_w
    a, b = gx * inv_w[:, None], gy * inv_w[:, None]
    return [a, b, -(a * u[:, None] + b * v[:, None])]


def _euclidean(params: torch.Tensor) -> torch.Tensor:
    """``∂θ_affine/∂θ`` ``(n, 6, 3)`` of euclidean parameters ``(angle, tx, ty)``."""
    c, s = torch.cos(params[:, 0].double()), torch.sin(params[:, 0].double())
    T = c.new_zeros(params.shape[0], 6, 3)
    T[:, 0, 0], T[:, 1, 0], T[:, 3, 0], T[:, 4, 0] = -s, -c, c, -s
    T[:, 2, 1] = T[:, 5, 2] = 1
    return T


def _summed(pairs: list[tuple[torch.Tensor, torch.Tensor]], lvl: Level) -> torch.Tensor:
    """``Σ_c x y`` of each pair of ``(n, C, P)`` tensors (broadcast), against the monomials
    of ``z``: ``(n, len(pairs), 6)`` (``(n, len(pairs), 1)``, summed over the pixels, for a
    translation)."""
    x0, y0 = pairs[0]
    n, P = max(x0.shape[0], y0.shape[0]), x0.shape[-1]
    prods = x0.new_empty(n, len(pairs), P)
    for i, (x, y) in enumerate(pairs):
        if x.shape[1] == 1 and y.shape[1] == 1:
            torch.mul(x[:, 0], y[:, 0], out=prods[:, i])
        else:
            torch.sum(x * y, dim=1, out=prods[:, i])
    if lvl.model == "translation":
        return prods.sum(-1, keepdim=True)
    return prods @ lvl.monomials


def _in_model(lvl: Level, params: torch.Tensor, A: torch.Tensor | None,
              g: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``A`` and ``g`` of the rows ``f ⊗ z`` in the model's parameters."""
    if lvl.model == "homography":
        return (None if A is None else A[:, :8, :8]), (None if g is None else g[:, :8])
    if lvl.model not in ("similarity", "euclidean"):
        return A, g
    T = _SIMILARITY.to(params.device) if lvl.model == "similarity" else _euclidean(params)
    return (None if A is None else T.transpose(-1, -2) @ A @ T,
            None if g is None else (g[:, None] @ T)[:, 0])


def _gram(q: torch.Tensor, k: int, lvl: Level) -> torch.Tensor:
    if lvl.model == "translation":
        return q[:, pair_index(2), 0]
    rows, cols = _INDEX[k]
    return q[:, rows, cols]


def _moment(q: torch.Tensor, lvl: Level) -> torch.Tensor:
    if lvl.model == "translation":
        return q[..., 0]
    return q[:, :, [2, 4, 5]].reshape(q.shape[0], -1)  # against z = (x, y, 1)


def gram(f: list[torch.Tensor], lvl: Level, params: torch.Tensor,
         wts: torch.Tensor) -> torch.Tensor:
    """``A = Jᵀ W J`` ``(n, p, p)`` from the factors ``f`` at ``params`` and the weights
    ``wts`` (broadcast against ``(n, C, P)``)."""
    k = len(f)
    wf = [wts * t for t in f]
    q = _summed([(wf[a], f[b]) for a in range(k) for b in range(a, k)], lvl)
    A, _ = _in_model(lvl, params, _gram(q, k, lvl), None)
    assert A is not None
    return A


def moment(f: list[torch.Tensor], lvl: Level, params: torch.Tensor,
           wr: torch.Tensor) -> torch.Tensor:
    """``g = Jᵀ W r`` ``(n, p)`` from the factors ``f`` at ``params`` and the weighted
    residuals ``wr`` ``(n, C, P)``."""
    _, g = _in_model(lvl, params, None, _moment(_summed([(wr, t) for t in f], lvl), lvl))
    assert g is not None
    return g


def normal_equations(G: torch.Tensor, lvl: Level, params: torch.Tensor, wts: torch.Tensor,
                     r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``A = Jᵀ W J`` ``(n, p, p)`` and ``g = Jᵀ W r`` ``(n, p)`` in float64 from the image
    gradients ``G`` ``(n, C, P, 2)`` at ``params`` (``wts``, ``r``: ``(n, C, P)``): one
    product against the monomials for both."""
    f = factors(G, lvl, params)
    k = len(f)
    wf = [wts * t for t in f]
    q = _summed([(wf[a], f[b]) for a in range(k) for b in range(a, k)]
                + [(t, r) for t in wf], lvl)
    A, g = _in_model(lvl, params, _gram(q[:, :-k], k, lvl), _moment(q[:, -k:], lvl))
    assert A is not None and g is not None
    return A, g
