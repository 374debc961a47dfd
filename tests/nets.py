"""Small shared architectures for the analysis tests and benchmarks.

Each constructor seeds torch itself (``seed``), so a net is reproducible wherever it is built.

>>> import torch
>>> mlp(dims=(4, 8, 2))(torch.zeros(1, 4, dtype=torch.float64)).shape
torch.Size([1, 2])
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["ResidualMLP", "conv_net", "mlp", "residual_mlp", "small_cnn", "tanh_mlp"]


def _dt(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    return module.to(dtype)


def mlp(dims: tuple[int, ...] = (6, 16, 16, 3), *, act: type[nn.Module] = nn.Tanh,
        seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``Linear → act → … → Linear`` through the widths ``dims``."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    return _dt(nn.Sequential(*layers), dtype)  # type: ignore[return-value]


def small_cnn(*, channels: int = 4, size: int = 6, classes: int = 3, seed: int = 0,
              dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``(B, 1, size, size)`` → conv, ReLU, conv, tanh, flatten, linear → ``(B, classes)``."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh(),
        nn.Flatten(), nn.Linear(channels * size * size, classes),
    )
    return _dt(net, dtype)  # type: ignore[return-value]


class ResidualMLP(nn.Module):
    """``x ↦ head(x + Σ blocks)``: ``blocks`` residual blocks ``h ↦ h + W₂ tanh(W₁ h)``."""

    def __init__(self, width: int = 8, blocks: int = 2, out: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))
            for _ in range(blocks))
        self.head = nn.Linear(width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def residual_mlp(width: int = 8, blocks: int = 2, out: int = 3, *, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> ResidualMLP:
    """A :class:`ResidualMLP` (not a ``Sequential``: layer reports go through hooks)."""
    torch.manual_seed(seed)
    return _dt(ResidualMLP(width, blocks, out), dtype)  # type: ignore[return-value]


def conv_net(*, channels: int = 16, in_channels: int = 3, seed: int = 0,
             dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Issue 7's conv net: three 3×3 convolutions (``channels`` wide, padding 1) with tanh.

    Maps ``(B, 3, H, W)`` to ``(B, 3, H, W)``; at 48×48 the Jacobian is 6912 × 6912.
    """
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.Tanh(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh(),
        nn.Conv2d(channels, in_channels, 3, padding=1),
    )
    return _dt(net, dtype)  # type: ignore[return-value]


def tanh_mlp(width: int = 2048, layers: int = 3, *, seed: int = 0,
             dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """Issue 7's MLP: ``layers`` square ``width × width`` Linear layers, each followed by tanh."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(width, width), nn.Tanh()]
    return _dt(nn.Sequential(*mods), dtype)  # type: ignore[return-value]
