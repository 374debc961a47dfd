"""Entries for numeric, symbolic, transforms, extrema, viz and config."""

from __future__ import annotations

import torch

from jacobite import config, extrema, numeric, symbolic, transforms, viz

from . import F64, choice, entry, fn, posint, tensor, tol

X = torch.tensor([0.3, -0.2, 0.5], dtype=F64)
H = torch.tensor([[2.0, 0.0], [0.0, -1.0]], dtype=F64)
M = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=F64)


def F(v: torch.Tensor) -> torch.Tensor:
    return torch.sin(v) * v


def G2(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([v[0] + 0.1 * v[1] ** 2, v[1] + 0.1 * v[0]])


BUDGET = config.get_memory_budget()  # the baseline sets the budget it finds


def _within(value: object) -> None:
    with config.memory_budget(value):  # type: ignore[arg-type]
        pass


_expr = [(0, None), (0, object()), (0, "x +* y"), (0, "__import__('os')"),
         (0, ""), (0, ["x", None]), (0, "x = 1")]
_vars = [("variables", ""), ("variables", 3), ("variables", ["x", "x"]),
         ("variables", ["1x"])]
_hmat = [*tensor(0, (3,), (2, 3), ()), *tol("tol")]
_save = [("save", 3), ("save", object())]

ENTRIES = [
    entry("jacobite.numeric.jacobian", numeric.jacobian, F, X,
          cases=[*fn(0), *tensor(1), *choice(2), ("step", -1.0), ("step", "big"),
                 ("step", float("nan")), ("args", 3), ("kwargs", 3)]),
    entry("jacobite.symbolic.parse", symbolic.parse, "x**2 + y",
          cases=[*_expr, (0, b"x + y")]),
    entry("jacobite.symbolic.jacobian", symbolic.jacobian, ["x*y", "x + y"], variables="x y",
          cases=[*_expr, *_vars]),
    entry("jacobite.symbolic.gradient", symbolic.gradient, "x*y + y**2", variables="x y",
          cases=[*_expr, *_vars, (0, ["x", "y"])]),
    entry("jacobite.symbolic.hessian", symbolic.hessian, "x*y + y**2", variables="x y",
          cases=[*_expr, *_vars, (0, ["x", "y"])]),
    entry("jacobite.symbolic.determinant", symbolic.determinant, ["x*y", "x + y"],
          variables="x y",
          cases=[*_expr, *_vars, (0, ["x", "y", "x*y"]), ("factor", "yes")]),
    entry("jacobite.symbolic.latex", symbolic.latex, symbolic.jacobian(["x*y"], "x y"),
          cases=[(0, None), (0, {"a": 1}), (0, object()), (0, "x +* y"), (0, ""),
                 (0, "__import__('os')"), (0, torch.ones(2)), (0, [object()])]),
    entry("jacobite.symbolic.linear_approximation", symbolic.linear_approximation,
          ["x*y", "x + y"], {"x": 1.0, "y": 2.0},
          cases=[*_expr, (1, None), (1, "abc"), (1, {"x": 1.0}), (1, {"x": "a", "y": 1.0}),
                 (1, {"x": float("nan"), "y": 1.0}), (1, [1.0, 2.0, 3.0]),
                 (1, {"x": 1.0, "y": 2.0, "q": 3.0})]),
    entry("jacobite.symbolic.to_torch", symbolic.to_torch, ["x*y", "sin(x)"], variables="x y",
          cases=[*_expr, *_vars]),
    entry("jacobite.symbolic.resolve_variables", symbolic.resolve_variables,
          symbolic.parse(["x*y"]), variables="x y",
          cases=[(0, None), (0, 3), (0, "x*y"), (0, [object()]), *_vars,
                 ("variables", [])]),
    entry("jacobite.symbolic.resolve_point", symbolic.resolve_point, {"x": 1.0},
          symbolic.resolve_variables(symbolic.parse(["x"]), "x"),
          cases=[(0, None), (0, "abc"), (0, {"q": 1.0}), (0, {"x": "a"}),
                 (0, {"x": float("nan")}), (0, [1.0, 2.0]), (0, 3), (1, None), (1, 3),
                 ("parameters", 3)]),
    entry("jacobite.transforms.integrate", transforms.integrate, 1.0, "polar", {"r": (0, 1)},
          cases=[(0, "x +* y"), (0, None), (0, object()), (1, "no-such-transform"), (1, 3),
                 (2, "abc"), (2, {"r": (1, 0)}), (2, {"r": (0, float("nan"))}),
                 (2, {"q": (0, 1)}), (2, {"r": ("a", 1)}), *tol("epsabs"),
                 *tol("epsrel"), *choice("method"), *posint("limit")]),
    entry("jacobite.transforms.get_transform", transforms.get_transform, "polar",
          cases=[(0, "no-such-transform"), (0, 3), (0, None), (0, object()), (0, ""),
                 (0, ["polar"]), (0, torch.ones(2)), (0, 2.5)]),
    entry("jacobite.transforms.Transform", transforms.Transform, G2, 2,
          cases=[*fn(0), (1, 0), (1, -1), (1, 2.5), (1, "u v w"), (1, None), (1, ["u", "u"]),
                 ("region", "abc"), ("region", [(1, 0), (0, 1)]), ("coordinates", 3),
                 ("name", 3)]),
    entry("jacobite.transforms.Affine", transforms.Affine, H,
          cases=[*tensor(0, (3,), (2, 3)), (1, torch.ones(3, dtype=F64)), (1, "abc"),
                 ("region", "abc"), ("variables", ["u"])]),
    entry("jacobite.transforms.Polar", transforms.Polar,
          cases=[(0, "abc"), (0, 3), (0, [(0, 1)]), (0, [(1, 0), (0, 1)]),
                 (0, [(0, float("nan")), (0, 1)]), (0, [("a", 1), (0, 1)]),
                 (0, [(0, 1), (0, 1), (0, 1)]), (0, {"q": (0, 1)})]),
    entry("jacobite.transforms.Cylindrical", transforms.Cylindrical,
          cases=[(0, "abc"), (0, 3), (0, [(0, 1)]), (0, [(1, 0), (0, 1), (0, 1)]),
                 (0, [(0, float("nan")), (0, 1), (0, 1)]), (0, [("a", 1), (0, 1), (0, 1)]),
                 (0, [(0, 1), (0, 1)]), (0, {"q": (0, 1)})]),
    entry("jacobite.transforms.Spherical", transforms.Spherical,
          cases=[(0, "abc"), (0, 3), (0, [(0, 1)]), (0, [(1, 0), (0, 1), (0, 1)]),
                 (0, [(0, float("nan")), (0, 1), (0, 1)]), (0, [("a", 1), (0, 1), (0, 1)]),
                 (0, [(0, 1), (0, 1)]), (0, {"q": (0, 1)})]),
    entry("jacobite.extrema.critical_points", extrema.critical_points, "x**2 + y**2 - x*y",
          variables="x y",
          cases=[*_expr, *_vars, *choice("method"), *posint("n_starts"), ("seed", -1),
                 ("seed", 1.5), *tol("tol"), *posint("max_iter")]),
    entry("jacobite.extrema.classify_hessian", extrema.classify_hessian, H, cases=_hmat),
    entry("jacobite.extrema.inertia", extrema.inertia, H, cases=_hmat),
    entry("jacobite.viz.heatmap", viz.heatmap, M,
          cases=[*tensor(0, (2, 2, 2), ints=False, nan=False), (0, [[1.0], [2.0, 3.0]]),
                 (0, torch.ones(2, 2, dtype=torch.complex128)), ("ax", "axes"), ("labels", 3),
                 ("cmap", "no-such-cmap"), ("annotate", "yes"), *_save]),
    entry("jacobite.viz.spy", viz.spy, M,
          cases=[*tensor(0, (2, 2, 2), ints=False, nan=False), ("ax", "axes"),
                 *tol("precision", named=True), ("markersize", -1.0), *_save]),
    entry("jacobite.viz.nonzero_pattern", viz.nonzero_pattern, M,
          cases=[*tensor(0, (2, 2, 2), ints=False, nan=False), *tol(1, named=True),
                 (1, "no-such-option")]),
    entry("jacobite.viz.deformed_grid", viz.deformed_grid, G2,
          cases=[*fn(0), (1, (1, -1)), (1, "abc"), (1, (0, float("nan"))), (2, (1, 1)),
                 *posint(3, huge=True), *posint("refine"), ("ax", "axes")]),
    entry("jacobite.viz.softmax_panels", viz.softmax_panels, [2.5, 1.0, 3.0],
          cases=[*tensor(0, (), ints=False), (0, []), ("figsize", (-1.0, 4.0)),
                 ("figsize", "big"),
                 *_save]),
    entry("jacobite.viz.save_figure", viz.save_figure, viz.spy(M), "/tmp/jacobite_bad.png",
          cases=[(0, None), (0, 3), (0, "fig"), (1, None), (1, 3), (1, "/tmp/x.no-such-ext"),
                 *posint("dpi", huge=True)]),
    entry("jacobite.config.parse_bytes", config.parse_bytes, "1 MiB",
          cases=[(0, "lots"), (0, -1), (0, float("nan")), (0, float("inf")), (0, None),
                 (0, True), (0, "1 XB"), (0, 0), (0, [1])]),
    entry("jacobite.config.format_bytes", config.format_bytes, 1024,
          cases=[(0, "lots"), (0, -1), (0, float("nan")), (0, float("inf")), (0, None),
                 (0, True), (0, [1]), (0, object())]),
    entry("jacobite.config.set_memory_budget", config.set_memory_budget, BUDGET,
          cases=[(0, "lots"), (0, -1), (0, float("nan")), (0, float("inf")), (0, None),
                 (0, True), (0, "1 XB"), (0, 0)]),
    entry("jacobite.config.memory_budget", _within, "1 GiB",
          cases=[(0, "lots"), (0, -1), (0, float("nan")), (0, float("inf")), (0, None),
                 (0, True), (0, "1 XB"), (0, 0)]),
]
