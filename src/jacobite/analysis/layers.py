"""Per-layer Jacobian spectral norms of a network at an input: vanishing / exploding gradients.

:func:`layer_report` runs the module once with forward hooks on every leaf module (a module
without children), capturing each call's input and output; each leaf's Jacobian (output with
respect to its first tensor input, at the captured input) is then measured matrix-free with
:func:`jacobite.analysis.spectra.top_singular`. Rows follow the order of the calls, with the
cumulative product of the norms along the depth and a flag when that product drops below
``1e-3`` (vanishing) or rises above ``1e3`` (exploding). For a plain chain the product bounds
the whole network's norm, which the report also gives (``total``); skip connections and
other non-module operations are not rows.

``x`` is what the module is called with (usually a batch of one). With a batch of ``B``
samples each layer's Jacobian is block diagonal over the samples, so its norm is the worst
sample's. A module with BatchNorm or Dropout in training mode is refused
(:class:`~jacobite.errors.ModuleStateError`: call ``model.eval()`` first).

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) is not None
True
>>> net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
>>> rep = layer_report(net, torch.randn(1, 4, dtype=torch.float64))
>>> [r.kind for r in rep.rows]
['Linear', 'Tanh', 'Linear']
>>> w = float(torch.linalg.matrix_norm(net[0].weight.detach(), ord=2))
>>> abs(rep.rows[0].spectral_norm - w) < 1e-10
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .. import _validate
from .._modules import keeps_state
from ..dense._batch_of_one import check_per_sample, concatenated, transformable_kernels
from ..errors import ArgumentTypeError, InvalidOptionError, NonFiniteInputError, ShapeError
from ..viz._common import figure_and_axes
from .spectra import top_singular

__all__ = ["LayerReport", "LayerRow", "compare_initialisations", "comparison_table",
           "layer_report", "plot_comparison"]

VANISHING, EXPLODING = 1e-3, 1e3


@dataclass(frozen=True)
class LayerRow:
    """One leaf-module call: its Jacobian's spectral norm and the product up to it."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    spectral_norm: float
    cumulative: float
    flag: str  # "" | "vanishing" | "exploding" (of the cumulative product)
    singular_values: tuple[float, ...] = ()  # the top k


@dataclass(frozen=True)
class LayerReport:
    """The rows of :func:`layer_report`, the whole network's norm ``total`` and ``k``."""

    rows: list[LayerRow] = field(default_factory=list)
    total: float = math.nan
    k: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists for shapes; ``inf``/``nan`` become strings)."""
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return str(v)
            if isinstance(v, (tuple, list)):
                return [clean(e) for e in v]
            return v

        return {"rows": [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows],
                "total": clean(self.total), "k": self.k}

    def __str__(self) -> str:
        head = ("layer", "kind", "in", "out", "‖J‖₂", "cumulative", "flag")
        body = [(r.name, r.kind, "×".join(map(str, r.in_shape)), "×".join(map(str, r.out_shape)),
                 f"{r.spectral_norm:.4g}", f"{r.cumulative:.4g}", r.flag) for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
                  for i, h in enumerate(head)]
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        out = [line, "-" * len(line)]
        out += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
        out.append(f"whole network ‖J‖₂ = {self.total:.4g}")
        return "\n".join(out)

    def plot(self, ax: Any = None) -> Any:
        """Per-layer norms (bars) and the cumulative product (line), log scale; returns the
        matplotlib ``Figure``. Needs the ``plot`` extra."""
        fig, ax = figure_and_axes(ax, (7.0, 4.0))
        idx = list(range(len(self.rows)))
        ax.bar(idx, [r.spectral_norm for r in self.rows], color="0.7", label="layer ‖J‖₂")
        ax.plot(idx, [r.cumulative for r in self.rows], "o-", color="C0", label="cumulative")
        _decorate(ax, self.rows)
        ax.legend(loc="best")
        return fig


def _decorate(ax: Any, rows: Sequence[LayerRow]) -> None:
    ax.set_yscale("log")
    ax.axhline(VANISHING, color="C3", ls=":", lw=1)
    ax.axhline(EXPLODING, color="C3", ls=":", lw=1)
    ax.set_xticks(range(len(rows)), [f"{r.name}\n{r.kind}" for r in rows], fontsize=7)
    ax.set_ylabel("spectral norm of the Jacobian")


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    leaves = [(n, m) for n, m in module.named_modules() if not any(True for _ in m.children())]
    return leaves or [("", module)]


def _flag(c: float) -> str:
    return "vanishing" if c < VANISHING else "exploding" if c > EXPLODING else ""


#: leaf modules that act elementwise: their Jacobian is diagonal, read off by one JVP
ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.CELU,
               nn.SELU, nn.LeakyReLU, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardsigmoid,
               nn.Hardswish, nn.Mish, nn.LogSigmoid, nn.Tanhshrink, nn.Identity)


@keeps_state
@transformable_kernels()
def layer_report(module: nn.Module, x: torch.Tensor, *, k: int = 1, total: bool = True,
                 tol: float = 1e-8) -> LayerReport:
    """Each leaf layer's input–output Jacobian spectral norm at ``x`` (see the module doc).

    ``k`` top singular values per layer go to ``LayerRow.singular_values`` (fewer where the
    Jacobian is smaller). ``total=False`` skips the whole network's norm. Leaves whose first
    input is not a floating tensor (embeddings) or whose output is not a tensor are skipped.
    Elementwise activations (:data:`ELEMENTWISE`) have diagonal Jacobians: their singular
    values are read off exactly from one JVP instead of a Lanczos run.
    """
    if not isinstance(module, nn.Module):
        raise ArgumentTypeError(f"module must be a torch.nn.Module, got {type(module).__name__}; "
                                f"wrap a function in an nn.Module or use top_singular(f, x)")
    check_per_sample(module, random=True)
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"x must be a tensor the module accepts, got "
                                f"{type(x).__name__}; pass e.g. torch.as_tensor(data)")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise NonFiniteInputError("x contains NaN or Inf; clean it first (e.g. torch.nan_to_num)")
    k = _validate.positive_int(k, "k")
    total = _validate.boolean(total, "total")
    tol = _validate.positive_float(tol, "tol")
    calls: list[tuple[str, nn.Module, torch.Tensor, tuple, dict, torch.Tensor]] = []
    seen: dict[str, int] = {}

    def hook(name: str) -> Callable[..., None]:
        def fn(mod: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            if (not args or not isinstance(args[0], torch.Tensor)
                    or not args[0].is_floating_point() or not isinstance(out, torch.Tensor)):
                return
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            calls.append((label or type(mod).__name__, mod, args[0].detach(), args[1:],
                          kwargs, out.detach()))
        return fn

    handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in _leaves(module)]
    try:
        with torch.no_grad():
            module(x)
    except (IndexError, RuntimeError, TypeError, ValueError) as exc:
        raise ShapeError(f"module(x) failed with {type(exc).__name__}: {exc}; pass an x of the "
                         f"shape and dtype the module accepts, with its batch dimension "
                         f"(x.unsqueeze(0) for one sample)") from exc
    finally:
        for h in handles:
            h.remove()
    rows: list[LayerRow] = []
    cum = 1.0
    for label, mod, inp, rest, kw, out in calls:
        kk = min(k, inp.numel(), out.numel())
        def fn(z: torch.Tensor, mod: nn.Module = mod, rest: tuple = rest,
               kw: dict = kw) -> torch.Tensor:
            return mod(z, *rest, **kw)

        if isinstance(mod, ELEMENTWISE):  # diagonal Jacobian: its entries by one JVP, exactly
            ones = torch.ones_like(inp)
            diag = torch.func.jvp(fn, (inp.clone(),), (ones,))[1].abs().reshape(-1)
            vals = torch.topk(diag.double(), kk).values.tolist()
        else:
            vals = top_singular(fn, inp, kk, tol=tol).values.tolist()
        cum *= vals[0]
        rows.append(LayerRow(label, type(mod).__name__, tuple(inp.shape), tuple(out.shape),
                             vals[0], cum, _flag(cum), tuple(vals)))
    whole = math.nan
    if total and x.is_floating_point():
        whole = float(top_singular(concatenated(module), x.detach(), 1,
                                   tol=tol).values[0].detach())
    return LayerReport(rows=rows, total=whole, k=k)


def _init(name: str) -> Callable[[nn.Module], None]:
    def xavier(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def kaiming(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    table = {"xavier": xavier, "kaiming": kaiming, "default": lambda m: None}
    if name not in table:
        raise InvalidOptionError(f"unknown initialisation {name!r}; use 'xavier', 'kaiming', "
                                 f"'default', or pass a dict name -> function(module)")
    return table[name]


def compare_initialisations(
    make_model: Callable[[], nn.Module], x: torch.Tensor,
    inits: Sequence[str] | Mapping[str, Callable[[nn.Module], None]] = (
        "xavier", "kaiming", "default"),
    seed: int | None = 0, *, k: int = 1,
) -> dict[str, LayerReport]:
    """A :func:`layer_report` of the same architecture under several initialisations.

    For each name ``make_model()`` is called after ``torch.manual_seed(seed)`` (``seed=None``
    leaves torch's global generator as it is), then the
    initialiser is applied to every module (``xavier``: Xavier/Glorot normal weights,
    ``kaiming``: Kaiming normal for ReLU, zero biases; ``default``: as constructed). ``inits``
    may map names to your own ``function(module)``. Draw the result with
    :func:`comparison_table` or :func:`plot_comparison`.

    >>> import torch
    >>> from torch import nn
    >>> make = lambda: nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    >>> reps = compare_initialisations(make, torch.ones(1, 3, dtype=torch.float64))
    >>> list(reps), len(reps["xavier"].rows)
    (['xavier', 'kaiming', 'default'], 3)
    """
    _validate.callable_(make_model, "make_model")
    seed = _validate.seed(seed)
    k = _validate.positive_int(k, "k")
    if isinstance(inits, Mapping):
        table = dict(inits)
        for name, init in table.items():
            _validate.callable_(init, f"inits[{name!r}]")
    elif isinstance(inits, (str, bytes)) or not isinstance(inits, Sequence):
        raise ArgumentTypeError(f"inits must be a sequence of names or a dict name -> "
                                f"function(module), got {inits!r}; e.g. inits=('xavier',)")
    else:
        table = {n: _init(n) for n in inits}
    out: dict[str, LayerReport] = {}
    for name, init in table.items():
        if seed is not None:
            torch.manual_seed(seed)
        model = make_model()
        with torch.no_grad():
            model.apply(init)
        out[name] = layer_report(model, x, k=k)
    return out


def _check_reports(reports: Any) -> None:
    if not isinstance(reports, Mapping):
        raise ArgumentTypeError(f"reports must be a dict name -> LayerReport, got "
                                f"{type(reports).__name__}; pass compare_initialisations(...)")
    if not reports:
        raise InvalidOptionError("reports is empty; pass at least one name -> LayerReport")
    for name, rep in reports.items():
        if not isinstance(name, str) or not isinstance(rep, LayerReport):
            raise ArgumentTypeError(f"reports must map names (str) to LayerReport, got "
                                    f"{name!r} -> {type(rep).__name__}; build them with "
                                    f"layer_report or compare_initialisations")


def comparison_table(reports: Mapping[str, LayerReport]) -> str:
    """One table: a row per layer, the cumulative norm under each initialisation."""
    _check_reports(reports)
    names = list(reports)
    first = next(iter(reports.values())).rows if reports else []
    head = ["layer", "kind", *names]
    body = [[r.name, r.kind, *(f"{reports[n].rows[i].cumulative:.3g}"
                               + (f" ({reports[n].rows[i].flag})" if reports[n].rows[i].flag
                                  else "") for n in names)] for i, r in enumerate(first)]
    body.append(["total", "", *(f"{reports[n].total:.3g}" for n in names)])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
             for row in [head, *body]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def plot_comparison(reports: Mapping[str, LayerReport], ax: Any = None) -> Any:
    """The cumulative norm along the depth, one line per initialisation; returns the Figure."""
    _check_reports(reports)
    fig, ax = figure_and_axes(ax, (7.0, 4.0))
    rows: list[LayerRow] = []
    for i, (name, rep) in enumerate(reports.items()):
        rows = rep.rows
        ax.plot(range(len(rows)), [r.cumulative for r in rows], "o-", color=f"C{i}", label=name)
    _decorate(ax, rows)
    ax.legend(loc="best", title="initialisation")
    return fig
