"""A small classifier's calibration before and after a Laplace approximation: the picture of
``docs/curvature.md``.

An MLP (64 → 128 → 10, ReLU) is fitted to 1,200 of scikit-learn's 8×8 digits (no weight decay)
until its training loss is near zero. ``jacobite.curvature.laplace`` puts a Gaussian
``N(θ*, Λ⁻¹)`` on the last layer's weights (``Λ = G + δ I``, ``G`` its Gauss–Newton block as a
Kronecker product, the prior precision ``δ`` chosen by the marginal likelihood), and the
linearised predictive (probit link) softens each prediction by the variance of the logits
``J Λ⁻¹ Jᵀ``. The reliability diagrams bin the 597 held-out digits by confidence (the top
class's probability) and compare each bin's accuracy with its mean confidence; the expected
calibration error (ECE) is the sample-weighted mean gap. Two test sets: the held-out digits
as they are, and the same digits with Gaussian pixel noise (σ = 0.35 on [0, 1]), a shift the
network never saw.

    python examples/curvature_calibration.py      # numbers + docs/img/curvature_reliability.png
    python examples/curvature_calibration.py --no-plot
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from jacobite.curvature import laplace

PLOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "curvature_reliability.png"
F64 = torch.float64
BINS = 10


def load(n_train: int = 1200, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)``: the 1797 digits scaled to [0, 1], split by
    ``seed``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=F64) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def fit(x: torch.Tensor, y: torch.Tensor, steps: int = 400, seed: int = 0) -> nn.Module:
    """The MLP trained full-batch with Adam on the summed cross-entropy, no weight decay."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
        opt.step()
    return model


def noisy(x: torch.Tensor, sigma: float = 0.35, seed: int = 1) -> torch.Tensor:
    """``x`` with Gaussian pixel noise of standard deviation ``sigma``."""
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


def reliability(p: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per confidence bin: mean confidence, accuracy and count; and the ECE."""
    conf, pred = p.max(dim=1)
    right = (pred == y).to(F64)
    b = (conf * BINS).long().clamp(max=BINS - 1)
    count = torch.bincount(b, minlength=BINS).to(F64)
    mean_conf = torch.bincount(b, conf, minlength=BINS) / count.clamp_min(1)
    acc = torch.bincount(b, right, minlength=BINS) / count.clamp_min(1)
    ece = ((mean_conf - acc).abs() * count).sum() / count.sum()
    return mean_conf, acc, count, ece


def run(plot: Path | None = PLOT) -> dict[str, float]:
    x, y, xt, yt = load()
    model = fit(x, y)
    t0 = time.perf_counter()
    post = laplace(model, nn.CrossEntropyLoss(), (x, y), structure="last_layer")
    seconds = time.perf_counter() - t0
    out: dict[str, float] = {"prior precision": float(post.prior_precision[0]),
                             "laplace seconds": seconds}
    rows = []
    for data, X in (("held-out", xt), ("noisy", noisy(xt))):
        with torch.no_grad():
            p_map = torch.softmax(model(X), dim=1)
        for name, p in (("MAP", p_map), ("Laplace", post.predictive(X, link="probit").mean)):
            mean_conf, acc, count, ece = reliability(p, yt)
            nll = float(nn.functional.nll_loss(p.clamp_min(1e-300).log(), yt))
            accuracy = float((p.argmax(1) == yt).to(F64).mean())
            out |= {f"{data} {name} ECE": float(ece), f"{data} {name} NLL": nll,
                    f"{data} {name} accuracy": accuracy}
            rows.append((f"{data}, {name}", mean_conf, acc, count, float(ece), nll, accuracy))
    for k, v in out.items():
        print(f"{k:>26}: {v:.4f}")
    if plot is not None:
        _draw(rows, plot)
    return out


def _draw(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 7.4), sharex=True, sharey=True)
    edges = torch.linspace(0, 1, BINS + 1)
    centre = (edges[:-1] + edges[1:]) / 2
    for ax, (name, mean_conf, acc, count, ece, nll, accuracy) in zip(axes.flat, rows,
                                                                     strict=True):
        have = count > 0
        ax.bar(centre[have], acc[have], width=1 / BINS, edgecolor="black", color="#7aa6d6",
               label="accuracy")
        gap_lo = torch.minimum(acc, mean_conf)[have]
        ax.bar(centre[have], (mean_conf - acc).abs()[have], bottom=gap_lo, width=1 / BINS,
               color="#d9534f", alpha=0.45, edgecolor="#d9534f", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}\nECE {ece:.3f}, NLL {nll:.3f}, accuracy {accuracy:.3f}",
                     fontsize=9)
        for c, n in zip(centre[have], count[have], strict=True):
            ax.text(float(c), 0.02, f"{int(n)}", ha="center", fontsize=7, rotation=90)
    for ax in axes[1]:
        ax.set_xlabel("confidence (top-class probability)")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy in the bin")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle("8×8 digits, an MLP fitted to 1,200: reliability on 597 held-out digits, "
                 "clean and noisy (bin counts at the bottom)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    run(None if args.no_plot else PLOT)


if __name__ == "__main__":
    main()
