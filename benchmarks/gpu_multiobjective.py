"""Jacobian descent on a GPU: jacobite's training step beside plain autograd's Jacobian.

Not part of ``benchmarks.run`` (CI machines have no GPU). Run on a CUDA machine::

    python -m benchmarks.gpu_multiobjective

(a) The training step of ``bench_multiobjective`` (MLP 128-512-512-m, batch 256, UPGrad, SGD)
    in float32 on the GPU: jacobite's ``backward`` against the "J floor" (forward plus the m
    backward passes to the parameters: the work TorchJD does before it aggregates), and
    TorchJD's own step where it is installed. (b) One UPGrad aggregation of an m × 10⁶ Jacobian
    on the GPU. Wall-clock medians with ``torch.cuda.synchronize`` around each call.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def _median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2] * 1e3


def _torchjd_ms(losses, params, before, after, repeats: int) -> str:
    """TorchJD's step (``autojac.backward`` + ``jac_to_grad`` with its UPGrad) between
    ``before()`` and ``after()``, or a dash where TorchJD is not installed."""
    try:
        from torchjd.aggregation import UPGrad as TorchJDUPGrad
        from torchjd.autojac import backward as tjd_backward
        from torchjd.autojac import jac_to_grad
    except ImportError:
        return "— (not installed)"
    tagg = TorchJDUPGrad()

    def theirs():
        before()
        tjd_backward(losses())
        jac_to_grad(params, tagg)
        after()

    return f"{_median_ms(theirs, repeats):.3g}"


def _step_row(m: int, repeats: int) -> str:
    from jacobite.multiobjective.aggregators import UPGrad
    from jacobite.multiobjective.backward import backward

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, m)).cuda()
    x, y = torch.randn(256, 128, device="cuda"), torch.randn(256, m, device="cuda")
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=1e-3)
    eye = torch.eye(m, device="cuda")
    agg = UPGrad()

    def losses():
        return ((model(x) - y) ** 2).mean(0)

    def ours():
        opt.zero_grad()
        backward(losses(), params, agg)
        opt.step()

    def floor():
        torch.autograd.grad(losses(), params, eye, is_grads_batched=True)

    t_ours, t_floor = _median_ms(ours, repeats), _median_ms(floor, repeats)
    tjd = _torchjd_ms(losses, params, opt.zero_grad, opt.step, repeats)
    return f"| {m} | {t_ours:.3g} | {t_floor:.3g} | {t_ours / t_floor:.2f} | {tjd} |"


def _per_example_row(b: int, repeats: int) -> str:
    from jacobite.multiobjective.aggregators import UPGrad
    from jacobite.multiobjective.backward import backward, per_example_backward

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 1)).cuda()
    x, y = torch.randn(b, 128, device="cuda"), torch.randn(b, 1, device="cuda")
    params = list(model.parameters())
    agg = UPGrad()

    def losses():
        return ((model(x) - y) ** 2).sum(1)

    def zero():
        for p in params:
            p.grad = None

    def ours():
        zero()
        backward(losses(), params, agg)

    def ours_pe():
        zero()
        per_example_backward(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y,
                             aggregator=agg)

    t1, t2 = _median_ms(ours, repeats), _median_ms(ours_pe, repeats)
    tjd = _torchjd_ms(losses, params, zero, lambda: None, repeats)
    return f"| per example, m = batch = {b} | {t1:.3g} (per_example_backward {t2:.3g}) | {tjd} |"


def _aggregation_rows(repeats: int) -> list[str]:
    from jacobite.multiobjective.aggregators import UPGrad

    rows = []
    for m in (10, 100, 200):
        g = torch.Generator(device="cuda").manual_seed(m)
        J = torch.randn(m, 10 ** 6, device="cuda", generator=g)
        J[1] -= 2 * J[0]
        agg = UPGrad()
        t_all = _median_ms(lambda: agg(J), repeats)  # noqa: B023
        G = J @ J.T
        t_w = _median_ms(lambda: agg.weights(G), repeats)  # noqa: B023
        t_g = _median_ms(lambda: J @ J.T, repeats)  # noqa: B023
        tjd = "—"
        try:
            from torchjd.aggregation import UPGrad as TorchJDUPGrad
        except ImportError:
            pass
        else:
            tagg = TorchJDUPGrad()
            tjd = f"{_median_ms(lambda: tagg(J), min(repeats, 5)):.3g}"  # noqa: B023
        rows.append(f"| {m} | {t_all:.3g} | {t_g:.3g} | {t_w:.3g} | {tjd} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_multiobjective: no CUDA device; run it on a GPU machine")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| m | jacobite step (ms) | J floor (ms) | step / J floor | TorchJD step (ms) |")
    print("|---|---|---|---|---|")
    print("\n".join(_step_row(m, args.repeats) for m in (2, 10, 50)))
    print("\n| case | jacobite (ms) | TorchJD (ms) |")
    print("|---|---|---|")
    print("\n".join(_per_example_row(b, args.repeats) for b in (32, 128)))
    print("\n| m (n = 10⁶) | UPGrad()(J) (ms) | J Jᵀ alone (ms) | weights from G (ms) "
          "| TorchJD UPGrad()(J) (ms) |")
    print("|---|---|---|---|---|")
    print("\n".join(_aggregation_rows(args.repeats)))


if __name__ == "__main__":
    main()
