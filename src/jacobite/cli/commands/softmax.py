"""``jacobite softmax 2.5 1.0 3.0 --target 0``: the softmax Jacobian worked example."""

from __future__ import annotations

import argparse
import math
from typing import Any

from .._app import console, emit_json, esc, matrix_table, split_list

HELP = "softmax of logits, its Jacobian diag(σ) − σσᵀ, eigenvalues and gradients, explained"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("logits", nargs="+", type=float, help="the logits z, e.g. 2.5 1.0 3.0")
    p.add_argument("--target", type=int, default=0, help="index of the true class (default 0)")
    p.add_argument("--labels", default=None, help="class names, comma-separated")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="save three panels of the softmax Jacobian (heatmap, diagonal, "
                        "probabilities)")


def compute(logits: list[float], target: int = 0, labels: str | None = None) -> dict[str, Any]:
    from ...analysis import properties
    from ...errors import InvalidOptionError
    from ...nn import softmax_example, softmax_jacobian

    bad = [v for v in logits if not math.isfinite(v)]
    if bad:
        from ...errors import NonFiniteInputError

        raise NonFiniteInputError(f"the logits must be finite numbers, got {bad[0]}; give "
                                  "finite values such as 2.5 -1e3 3")
    if not 0 <= target < len(logits):
        raise InvalidOptionError(f"--target {target} is not a class index: there are "
                                 f"{len(logits)} logits, so use 0 to {len(logits) - 1}")
    names = None if labels is None else split_list(labels, "--labels", "cat,dog,bird")
    if names is not None and len(names) != len(logits):
        raise InvalidOptionError(f"--labels has {len(names)} names for {len(logits)} logits; "
                                 "give one name per class")
    ex = softmax_example(logits, target, labels=names)
    data = ex.to_dict()
    import torch

    props = properties(softmax_jacobian(torch.tensor(logits, dtype=torch.float64)))
    data["properties"] = props.to_dict()
    return data


def run(args: argparse.Namespace) -> int:
    data = compute(args.logits, args.target, args.labels)
    if args.plot:
        import torch

        from ... import viz

        fig = viz.softmax_panels(torch.tensor(args.logits, dtype=torch.float64))
        viz.save_figure(fig, args.plot)
        data["plot"] = args.plot
    if args.json:
        emit_json(data)
        return 0
    c = console()
    names = data["labels"] or [str(i) for i in range(len(data["logits"]))]
    c.print(f"softmax of z = {esc(data['logits'])}, true class {data['target']} "
            f"({names[data['target']]})")
    c.print(matrix_table("σ = softmax(z)", [data["sigma"]]))
    c.print(matrix_table("J = diag(σ) − σσᵀ", data["jacobian"]))
    c.print(matrix_table("eigenvalues of J (all in \\[0, ½])", [data["eigenvalues"]]))
    c.print(matrix_table("σ − y: the gradient of cross-entropy w.r.t. z", [data["ce_gradient"]]))
    c.print(matrix_table("J(σ − y): the gradient of ½‖σ − y‖² w.r.t. z",
                         [data["jacobian_times_error"]]))
    c.print("Explanation:")
    for note in data["notes"]:
        c.print(f"  - {esc(note)}")
    if data.get("plot"):
        c.print(f"panels saved to {data['plot']}")
    return 0
