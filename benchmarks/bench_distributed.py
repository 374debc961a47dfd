"""jacobite on ``torch.distributed``: strong scaling from one process to two (gloo, one thread
each) and the bytes each operation sends, measured with ``jacobite.distributed.traffic()``.

Three operations, each timed in one process on the whole problem and in two processes on half
of it each, in alternation repeat by repeat (rank 0 alone, then both; the two-process time of a
repeat is the slower rank's; medians over repeats):

1. GGN matvec over an 8,192-example dataset (MLP 64-256-256-10, cross-entropy, float32):
   ``ggn(..., process_group=)`` — each rank's products over its 4,096 examples, one all-reduce
   of P numbers per product.
2. A Jacobian-descent training step with m = 10 losses (MLP 32-256-256-10, one MSE loss per
   output, batch 2,048, float32, UPGrad), the model wrapped in ``DistributedDataParallel``:
   forward, ``backward(losses, process_group=)`` (its reduce-scatter exchange; and the same
   step through the other exchange, the m × P Jacobian all-reduced, by UPGrad applied to J
   itself), beside a plain DDP step (the sum of the losses, DDP's own gradient all-reduce, its
   bytes counted by a communication hook).
3. 4,096 independent exponential fits (15 points, 2 parameters) by
   ``least_squares(batch=True, process_group=)``: each rank its 2,048, every result gathered.

Target: efficiency ``t₁ / (2 t₂) ≥ 0.8``. Jacobian descent's extra bytes over plain DDP are
reported against m² numbers — a stated miss: the Gramian of the averaged Jacobian has cross-rank
terms, so exact equality needs about m·P numbers (``docs/distributed.md``). Skipped when
``torch.distributed`` or its gloo backend is missing.

    python -m benchmarks.run --only distributed --output /tmp/bench_distributed.md  # [--quick]
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from ._common import Section, met

TARGET = 0.8
TITLE = "bench_distributed: one process vs two (gloo, 1 thread each)"


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(n_ggn=1024, ggn_dims=(16, 32, 10), n_jd=256, jd_dims=(8, 32, 10), m=10,
                    n_fit=256, repeats=3)
    return dict(n_ggn=8192, ggn_dims=(64, 256, 256, 10), n_jd=2048, jd_dims=(32, 256, 256, 10),
                m=10, n_fit=4096, repeats=9)


def _mlp(dims: tuple[int, ...], seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def _data(n: int, d: int, out: int, seed: int, classes: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, out, (n,), generator=g) if classes else torch.randn(n, out, generator=g)
    return X, y


def _fits(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    t = torch.linspace(0, 2, 15, dtype=torch.float64)
    a = 1 + torch.rand(n, 1, generator=g, dtype=torch.float64)
    k = 0.3 + torch.rand(n, 1, generator=g, dtype=torch.float64)
    y = a * torch.exp(-k * t) + 0.01 * torch.randn(n, 15, generator=g, dtype=torch.float64)
    return t, y, torch.ones(n, 2, dtype=torch.float64)


def _residuals(p: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return p[:, :1] * torch.exp(-p[:, 1:] * t) - y


def _whole_jacobian() -> Any:
    """UPGrad applied to J itself: an aggregator without ``weights(G)``, so the step takes the
    other exchange (the m × P Jacobian all-reduced, rank 0's update broadcast)."""
    from jacobite.multiobjective import UPGrad
    from jacobite.multiobjective.aggregators import Aggregator

    class WholeJacobianUPGrad(Aggregator):
        def forward(self, J: torch.Tensor) -> torch.Tensor:
            return UPGrad()(J)

    return WholeJacobianUPGrad()


def _operations(sz: dict[str, Any], group: Any) -> dict[str, Callable[[], object]]:
    """The three timed operations on this rank's share (the whole problem for ``None``)."""
    from jacobite import distributed as D
    from jacobite import least_squares
    from jacobite.curvature import ggn
    from jacobite.multiobjective import UPGrad, backward

    ops: dict[str, Callable[[], object]] = {}
    dims = sz["ggn_dims"]
    X, y = D.shard_batch(_data(sz["n_ggn"], dims[0], dims[-1], 1, True), group)
    net = _mlp(dims, 0)
    G = ggn(net, torch.nn.CrossEntropyLoss(), (X, y), process_group=group)
    v = torch.randn(G.shape[1], generator=torch.Generator().manual_seed(2))
    ops["ggn"] = lambda: G.mv(v)

    jd = sz["jd_dims"]
    Xj, yj = D.shard_batch(_data(sz["n_jd"], jd[0], jd[-1], 3, False), group)
    model: torch.nn.Module = _mlp(jd, 4)
    if group is not None:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def jd_step() -> object:
        opt.zero_grad()
        losses = ((model(Xj) - yj) ** 2).mean(0)
        return backward(losses, list(model.parameters()), UPGrad(), process_group=group)

    whole = _whole_jacobian()

    def jd_all_reduce() -> object:
        opt.zero_grad()
        losses = ((model(Xj) - yj) ** 2).mean(0)
        return backward(losses, list(model.parameters()), whole, process_group=group)

    def plain_step() -> object:
        opt.zero_grad()
        ((model(Xj) - yj) ** 2).mean(0).sum().backward()
        return None

    ops["jd"], ops["jd_ar"], ops["plain"] = jd_step, jd_all_reduce, plain_step
    t, yf, p0 = _fits(sz["n_fit"])
    ops["fits"] = lambda: least_squares(_residuals, p0, batch=True, args=(yf,),
                                        kwargs={"t": t}, process_group=group)
    return ops


def _times(one: dict[str, Callable[[], object]] | None, two: dict[str, Callable[[], object]],
           repeats: int) -> dict[str, tuple[float, ...]]:
    """Median (wall, CPU) seconds of each operation in one process (rank 0 alone, on the whole
    problem, the other rank waiting) and on the group (the slower rank's), the two timed in
    alternation, repeat by repeat, so that the machine's load hits both alike."""
    import torch.distributed as dist

    def timed(op: Callable[[], object]) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        op()
        return time.perf_counter() - t0, time.process_time() - c0

    out = {}
    for name, op in two.items():
        if one is not None:
            one[name]()  # warm-up
        op()
        samples: list[tuple[float, ...]] = []
        for _ in range(repeats):
            dist.barrier()
            single = timed(one[name]) if one is not None else (0.0, 0.0)
            dist.barrier()
            pair = torch.tensor(timed(op))
            dist.all_reduce(pair, op=dist.ReduceOp.MAX)
            samples.append((*single, float(pair[0]), float(pair[1])))
        out[name] = tuple(statistics.median(s[i] for s in samples) for i in range(4))
    return out


def _bytes(ops: dict[str, Callable[[], object]], group: Any) -> dict[str, tuple[int, int]]:
    """(bytes, collectives) each operation's one call sends from this rank; the plain DDP
    step's through a communication hook on its gradient buckets."""
    from jacobite import distributed as D

    out = {}
    for name in ("ggn", "jd", "jd_ar", "fits"):
        with D.traffic() as t:
            ops[name]()
        out[name] = (t.bytes, t.calls)
    return out


def _worker(rank: int, size: int, store: str, sz: dict[str, Any], out: Any) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", store=dist.FileStore(store, size), rank=rank,
                                world_size=size)
        from jacobite import distributed as D

        g = D.resolve("world")
        ops = _operations(sz, g)
        whole = _operations(sz, None) if rank == 0 else None
        res: dict[str, Any] = {"times": _times(whole, ops, sz["repeats"]),
                               "bytes": _bytes(ops, g)}
        ddp = _find_ddp(ops["plain"])
        seen = [0, 0]

        def hook(state: object, bucket: Any) -> Any:
            buf = bucket.buffer()
            seen[0] += buf.numel() * buf.element_size()
            seen[1] += 1
            fut = dist.all_reduce(buf, async_op=True).get_future()
            return fut.then(lambda f: f.value()[0] / size)

        hook.__annotations__ = {}  # DDP checks annotations against its classes, not strings
        ddp.register_comm_hook(None, hook)
        ops["plain"]()
        res["ddp_bytes"] = tuple(seen)
        res["P_jd"] = sum(p.numel() for p in ddp.parameters())
        dist.destroy_process_group()
        out.put((rank, True, res))
    except BaseException as exc:  # report, never hang the parent
        out.put((rank, False, f"{type(exc).__name__}: {exc}"))


def _find_ddp(step: Callable[[], object]) -> Any:
    for cell in step.__closure__ or ():
        if isinstance(cell.cell_contents, torch.nn.parallel.DistributedDataParallel):
            return cell.cell_contents
    raise RuntimeError("the plain step holds no DistributedDataParallel module")


def _two(sz: dict[str, Any], timeout: float = 600.0) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="jacobite-bench-") as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_worker, args=(r, 2, store, sz, out), daemon=True)
                 for r in range(2)]
        for p in procs:
            p.start()
        got: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(got) < 2:
                rank, ok, res = out.get(timeout=max(1.0, deadline - time.monotonic()))
                if not ok:
                    raise RuntimeError(f"rank {rank} failed: {res}")
                got[rank] = res
        except queue.Empty as exc:
            raise RuntimeError(f"the two-process run did not finish within {timeout} s") from exc
        finally:
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
    return [got[0], got[1]]


def _available() -> str | None:
    import torch.distributed as dist

    if not dist.is_available():
        return "skipped: this torch has no torch.distributed"
    if not dist.is_gloo_available():
        return "skipped: this torch has no gloo backend"
    return None


LABELS = {
    "ggn": "GGN matvec, {n_ggn} examples, MLP {ggn}",
    "jd": "JD step (UPGrad, m = {m}), batch {n_jd}, MLP {jd}, DDP",
    "jd_ar": "same JD step, the other exchange: J all-reduced, update broadcast",
    "plain": "plain DDP step (sum of the losses), same model and batch",
    "fits": "least_squares(batch=True), {n_fit} exponential fits",
}


def run(quick: bool = False) -> Section:
    why = _available()
    if why is not None:
        return Section(TITLE, ["status"], [[why]])
    sz = _sizes(quick)
    ranks = _two(sz)
    one = {k: v[:2] for k, v in ranks[0]["times"].items()}
    two = {k: v[2:] for k, v in ranks[0]["times"].items()}
    fmt = dict(sz, ggn="-".join(map(str, sz["ggn_dims"])), jd="-".join(map(str, sz["jd_dims"])))
    sec = Section(TITLE, ["operation", "1 process (ms)", "2 processes (ms)", "efficiency",
                          "CPU-time efficiency", "bytes sent per rank", "collectives"])
    eff = {}
    for k in ("ggn", "jd", "jd_ar", "plain", "fits"):
        (w1, c1), (w2, c2) = one[k], two[k]
        eff[k] = w1 / (2 * w2)
        b = ranks[0]["ddp_bytes"] if k == "plain" else ranks[0]["bytes"][k]
        sec.rows.append([LABELS[k].format(**fmt), 1e3 * w1, 1e3 * w2, eff[k], c1 / (2 * c2),
                         f"{b[0]:,}", b[1]])
    m, P = sz["m"], ranks[0]["P_jd"]
    jd_b, ddp_b = ranks[0]["bytes"]["jd"][0], ranks[0]["ddp_bytes"][0]
    extra = jd_b - ddp_b
    sec.notes.append(
        f"Target efficiency t1 / (2 t2) ≥ {TARGET}: GGN matvec {eff['ggn']:.2f} "
        f"({met(eff['ggn'] >= TARGET)}), JD step {eff['jd']:.2f} ({met(eff['jd'] >= TARGET)}), "
        f"batched fits {eff['fits']:.2f} ({met(eff['fits'] >= TARGET)}). Wall-clock times, "
        "medians over repeats; in each repeat rank 0 first runs the operation alone on the "
        "whole problem (one process, the other rank waiting), then both ranks run it on "
        "their halves (the slower rank's time). The "
        "CPU-time column divides process CPU times instead, which leaves out the time a rank "
        "waits for a core or for the other rank.")
    sec.notes.append(
        f"JD's bytes over plain DDP: {jd_b:,} − {ddp_b:,} = {extra:,} bytes per rank per step "
        f"against the target of m² = {m * m} floats ({4 * m * m} bytes): "
        f"{met(extra <= 4 * m * m)}. The cause: the Gramian of the rank-averaged Jacobian "
        "J = (J₀ + J₁)/2 holds the cross terms J₀J₁ᵀ, which no exchange of m × m matrices can "
        f"give; jacobite reduce-scatters the m × P Jacobian (P = {P:,}: {4 * m * P:,} bytes "
        "of payload, of which a ring moves (N−1)/N), all-reduces the m² Gramian blocks, "
        "broadcasts the m weights and all-gathers the P/N update block. Payload counts what "
        "this rank hands to the collectives (jacobite.distributed.traffic(); the plain step's "
        "through a DDP communication hook).")
    ratio = one["jd"][1] / one["plain"][1]
    sec.notes.append(
        f"In one process the JD step took {ratio:.1f} plain steps of CPU time (its rows are m "
        f"= {m} backward passes at once), and the J-all-reduce exchange "
        f"{ranks[0]['bytes']['jd_ar'][0] / max(1, jd_b):.2f}× the reduce-scatter exchange's "
        "bytes (on a ring it moves about twice as many: all-reduce against reduce-scatter); "
        "backward uses the reduce-scatter exchange for every aggregator with weights(G).")
    sec.notes.append(
        "Measured on this machine's 2 cores, shared with other work while it ran: two "
        "processes of one thread each need both cores to themselves, so these efficiencies are "
        "a lower bound; rerun on a quiet machine. " + ("(--quick sizes.)" if quick else ""))
    return sec
