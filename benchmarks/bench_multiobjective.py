"""Jacobian descent against TorchJD 0.18, side by side in one process.

(a) One UPGrad aggregation of a random m × n Jacobian with conflicting rows of unequal scales,
    ``UPGrad()(J)`` in both libraries (the Gramian ``JJᵀ``, the m dual-cone projections, ``Jᵀw``),
    and the projections alone (weights from a given G: jacobite's batched solver against
    TorchJD's m quadprog calls). Target: ≥ 30× faster at m = 200, never slower.
(b) One full training step — forward, Jacobian descent with UPGrad, ``SGD.step()`` — of an MLP
    128-512-512-m on a batch of 256 with one objective per output (the mean squared error of
    each column), and per-example training (m = batch = 32, one objective per example). TorchJD:
    ``autojac.backward(losses)`` + ``jac_to_grad(params, UPGrad())``; jacobite:
    ``multiobjective.backward(losses, params, UPGrad())`` and, per example,
    ``per_example_backward`` (a vmapped forward, then per-example Gramians of the dense layers
    from two backward passes; also at m = batch = 128 to show how that scales). Target:
    ≤ 0.7× TorchJD's time. Two floors are timed beside them: "J floor", the forward pass plus
    the m backward passes to the parameters (TorchJD's work before aggregating), and "chain
    floor", the forward pass plus the m backward passes to the dense layers' outputs only
    (what jacobite's engine cannot avoid).

Times are medians of interleaved rounds (process CPU time when single-threaded, see
``bench_dense_overhead.bench_clock``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import Section
from .bench_dense_overhead import clock_note, time_interleaved, time_ratio

AGG_TARGET = 30.0
STEP_TARGET = 0.7


def _jacobian(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """Rows from a few shared directions with random signs (so they conflict), plus noise,
    scaled over two orders of magnitude."""
    g = torch.Generator().manual_seed(seed)
    k = 8
    J = torch.randn(m, k, generator=g) @ torch.randn(k, n, generator=g) / k**0.5
    J += 0.5 * torch.randn(m, n, generator=g)
    J *= torch.logspace(-1, 1, m)[torch.randperm(m, generator=g)][:, None]
    return J


def _aggregation(quick: bool) -> Section:
    from torchjd.aggregation import UPGrad as TorchJDUPGrad

    from jacobite.multiobjective.aggregators import UPGrad

    sizes = ([(m, 10**4) for m in (2, 10, 50)] if quick else
             [(m, n) for n in (10**4, 10**6) for m in (2, 10, 50, 100, 200)])
    ours, theirs = UPGrad(), TorchJDUPGrad()
    rows: list[list[object]] = []
    notes: list[str] = []
    for m, n in sizes:
        J = _jacobian(m, n)
        d_ours, d_theirs = ours(J), theirs(J)
        agree = float((d_ours - d_theirs).norm() / d_theirs.norm())
        repeats = 3 if quick or m * n >= 10**8 else 5
        t_t, t_o, _ = time_ratio(lambda J=J: theirs(J), lambda J=J: ours(J), repeats=repeats,
                                 min_time=0.01)
        G = J @ J.T
        q_t, q_o, _ = time_ratio(lambda G=G: theirs.gramian_weighting(G),
                                 lambda G=G: ours.weights(G), repeats=repeats, min_time=0.01)
        rows.append([m, f"{n:.0e}", t_t * 1e3, t_o * 1e3, t_t / t_o, q_t * 1e3, q_o * 1e3,
                     q_t / q_o, f"{agree:.1e}"])
        del J, G
    worst = min(r[4] for r in rows)
    at200 = [r for r in rows if r[0] == 200]
    if at200:
        notes.append(f"Target ≥ {AGG_TARGET:.0f}× at m = 200: "
                     + "; ".join(f"n = {r[1]}: {r[4]:.1f}×"
                                 + (" — met" if r[4] >= AGG_TARGET else " — missed")
                                 for r in at200) + ".")
        big = [r for r in at200 if r[1] == "1e+06"]
        if big:
            notes.append(f"At n = 10⁶ both libraries first form G = JJᵀ (m²n = 4·10¹⁰ "
                         "multiply-adds at m = 200, the same BLAS product in both: about 1 s "
                         "here), which bounds the whole-call ratio near TorchJD's total over "
                         "that product's time, whatever the projections cost; they alone are "
                         f"{big[0][7]:.0f}× faster.")
    notes.append(f"Never slower: slowest whole-call ratio {worst:.2f}×"
                 + (" — met." if worst >= 1.0 else " — missed (see the rows below 1)."))
    notes.append("'rel. diff' is ‖d_jacobite − d_TorchJD‖ / ‖d_TorchJD‖ on the same J.")
    notes.append(clock_note())
    return Section("multiobjective: one UPGrad aggregation (jacobite vs TorchJD 0.18)",
                   ["m", "n", "TorchJD (ms)", "jacobite (ms)", "speed-up", "TorchJD QP (ms)",
                    "jacobite QP (ms)", "QP speed-up", "rel. diff"], rows, notes)


def _mlp(m: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, m))


def _step_case(label: str, m: int, b: int, per: bool, repeats: int) -> list[list[object]]:
    from torch.autograd.graph import GradientEdge
    from torchjd.aggregation import UPGrad as TorchJDUPGrad
    from torchjd.autojac import backward as tjd_backward
    from torchjd.autojac import jac_to_grad

    from jacobite.multiobjective._layers import find_dense_layers
    from jacobite.multiobjective.aggregators import UPGrad
    from jacobite.multiobjective.backward import backward, per_example_backward

    outs = 1 if per else m
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(b, 128, generator=g), torch.randn(b, outs, generator=g)
    models = [_mlp(outs) for _ in range(3)]
    opts = [torch.optim.SGD(mod.parameters(), lr=1e-3) for mod in models]
    tjd_agg, our_agg = TorchJDUPGrad(), UPGrad()

    def losses(mod: nn.Module) -> torch.Tensor:
        err = (mod(x) - y) ** 2
        return err.sum(1) if per else err.mean(0)

    def step_torchjd() -> None:
        opts[0].zero_grad()
        tjd_backward(losses(models[0]))
        jac_to_grad(list(models[0].parameters()), tjd_agg)
        opts[0].step()

    def step_ours() -> None:
        opts[1].zero_grad()
        backward(losses(models[1]), models[1].parameters(), our_agg)
        opts[1].step()

    def step_per_example() -> None:
        opts[2].zero_grad()
        per_example_backward(models[2], lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y,
                             aggregator=our_agg)
        opts[2].step()

    params = list(models[0].parameters())
    eye = torch.eye(m)

    def jacobian_alone() -> None:
        torch.autograd.grad(losses(models[0]), params, eye, is_grads_batched=True)

    def chain_alone() -> None:  # forward + the m gradients at the dense layers' outputs
        vec = losses(models[0])
        layers, _ = find_dense_layers([vec], params)
        torch.autograd.grad(vec, [GradientEdge(ly.node, 0) for ly in layers], eye,
                            is_grads_batched=True)

    # same .grad from the same parameters (before any step is timed)
    for f in (step_torchjd, step_ours, step_per_example) if per else (step_torchjd, step_ours):
        f()
    grads = [[p.grad for p in mod.parameters()] for mod in models[:3 if per else 2]]
    diff = [max(float((p - q).norm() / q.norm()) for p, q in zip(gs, grads[0], strict=True))
            for gs in grads[1:]]
    fns = [step_torchjd, step_ours, jacobian_alone, chain_alone] + \
        ([step_per_example] if per else [])
    samples = time_interleaved(fns, repeats=repeats, min_time=0.01)
    med = [sorted(s)[len(s) // 2] for s in samples]

    def ratio(k: int) -> float:
        return sorted(a / t for a, t in zip(samples[k], samples[0], strict=True))[repeats // 2]

    r = ratio(1)
    rows: list[list[object]] = [[label, "backward", med[0] * 1e3, med[1] * 1e3, r,
                                 "met" if r <= STEP_TARGET else "missed", ratio(2), ratio(3),
                                 f"{diff[0]:.1e}"]]
    if per:
        r = ratio(4)
        rows.append([label, "per_example_backward", med[0] * 1e3, med[4] * 1e3, r,
                     "met" if r <= STEP_TARGET else "missed", "—", "—", f"{diff[1]:.1e}"])
    return rows


def _training(quick: bool) -> Section:
    batch, per_batch = (64, 8) if quick else (256, 32)
    repeats = 3 if quick else 5
    rows: list[list[object]] = []
    for m in (2, 10) if quick else (2, 10, 50):
        rows += _step_case(f"MLP, m = {m} outputs, batch {batch}", m, batch, False, repeats)
    for pb in (per_batch,) if quick else (per_batch, 128):
        rows += _step_case(f"per example, m = batch = {pb}", pb, pb, True,
                           repeats if pb == per_batch else 3)
    notes = [
        f"Target: a step in ≤ {STEP_TARGET}× TorchJD's time. 'ratio' is the median of the "
        "per-round ratios jacobite / TorchJD; 'rel. diff' compares the two .grad after one "
        "step's backward from the same parameters.",
        "jacobite's `backward` finds the dense layers in the autograd graph and forms their "
        "Gramians from each layer's saved input and the m gradients at its output "
        "(`multiobjective._layers`), so it never computes the m parameter gradients; "
        "`per_example_backward` runs one vmapped forward, then gets the dense layers' "
        "per-example Gramian from two backward passes whatever the batch size "
        "(`multiobjective._ghost`); m = batch = 128 (beyond the target's 32) shows that "
        "scaling: TorchJD and `backward` need one backward pass per example.",
        "The two floors, as fractions of TorchJD's step: 'J floor' is the forward pass plus the "
        "m backward passes to the parameters (plain torch.autograd: the part of TorchJD's step "
        "before its aggregation); 'chain floor' is the forward pass plus the m backward passes "
        "to the dense layers' outputs only — for general losses the part no exact method "
        "avoids, since every entry ⟨∇ℓᵢ, ∇ℓⱼ⟩ of the Gramian needs each loss's own backward "
        "pass through the network (per-example losses are the exception "
        "`per_example_backward` uses: there one pass holds them all). Where the ratio misses, "
        "the gap to the chain floor is the per-layer Gramian "
        "products (for m = 2 the two per-loss weight gradients, the same products TorchJD "
        "forms).",
        clock_note(),
    ]
    return Section("multiobjective: one training step with UPGrad (jacobite vs TorchJD 0.18)",
                   ["case", "jacobite API", "TorchJD (ms)", "jacobite (ms)", "ratio", "≤ 0.7×",
                    "J floor", "chain floor", "rel. diff"], rows, notes)


def run(quick: bool = False) -> list[Section]:
    try:
        import torchjd  # noqa: F401
    except ImportError:
        return [Section("multiobjective (jacobite vs TorchJD 0.18)", ["status"],
                        [["skipped: install torchjd"]])]
    return [_aggregation(quick), _training(quick)]
