"""Planar, radial and Sylvester flow layers as ``torch.distributions`` transforms that train.

Each layer is both a :class:`torch.distributions.Transform` (``layer(z)``, ``layer.inv(y)``,
``log_abs_det_jacobian(z, y)``; ``event_dim = 1``, so it maps batches ``(..., D)``) and a
:class:`torch.nn.Module` whose raw parameters are ``nn.Parameter`` s: ``layer.parameters()``
goes to an optimiser and ``TransformedDistribution(base, [layer])`` is trained by maximum
likelihood. The raw parameters are unconstrained; the layer maps them to parameters for which
it is invertible (the constraint holds after any optimiser step). Their Jacobians have
structure — identity plus rank one (planar, radial), identity plus rank ``M`` (Sylvester) —
which :meth:`jacobian_operator` returns as a :mod:`jacobite.operators` operator for one point;
``log_abs_det_jacobian`` evaluates the same determinant for a whole batch in ``O(D)`` per
sample (``O(D M)`` for Sylvester) by the matrix determinant lemma / Sylvester's identity.

With zuko, whose flows' transforms map data to noise, a layer goes in as
``zuko.lazy.UnconditionalTransform(lambda t: t.inv, layer)`` (the module argument is
registered, so its parameters train with the flow; ``zuko.lazy.Flow([...], base)`` then has the
density of ``TransformedDistribution(base, [layer])``).

>>> import torch
>>> from torch.distributions import MultivariateNormal, TransformedDistribution
>>> torch.manual_seed(0) and None
>>> layer = Planar(2)
>>> base = MultivariateNormal(torch.zeros(2), torch.eye(2))
>>> q = TransformedDistribution(base, [layer])
>>> y = q.sample((3,))
>>> torch.allclose(layer.inv(y), layer.inv(y)), q.log_prob(y).shape
(True, torch.Size([3]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InvalidOptionError
from ...operators import DiagonalPlusLowRank
from ._base import FlowLayer, init_param, one_point, positive_dim, real_dtype
from ._scalar import solve_tanh

__all__ = ["Planar", "Radial", "Sylvester"]


class Planar(FlowLayer):
    """Planar flow ``f(z) = z + û tanh(wᵀz + b)`` (Rezende & Mohamed, 2015).

    ``û = u + (m(wᵀu) − wᵀu) w / ‖w‖²`` with ``m(a) = −1 + softplus(a)`` keeps ``wᵀû > −1``
    (``≥ −1`` in floating point, where ``softplus`` underflows: then still strictly increasing
    along ``w``), so ``f`` is invertible for every value of the raw parameters ``w``, ``u``,
    ``b``.
    ``J = I + û ψᵀ`` (``ψ = tanh'(wᵀz + b) w``) and ``log|det J| = log(1 + ψᵀû)``. The inverse
    solves the scalar equation for ``a = wᵀz`` (bracketed Newton) and returns
    ``z = y − û tanh(a + b)``; it is differentiable in ``y`` and the parameters.

    Args:
        dim: the dimension ``D``.
        w, u, b: initial raw parameters (``(D,)``, ``(D,)``, scalar); random when omitted.
        dtype: the parameters' dtype (default: torch's default dtype).

    >>> import torch
    >>> layer = Planar(3, w=torch.ones(3), u=torch.full((3,), -5.0), b=torch.tensor(0.0))
    >>> round(layer.w_dot_u_hat.item(), 4)  # -1 + softplus(-15), never below -1
    -1.0
    >>> bool(layer.w_dot_u_hat > -1)
    True
    >>> z = torch.randn(4, 3)
    >>> torch.allclose(layer.inv(layer(z)), z, atol=1e-5)
    True
    """

    def __init__(self, dim: int, w: Any = None, u: Any = None, b: Any = None, *,
                 dtype: torch.dtype | None = None) -> None:
        dim = positive_dim(dim, "Planar's dim")
        super().__init__(dim)
        dt = real_dtype(dtype)
        scale = 1 / math.sqrt(dim)
        self.w = nn.Parameter(init_param(w, (dim,), dt, "w", scale))
        self.u = nn.Parameter(init_param(u, (dim,), dt, "u", scale))
        self.b = nn.Parameter(init_param(b, (), dt, "b", 0.0))

    @property
    def u_hat(self) -> torch.Tensor:
        """The constrained ``û``: ``wᵀû = −1 + softplus(wᵀu) > −1``."""
        wu = self.w @ self.u
        ww = self.w @ self.w
        shift = (F.softplus(wu) - 1 - wu) / torch.where(ww > 0, ww, torch.ones_like(ww))
        return self.u + shift * self.w

    @property
    def w_dot_u_hat(self) -> torch.Tensor:
        """``wᵀû = −1 + softplus(wᵀu)`` (``0`` when ``w = 0``: then ``û = u``), computed directly
        so rounding keeps it ``≥ −1``."""
        m = F.softplus(self.w @ self.u) - 1
        return torch.where(self.w @ self.w > 0, m, torch.zeros_like(m))

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.u_hat * torch.tanh(z @ self.w + self.b)[..., None]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        uh = self.u_hat
        a = solve_tanh(y @ self.w, self.w_dot_u_hat, 1.0, self.b)
        return y - uh * torch.tanh(a + self.b)[..., None]

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        th2 = torch.tanh(x @ self.w + self.b) ** 2
        sp = F.softplus(self.w @ self.u)  # 1 + wᵀû tanh' = sp tanh' + tanh², no cancellation
        sp = torch.where(self.w @ self.w > 0, sp, torch.ones_like(sp))  # w = 0: J = I
        return torch.log(sp * (1 - th2) + th2)

    def jacobian_operator(self, z: torch.Tensor) -> DiagonalPlusLowRank:
        """``J(z) = I + û ψᵀ`` at ONE point ``z`` of shape ``(D,)``, as identity plus rank one.

        >>> import torch
        >>> layer = Planar(2, w=torch.ones(2), u=torch.ones(2), b=torch.tensor(0.0))
        >>> J = layer.jacobian_operator(torch.zeros(2))
        >>> torch.allclose(J.slogdet()[1], layer.log_abs_det_jacobian(torch.zeros(2), None))
        True
        """
        z = one_point(self, z)
        th = torch.tanh(z @ self.w + self.b)
        psi = (1 - th * th) * self.w
        return DiagonalPlusLowRank(torch.ones_like(z), self.u_hat, psi)


class Radial(FlowLayer):
    """Radial flow ``f(z) = z + β (z − z₀) / (α + r)``, ``r = ‖z − z₀‖`` (Rezende & Mohamed).

    ``α = softplus(α_raw) > 0`` and ``β = −α + softplus(β_raw) ≥ −α`` make ``f`` invertible for
    every raw value. ``J = (1 + βh) I + β h' (z − z₀)(z − z₀)ᵀ / r`` (``h = 1/(α + r)``) and
    ``log|det J| = (D − 1) log(1 + βh) + log(1 + βh + βh' r)``. The inverse is in closed form:
    ``‖y − z₀‖ = r (1 + βh)`` is a quadratic in ``r``.

    Args:
        dim: the dimension ``D``.
        z0, alpha, beta: initial raw parameters (``(D,)``, scalar, scalar); random / zero when
            omitted.
        dtype: the parameters' dtype.

    >>> import torch
    >>> layer = Radial(2, z0=torch.zeros(2), alpha=torch.tensor(0.5), beta=torch.tensor(1.0))
    >>> z = torch.randn(5, 2)
    >>> torch.allclose(layer.inv(layer(z)), z, atol=1e-5)
    True
    """

    def __init__(self, dim: int, z0: Any = None, alpha: Any = None, beta: Any = None, *,
                 dtype: torch.dtype | None = None) -> None:
        dim = positive_dim(dim, "Radial's dim")
        super().__init__(dim)
        dt = real_dtype(dtype)
        self.z0 = nn.Parameter(init_param(z0, (dim,), dt, "z0", 1.0))
        self.alpha_raw = nn.Parameter(init_param(alpha, (), dt, "alpha", 0.0))
        self.beta_raw = nn.Parameter(init_param(beta, (), dt, "beta", 0.0))

    @property
    def alpha(self) -> torch.Tensor:
        """``α = softplus(α_raw) > 0``."""
        return F.softplus(self.alpha_raw)

    @property
    def beta(self) -> torch.Tensor:
        """``β = −α + softplus(β_raw) ≥ −α``."""
        return -self.alpha + F.softplus(self.beta_raw)

    def _parts(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = z - self.z0
        r = torch.linalg.vector_norm(d, dim=-1)
        h = 1 / (self.alpha + r)
        return d, r, h

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        d, _, h = self._parts(z)
        return z + (self.beta * h)[..., None] * d

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        a, bt = self.alpha, self.beta
        d = y - self.z0
        s = torch.linalg.vector_norm(d, dim=-1)
        q = a + bt - s  # r² + q r − s α = 0, the root r ≥ 0 in a cancellation-free form
        disc = torch.sqrt(q * q + 4 * s * a)
        pos = q >= 0
        r = torch.where(pos, 2 * s * a / torch.where(pos, q + disc, torch.ones_like(q)),
                        (disc - q) / 2)
        return self.z0 + d * ((a + r) / (a + r + bt))[..., None]

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, r, h = self._parts(x)
        bh = self.beta * h
        return (self.dim - 1) * torch.log1p(bh) + torch.log1p(bh - self.beta * h * h * r)

    def jacobian_operator(self, z: torch.Tensor) -> DiagonalPlusLowRank:
        """``J(z) = (1 + βh) I + (βh'/r) (z − z₀)(z − z₀)ᵀ`` at ONE point: scaled identity plus
        rank one.

        >>> import torch
        >>> layer = Radial(3, z0=torch.zeros(3), alpha=torch.tensor(0.0), beta=torch.tensor(0.0))
        >>> z = torch.tensor([1.0, 2.0, 0.5])
        >>> torch.allclose(layer.jacobian_operator(z).slogdet()[1],
        ...                layer.log_abs_det_jacobian(z, None))
        True
        """
        z = one_point(self, z)
        d, r, h = self._parts(z)
        r_safe = torch.where(r > 0, r, torch.ones_like(r))
        coef = -self.beta * h * h / r_safe
        return DiagonalPlusLowRank((1 + self.beta * h) * torch.ones_like(z), d, coef * d)


class Sylvester(FlowLayer):
    """Sylvester flow ``f(z) = z + Q R tanh(R̃ Qᵀ z + b)`` (van den Berg et al., 2018).

    ``Q`` (``D × M``, orthonormal columns) is the QR factor of a raw ``D × M`` matrix; ``R`` and
    ``R̃`` are upper triangular with diagonals ``tanh`` of raw values, so ``R_ii R̃_ii > −1``
    (``≥ −1`` once ``tanh`` rounds to ``±1``, where the map stays strictly increasing) and ``f``
    is invertible for every raw value. By Sylvester's identity
    ``det(I_D + Q R diag(h') R̃ Qᵀ) = det(I_M + diag(h') R̃ R)``, a triangular matrix:
    ``log|det J| = Σ_i log(1 + R_ii R̃_ii h'_i)`` in ``O(D M)``. The inverse keeps the part of
    ``y`` outside ``span(Q)`` and solves the triangular map ``v ↦ v + R tanh(R̃ v + b)`` on
    ``v = Qᵀz`` from the last coordinate up, one scalar equation each.

    Args:
        dim: the dimension ``D``.
        m: the number of columns ``M`` of ``Q`` (``1 ≤ M ≤ D``; default ``D``).
        Q, R, R_tilde, b: initial raw parameters (``(D, M)``, ``(M, M)``, ``(M, M)``, ``(M,)``).
        dtype: the parameters' dtype.

    >>> import torch
    >>> layer = Sylvester(4, 2, dtype=torch.float64)
    >>> z = torch.randn(3, 4, dtype=torch.float64)
    >>> torch.allclose(layer.inv(layer(z)), z)
    True
    """

    def __init__(self, dim: int, m: int | None = None, Q: Any = None, R: Any = None,
                 R_tilde: Any = None, b: Any = None, *, dtype: torch.dtype | None = None) -> None:
        dim = positive_dim(dim, "Sylvester's dim")
        m = dim if m is None else positive_dim(m, "Sylvester's m")
        if m > dim:
            raise InvalidOptionError(f"Sylvester's m must be at most dim={dim} (Q has m "
                                     f"orthonormal columns in R^dim), got {m}")
        super().__init__(dim)
        self.m = m
        dt = real_dtype(dtype)
        scale = 1 / math.sqrt(m)
        self.Q_raw = nn.Parameter(init_param(Q, (dim, m), dt, "Q", 1.0))
        self.R_raw = nn.Parameter(init_param(R, (m, m), dt, "R", scale))
        self.R_tilde_raw = nn.Parameter(init_param(R_tilde, (m, m), dt, "R_tilde", scale))
        self.b = nn.Parameter(init_param(b, (m,), dt, "b", 0.0))

    def __repr__(self) -> str:
        return f"Sylvester(dim={self.dim}, m={self.m})"

    @property
    def Q(self) -> torch.Tensor:
        """``D × M`` with orthonormal columns (reduced QR of the raw matrix)."""
        return torch.linalg.qr(self.Q_raw).Q

    @staticmethod
    def _triangular(raw: torch.Tensor) -> torch.Tensor:
        return torch.triu(raw, 1) + torch.diag_embed(torch.tanh(torch.diagonal(raw)))

    @property
    def R(self) -> torch.Tensor:
        """Upper triangular, diagonal in ``[−1, 1]`` (open but for rounding)."""
        return self._triangular(self.R_raw)

    @property
    def R_tilde(self) -> torch.Tensor:
        """Upper triangular, diagonal in ``[−1, 1]`` (open but for rounding)."""
        return self._triangular(self.R_tilde_raw)

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        Q, R, Rt = self.Q, self.R, self.R_tilde
        return z + torch.tanh(z @ Q @ Rt.mT + self.b) @ R.mT @ Q.mT

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        Q, R, Rt = self.Q, self.R, self.R_tilde
        w = y @ Q  # v + R tanh(R̃ v + b) = w; the rest of y is untouched
        vt = w[..., :0]  # the solved coordinates v_{i+1}, ..., v_M
        for i in reversed(range(self.m)):
            c = self.b[i] + vt @ Rt[i, i + 1:]
            known = torch.tanh(vt @ Rt[i + 1:, i + 1:].mT + self.b[i + 1:]) @ R[i, i + 1:]
            vi = solve_tanh(w[..., i] - known, R[i, i], Rt[i, i], c)
            vt = torch.cat([vi[..., None], vt], dim=-1)
        return y + (vt - w) @ Q.mT

    def _hprime(self, x: torch.Tensor) -> torch.Tensor:
        th = torch.tanh(x @ self.Q @ self.R_tilde.mT + self.b)
        return 1 - th * th

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diag = torch.diagonal(self.R) * torch.diagonal(self.R_tilde)
        return torch.log1p(self._hprime(x) * diag).sum(-1)

    def jacobian_operator(self, z: torch.Tensor) -> DiagonalPlusLowRank:
        """``J(z) = I_D + (Q R) diag(h') (Q R̃ᵀ)ᵀ`` at ONE point: identity plus rank ``M``.

        >>> import torch
        >>> layer = Sylvester(3, 2, dtype=torch.float64)
        >>> z = torch.randn(3, dtype=torch.float64)
        >>> torch.allclose(layer.jacobian_operator(z).slogdet()[1],
        ...                layer.log_abs_det_jacobian(z, None))
        True
        """
        z = one_point(self, z)
        Q = self.Q
        return DiagonalPlusLowRank(torch.ones_like(z), Q @ self.R, Q @ self.R_tilde.mT,
                                   core=torch.diag(self._hprime(z)))
