"""A small model zoo: ordinary ``nn.Module`` s that expect a batch dimension, in float64.

Each :class:`Arch` builds a model in eval mode and a batch of inputs. Sizes are tiny so every
entry point runs on every architecture in a few seconds. Outputs are logits ``(B, C)``, except
the two-headed model (a dict) and the embedding model (integer inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

DT = torch.float64
B = 3  # samples per batch


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[[], nn.Module]
    sample_shape: tuple[int, ...]
    classes: int = 3
    tokens: int = 0  # > 0: integer inputs in [0, tokens) (an embedding model)
    dict_output: bool = False

    def make(self) -> nn.Module:
        torch.manual_seed(sum(map(ord, self.name)))
        model = self.build().to(DT).eval()
        with torch.no_grad():  # non-trivial running statistics for the BatchNorms
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        return model

    def batch(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        if self.tokens:
            return torch.randint(self.tokens, (B, *self.sample_shape), generator=g)
        return torch.randn((B, *self.sample_shape), generator=g, dtype=DT)


class Residual(nn.Module):
    """``x + body(x)`` after a LayerNorm, then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.body = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 6))
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x + self.body(self.norm(x)))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and a (projected) skip connection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + self.skip(x))


def resnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         BasicBlock(4, 4, 1), BasicBlock(4, 6, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


class Recurrent(nn.Module):
    """A batch-first LSTM or GRU; the last time step's hidden state through a linear head."""

    def __init__(self, kind: type[nn.RNNBase]) -> None:
        super().__init__()
        self.rnn = kind(4, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class Tokens(nn.Module):
    """Embedding, mean over the sequence, linear head: integer inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens).mean(dim=1))


class Encoder(nn.Module):
    """A batch-first TransformerEncoderLayer (dropout off in eval), mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.1,
                                                batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(x).mean(dim=1))


class Attention(nn.Module):
    """Batch-first self-attention, mean-pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.head(y.mean(dim=1))


class TwoHeads(nn.Module):
    """A shared trunk with a dict output: class logits and a regression head."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        self.logits = nn.Linear(6, 3)
        self.value = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {"logits": self.logits(h), "value": self.value(h)}


ZOO: tuple[Arch, ...] = (
    Arch("mlp", lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.3),
                                      nn.Linear(6, 3)), (4,)),
    Arch("cnn_flatten", lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(),
                                              nn.Linear(2 * 4 * 4, 3)), (1, 6, 6)),
    Arch("batchnorm", lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(),
                                            nn.Linear(6, 3)), (4,)),
    Arch("layernorm", lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.GELU(),
                                            nn.Linear(6, 3)), (4,)),
    Arch("residual", Residual, (6,)),
    Arch("resnet", resnet, (1, 6, 6)),
    Arch("lstm", lambda: Recurrent(nn.LSTM), (3, 4)),
    Arch("gru", lambda: Recurrent(nn.GRU), (3, 4)),
    Arch("embedding", Tokens, (5,), tokens=10),
    Arch("transformer", Encoder, (3, 4)),
    Arch("attention", Attention, (3, 4)),
    Arch("depthwise", lambda: nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Tanh(),
                                            nn.Conv2d(2, 4, 1, groups=2), nn.Flatten(),
                                            nn.Linear(4 * 3 * 3, 3)), (2, 5, 5)),
    Arch("dict_output", TwoHeads, (4,), dict_output=True),
)
