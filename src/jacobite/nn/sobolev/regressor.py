"""A Jacobian-enhanced neural network (JENN) regressor: an MLP fitted to values and partials.

Given samples ``x`` ``(N, n)``, values ``y`` ``(N, m)`` and partials ``dydx`` ``(N, m, n)``
(NaN where unknown), :class:`JENNRegressor` trains a network on the Sobolev loss
``MSE(values) + λ · MSE(known partials)`` (:func:`jacobite.nn.sobolev_loss`). Matching the
partials as well as the values reaches a given accuracy with far fewer samples. The interface
follows scikit-learn's estimators (hyper-parameters in ``__init__``, ``fit`` returns the
estimator, fitted attributes end in ``_``) without depending on it.

>>> import numpy as np
>>> from jacobite.nn import JENNRegressor
>>> x = np.linspace(-np.pi, np.pi, 8)
>>> y, dydx = x * np.sin(x), np.sin(x) + x * np.cos(x)
>>> reg = JENNRegressor(hidden=(12,), seed=0).fit(x, y, dydx)
>>> xt = np.linspace(-3, 3, 50)
>>> bool(np.abs(reg.predict(xt) - xt * np.sin(xt)).max() < 0.05)
True
>>> reg.predict_jacobian(xt[:2]).shape     # (N, m, n) squeezed like x and y: (N,) here
(2,)
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch

from ... import _validate
from ...errors import (
    ArgumentTypeError,
    InvalidOptionError,
    NonFiniteInputError,
    NotFittedError,
    ShapeError,
)
from . import _jac
from ._inputs import Arrays, as_targets, finite, partials, r2, rows_2d
from ._network import mlp, pick_optimizer
from ._scaling import ScaledModule, Scaling
from ._train import Batch, History, Settings, train

__all__ = ["JENNRegressor"]

_DEFAULT_LR = {"lbfgs": 1.0, "adam": 1e-3}


class JENNRegressor:
    """Fit an MLP (or a given module) to values and Jacobians; predict both.

    Hyper-parameters (stored as given; checked by :meth:`fit`):

    * ``hidden``: hidden-layer widths (``()``: a linear model); ``activation``: their
      activation, one of ``tanh`` (default: smooth, so its Jacobian is too), ``sigmoid``,
      ``softplus``, ``silu``, ``gelu``, ``elu``, ``relu`` (piecewise linear: a piecewise
      constant Jacobian, a poor fit to smooth partials).
    * ``weight``: λ, the weight of the partials' term (0: values only).
    * ``alpha``: an L2 penalty ``α/(2N) Σ‖W‖²`` on the weight matrices (not the biases), in
      training units; the light default keeps fits to a handful of samples smooth between
      them (0: none).
    * ``optimizer``: ``"auto"`` (default: ``"lm"`` for tiny problems — at most 5000 entries
      in the residuals' Jacobian, residuals × parameters, and 150 parameters, such as a few
      samples of a 1-D function — else ``"lbfgs"``), ``"lbfgs"`` (full batch,
      ``torch.optim.LBFGS``, strong-Wolfe line search, 20 pairs of memory: few samples),
      ``"lm"`` (full batch, SciPy's ``least_squares(method="lm")`` on the residuals: very few
      steps, each one backward pass per residual and a factorisation cubic in the parameters)
      or ``"adam"`` (``torch.optim.Adam`` on mini-batches of ``batch_size``, ``"auto"``:
      ``min(200, N)``; for many samples). ``lr``: Adam's learning rate (None: 1e-3), or
      L-BFGS's first trial step of each line search (None: 1.0; unused by LM).
      ``optimizer_`` records the one that ran.
    * ``max_iter``: L-BFGS iterations, LM steps or Adam epochs at most. ``tol``,
      ``n_iter_no_change``: stop once the loss (in training units) has not dropped by more
      than ``tol`` for ``n_iter_no_change`` entries of ``loss_curve_`` in a row (L-BFGS acts
      on it between chunks of 10 iterations); L-BFGS and LM also stop when no step lowers the
      loss. The defaults (1e-5, 10) stop where the test R² has levelled off on the benchmark
      problems (Rosenbrock, Rastrigin, x·sin x); lower ``tol`` for a closer fit.
    * ``normalize``: train on standardised ``x`` and ``y`` (per column), the partials scaled
      to match (``∂y_i/∂x_j · σ_x[j]/σ_y[i]``); predictions come back in the data's units.
    * ``early_stopping``: hold out ``validation_fraction`` of the samples, stop on their loss
      (values and partials) and restore the parameters of its best entry.
    * ``module``: an ``nn.Module`` mapping ``(N, n)`` to ``(N, m)`` (or ``(N,)``) to train
      instead of the MLP. It is trained in place (pass ``copy.deepcopy(net)`` to keep the
      original) and each ``fit`` continues from its current parameters; a built MLP starts
      afresh on each ``fit``. ``hidden`` and ``activation`` are then unused.
    * ``device``, ``dtype``: where and in what the network computes (None: the module's, else
      the device of a tensor ``x`` or the CPU, and float64).
    * ``seed``: None (torch's global generator) or an int: the initial weights, the validation
      split and the mini-batches are then the same on every fit.
    * ``progress``: a rich progress bar; None shows it only on an interactive terminal once a
      fit has run for two seconds, True always, False never.
    * ``jac_mode``: how the per-sample Jacobians are computed (``"auto"``, ``"forward"``,
      ``"reverse"``); never changes the result.

    Fitted attributes: ``module_`` (the network, in training units), ``model_`` (the same
    network seen in the data's units, an ``nn.Module`` to differentiate or deploy),
    ``scaling_``, ``n_features_in_``, ``n_outputs_``, ``loss_curve_`` (the objective: values,
    λ·partials and the penalty), ``value_loss_curve_``, ``jacobian_loss_curve_`` (unweighted
    partials' term; training units; an entry per L-BFGS loss evaluation — the start, then
    each line-search trial, the last where the fit ended — per LM step or per Adam epoch),
    ``validation_loss_curve_`` (None without early stopping), ``best_iteration_`` (the entry,
    from 1, of the best monitored loss), ``n_iter_``, ``stop_reason_`` (``"tol"``,
    ``"early_stopping"``, ``"converged"``, ``"max_iter"``) and ``fit_time_`` (seconds).
    """

    def __init__(self, hidden: int | Sequence[int] = (20, 20, 20), activation: str = "tanh",
                 weight: float = 1.0, alpha: float = 1e-3, max_iter: int = 3000,
                 optimizer: Literal["auto", "lbfgs", "lm", "adam"] = "auto",
                 lr: float | None = None,
                 tol: float = 1e-5, normalize: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 batch_size: int | Literal["auto"] = "auto",
                 module: torch.nn.Module | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 seed: int | None = None, progress: bool | None = None,
                 jac_mode: Literal["auto", "forward", "reverse"] = "auto") -> None:
        self.hidden = hidden
        self.activation = activation
        self.weight = weight
        self.alpha = alpha
        self.max_iter = max_iter
        self.optimizer = optimizer
        self.lr = lr
        self.tol = tol
        self.normalize = normalize
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.batch_size = batch_size
        self.module = module
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self.progress = progress
        self.jac_mode = jac_mode

    # -- scikit-learn conventions -------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters as given to ``__init__`` (``deep`` is accepted and unused)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> JENNRegressor:
        """Change hyper-parameters (checked at the next ``fit``); returns the estimator."""
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                raise InvalidOptionError(f"JENNRegressor has no hyper-parameter {key!r}; "
                                         f"valid ones: {', '.join(names)}")
            setattr(self, key, value)
        return self

    #: read by scikit-learn before 1.6 (``is_regressor``, scorers)
    _estimator_type = "regressor"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (1.6 and later), so its model selection tools (``clone``,
        ``cross_val_score``, ``GridSearchCV``) take the regressor; imported only when asked."""
        from sklearn.utils import (  # type: ignore[import-untyped, unused-ignore]
            InputTags,
            RegressorTags,
            Tags,
            TargetTags,
        )

        return Tags(estimator_type="regressor", regressor_tags=RegressorTags(),
                    target_tags=TargetTags(required=True, single_output=True, multi_output=True),
                    input_tags=InputTags(one_d_array=True), non_deterministic=self.seed is None)

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (v is defaults[k] or (type(v) is type(defaults[k]) and v == defaults[k]))]
        return f"JENNRegressor({', '.join(changed)})"

    # -- fitting ------------------------------------------------------------------------------

    def _settings(self, N: int, device: torch.device) -> Settings:
        opt = _validate.choice(self.optimizer, "optimizer", ("auto", "lbfgs", "lm", "adam"))
        lr = (_DEFAULT_LR["adam" if opt == "adam" else "lbfgs"] if self.lr is None
              else _validate.positive_float(self.lr, "lr"))
        bs = self.batch_size
        if not (isinstance(bs, str) and bs == "auto"):
            bs = _validate.positive_int(bs, "batch_size ('auto' or an int ≥ 1)")
            if opt != "adam":
                raise InvalidOptionError(f"optimizer={opt!r} trains on the full batch; pass "
                                         "optimizer='adam' for mini-batches, or "
                                         "batch_size='auto'")
        size = None if opt != "adam" else (min(200, N) if bs == "auto" else int(bs))
        if self.progress is not None:
            _validate.boolean(self.progress, "progress")
        return Settings(opt, lr, _validate.tolerance(self.alpha, "alpha"),
                        _validate.positive_int(self.max_iter, "max_iter"),
                        _validate.tolerance(self.tol, "tol"),
                        _validate.positive_int(self.n_iter_no_change, "n_iter_no_change"),
                        size, _validate.choice(self.jac_mode, "jac_mode",
                                               ("auto", "forward", "reverse")),
                        _validate.generator(self.seed, "cpu"), self.progress)

    def _where(self, x: Arrays) -> tuple[torch.device, torch.dtype]:
        mod = self.module
        if mod is not None and not isinstance(mod, torch.nn.Module):
            raise ArgumentTypeError(f"module must be a torch.nn.Module mapping (N, n) to "
                                    f"(N, m), got {type(mod).__name__}")
        first = next(iter(mod.parameters()), None) if mod is not None else None
        if self.device is not None:
            device = _validate.device(self.device)
        else:
            device = (first.device if first is not None
                      else x.device if x.device is not None else torch.device("cpu"))
        if self.dtype is not None:
            dtype = _validate.floating_dtype(self.dtype)
        else:
            dtype = first.dtype if first is not None and first.is_floating_point() \
                else torch.float64
        return device, dtype

    def _network(self, n: int, m: int, device: torch.device, dtype: torch.dtype,
                 gen: torch.Generator | None) -> torch.nn.Module:
        if self.module is not None:
            return self.module.to(device=device, dtype=dtype)
        return mlp(n, m, self.hidden, self.activation, device, dtype, gen)

    def fit(self, x: Any, y: Any, dydx: Any = None, *, mask: Any = None,
            weight: Any = None) -> JENNRegressor:
        """Train on values ``y`` ``(N, m)`` or ``(N,)`` at ``x`` ``(N, n)`` or ``(N,)`` and,
        unless None, partials ``dydx`` ``(N, m, n)`` (``(N, n)`` with a 1-D ``y``), NaN where
        unknown; ``mask`` (True = known) and ``weight`` (λ per entry, replacing the ``weight``
        hyper-parameter) take dydx's shape or broadcast to ``(N, m, n)``. Returns self."""
        start = time.perf_counter()
        xa = Arrays.of(x, "x")
        device, dtype = self._where(xa)
        xt = xa.tensor(dtype, device)
        yt = Arrays.of(y, "y").tensor(dtype, device)
        flat = (xt.ndim == 1, yt.ndim == 1)
        xt, yt = rows_2d(xt, "x", "n"), rows_2d(yt, "y", "m")
        N, n = xt.shape
        m = yt.shape[1]
        if yt.shape[0] != N:
            raise ShapeError(f"x has {N} samples but y has {yt.shape[0]}; give one value row "
                             "per sample")
        if N == 0:
            raise ShapeError("x holds no samples; fit needs at least one")
        finite(xt, "x", "drop those samples or replace the entries")
        finite(yt, "y", "drop those samples (a missing partial may be NaN, a value may not)")
        s = self._settings(N, device)
        lam: float | torch.Tensor = _validate.tolerance(self.weight, "weight")
        d = known = None
        if dydx is not None:
            d = partials(Arrays.of(dydx, "dydx").tensor(dtype, device), N, m, n)
            if bool(torch.isinf(d).any()):
                raise NonFiniteInputError("dydx contains Inf; mark an unknown partial with NaN "
                                          "instead")
            known = ~torch.isnan(d)
            if mask is not None:
                known = known & as_targets(mask, d, N, m, n, "mask", torch.bool)
            if weight is not None:
                lam = as_targets(weight, d, N, m, n, "weight", dtype).clone()
                finite(lam, "weight", "give finite per-entry weights ≥ 0")
                if bool((lam < 0).any()):
                    raise InvalidOptionError("weight has negative entries; per-entry weights "
                                             "must be ≥ 0 (0 leaves a partial out)")
        elif mask is not None or weight is not None:
            raise InvalidOptionError("mask= and weight= describe partials; pass dydx too")
        scaling = (Scaling.fit(xt, yt) if _validate.boolean(self.normalize, "normalize")
                   else Scaling.identity(n, m, dtype, device))
        if d is not None:
            assert known is not None
            d = torch.where(known, scaling.dydx_in(d), torch.zeros((), dtype=dtype,
                                                                   device=device))
            known = None if bool(known.all()) else known
        data = Batch(scaling.x_in(xt), scaling.y_in(yt), d, known, lam)
        train_set, valid = self._split(data, s.generator)
        net = self._network(n, m, device, dtype, s.generator)
        net.train()
        if s.optimizer == "auto":
            s = dataclasses.replace(s, optimizer=pick_optimizer(net, train_set))
        history = train(net, train_set, valid, s)
        self.optimizer_ = s.optimizer
        self._x_1d, self._y_1d = flat
        self._store(net, scaling, history, n, m)
        self.fit_time_ = time.perf_counter() - start
        return self

    def _split(self, data: Batch, gen: torch.Generator | None) -> tuple[Batch, Batch | None]:
        frac = self.validation_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise InvalidOptionError(f"validation_fraction must be a number in (0, 1), got "
                                     f"{frac!r}")
        if not _validate.boolean(self.early_stopping, "early_stopping"):
            return data, None
        N = len(data)
        k = max(1, round(frac * N))
        if N - k < 1:
            raise InvalidOptionError(f"early_stopping needs at least 2 samples (got {N}); "
                                     "pass early_stopping=False")
        order = torch.randperm(N, generator=gen).to(data.x.device)
        return data.rows(order[k:]), data.rows(order[:k])

    def _store(self, net: torch.nn.Module, scaling: Scaling, h: History, n: int,
               m: int) -> None:
        net.eval()
        self.module_ = net
        self.scaling_ = scaling
        self.model_ = ScaledModule(net, scaling)
        self.n_features_in_, self.n_outputs_ = n, m
        self.loss_curve_, self.value_loss_curve_ = h.total, h.value
        self.jacobian_loss_curve_, self.validation_loss_curve_ = h.jacobian, h.validation
        self.best_iteration_, self.n_iter_, self.stop_reason_ = h.best_iter, h.n_iter, h.stop

    # -- predicting ---------------------------------------------------------------------------

    def _inputs(self, x: Any, what: str) -> tuple[Arrays, torch.Tensor]:
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this JENNRegressor is not fitted yet; call fit(x, y, dydx) "
                                 f"before {what}")
        xa = Arrays.of(x, "x")
        p = next(iter(self.module_.parameters()), None)
        dtype = self.scaling_.x_mean.dtype if p is None else p.dtype
        xt = rows_2d(xa.tensor(dtype, self.scaling_.x_mean.device), "x", "n")
        if xt.shape[1] != self.n_features_in_:
            raise ShapeError(f"x has {xt.shape[1]} features but the regressor was fitted on "
                             f"{self.n_features_in_}; pass x of shape (N, {self.n_features_in_})")
        return xa, self.scaling_.x_in(xt)

    def predict(self, x: Any) -> Any:
        """Values at ``x``: ``(N, m)``, or ``(N,)`` when fitted on a 1-D ``y``; NumPy for
        NumPy input, a detached tensor on the input's device for a tensor."""
        xa, xn = self._inputs(x, "predict")
        with torch.no_grad():
            out = self.scaling_.y_out(_jac._run(self.module_, xn, xn.shape[0]))
        return xa.back(out[:, 0] if self._y_1d else out)

    def predict_jacobian(self, x: Any) -> Any:
        """Partials at ``x``: ``(N, m, n)``, without the ``m`` axis when fitted on a 1-D ``y``
        and without the ``n`` axis when fitted on a 1-D ``x`` (as ``torch.func.jacrev`` of
        one sample would give); same type rules as :meth:`predict`."""
        xa, xn = self._inputs(x, "predict_jacobian")
        _, J = _jac.full(self.module_, xn, self.n_outputs_, self.jac_mode)
        J = self.scaling_.dydx_out(J.detach())
        J = J[:, :, 0] if self._x_1d else J
        return xa.back(J[:, 0] if self._y_1d else J)

    def score(self, x: Any, y: Any) -> float:
        """R² of the predicted values: per output column, averaged (scikit-learn's default)."""
        self._inputs(x, "score")
        pred = rows_2d(torch.as_tensor(self.predict(x)).to(torch.float64), "y", "m")
        target = rows_2d(Arrays.of(y, "y").tensor(torch.float64, pred.device), "y", "m")
        if target.shape != pred.shape:
            raise ShapeError(f"y has shape {tuple(target.shape)}; expected "
                             f"{tuple(pred.shape)} (one row per sample of x)")
        return r2(target, pred)

    def score_jacobian(self, x: Any, dydx: Any, *, mask: Any = None) -> float:
        """R² of the predicted partials: each partial ``∂y_i/∂x_j`` is one column, scored over
        its known entries (not NaN, not masked out) and the columns averaged, as scikit-learn's
        ``r2_score`` on dydx reshaped ``(N, m·n)`` would score complete data."""
        pred = torch.as_tensor(self.predict_jacobian(x)).to(torch.float64)
        N, m, n = pred.shape[0], self.n_outputs_, self.n_features_in_
        pred = pred.reshape(N, m, n)
        target = partials(Arrays.of(dydx, "dydx").tensor(torch.float64, pred.device), N, m, n)
        known = ~torch.isnan(target)
        if mask is not None:
            known = known & as_targets(mask, target, N, m, n, "mask", torch.bool)
        return r2(target.reshape(N, -1), pred.reshape(N, -1), known.reshape(N, -1))
