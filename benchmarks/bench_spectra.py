"""Matrix-free spectral norm of a network's input–output Jacobian vs the dense SVD.

Nets (``tests/nets.py``, float32): the conv net 3×48×48 → 3×48×48 (three 3×3 convolutions,
16 channels, tanh; J is 6912 × 6912) and the tanh MLP with three 2048-wide square layers.
``jacobite.analysis.spectral_norm`` (Golub–Kahan–Lanczos on JVPs/VJPs, full
reorthogonalisation in float64) against building J with ``jacobite.jacobian`` and taking
``torch.linalg.matrix_norm(J, ord=2)``. Lanczos times are medians of several in-process runs;
the dense path runs once (minutes) in a fresh subprocess, which also gives both peak memories
(resident high-water mark over the child's own start, after a warm-up product).

Targets: relative error ≤ 1e-6 on both, dense / Lanczos time ≥ 20× and memory O(n) on the conv
net; a one-projection Frobenius estimate ≤ 3× one backward pass (forward +
``torch.autograd.grad`` to the input, no weight gradients: the stricter reference; median of
interleaved runs).
Quick mode: a 3×12×12 conv net and a 3 × 256 MLP.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch

from jacobite.analysis.spectra import frobenius_norm, spectral_norm

from . import _memory
from ._common import Section, time_pair

_SETUP = """
import torch, jacobite, warnings
warnings.simplefilter("ignore")  # the 2-step warm-up below does not converge, by design
from tests.nets import {ctor}
from jacobite.analysis.spectra import spectral_norm
net = {ctor}({args})
torch.manual_seed(1)
x = torch.randn({shape})
f = lambda v: net(v.reshape(x.shape)).reshape(-1)
_ = spectral_norm(net, x, max_iter=2)  # warm up the lazy init of the kernels
"""

_DENSE = """
J = jacobite.jacobian(f, x.reshape(-1))
RESULT['sigma'] = float(torch.linalg.matrix_norm(J, ord=2))
if J.shape[0] <= 4096:  # untimed: the float64 SVD of the same J, a sharper reference
    RESULT['sigma64'] = float(torch.linalg.matrix_norm(J.double(), ord=2))
"""

# jacobite's estimates keep a graph to the network's parameters (they are differentiable); an
# analysis that does not differentiate them runs under no_grad, as the dense side does
_LANCZOS = "with torch.no_grad():\n    RESULT['sigma'] = float(spectral_norm(net, x))\n"


def _cases(quick: bool) -> list[tuple[str, str, str, tuple[int, ...]]]:
    if quick:
        return [("conv net 3×12×12", "conv_net", "", (1, 3, 12, 12)),
                ("tanh MLP 3 × 256", "tanh_mlp", "256", (1, 256))]
    return [("conv net 3×48×48", "conv_net", "", (1, 3, 48, 48)),
            ("tanh MLP 3 × 2048", "tanh_mlp", "2048", (1, 2048))]


def _net(ctor: str, args: str) -> torch.nn.Module:
    from tests import nets

    return getattr(nets, ctor)(*(int(a) for a in args.split(",") if a))


def _mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def run(quick: bool = False) -> Section:
    threads = torch.get_num_threads()
    repeats = 3 if quick else 5
    sec = Section(
        "Spectral norm of a network Jacobian: Lanczos vs dense SVD",
        ["net", "n", "σ_max (dense)", "rel. error", "Lanczos s", "steps", "dense s",
         "dense / Lanczos", "peak MiB Lanczos", "peak MiB dense", "Frobenius(1) / backward"])
    for label, ctor, args, shape in _cases(quick):
        setup = _SETUP.format(ctor=ctor, args=args, shape=shape)
        lan_mem = _memory.measure(setup, _LANCZOS, threads=threads, timeout=300)
        dense = _memory.measure(setup, _DENSE, threads=threads, timeout=1800)
        net = _net(ctor, args)
        torch.manual_seed(1)
        x = torch.randn(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spectral_norm(net, x, max_iter=2)
        times, sigma = [], 0.0
        from jacobite.analysis.spectra import top_singular

        steps = top_singular(net, x).iterations
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                sigma = float(spectral_norm(net, x))
            times.append(time.perf_counter() - t0)
        t_lan = statistics.median(times)
        ref = float(dense.result["sigma"])
        err = abs(sigma - ref) / ref
        ref64 = dense.result.get("sigma64")
        err64 = "" if ref64 is None else f"; {abs(sigma - ref64) / ref64:.1e} vs float64 SVD"
        speed_target = ctor == "conv_net"  # the 20× target is set on the conv net only
        v = torch.randn(net(x).shape)

        def backward(net: torch.nn.Module = net, x: torch.Tensor = x,
                     v: torch.Tensor = v) -> None:
            xx = x.clone().requires_grad_(True)
            torch.autograd.grad(net(xx), xx, v)  # to the input only: no weight gradients

        def frobenius(net: torch.nn.Module = net, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                frobenius_norm(net, x, nproj=1, seed=0)

        t_frob, t_back = time_pair(frobenius, backward, repeats=7 if quick else 9)
        sec.rows.append([label, x.numel(), ref, err, t_lan, steps, dense.seconds,
                         dense.seconds / t_lan, _mib(lan_mem.over()), _mib(dense.over()),
                         t_frob / t_back])
        sec.notes.append(
            f"{label}: rel. error {err:.1e}{err64} "
            f"({'meets' if err <= 1e-6 else 'MISSES'} ≤ 1e-6), "
            f"{dense.seconds / t_lan:.0f}× faster than dense ("
            + (("meets" if dense.seconds / t_lan >= 20 else "MISSES") + " ≥ 20×"
               if speed_target else "no speed target") + "), one-projection "
            f"Frobenius = {t_frob / t_back:.2f}× one backward pass "
            f"({'meets' if t_frob / t_back <= 3 else 'MISSES'} ≤ 3×)")
    sec.notes.append(
        "float32 nets; the dense reference is matrix_norm(ord=2) of the float32 J (its own "
        "rounding is ~1e-7 relative). Dense: one run in a subprocess; Lanczos: median of "
        f"{repeats} runs (a warm-up product first). Peak memory: resident high-water mark over "
        f"the child's resident size before the work; Lanczos keeps 2 × steps float64 vectors "
        f"of length n. Threads per library: {threads}.")
    return sec
