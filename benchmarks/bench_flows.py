"""Densities under a change of variables: ``logdet``, ``divergence``, ``check_logdet`` beside
zuko, nflows, normflows and FrEIA.

Four tables, 1 thread, side by side in one process; times are medians of interleaved repeats
on the runner's clock (``bench_dense_overhead.bench_clock``).

1. Log-det of a zuko MAF (3 transforms, hidden 64×64, D = 16, B = 1024, float32):
   ``jacobite.logdet(method="exact")`` vs ``vmap(jacrev)`` + ``slogdet`` vs zuko's own
   ``call_and_ladj``. Targets: exact ≥ 2× faster than the vmap route; max absolute error vs
   zuko's log-det ≤ 1e-5 (absolute, log-dets here are O(1)).
2. Exact divergence of a 16-D softplus MLP field, B = 1024: ``jacobite.divergence`` vs zuko's
   exact CNF trace (``FreeFormJacobianTransform``: D batched VJPs of the whole batch with
   ``is_grads_batched=True``, then the diagonal). Target ≥ 1.5× faster.
3. Estimators at an equal number of Jacobian products: the variance over seeds of Hutch++ /
   XTrace vs Hutchinson (``divergence``) on a CNF-like field whose Jacobian's singular values
   decay, and of Hutch++ vs Hutchinson (``logdet``) on a residual map ``x + g(x)`` with
   ``‖J_g‖ < 1``. Target: variance ≥ 4× lower.
4. ``check_logdet``: false alarms over seeded transforms of zuko, nflows, normflows and FrEIA
   (a library that is not installed is skipped) and seeded bugs caught. Targets: 0 false
   alarms, 100 % caught.

    python -m benchmarks.run --only flows --output /tmp/flows.md   # [--quick]
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

import torch

from ._common import Section, have, median, met
from .bench_dense_overhead import clock_note, time_interleaved

PEERS = ("zuko", "nflows", "normflows", "FrEIA")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _times(fns: list[Callable[[], object]], quick: bool) -> tuple[list[float], list[float]]:
    """Median seconds of each of ``fns`` and the median over rounds of the first one's time
    over each one's (a burst of load hits every function of a round alike)."""
    samples = time_interleaved(fns, repeats=3 if quick else 11, min_time=0.01 if quick else 0.05)
    ratios = [median([a / b for a, b in zip(s, samples[0], strict=True)]) for s in samples]
    return [median(s) for s in samples], ratios


# ---------------------------------------------------------------------------------------------
# 1. log-det of a zuko MAF


def maf_logdet(quick: bool) -> Section:
    import zuko  # type: ignore[import-untyped]  # optional peer

    import jacobite

    torch.manual_seed(0)
    D, B = 16, 128 if quick else 1024
    flow = zuko.flows.MAF(D, transforms=3, hidden_features=(64, 64))
    t = flow.transform()  # no context: one transform for every sample
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(1))

    def forward(z: torch.Tensor) -> torch.Tensor:
        return t(z)

    def exact() -> torch.Tensor:
        return jacobite.logdet(forward, x, method="exact").value

    def vmap_route() -> torch.Tensor:
        J = torch.func.vmap(torch.func.jacrev(lambda v: t(v.unsqueeze(0))[0]))(x)
        return torch.linalg.slogdet(J)[1]

    def own() -> torch.Tensor:
        return t.call_and_ladj(x)[1]

    def batched_rows() -> torch.Tensor:  # the floor of any D-reverse-product route
        xr = x.detach().requires_grad_()
        eye = torch.eye(D).unsqueeze(1).expand(D, B, D)
        J = torch.autograd.grad(t(xr), xr, eye, is_grads_batched=True)[0].movedim(0, 1)
        return torch.linalg.slogdet(J)[1]

    def unrecorded(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                return fn()
        return run

    eye = torch.eye(D).unsqueeze(1).expand(D, B, D)
    J = torch.func.vmap(torch.func.jacrev(lambda v: t(v.unsqueeze(0))[0]))(x).detach()

    def split() -> list[Callable[[], object]]:
        """The parts of the exact route: forward pass, D products (recorded, not), slogdet."""
        def products() -> torch.Tensor:
            back = torch.func.vjp(forward, x)[1]
            return torch.func.vmap(lambda u: back(u)[0])(eye)

        return [lambda: torch.func.vjp(forward, x), products, unrecorded(products),
                lambda: torch.linalg.slogdet(J)]

    with torch.no_grad():
        ref = own()
    errs = [float((fn().detach() - ref).abs().max()) for fn in (exact, vmap_route, batched_rows)]
    (t_vm, t_ex, t_own, t_rows), (_, r_ex, r_own, r_rows) = _times(
        [vmap_route, exact, own, batched_rows], quick)
    (t_vm0, t_ex0), (_, r_ex0) = _times([unrecorded(vmap_route), unrecorded(exact)], quick)
    t_fwd, t_rec, t_norec, t_sld = _times(split(), quick)[0]
    sec = Section(f"bench_flows: log|det J| of a zuko MAF (3 transforms, hidden 64×64, D = {D}, "
                  f"B = {B}, float32)",
                  ["route", "ms per batch", "vs vmap(jacrev)", "max abs error vs zuko's ladj"])
    sec.rows.append(["jacobite.logdet(method='exact')", t_ex * 1e3, 1 / r_ex, errs[0]])
    sec.rows.append(["torch.func.vmap(jacrev) + slogdet", t_vm * 1e3, 1.0, errs[1]])
    sec.rows.append(["D VJPs of the batch (autograd, is_grads_batched, no graph) + slogdet",
                     t_rows * 1e3, 1 / r_rows, errs[2]])
    sec.rows.append(["zuko call_and_ladj (its analytic log-det)", t_own * 1e3, 1 / r_own, 0.0])
    sec.rows.append(["under torch.no_grad(): jacobite.logdet(method='exact')", t_ex0 * 1e3,
                     1 / r_ex0, errs[0]])
    sec.rows.append(["under torch.no_grad(): vmap(jacrev) + slogdet", t_vm0 * 1e3, 1.0,
                     errs[1]])
    speed = 1 / r_ex
    sec.notes.append(f"Target: exact ≥ 2× faster than vmap(jacrev) + slogdet ({speed:.2f}×: "
                     f"{met(speed >= 2)}); max absolute error vs zuko's log-det ≤ 1e-5 "
                     f"({errs[0]:.2e}: {met(errs[0] <= 1e-5)}; absolute, the log-dets are "
                     f"O(1): |ladj| ≤ {float(ref.abs().max()):.3g}).")
    sec.notes.append("Every Jacobian route spends D = 16 reverse products of the whole flow "
                     "and a batched slogdet; vmap(jacrev) batches the same products over samples "
                     "and basis vectors. The flow's parameters require grad, so jacobite's exact "
                     "route (one forward pass, the D VJPs vmapped over the basis) records the "
                     "products to keep the log-det differentiable in them, as vmap(jacrev) does; "
                     "under torch.no_grad() (or with nothing requiring grad) it records nothing. "
                     f"Its time split: forward pass {t_fwd * 1e3:.1f} ms, the D products "
                     f"{(t_rec - t_fwd) * 1e3:.1f} ms recorded / {(t_norec - t_fwd) * 1e3:.1f} ms "
                     f"not, slogdet {t_sld * 1e3:.1f} ms: the products are each about "
                     f"{(t_norec - t_fwd) / D / t_fwd:.1f} forward passes, so even unrecorded "
                     f"the route would stay at {t_vm / (t_norec + t_sld):.2f}× vmap(jacrev). "
                     "The third row is plain autograd with `is_grads_batched=True` and no "
                     "`create_graph` — not differentiable in the parameters, the floor of a dense "
                     "route — and it too stays under 2×. "
                     "zuko's own log-det is the analytic sum of its affine log-scales, which no "
                     "Jacobian route reaches. Ratios: the median over interleaved rounds of the "
                     "per-round ratio; the rows under torch.no_grad() against vmap(jacrev) under "
                     "torch.no_grad(). "
                     + clock_note())
    return sec


# ---------------------------------------------------------------------------------------------
# 2. exact divergence vs zuko's exact CNF trace


def _mlp_field(D: int, H: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(H, D, generator=g) / D**0.5
    W2 = torch.randn(H, H, generator=g) / H**0.5
    W3 = torch.randn(D, H, generator=g) / H**0.5
    b1, b2 = torch.randn(H, generator=g), torch.randn(H, generator=g)
    sp = torch.nn.functional.softplus

    def f(x: torch.Tensor) -> torch.Tensor:
        return sp(sp(x @ W1.T + b1) @ W2.T + b2) @ W3.T

    return f


def _zuko_trace(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """zuko's exact trace route (``FreeFormJacobianTransform.call_and_ladj``, exact=True)."""
    eye = torch.eye(x.shape[-1], dtype=x.dtype).expand(*x.shape, -1).movedim(-1, 0)
    with torch.enable_grad():
        xr = x.clone().requires_grad_()
        dx = f(xr)
    jac = torch.autograd.grad(dx, xr, eye, is_grads_batched=True)[0]
    return torch.einsum("i...i", jac)


def exact_divergence(quick: bool) -> Section:
    import jacobite

    D, B = 16, 128 if quick else 1024
    f = _mlp_field(D, 64, 0)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(1))

    def ours() -> torch.Tensor:
        return jacobite.divergence(f, x, method="exact").value

    def theirs() -> torch.Tensor:
        return _zuko_trace(f, x)

    eye = torch.eye(D)

    def jvps() -> torch.Tensor:  # forward mode: the D basis tangents under vmap
        cols = torch.func.vmap(lambda e: torch.func.jvp(f, (x,), (e.expand(B, D),))[1])(eye)
        return torch.diagonal(cols, dim1=0, dim2=2).sum(-1)

    def forward_pass() -> object:
        return torch.func.vjp(f, x)

    err = float((ours() - theirs()).abs().max())
    (t_z, t_j, t_f, t_v, t_p), (_, r_j, r_f, r_v, _) = _times(
        [theirs, ours, lambda: jacobite.divergence(f, x, jac_mode="forward").value, jvps,
         forward_pass], quick)
    speed = 1 / r_j
    sec = Section(f"bench_flows: exact divergence of a {D}-D softplus MLP field (hidden 64×64, "
                  f"B = {B}, float32)", ["route", "ms per batch", "speed-up"])
    sec.rows.append(["jacobite.divergence(method='exact')", t_j * 1e3, speed])
    sec.rows.append(["zuko's exact CNF trace (16 VJPs, is_grads_batched)", t_z * 1e3, 1.0])
    sec.rows.append(["jacobite.divergence(method='exact', jac_mode='forward')", t_f * 1e3,
                     1 / r_f])
    sec.rows.append(["vmap over the 16 basis tangents of torch.func.jvp", t_v * 1e3, 1 / r_v])
    sec.notes.append(f"Target: ≥ 1.5× faster than zuko's route ({speed:.2f}×: "
                     f"{met(speed >= 1.5)}); max |difference| {err:.2e}. zuko's route is "
                     f"reproduced from `FreeFormJacobianTransform.call_and_ladj` (zuko "
                     f"{_version('zuko')}, exact=True) on the same field and batch. "
                     + clock_note())
    sec.notes.append(f"Both reverse routes run one forward pass ({t_p * 1e3:.2f} ms here) and the "
                     "same 16 VJPs of the whole batch; nothing here requires grad, so neither "
                     "records them. The VJPs are the time: softplus' backward recomputes the "
                     "sigmoid of its saved input for each of the 16 cotangents, and every VJP "
                     "runs the full 64×64 matrix products, though only the diagonal entry of "
                     "each row is kept — no generic AD route avoids either. Forward mode (the "
                     "last two rows) spends the same work per product and more per tangent.")
    return sec


# ---------------------------------------------------------------------------------------------
# 3. estimators at an equal number of products


def _decaying(D: int, rate: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``U diag(σ)``, ``V``, ``b`` with orthonormal U, V and geometrically decaying σ."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64)).Q
    sig = rate ** torch.arange(D, dtype=torch.float64)
    return U * sig, V, 0.3 * torch.randn(D, generator=g, dtype=torch.float64)


def _spread(values: list[torch.Tensor]) -> float:
    """The variance over seeds, averaged over samples."""
    return float(torch.stack(values).var(dim=0).mean())


def _calibration(values: list[torch.Tensor], stderrs: list[torch.Tensor], exact: torch.Tensor,
                 dof: int) -> tuple[float, float, float]:
    """The mean reported stderr² (over seeds and samples), the share of samples and seeds whose
    ``value ± t·stderr`` holds the exact value (``t`` the 97.5 % Student quantile with ``dof``
    degrees of freedom), and the same with ``t = 1.96``."""
    from scipy import stats

    err = (torch.stack(values) - exact).abs()
    se = torch.stack(stderrs)
    t = float(stats.t.ppf(0.975, dof))
    return (float(se.square().mean()), float((err <= t * se).double().mean()),
            float((err <= 1.96 * se).double().mean()))


def estimators(quick: bool) -> Section:
    import jacobite

    seeds = range(20 if quick else 150)
    D, B, P = 32, 64, 12
    Us, V, b = _decaying(D, 0.6, 0)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def field(z: torch.Tensor) -> torch.Tensor:  # CNF-like: a tanh layer, decaying spectrum
        return 2.0 * torch.tanh(z @ V + b) @ Us.T

    Ur, Vr, br = _decaying(D, 0.6, 3)

    def residual(z: torch.Tensor) -> torch.Tensor:  # x + g(x), ‖J_g‖ ≤ 0.5
        return z + 0.5 * torch.tanh(z @ Vr + br) @ Ur.T

    sec = Section(f"bench_flows: estimators at {P} Jacobian products per sample (D = {D}, "
                  f"B = {B}, float64, {len(seeds)} seeds)",
                  ["quantity", "estimator", "variance over seeds", "Hutchinson's / this",
                   "mean reported stderr²", "variance / mean stderr²", "dof",
                   "coverage ±t·stderr", "coverage ±1.96·stderr"])
    verdicts: list[str] = []
    cases: list[tuple[str, Callable[..., Any], Callable[..., Any], tuple[str, ...]]] = [
        ("divergence (tanh field)", jacobite.divergence, field, ("hutchinson", "hutch++",
                                                                  "xtrace")),
        ("logdet (residual map, 20 terms)", jacobite.logdet, residual,
         ("hutchinson", "hutch++")),
    ]
    for name, api, fn, methods in cases:
        exact = api(fn, x, method="exact").value
        base = None
        for m in methods:
            runs = [api(fn, x, method=m, nprobe=P, seed=s) for s in seeds]
            var = _spread([r.value for r in runs])
            base = var if base is None else base
            ratio = base / var if var > 0 else float("inf")
            k = runs[0].dof or 1
            ms2, cover_t, cover_z = _calibration([r.value for r in runs],
                                                 [r.stderr for r in runs], exact, k)
            sec.rows.append([name, m, var, ratio, ms2, var / ms2 if ms2 > 0 else float("inf"),
                             k, cover_t, cover_z])
            if m != "hutchinson":
                verdicts.append(f"{name} {m} {ratio:.1f}× ({met(ratio >= 4)})")
    sec.notes.append("Target: variance ≥ 4× lower than Hutchinson's at the same number of "
                     "products — " + "; ".join(verdicts) + ".")
    sec.notes.append("Fields: `2 tanh(xV + b) (UΣ)ᵀ` and `x + 0.5 tanh(xV + b) (UΣ)ᵀ` with "
                     "random orthonormal U, V and singular values σᵢ = 0.6ⁱ (the decaying "
                     "spectrum of trained CNF fields and residual blocks, where sketching pays); "
                     "Rademacher probes; the variance is over seeds 0..N−1, averaged over the "
                     "batch. For logdet every probe costs `terms` products for both methods.")
    sec.notes.append("Stderr calibration: `variance / mean stderr²` is 1 where the reported "
                     "stderr is honest on average (above 1 it understates the spread); the "
                     "coverages are the share of samples × seeds whose `value ± q·stderr` holds "
                     "the exact value (nominal 0.95), with q the Student t quantile for the "
                     "estimator's degrees of freedom (`dof`: the probes behind the spread, less "
                     "one) or 1.96. Few probes make one stderr rough and the quadratic forms' "
                     "heavy tails make it skewed, so the median stderr lies below the RMS: use "
                     "the t quantile.")
    return sec


# ---------------------------------------------------------------------------------------------
# 4. check_logdet: false alarms and seeded bugs


def _transforms() -> tuple[list[tuple[str, Any]], list[str]]:
    """Seeded transforms of the installed peers, and the libraries skipped."""
    D = 6
    out: list[tuple[str, Any]] = []
    skipped = []
    torch.manual_seed(0)
    if have("zuko"):
        import zuko

        for name, flow in [("MAF", zuko.flows.MAF(D, transforms=2)),
                           ("NSF", zuko.flows.NSF(D, transforms=2)),
                           ("RealNVP", zuko.flows.RealNVP(D, transforms=2)),
                           ("NAF", zuko.flows.NAF(D, transforms=1, hidden_features=(16,)))]:
            out.append((f"zuko {name}", flow.transform()))
    else:
        skipped.append("zuko")
    if have("nflows"):
        from nflows import transforms as nt  # type: ignore[import-untyped]
        from nflows.nn.nets import ResidualNet  # type: ignore[import-untyped]

        mask = torch.arange(D) % 2
        out += [
            ("nflows MaskedAffineAutoregressive",
             nt.MaskedAffineAutoregressiveTransform(D, hidden_features=16)),
            ("nflows LULinear", nt.LULinear(D)),
            ("nflows PiecewiseRQ coupling", nt.PiecewiseRationalQuadraticCouplingTransform(
                mask, lambda i, o: ResidualNet(i, o, hidden_features=16),
                tails="linear", tail_bound=4.0)),
        ]
    else:
        skipped.append("nflows")
    if have("normflows"):
        import normflows as nf  # type: ignore[import-untyped]

        out += [("normflows Planar", nf.flows.Planar((D,))),
                ("normflows Radial", nf.flows.Radial((D,))),
                ("normflows MaskedAffineFlow", nf.flows.MaskedAffineFlow(
                    (torch.arange(D) % 2).float(), nf.nets.MLP([D, 16, D], init_zeros=False),
                    nf.nets.MLP([D, 16, D], init_zeros=False)))]
    else:
        skipped.append("normflows")
    if have("FrEIA"):
        import FrEIA.framework as ff  # type: ignore[import-untyped]
        import FrEIA.modules as fm  # type: ignore[import-untyped]

        def sub(i: int, o: int) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Linear(i, 16), torch.nn.Tanh(),
                                       torch.nn.Linear(16, o))

        for cls in (fm.GLOWCouplingBlock, fm.RNVPCouplingBlock, fm.AllInOneBlock):
            inn = ff.SequenceINN(D)
            inn.append(cls, subnet_constructor=sub)
            out.append((f"FrEIA {cls.__name__}", inn))
    else:
        skipped.append("FrEIA")
    for _, t in out:
        if isinstance(t, torch.nn.Module):
            t.eval()
    return out, skipped


Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _bugs(fwd: Forward) -> list[tuple[str, Forward]]:
    """The transform ``fwd`` (``x -> (y, ladj)``) with one seeded bug each in its log-det."""
    def one_wrong(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, ladj = fwd(x)
        return y, ladj + (torch.arange(x.shape[0]) == 3).to(ladj.dtype) * 0.5

    return [("sign flip", lambda x: (fwd(x)[0], -fwd(x)[1])),
            ("dropped constant (−log 2)", lambda x: (fwd(x)[0], fwd(x)[1] - 0.6931)),
            ("wrong scale (×0.5)", lambda x: (fwd(x)[0], 0.5 * fwd(x)[1])),
            ("one wrong sample (+0.5)", one_wrong)]


def check(quick: bool) -> Section:
    import jacobite
    from jacobite.transforms.flows.adapters import adapt

    D, B = 6, 16 if quick else 64
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(5))
    transforms, skipped = _transforms()
    sec = Section("bench_flows: check_logdet — false alarms and seeded bugs",
                  ["transform", "case", "verdict", "diagnosis", "worst error"])
    alarms = 0
    for name, t in transforms:
        try:
            r = jacobite.check_logdet(t, x)
            verdict, diag, err = ("ok" if r.ok else "**false alarm**"), r.diagnosis, r.error
            alarms += not r.ok
        except Exception as exc:  # an adapter gap counts as a false alarm, shown
            verdict, diag, err = "**error**", f"{type(exc).__name__}: {str(exc)[:80]}", float("nan")
            alarms += 1
        sec.rows.append([name, "as shipped", verdict, diag, err])
    caught = total = 0
    firsts: dict[str, tuple[str, Any]] = {}
    for name, t in transforms:  # the first transform of each library
        firsts.setdefault(name.split()[0], (name, t))
    for name, t in firsts.values():
        for bug, fwd in _bugs(adapt(t)[1]):
            r = jacobite.check_logdet(fwd, x)
            total += 1
            caught += not r.ok
            sec.rows.append([name, bug, "caught" if not r.ok else "**missed**", r.diagnosis,
                             r.error])
    pct = 100.0 * caught / total if total else float("nan")
    sec.notes.append(f"Targets: 0 false alarms over {len(transforms)} transforms ({alarms}: "
                     f"{met(alarms == 0)}); seeded bugs caught 100 % ({caught}/{total} = "
                     f"{pct:.0f} %: {met(caught == total and total > 0)}).")
    sec.notes.append(f"Batch of {B} standard-normal points in {D}-D, float32, default "
                     "tolerances; modules in eval mode, seeded (torch.manual_seed(0)). The bugs "
                     "are seeded into the first transform of each library, called through "
                     "jacobite's adapter and handed to check_logdet as a callable."
                     + (f" Skipped (not installed): {', '.join(skipped)}." if skipped else ""))
    return sec


def run(quick: bool = False) -> list[Section]:
    secs = []
    if have("zuko"):
        secs.append(maf_logdet(quick))
    else:
        secs.append(Section("bench_flows: log|det J| of a zuko MAF", ["status"],
                            [["skipped: install zuko"]]))
    secs += [exact_divergence(quick), estimators(quick), check(quick)]
    return secs
