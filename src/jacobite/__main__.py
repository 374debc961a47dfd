"""``python -m jacobite``: a short tour of the dense engine (what ``make demo`` runs)."""

from __future__ import annotations

import sys

import torch

import jacobite


def tour(out=sys.stdout) -> bool:
    """Compute one Jacobian three ways — forward mode, reverse mode, finite differences — and
    show that they agree. Returns True when they do.

    >>> import io
    >>> tour(io.StringIO())
    True
    """
    def say(*a: object) -> None:
        print(*a, file=out)

    def F(v: torch.Tensor) -> torch.Tensor:
        x, y = v[0], v[1]
        return torch.stack([x**2 + y, x * y])

    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    say("jacobite", jacobite.__version__, "— the Jacobian toolkit for PyTorch")
    say("F(x, y) = [x² + y, xy] at (x, y) = (1, 2); "
        "by hand J = [[2x, 1], [y, x]] = [[2, 1], [2, 1]]")
    fwd = jacobite.jacobian(F, x, mode="forward")
    rev = jacobite.jacobian(F, x, mode="reverse")
    num = jacobite.numeric.jacobian(F, x, method="richardson")
    exact = torch.tensor([[2.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    rows = [("forward mode (JVPs)", fwd), ("reverse mode (VJPs)", rev),
            ("finite differences", torch.as_tensor(num.jacobian))]
    ok = True
    for name, J in rows:
        err = float((J - exact).abs().max())
        ok &= err < 1e-8
        say(f"  {name:22s} {J.tolist()}  max error {err:.1e}")
    say(f"  numeric error estimate {float(torch.as_tensor(num.error).max()):.1e} "
        f"from {num.nfev} calls of F")
    plan = jacobite.jacobian_plan(F, x)
    say(f"  mode='auto' would use: {plan}")
    say("They agree." if ok else "They DISAGREE — please report this.")
    return ok


def main() -> int:
    return 0 if tour() else 1


if __name__ == "__main__":
    raise SystemExit(main())
