"""``jacobite inspect model.py:make_model --input-shape 3,32,32``: the layer report of a model.

The file is imported by path (its directory is put on ``sys.path`` while it loads, so it may
import its neighbours); the factory is called with no arguments, torch seeded by ``--seed``,
and must return an ``nn.Module``. The model (in eval mode) runs on a seeded random input of
shape ``(batch, *input_shape)`` in its parameters' dtype — a batch, as modules expect (a model
that starts with an embedding takes token ids and is refused with a DtypeError) — and
:func:`jacobite.analysis.layers.layer_report` measures every layer's Jacobian spectral norm
there, matrix-free.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

from ...errors import DtypeError, InvalidOptionError, JacobiteError, ShapeError
from .._app import console, emit_json, esc

HELP = ("per-layer Jacobian spectral norms of a model from a Python file (FILE.py:FACTORY); "
        "FILE.py is imported, so its top-level code runs: inspect only files you trust")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="FILE.py:FACTORY",
                   help="a Python file and a function in it that returns an nn.Module, e.g. "
                        "models.py:make_model; the file is imported like any Python module, so "
                        "its top-level code runs with your permissions")
    p.add_argument("--input-shape", required=True, metavar="D1,D2,...",
                   help="the shape of ONE sample, without the batch dimension, e.g. 3,32,32")
    p.add_argument("--batch", type=int, default=1, help="batch size of the input (default 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds torch while the factory runs (the initial weights) and the "
                        "random input (default 0)")
    p.add_argument("--k", type=int, default=1,
                   help="top singular values to compute per layer (default 1)")
    p.add_argument("--tol", type=float, default=None,
                   help="relative residual at which each layer's Lanczos iteration stops "
                        "(default: layer_report's, 1e-8); e.g. 1e-4 for a quick look at a "
                        "large model")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="save the per-layer norms and their cumulative product (log scale)")


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` (or ``3x32x32``) -> ``(3, 32, 32)``; positive integers only.

    >>> parse_shape("3, 32,32"), parse_shape("8")
    ((3, 32, 32), (8,))
    """
    parts = [s.strip() for s in text.replace("x", ",").replace("×", ",").split(",")]
    try:
        dims = tuple(int(s) for s in parts)
    except ValueError:
        raise ShapeError(f"cannot read --input-shape {text!r}; write positive integers separated "
                         "by commas, e.g. 3,32,32") from None
    if not dims or any(d <= 0 for d in dims):
        raise ShapeError(f"--input-shape {text!r} must be positive integers, e.g. 3,32,32")
    return dims


def load_factory(target: str) -> tuple[Path, str, Any]:
    """Import ``FILE.py`` by path and return ``(path, name, FILE.name)``."""
    path_s, sep, name = target.rpartition(":")
    if not sep or not path_s or not name.strip():
        raise InvalidOptionError(f"cannot read {target!r}; write FILE.py:FACTORY, e.g. "
                                 "models.py:make_model")
    path, name = Path(path_s).expanduser(), name.strip()
    if not path.is_file():
        raise InvalidOptionError(f"no such file: {path_s!r} (give the path to a .py file that "
                                 "defines the factory)")
    mod_name = f"_jacobite_inspect_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise InvalidOptionError(f"cannot import {path_s!r} as Python; is it a .py file?")
    module = importlib.util.module_from_spec(spec)
    here = str(path.resolve().parent)
    sys.path.insert(0, here)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidOptionError(f"importing {path_s!r} failed: {type(exc).__name__}: "
                                 f"{exc}") from exc
    finally:
        sys.modules.pop(mod_name, None)
        if here in sys.path:
            sys.path.remove(here)
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        found = sorted(k for k, v in vars(module).items()
                       if callable(v) and not k.startswith("_") and
                       getattr(v, "__module__", None) == mod_name)
        raise InvalidOptionError(f"{path_s!r} has no function {name!r}"
                                 + (f"; it defines {', '.join(found)}" if found else ""))
    return path, name, factory


def _check_input_size(batch: int, shape: tuple[int, ...], dtype: Any) -> None:
    """Refuse an input over the memory budget before allocating it."""
    import math

    from ...config import format_bytes, get_memory_budget
    from ...errors import JacobianTooLarge

    nbytes = batch * math.prod(shape) * dtype.itemsize
    budget = get_memory_budget()
    if nbytes > budget:
        raise JacobianTooLarge(f"an input of shape {batch}×{'×'.join(map(str, shape))} needs "
                               f"{format_bytes(nbytes)}, over the memory budget of "
                               f"{format_bytes(budget)}; give a smaller --input-shape or "
                               "--batch")


def compute(target: str, input_shape: str, batch: int = 1, seed: int = 0, k: int = 1,
            tol: float | None = None) -> tuple[dict[str, Any], Any]:
    """``(the JSON object, the LayerReport)`` of the command."""
    import torch
    from torch import nn

    from ... import _validate
    from ...analysis.layers import layer_report

    shape = parse_shape(input_shape)
    for opt, v in (("--batch", batch), ("--k", k)):
        _validate.positive_int(v, opt)
    _, name, factory = load_factory(target)
    try:
        with torch.random.fork_rng(devices=[]):  # reproducible weights, global state untouched
            torch.manual_seed(seed)
            model = factory()
    except Exception as exc:
        raise InvalidOptionError(f"calling {name}() failed: {type(exc).__name__}: "
                                 f"{exc}") from exc
    if not isinstance(model, nn.Module):
        raise InvalidOptionError(f"{name}() returned a {type(model).__name__}, not a "
                                 "torch.nn.Module")
    model.eval()
    embeds = [n or name for n, m in model.named_modules()
              if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    if embeds:
        raise DtypeError(f"{name}() returned a model with an embedding ({embeds[0]}), which takes "
                         "integer token ids: they have no input Jacobian, and inspect feeds a "
                         "random floating-point input; inspect the part after the embedding (a "
                         "factory that returns it, with --input-shape of the embedded sample)")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()),
                 torch.get_default_dtype())
    _check_input_size(batch, shape, dtype)
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed), dtype=dtype)
    shown = "×".join(map(str, x.shape))
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ShapeError(f"the model failed on an input of shape {shown}: {type(exc).__name__}: "
                         f"{exc}; check --input-shape (one sample, without the batch "
                         "dimension)") from exc
    try:
        report = (layer_report(model, x, k=k) if tol is None
                  else layer_report(model, x, k=k, tol=tol))
    except JacobiteError:
        raise
    except Exception as exc:
        raise ShapeError(f"measuring the layers at an input of shape {shown} failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    data: dict[str, Any] = {
        "target": target,
        "factory": name,
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_shape": list(x.shape),
        "output_shape": list(out.shape) if isinstance(out, torch.Tensor) else None,
        "dtype": str(dtype).removeprefix("torch."),
        "seed": seed,
    }
    data.update(report.to_dict())
    data["flags"] = sorted({r.flag for r in report.rows if r.flag})
    return data, report


def run(args: argparse.Namespace) -> int:
    data, report = compute(args.target, args.input_shape, args.batch, args.seed, args.k,
                           args.tol)
    if args.plot:
        from ... import viz

        fig = report.plot()
        fig.axes[0].set_title(f"{data['model']} at a random input of shape "
                              f"{'×'.join(map(str, data['input_shape']))}")
        viz.save_figure(fig, args.plot)
        data["plot"] = args.plot
    if args.json:
        emit_json(data)
        return 0
    from ...errors import require

    Table = require("rich.table", "cli").Table
    c = console()
    c.print(f"[bold]{esc(data['model'])}[/] from {esc(args.target)}: "
            f"{data['parameters']:,} parameters, input "
            f"{'×'.join(map(str, data['input_shape']))} ({data['dtype']}), seed {data['seed']}")
    table = Table(title="Jacobian spectral norm of each layer at the input", title_justify="left")
    for col, just in (("layer", "left"), ("kind", "left"), ("in", "right"), ("out", "right"),
                      ("‖J‖₂", "right"), ("cumulative", "right"), ("flag", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in report.rows:
        flag = f"[red]{r.flag}[/]" if r.flag else ""
        table.add_row(esc(r.name), r.kind, "×".join(map(str, r.in_shape)),
                      "×".join(map(str, r.out_shape)), f"{r.spectral_norm:.4g}",
                      f"{r.cumulative:.4g}", flag)
    c.print(table)
    c.print(f"whole network ‖J‖₂ = {report.total:.6g}")
    if data["flags"]:
        c.print(f"[red]warning[/]: the cumulative product of the norms is "
                f"{' and '.join(data['flags'])} (< 1e-3 or > 1e3) along the depth")
    if data.get("plot"):
        c.print(f"plot saved to {data['plot']}")
    return 0
