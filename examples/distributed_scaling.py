"""Jacobian descent over a process group: the picture of ``docs/distributed.md``.

``distributed_scaling.png``, two panels:

1. the bytes one rank hands to the collectives in one Jacobian-descent step
   (``backward(..., process_group=)``, UPGrad) against the number of losses m, measured with
   ``jacobite.distributed.traffic()`` on two gloo processes (an MLP of P = 2,128 parameters in
   float32), beside the formula ``(m·P + m² + m + P/N)·4`` bytes and plain DDP's ``P·4``;
2. the paper model of ``docs/distributed.md``: the strong-scaling efficiency of plain DDP and of
   Jacobian descent (m = 10) on 8 to 64 GPUs, for a 25.6 M-parameter model, under the stated
   NVLink and InfiniBand assumptions.

    python examples/distributed_scaling.py            # the picture, prints the measured bytes
    python examples/distributed_scaling.py --no-plot
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
LOSSES = (1, 2, 4, 8, 12, 16)
DIMS = (16, 64, 16)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(DIMS[0], DIMS[1]), torch.nn.Tanh(),
                               torch.nn.Linear(DIMS[1], DIMS[2]))


def _rank(rank: int, size: int, store: str, out: Any) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist

    from jacobite import distributed as D
    from jacobite.multiobjective import UPGrad, backward

    dist.init_process_group("gloo", store=dist.FileStore(store, size), rank=rank,
                            world_size=size)
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(32, DIMS[0], generator=g), torch.randn(32, DIMS[2], generator=g)
    model = _model()
    measured = {}
    for m in LOSSES:
        losses = ((model(x) - y) ** 2).mean(0)[:m]
        with D.traffic() as t:
            backward(losses, list(model.parameters()), UPGrad(), process_group="world")
        measured[m] = t.bytes
    dist.destroy_process_group()
    out.put((rank, measured))


def measure() -> dict[int, int]:
    """Rank 0's bytes per step for each m in LOSSES, from two spawned gloo processes."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_rank, args=(r, 2, store, out)) for r in range(2)]
        for p in procs:
            p.start()
        got = dict(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=30)
    return got[0]


def step_time(n_gpus: int, compute_1: float, payload_ring: float, collectives: int) -> float:
    """Seconds per step on n_gpus (docs/distributed.md's model)."""
    if n_gpus == 1:
        return compute_1
    bandwidth, latency = (300e9, 10e-6) if n_gpus <= 8 else (50e9, 25e-6)
    return compute_1 / n_gpus + collectives * latency + payload_ring * (n_gpus - 1) / n_gpus \
        / bandwidth


def efficiencies(gpus: list[int]) -> tuple[list[float], list[float]]:
    P, m, b, plain_1 = 25_600_000, 10, 4, 0.70
    jd_1 = 8.1 * plain_1
    ddp = [plain_1 / (n * step_time(n, plain_1, 2 * P * b, 1)) for n in gpus]
    jd = [jd_1 / (n * step_time(n, jd_1, (m + 1) * P * b, 5)) for n in gpus]
    return ddp, jd


def picture(measured: dict[int, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = sum(p.numel() for p in _model().parameters())
    N, b = 2, 4
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    ms = list(measured)
    a1.plot(ms, [measured[m] / 1e3 for m in ms], "o", color="C1", label="measured (traffic())")
    formula = [(m * P + m * m + m + P / N) * b / 1e3 for m in ms]
    a1.plot(ms, formula, "-", color="C1", alpha=0.6, label="(m·P + m² + m + P/N)·4")
    a1.axhline(P * b / 1e3, color="C0", label="plain DDP: P·4")
    a1.set_xlabel("losses m")
    a1.set_ylabel("kB per rank per step")
    a1.set_title(f"Jacobian descent, 2 ranks, P = {P:,}", fontsize=10)
    a1.legend(fontsize=8)
    gpus = [8, 16, 24, 32, 48, 64]
    ddp, jd = efficiencies(gpus)
    a2.plot(gpus, ddp, "o-", color="C0", label="plain DDP")
    a2.plot(gpus, jd, "o-", color="C1", label="Jacobian descent, m = 10")
    a2.set_ylim(0, 1.05)
    a2.set_xlabel("GPUs (8 per node)")
    a2.set_ylabel(r"efficiency $t_1 / (N\,t_N)$")
    a2.set_title("paper model, 25.6 M parameters (assumed network)", fontsize=10)
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    measured = measure()
    P = sum(p.numel() for p in _model().parameters())
    for m, nbytes in measured.items():
        print(f"m = {m:2d}: {nbytes:,} bytes per rank per step (plain DDP: {4 * P:,})")
    if not args.no_plot:
        IMG.mkdir(parents=True, exist_ok=True)
        picture(measured, IMG / "distributed_scaling.png")
        print(f"wrote {IMG / 'distributed_scaling.png'}")


if __name__ == "__main__":
    main()
