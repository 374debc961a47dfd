"""Densities under a change of variables: the two pictures of ``docs/flows.md``.

1. ``flows_density.png`` — a ring (radius ~ N(2, 0.2²), angle uniform) learned by maximum
   likelihood with a stack of ``jacobite.transforms`` flow layers (Radial, Planar, Sylvester)
   on a standard normal base. The stack maps data to noise, so a training step runs each
   layer forward and takes its closed-form log-det:
   ``log q(y) = log N(T(y); 0, I) + log|det J_T(y)|``; sampling runs the layers' inverses.
   Panels: training samples, samples of the flow, the learned density.
2. ``flows_pushforward.png`` — a standard normal pushed through a smooth invertible map ``T``:
   the grid's image coloured by ``det J_T`` (``jacobite.viz.deformed_grid``) and the density
   ``p_Y(y) = p_X(x) / |det J_T(x)|`` from ``jacobite.transforms.TransformedDensity``, which
   inverts ``T`` numerically.

    python examples/flows_pictures.py              # both pictures, prints the final NLL
    python examples/flows_pictures.py --steps 50 --no-plot
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributions import MultivariateNormal, Transform, TransformedDistribution

from jacobite.transforms import Planar, Radial, Sylvester, TransformedDensity

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
LIM = 3.2


def ring(n: int, seed: int) -> torch.Tensor:
    """``n`` samples of the ring: radius N(2, 0.2²), angle uniform; float64 ``(n, 2)``."""
    g = torch.Generator().manual_seed(seed)
    r = 2.0 + 0.2 * torch.randn(n, generator=g, dtype=torch.float64)
    a = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=1)


def flow_layers(seed: int, blocks: int = 6) -> nn.ModuleList:
    """A stack of ``blocks`` × (Radial, Planar, Sylvester) layers in 2-D, float64, seeded."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(blocks):
        layers += [Radial(2, dtype=torch.float64), Planar(2, dtype=torch.float64),
                   Sylvester(2, dtype=torch.float64)]
    return nn.ModuleList(layers)


def model(layers: nn.ModuleList) -> TransformedDistribution:
    """The learned density: the layers map data to noise, so the distribution uses their
    inverses (``log_prob`` runs each layer forward)."""
    base = MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                              torch.eye(2, dtype=torch.float64))
    inverses = [layer.inv for layer in reversed(layers) if isinstance(layer, Transform)]
    return TransformedDistribution(base, inverses)


def train(steps: int = 400, seed: int = 0, batch: int = 512) -> tuple[nn.ModuleList, list[float],
                                                                       float]:
    """Fit the flow by maximum likelihood; returns the layers, the training NLL per step and
    the NLL (nats per sample) of 4000 held-out ring samples."""
    layers = flow_layers(seed)
    data = ring(8192, seed)
    opt = torch.optim.Adam(layers.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        y = data[torch.randint(len(data), (batch,), generator=g)]
        loss = -model(layers).log_prob(y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        held_out = -float(model(layers).log_prob(ring(4000, seed + 100)).mean())
    return layers, losses, held_out


def smooth_map(u: torch.Tensor) -> torch.Tensor:
    """``T(u) = (u₁ + 0.2 u₁³, e^{0.3 u₁} u₂ + 0.4 u₁²)``: invertible, ``det J_T`` is
    ``(1 + 0.6 u₁²) e^{0.3 u₁} > 0``; maps one point ``(2,)`` or a batch ``(B, 2)``."""
    a, b = u[..., 0], u[..., 1]
    return torch.stack([a + 0.2 * a**3, torch.exp(0.3 * a) * b + 0.4 * a**2], dim=-1)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = torch.linspace(-LIM, LIM, n, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="xy")
    return X, Y, torch.stack([X.reshape(-1), Y.reshape(-1)], dim=1)


def plot_density(layers: nn.ModuleList, nll: float, path: Path, seed: int = 0) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = model(layers)
    with torch.no_grad():
        torch.manual_seed(seed)
        drawn = q.sample((1500,))
        X, Y, pts = _grid(150)
        dens = q.log_prob(pts).exp().reshape(X.shape)
    data = ring(1500, seed + 200)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    for ax, pts_, title in ((axes[0], data, "training samples (ring)"),
                            (axes[1], drawn, "samples of the flow")):
        ax.scatter(pts_[:, 0], pts_[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
    axes[2].pcolormesh(X.numpy(), Y.numpy(), dens.numpy(), shading="auto", cmap="magma")
    axes[2].set_title(f"learned density (held-out NLL {nll:.2f})")
    return _save(fig, axes, path)


def _save(fig: Any, axes: Any, path: Path) -> Path:
    """Square panels on the common window, then the figure written to ``path``."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.set_xlim(-LIM, LIM)
        ax.set_ylim(-LIM, LIM)
        ax.set_aspect("equal")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_pushforward(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jacobite.viz import deformed_grid

    base = MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                              torch.eye(2, dtype=torch.float64))
    p_y = TransformedDensity(base, smooth_map)  # the inverse by Newton's method
    X, Y, pts = _grid(120)
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.6))
    with torch.no_grad():
        axes[0].pcolormesh(X.numpy(), Y.numpy(), base.log_prob(pts).exp().reshape(X.shape),
                           shading="auto", cmap="magma")
    axes[0].set_title("p_X: standard normal")
    deformed_grid(smooth_map, (-2.0, 2.0), (-2.0, 2.0), n=11, ax=axes[1],
                  title="T(grid), coloured by det J_T")
    dens = p_y.log_prob(pts).exp().reshape(X.shape).detach()
    axes[2].pcolormesh(X.numpy(), Y.numpy(), dens.numpy(), shading="auto", cmap="magma")
    axes[2].set_title("p_Y(y) = p_X(x) / |det J_T(x)|")
    return _save(fig, (axes[0], axes[2]), path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=IMG, help="folder for the PNGs")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    layers, losses, nll = train(args.steps, args.seed)
    print(f"training NLL: first step {losses[0]:.3f}, last step {losses[-1]:.3f}; "
          f"held-out NLL {nll:.3f} nats per sample")
    if not args.no_plot:
        print(f"plot: {plot_density(layers, nll, args.out / 'flows_density.png', args.seed)}")
        print(f"plot: {plot_pushforward(args.out / 'flows_pushforward.png')}")
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
