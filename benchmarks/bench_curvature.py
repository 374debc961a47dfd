"""Curvature of a network: ``jacobite.curvature`` beside curvlinops and BackPACK.

Three tables, 1 thread, side by side in one process; every time is also given in gradients of
the same batch (one forward and one backward pass, timed in the same interleaved rounds), the
median over rounds of each round's ratio.

1. GGN matvec on curvlinops' MNIST MLP problem (784-1024-512-256-128-64-10, ReLU, batch 512,
   float32, cross-entropy, random data): ``ggn(cache=False)`` and ``ggn(cache=True)`` (its
   set-up timed separately, and amortised over 20 products) vs curvlinops'
   ``GGNLinearOperator``. Targets: ≤ 1.2 gradients per product cached (≥ 1.9× faster than
   curvlinops), ≤ 1.8 without caching; equal to curvlinops to 1e-5 relative.
2. Exact GGN diagonal (cross-entropy, 10 classes): ``ggn_diagonal`` vs BackPACK's
   ``DiagGGNExact`` on the same MLP, and on a small CNN with LayerNorm (batch 128), which
   BackPACK has no extension for. Target ≤ 6 gradients on both.
3. Hessian matvec on the MLP: ``hessian`` vs curvlinops' ``HessianLinearOperator``.

A peer that is not installed is skipped, naming the package.

    python -m benchmarks.run --only curvature --output /tmp/curv.md   # [--quick]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from . import _curv_cases as cc
from ._common import Section, median, met
from .bench_dense_overhead import clock_note, time_interleaved

AMORTISE = 20
TOL = 1e-5
CURVLINOPS = "curvlinops-for-pytorch"
BACKPACK = "backpack-for-pytorch"


def _in_gradients(fns: Sequence[Callable[[], object]], repeats: int
                  ) -> tuple[list[float], list[float]]:
    """Median seconds of each of ``fns`` (the first one is the gradient) and the median over
    rounds of each one's time in gradients of that round."""
    samples = time_interleaved(list(fns), repeats=repeats, min_time=0.01)
    grads = [median([a / g for a, g in zip(s, samples[0], strict=True)]) for s in samples]
    return [median(s) for s in samples], grads


def mlp_problem(quick: bool) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    dims = (64, 48, 32, 10) if quick else cc.MNIST_DIMS
    n = 32 if quick else 512
    model = cc.mlp(dims)
    X, y = cc.data((dims[0],), dims[-1], n, seed=1)
    P = sum(p.numel() for p in model.parameters())
    label = f"MLP {'-'.join(map(str, dims))}, batch {n}, {P:,} parameters, float32"
    return model, X, y, label


def _beside_curvlinops(kind: str, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor,
                       seed: int) -> tuple[torch.nn.Module, torch.Tensor, cc.Flat,
                                           cc.Product]:
    """The cross-entropy loss, a random vector, one gradient of the batch (the time unit) and
    curvlinops' product of ``kind`` (``"ggn"`` or ``"hessian"``) for a matvec table."""
    loss = torch.nn.CrossEntropyLoss()
    P = sum(p.numel() for p in model.parameters())
    v = torch.randn(P, generator=torch.Generator().manual_seed(seed))
    return (loss, v, cc.gradient(model, loss, X, y),
            cc.curvlinops_product(kind, model, loss, X, y))


def _skipped(title: str, package: str) -> Section:
    return Section(title, ["status"], [[f"skipped: install {package}"]])


# ---------------------------------------------------------------------------------------------
# 1. GGN matvec


def ggn_matvec(quick: bool) -> Section:
    from jacobite.curvature import ggn

    model, X, y, label = mlp_problem(quick)
    title = f"bench_curvature: GGN matvec ({label}, cross-entropy)"
    if not cc.have("curvlinops"):
        return _skipped(title, CURVLINOPS)
    loss, v, grad, peer = _beside_curvlinops("ggn", model, X, y, seed=2)
    plain = ggn(model, loss, (X, y))
    cached = ggn(model, loss, (X, y), cache=True)

    def setup() -> object:
        return ggn(model, loss, (X, y), cache=True)

    ref = peer(v)
    errs = [cc.relative(plain.mv(v), ref), cc.relative(cached.mv(v), ref)]
    repeats = 3 if quick else 11
    secs, grads = _in_gradients([grad, lambda: peer(v), lambda: plain.mv(v),
                                 lambda: cached.mv(v)], repeats)
    _, g_peer, g_plain, g_cached = grads
    # the set-up allocates a linearisation per call: timed apart, so that it does not disturb
    # the products' rounds
    (_, t_setup), (_, g_setup) = _in_gradients([grad, setup], max(3, repeats // 2))
    jvp, vjp, fwd = cc.linearized_parts(model, X)
    (_, t_jvp, t_vjp, t_fwd), (_, g_jvp, g_vjp, g_fwd) = _in_gradients(
        [grad, jvp, vjp, fwd], repeats)
    g_amort = g_cached + g_setup / AMORTISE
    sec = Section(title, ["method", "ms", "gradients", "curvlinops' / this",
                          "rel. diff to curvlinops"])
    sec.rows += [
        ["one gradient (unit)", 1e3 * secs[0], 1.0, "", ""],
        ["curvlinops GGNLinearOperator @ v", 1e3 * secs[1], g_peer, 1.0, 0.0],
        ["jacobite ggn(cache=False).mv", 1e3 * secs[2], g_plain, g_peer / g_plain, errs[0]],
        ["jacobite ggn(cache=True).mv", 1e3 * secs[3], g_cached, g_peer / g_cached, errs[1]],
        ["jacobite ggn(cache=True) set-up (once)", 1e3 * t_setup, g_setup, "", ""],
        [f"jacobite cached, set-up amortised over {AMORTISE} products",
         1e3 * (secs[3] + t_setup / AMORTISE), g_amort, g_peer / g_amort, ""],
        ["parts: traced JVP alone (torch.func.linearize)", 1e3 * t_jvp, g_jvp, "", ""],
        ["parts: saved VJP alone (torch.func.vjp)", 1e3 * t_vjp, g_vjp, "", ""],
        ["parts: forward pass alone (no_grad)", 1e3 * t_fwd, g_fwd, "", ""],
    ]
    floor = g_jvp + g_vjp
    sec.notes.append(
        f"Targets: cached ≤ 1.2 gradients per product: {g_cached:.2f} ({met(g_cached <= 1.2)}; "
        f"with the set-up of {g_setup:.1f} gradients amortised over {AMORTISE} products "
        f"{g_amort:.2f}, {met(g_amort <= 1.2)}); ≥ 1.9× faster than curvlinops: "
        f"{g_peer / g_cached:.2f}× ({met(g_peer / g_cached >= 1.9)}); without caching ≤ 1.8 "
        f"gradients: {g_plain:.2f} ({met(g_plain <= 1.8)}); equal to curvlinops to 1e-5 "
        f"relative: {max(errs):.1e} ({met(max(errs) <= TOL)}).")
    sec.notes.append(
        f"The cached product is a traced JVP and a saved VJP: torch.func's own pair "
        f"(linearize's traced JVP, vjp's pullback; the 'parts' rows) takes {floor:.2f} "
        f"gradients on this machine against the cached product's {g_cached:.2f} "
        f"({g_cached - floor:+.2f}: the flat vector's split and concatenation and the loss "
        "Hessian, less what jacobite's own trace saves — it traces the JVP with tangents that "
        "are views of the flat vector, where linearize's graph copies every tangent into "
        "fresh zeros on each call, and runs the pullback with grad mode off). The "
        "JVP multiplies twice in every Linear layer after the first (weight tangent times "
        "input, weight times input tangent) where a forward pass multiplies once.")
    sec.notes.append(
        "Without caching a product is one forward pass carrying the tangent and one backward "
        "pass; the cached operator keeps the linearisation (a traced JVP and a saved VJP, about "
        "two copies of the forward activations) and skips the forward pass; both apply "
        "cross-entropy's Hessian in the output in closed form (diag(p) − ppᵀ). curvlinops "
        "3.0's product is a JVP with its forward pass, the loss Hessian by forward-over-"
        f"reverse AD, and a VJP whose forward pass it runs again ({cc.version(CURVLINOPS)}). "
        "The gradient column is the median over rounds of each round's ratio, so it need not "
        "equal the ms column over the first row. " + clock_note())
    return sec


# ---------------------------------------------------------------------------------------------
# 2. exact GGN diagonal


def ggn_diagonals(quick: bool) -> Section:
    from jacobite.curvature import ggn_diagonal

    loss = torch.nn.CrossEntropyLoss()
    sec = Section("bench_curvature: exact GGN diagonal (cross-entropy, 10 classes)",
                  ["model", "method", "ms", "gradients", "rel. diff to BackPACK"])
    verdicts: list[str] = []
    repeats = 3 if quick else 7

    model, X, y, label = mlp_problem(quick)
    grad = cc.gradient(model, loss, X, y)

    def ours() -> torch.Tensor:
        return ggn_diagonal(model, loss, (X, y))

    if cc.have("backpack"):
        peer = cc.backpack_diagonal(model, loss, X, y)
        err = cc.relative(ours(), peer())
        secs, grads = _in_gradients([grad, peer, ours], repeats)
        sec.rows += [[label, "one gradient (unit)", 1e3 * secs[0], 1.0, ""],
                     [label, "BackPACK DiagGGNExact", 1e3 * secs[1], grads[1], 0.0],
                     [label, "jacobite ggn_diagonal", 1e3 * secs[2], grads[2], err]]
        verdicts.append(f"MLP {grads[2]:.1f} ({met(grads[2] <= 6)}; BackPACK {grads[1]:.1f}; "
                        f"equal to {err:.1e} relative)")
    else:
        secs, grads = _in_gradients([grad, ours], repeats)
        sec.rows += [[label, "one gradient (unit)", 1e3 * secs[0], 1.0, ""],
                     [label, "BackPACK DiagGGNExact", f"skipped: install {BACKPACK}",
                      "", ""],
                     [label, "jacobite ggn_diagonal", 1e3 * secs[1], grads[1], ""]]
        verdicts.append(f"MLP {grads[1]:.1f} ({met(grads[1] <= 6)})")

    side, n = (12, 16) if quick else (28, 128)
    classes = 10
    cnn = cc.cnn_layernorm(side, classes=classes)
    Xc, yc = cc.data((1, side, side), classes, n, seed=3)
    P = sum(p.numel() for p in cnn.parameters())
    clabel = f"CNN + LayerNorm ({side}×{side}), batch {n}, {P:,} parameters"
    grad_c = cc.gradient(cnn, loss, Xc, yc)
    passes = classes - 1  # cross-entropy's loss Hessian has rank C − 1
    secs, grads = _in_gradients([grad_c, lambda: ggn_diagonal(cnn, loss, (Xc, yc)),
                                 cc.column_backward(cnn, Xc, columns=passes)], repeats)
    if cc.have("backpack"):
        try:
            cc.backpack_diagonal(cnn, loss, Xc, yc)()
            peer_row = "ran (unexpected)"
        except Exception as exc:  # BackPACK's refusal of LayerNorm is the point of the row
            peer_row = f"cannot: `{type(exc).__name__}: {str(exc)[:160]}`"
    else:
        peer_row = f"skipped: install {BACKPACK}"
    sec.rows += [[clabel, "one gradient (unit)", 1e3 * secs[0], 1.0, ""],
                 [clabel, "BackPACK DiagGGNExact", peer_row, "", ""],
                 [clabel, "jacobite ggn_diagonal", 1e3 * secs[1], grads[1], ""],
                 [clabel, f"part: {passes} backward passes to the first convolution's output",
                  1e3 * secs[2], grads[2], ""]]
    cnn_txt = f"CNN with LayerNorm {grads[1]:.1f} ({met(grads[1] <= 6)})"
    if grads[1] > 6:
        cnn_txt += (": cross-entropy's loss Hessian has rank C − 1, so ggn_diagonal takes "
                    f"{passes} backward passes from the output to the layer outputs (input "
                    "gradients only, the second convolution's as a forward convolution with the "
                    "flipped kernel) where a gradient takes one; those alone take "
                    f"{grads[2]:.1f} gradients (the 'part' row, one after another as "
                    "ggn_diagonal runs them). The rest is the forward pass and the layer "
                    "shortcuts, no per-sample VJPs: per pass, each convolution's per-sample "
                    "gradients (a batched product of the output gradient with the unfolded "
                    "input patches, squared and summed over samples) and LayerNorm's sums of "
                    "g ⊙ x̂; the read-out's squares summed over the passes and multiplied by "
                    "its squared inputs once")
    verdicts.append(cnn_txt)
    sec.notes.append("Target ≤ 6 gradients: " + "; ".join(verdicts) + ".")
    sec.notes.append("The model: Conv2d(1→8, 3×3), ReLU, Conv2d(8→8, 3×3), Flatten, "
                     "LayerNorm, ReLU, Linear(→10). jacobite's diagonal on it is checked "
                     f"against the dense diagonal by torch.func in the test suite. "
                     f"{cc.version(BACKPACK)}. "
                     + clock_note())
    return sec


# ---------------------------------------------------------------------------------------------
# 3. Hessian matvec


def hessian_matvec(quick: bool) -> Section:
    from jacobite.curvature import hessian

    model, X, y, label = mlp_problem(quick)
    title = f"bench_curvature: Hessian matvec ({label}, cross-entropy)"
    if not cc.have("curvlinops"):
        return _skipped(title, CURVLINOPS)
    loss, v, grad, peer = _beside_curvlinops("hessian", model, X, y, seed=4)
    H = hessian(model, loss, (X, y))
    err = cc.relative(H.mv(v), peer(v))
    secs, grads = _in_gradients([grad, lambda: peer(v), lambda: H.mv(v)], 3 if quick else 7)
    sec = Section(title, ["method", "ms", "gradients", "curvlinops' / this",
                          "rel. diff to curvlinops"])
    sec.rows += [["one gradient (unit)", 1e3 * secs[0], 1.0, "", ""],
                 ["curvlinops HessianLinearOperator @ v", 1e3 * secs[1], grads[1], 1.0, 0.0],
                 ["jacobite hessian(...).mv", 1e3 * secs[2], grads[2], grads[1] / grads[2],
                  err]]
    sec.notes.append(f"No target; {grads[2]:.2f} gradients per product vs curvlinops' "
                     f"{grads[1]:.2f} ({cc.version(CURVLINOPS)}), "
                     + ("equal bit for bit" if err == 0 else f"equal to {err:.1e} relative")
                     + " (both are forward over reverse through torch.func). " + clock_note())
    return sec


def run(quick: bool = False) -> list[Section]:
    return [ggn_matvec(quick), ggn_diagonals(quick), hessian_matvec(quick)]
