"""The Laplace approximation of a trained network's posterior: a Gaussian at the trained
parameters ``θ*`` whose precision is the Gauss–Newton matrix of the data's negative
log-likelihood plus a Gaussian prior's precision, ``Λ = G / T + δ I``, kept structured (K-FAC
blocks, the exact diagonal, a dense matrix, or the last layer's Kronecker factors); the prior
precision chosen by the Laplace evidence; predictions by the linearised model
``f(x) ~ N(f*(x), J(x) Λ⁻¹ J(x)ᵀ)``.

>>> import torch
>>> from jacobite.curvature import laplace
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
>>> X, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
>>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="kron")
>>> probs, var = post.predictive(X[:5])
>>> tuple(probs.shape), tuple(var.shape), bool(torch.allclose(probs.sum(1), torch.ones(5)))
((5, 3), (5, 3, 3), True)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from .. import _validate
from ..config import get_memory_budget
from ..errors import UnsupportedOperationError
from ..operators import JacobianOperator, KroneckerIdentity
from ._laplace_curv import features, linear_jacobians
from ._laplace_fit import fit, log_likelihood
from ._laplace_post import FullPosterior, KronPosterior, Posterior
from ._laplace_prior import maximise_evidence, prior_vector
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward

__all__ = ["Laplace", "Predictive", "laplace"]

STRUCTURES = ("last_layer", "kron", "diag", "full")


class Predictive(NamedTuple):
    """The linearised predictive: ``mean`` (class probabilities, or the regression output
    ``f*(x)``) and the functional variance ``J Λ⁻¹ Jᵀ`` of the outputs, ``(n, C, C)`` (or its
    diagonal ``(n, C)``).

    >>> import torch
    >>> p = Predictive(torch.full((1, 2), 0.5), torch.eye(2)[None])
    >>> p.mean.sum().item(), tuple(p.variance.shape)
    (1.0, (1, 2, 2))
    """

    mean: torch.Tensor
    variance: torch.Tensor


class Laplace:
    """A Laplace posterior ``N(θ*, Λ⁻¹)`` built by :func:`laplace`.

    Attributes:
        structure: ``"last_layer"``, ``"kron"``, ``"diag"`` or ``"full"``.
        names: the parameters the posterior covers, in ``named_parameters`` order.
        mean: ``θ*``, those parameters flattened (row-major, stacked).
        groups: the layers, each with its own entry of a per-layer prior precision.
        log_likelihood: ``log p(D | θ*)`` (tempered by ``1/T``).

    >>> import torch
    >>> from jacobite.curvature import laplace
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="full",
    ...                prior_precision=1.0)
    >>> post.groups, post.posterior_precision.shape
    ([''], (8, 8))
    """

    def __init__(self, model: nn.Module, lc: LossCurvature, structure: str, ps: Params,
                 posterior: Posterior, log_likelihood: torch.Tensor, groups: list[str],
                 group_index: torch.Tensor, sigma_noise: float) -> None:
        self.model, self.structure, self._lc, self._ps = model, structure, lc, ps
        self._post = posterior
        self.names = ps.names
        self.mean = ps.flat(ps.primals())
        self.groups = groups
        self._group_index = group_index
        self.log_likelihood = log_likelihood
        self.sigma_noise = sigma_noise
        sq = torch.zeros(len(groups), dtype=ps.dtype, device=ps.device)
        self._sq_norms = sq.index_add(0, group_index.to(ps.device), self.mean**2)
        self._sizes = torch.tensor(posterior.group_sizes, dtype=ps.dtype, device=ps.device)
        self._delta = torch.ones(len(groups), dtype=ps.dtype, device=ps.device)
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def prior_precision(self) -> torch.Tensor:
        """``δ`` per layer, a ``(len(groups),)`` tensor; set it to a number ``> 0`` or one per
        layer to change the posterior (nothing is recomputed but ``δ``)."""
        return self._delta

    @prior_precision.setter
    def prior_precision(self, value: Any) -> None:
        self._delta = prior_vector(value, len(self.groups), self.mean)

    @property
    def n_params(self) -> int:
        """``P``, the number of parameters the posterior covers."""
        return self._ps.size

    @property
    def posterior_precision(self) -> JacobianOperator:
        """``Λ`` at the current prior precision, as a symmetric positive definite operator."""
        return self._post.precision(self.prior_precision)

    def log_marginal_likelihood(self, prior_precision: Any = None) -> torch.Tensor:
        """The Laplace evidence ``log p(D | θ*) − ½ Σ_l δ_l ‖θ*_l‖² + ½ Σ_l P_l log δ_l
        − ½ log det Λ`` at ``prior_precision`` (a number, or one per layer; default the
        posterior's own).

        >>> import torch
        >>> from jacobite.curvature import laplace
        >>> model = torch.nn.Linear(2, 2).double()
        >>> X, y = torch.randn(10, 2, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="diag")
        >>> bool(post.log_marginal_likelihood() >= post.log_marginal_likelihood(100.0))
        True
        """
        delta = self.prior_precision if prior_precision is None else prior_vector(
            prior_precision, len(self.groups), self.mean)
        return self._evidence(delta)

    def _evidence(self, delta: torch.Tensor) -> torch.Tensor:
        return (self.log_likelihood - 0.5 * (delta * self._sq_norms).sum()
                + 0.5 * (self._sizes * delta.log()).sum() - 0.5 * self._post.logdet(delta))

    def sample(self, n: int = 100, *, seed: int | None = 0) -> torch.Tensor:
        """``n`` draws of the parameters from ``N(θ*, Λ⁻¹)``, an ``(n, P)`` tensor (each row a
        parameter vector in :attr:`names` order), through the structure's ``Λ^(-1/2)``;
        ``seed=None`` draws from torch's global generator.

        >>> import torch
        >>> from jacobite.curvature import laplace
        >>> model = torch.nn.Linear(3, 2).double()
        >>> X, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="kron")
        >>> tuple(post.sample(5).shape)
        (5, 8)
        """
        n = _validate.positive_int(n, "n")
        g = _validate.generator(seed, self.mean.device)
        E = torch.randn(self.n_params, n, dtype=self.mean.dtype, device=self.mean.device,
                        generator=g)
        return self.mean + self._post.root(E, self.prior_precision).T

    def _inputs(self, X: Any) -> torch.Tensor:
        batches = Data(X, targets=False, dtype=self._ps.dtype, device=self._ps.device)
        return torch.cat([b for b, _ in batches])

    def functional_variance(self, X: Any, *, diagonal: bool = False) -> torch.Tensor:
        """``J(x) Λ⁻¹ J(x)ᵀ`` for every sample of ``X``: ``(n, C, C)``, or its diagonal
        ``(n, C)`` with ``diagonal=True`` (which for ``"last_layer"`` never forms a ``C × C``
        matrix: ``O(n (d C + C²))`` work, ``O(n C)`` memory beyond the posterior; the full
        matrices cost ``O(n C³)``, so ask for the diagonal when there are many classes).

        >>> import torch
        >>> from jacobite.curvature import laplace
        >>> model = torch.nn.Linear(3, 4).double()
        >>> X, y = torch.randn(12, 3, dtype=torch.float64), torch.randint(0, 4, (12,))
        >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), prior_precision=1.0)
        >>> tuple(post.functional_variance(X[:2]).shape)
        (2, 4, 4)
        >>> tuple(post.functional_variance(X[:2], diagonal=True).shape)
        (2, 4)
        """
        diagonal = _validate.boolean(diagonal, "diagonal")
        X = self._inputs(X)
        if self.structure == "last_layer":
            return self._last_layer_variance(features(self.model, X)[0], diagonal)[0]
        return self._variance(X, diagonal)[0]

    def last_layer_jacobian(self, X: Any) -> KroneckerIdentity:
        """The Jacobian of the outputs ``(n, C)`` at the inputs ``X`` in the last layer's
        parameters (``structure="last_layer"``), read feature-major: rows ``i C + c``, column
        ``j C + c'`` the entry ``W̃[c', j]`` of ``W̃ = [W | b]`` (:attr:`feature_major` maps
        these columns to the parameter vector). It is ``Φ̃ ⊗ I_C`` (``Φ̃`` the features with a
        1 appended), an operator holding ``Φ̃`` alone.

        >>> import torch
        >>> from jacobite.curvature import laplace
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5)).double()
        >>> X, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 5, (6,))
        >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), prior_precision=1.0)
        >>> J = post.last_layer_jacobian(X[:2])
        >>> J.shape, tuple(J.A.shape)
        ((10, 25), (2, 5))
        """
        if self.structure != "last_layer":
            raise UnsupportedOperationError(
                f"last_layer_jacobian() belongs to structure='last_layer', this posterior has "
                f"structure={self.structure!r}; build it with laplace(..., "
                "structure='last_layer')")
        phi, out = features(self.model, self._inputs(X))
        return KroneckerIdentity(phi, out.shape[1])

    @property
    def feature_major(self) -> torch.Tensor:
        """For ``"last_layer"``: the index ``k`` with ``mean[k]`` the feature-major parameter
        vector of :meth:`last_layer_jacobian` (entry ``j C + c`` is ``W̃[c, j]``)."""
        if self.structure != "last_layer":
            raise UnsupportedOperationError(
                f"feature_major belongs to structure='last_layer', this posterior has "
                f"structure={self.structure!r}; build it with laplace(..., "
                "structure='last_layer')")
        assert isinstance(self._post, KronPosterior)
        L = self._post.layers[0]
        c = torch.arange(L.d_out)[None, :]
        j = torch.arange(L.d_in)[:, None]
        index = [(c * L.d_in + j).reshape(-1)]
        if L.b is not None:
            index.append(L.d_out * L.d_in + torch.arange(L.d_out))
        return torch.cat(index)

    def _last_layer_variance(self, phi: torch.Tensor, diagonal: bool
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(variance, w)`` by ``J Λ⁻¹ Jᵀ = Q_G diag(w) Q_Gᵀ`` with
        ``w_c = Σ_j (Q_Aᵀ φ̃)_j² / (λ_G,c λ_A,j + δ)``: the Jacobian ``I_C ⊗ φ̃ᵀ`` (read
        feature-major, ``φ̃ᵀ ⊗ I_C``) is never formed."""
        assert isinstance(self._post, KronPosterior)
        lg, qg, la, qa = self._post.eig[0]
        delta = self.prior_precision[0]
        if self._cache is None or not torch.equal(self._cache[0], delta):
            # 1 / (λ_A,j λ_G,c + δ) (d, C) and Q_G ⊙ Q_G, once per prior precision
            self._cache = (delta.clone(), 1.0 / (torch.outer(la, lg) + delta), qg * qg)
        U = phi @ qa
        w = (U * U) @ self._cache[1]  # (n, C)
        if diagonal:
            return w @ self._cache[2].T, w
        return (qg * w[:, None, :]) @ qg.T, w

    def _variance(self, X: torch.Tensor, diagonal: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(variance, output)`` in chunks of samples under the memory budget: for K-FAC on
        Linear layers from each layer's ``B_n ⊗ ã_nᵀ``, else from the Jacobian ``(n, C, P)``."""
        ps = self._ps
        with torch.no_grad():
            out = forward(self.model, ps, ps.primals(), X)
        if out.ndim != 2:
            raise UnsupportedOperationError(
                f"the predictive needs model outputs of shape (n, C), got {tuple(out.shape)}; "
                "flatten the output in the model")
        C = out.shape[1]
        post = self._post
        layers = [] if isinstance(post, FullPosterior) else post.layers
        width = sum(L.d_out + L.d_in + 1 for L in layers) if layers else ps.size
        per = max(1, get_memory_budget() // (3 * C * width * ps.values[0].element_size()))
        parts = []

        def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return forward(self.model, ps, p, x[None])[0]

        per_sample = torch.func.vmap(torch.func.jacrev(one), in_dims=(None, 0))
        for s in range(0, X.shape[0], per):
            Xc = X[s:s + per]
            found = linear_jacobians(self.model, ps, Xc, layers) if layers else None
            if not isinstance(post, FullPosterior) and found is not None:
                parts.append(post.linear_variance(found[1], self.prior_precision, diagonal))
                continue
            layers = []  # not Linear layers on (n, d): the Jacobian for every chunk
            with torch.enable_grad():
                jac = per_sample(ps.primals(), Xc)
            J = torch.cat([jac[k].reshape(Xc.shape[0], C, -1) for k in ps.names], dim=2)
            parts.append(self._post.variance(J, self.prior_precision, diagonal))
        return torch.cat(parts), out

    def predictive(self, X: Any, *, link: str = "probit", samples: int = 100,
                   seed: int | None = 0, diagonal: bool = False) -> Predictive:
        """The linearised predictive at the inputs ``X``: ``f(x) ~ N(f*(x), J Λ⁻¹ Jᵀ)``.

        For cross-entropy ``mean`` holds class probabilities: ``link="probit"`` gives
        ``softmax(f* / √(1 + π/8 · diag var))``, ``link="mc"`` the mean of ``softmax`` over
        ``samples`` draws of the linearised logits (seeded by ``seed``; ``None``: torch's
        global generator). For squared error
        ``mean`` is ``f*(x)`` (``link`` does not apply) and the predictive variance of a new
        observation adds ``sigma_noise²`` to the functional variance's diagonal. ``variance`` is
        the functional variance, ``(n, C, C)``, or ``(n, C)`` with ``diagonal=True``.

        >>> import torch
        >>> from jacobite.curvature import laplace
        >>> model = torch.nn.Linear(3, 2).double()
        >>> X, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
        >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="diag")
        >>> p = post.predictive(X, link="mc", samples=50).mean
        >>> tuple(p.shape), bool(torch.allclose(p.sum(1), torch.ones(10, dtype=torch.float64)))
        ((10, 2), True)
        """
        link = _validate.choice(link, "link", ("probit", "mc"))
        samples = _validate.positive_int(samples, "samples")
        _validate.seed(seed, "seed")
        diagonal = _validate.boolean(diagonal, "diagonal")
        X = self._inputs(X)
        w: torch.Tensor | None = None
        if self.structure == "last_layer":
            phi, out = features(self.model, X)
            var, w = self._last_layer_variance(phi, diagonal)
            full = None
        else:
            # the MC draws need the full C × C variance: computed once, diagonal or not
            mc = self._lc.kind == "ce" and link == "mc"
            full, out = self._variance(X, diagonal and not mc)
            var = full.diagonal(dim1=1, dim2=2) if diagonal and mc else full
        if self._lc.kind != "ce":
            return Predictive(out, var)
        if link == "probit":
            d = var if diagonal else var.diagonal(dim1=1, dim2=2)
            return Predictive(torch.softmax(out / (1 + math.pi / 8 * d).sqrt(), dim=1), var)
        g = _validate.generator(seed, out.device)
        eps = torch.randn(samples, *out.shape, dtype=out.dtype, device=out.device, generator=g)
        if w is not None:  # Q_G diag(√w) ε: no C × C factor per sample
            assert isinstance(self._post, KronPosterior)
            draws = (eps * w.clamp_min(0).sqrt()) @ self._post.eig[0][1].T
        else:
            assert full is not None
            lam, Q = torch.linalg.eigh(full)
            root = Q * lam.clamp_min(0).sqrt()[:, None, :]
            draws = torch.einsum("nij,snj->sni", root, eps)
        return Predictive(torch.softmax(out + draws, dim=2).mean(dim=0), var)


def laplace(model: nn.Module, loss: Any, data: Any, *, structure: str = "last_layer",
            prior_precision: Any = "auto", temperature: float = 1.0,
            sigma_noise: float = 1.0) -> Laplace:
    """The Laplace approximation ``N(θ*, Λ⁻¹)`` of a trained network's posterior, with
    ``Λ = G / T + δ I``: ``G`` the Gauss–Newton matrix of the data's negative log-likelihood
    at the trained parameters ``θ*``, ``T`` the temperature and ``δ`` the precision of the
    prior ``N(0, δ⁻¹ I)``.

    Args:
        model: a trained ``nn.Module`` (eval mode where it holds BatchNorm or dropout) with
            outputs ``(n, C)``.
        loss: ``nn.CrossEntropyLoss`` (weight=None; a categorical likelihood) or
            ``nn.MSELoss`` (a Gaussian likelihood with standard deviation ``sigma_noise``);
            the reduction does not matter: the likelihood is of the whole dataset. Samples
            whose target is the cross-entropy's ``ignore_index`` count for nothing (as in the
            loss): neither in ``G``, nor in the feature mean ``A``, nor in the likelihood.
            Cross-entropy needs class-index targets and ``label_smoothing=0`` (probability
            targets and smoothing are refused: they are not the categorical likelihood).
        data: one batch ``(X, y)`` or an iterable of batches (the training data).
        structure: ``"last_layer"`` (the last ``nn.Linear`` only, its Gauss–Newton block
            Kronecker-factored as ``G ⊗ A`` with ``G = Σ_n H_n`` and ``A`` the mean of the
            features ``φ̃ φ̃ᵀ``, read by a forward hook), ``"kron"`` (K-FAC blocks ``G ⊗ A`` of
            every Linear and Conv2d layer, from the loss Hessian's square root), ``"diag"``
            (the exact Gauss–Newton diagonal) or ``"full"`` (the dense matrix, under the memory
            budget).
        prior_precision: ``"auto"`` (the ``δ`` maximising :meth:`Laplace.log_marginal_likelihood`,
            one number for all layers), a number ``> 0``, or a tensor of one number per layer
            (``Laplace.groups``).
        temperature: ``T > 0``; the likelihood is tempered as ``p(D | θ)^(1/T)``.
        sigma_noise: the Gaussian likelihood's standard deviation for ``nn.MSELoss``
            (``G = JᵀJ / σ²``); ignored for cross-entropy.

    Memory: ``"kron"`` and ``"last_layer"`` hold ``d_out² + (d_in + 1)²`` numbers per layer
    (twice, with the eigenvectors); ``"diag"`` ``P``; ``"full"`` ``2 P²``.

    >>> import torch
    >>> from jacobite.curvature import laplace
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(),
    ...                             torch.nn.Linear(6, 3)).double()
    >>> X, y = torch.randn(30, 2, dtype=torch.float64), torch.randint(0, 3, (30,))
    >>> post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y))
    >>> post.names, post.prior_precision.shape
    (('2.weight', '2.bias'), torch.Size([1]))
    """
    model = check_model(model)
    lc = LossCurvature.of(loss)
    lc.require_closed("the Laplace approximation needs a likelihood (categorical or Gaussian)")
    if lc.smoothing:  # a training regulariser, not the categorical likelihood
        raise UnsupportedOperationError(
            f"the loss has label_smoothing={lc.smoothing}, but the Laplace approximation uses "
            "the categorical likelihood of the labels, which smoothing at training time does "
            "not change: pass a plain nn.CrossEntropyLoss()")
    structure = _validate.choice(structure, "structure", STRUCTURES)
    temperature = _validate.positive_float(temperature, "temperature")
    sigma = _validate.positive_float(sigma_noise, "sigma_noise")
    scale = 1.0 / temperature / (2 * sigma**2 if lc.kind == "mse" else 1.0)
    f = fit(model, lc, data, structure, scale)
    loglik = log_likelihood(model, lc, f.ps, f.batches, temperature, sigma)
    result = Laplace(model, lc, structure, f.ps, f.post, loglik, f.groups, f.group_index,
                     sigma)
    if isinstance(prior_precision, str) and prior_precision == "auto":
        result.prior_precision = maximise_evidence(result._evidence, result.mean,
                                                   len(f.groups))
    else:
        result.prior_precision = prior_precision
    return result
