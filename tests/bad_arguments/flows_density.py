"""Entries for the flow layers and TransformedDensity (jacobite.transforms.flows)."""

from __future__ import annotations

import torch

from jacobite.errors import ArgumentTypeError, InvalidOptionError
from jacobite.transforms import flows

from . import F64, entry, fn, posint, tensor, typed

_BASE = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64),
                                               torch.eye(2, dtype=F64))
_DTYPE = [typed("dtype", torch.int64, ArgumentTypeError), typed("dtype", "float64",
                                                                ArgumentTypeError)]

ENTRIES = [
    entry("jacobite.transforms.flows.Planar", flows.Planar, 3, torch.ones(3, dtype=F64),
          dtype=F64,
          cases=[*posint(0), *tensor(1, (2,), (3, 3), none=False),
                 *tensor(2, (2,), none=False), *tensor(3, (3,), none=False), *_DTYPE]),
    entry("jacobite.transforms.flows.Radial", flows.Radial, 3, torch.ones(3, dtype=F64),
          dtype=F64,
          cases=[*posint(0), *tensor(1, (2,), (3, 3), none=False),
                 *tensor(2, (2,), none=False), *tensor(3, (3,), none=False), *_DTYPE]),
    entry("jacobite.transforms.flows.Sylvester", flows.Sylvester, 3, 2, dtype=F64,
          cases=[*posint(0), *posint(1), typed(1, 4, InvalidOptionError),
                 *tensor("Q", (3,), (2, 3), none=False), *tensor("R", (3, 3), none=False),
                 *tensor("b", (3,), none=False), *_DTYPE]),
    entry("jacobite.transforms.flows.TransformedDensity", flows.TransformedDensity, _BASE,
          torch.sinh, torch.asinh,
          cases=[typed(0, None, ArgumentTypeError), typed(0, "normal", ArgumentTypeError),
                 (0, torch.distributions.Normal(0.0, 1.0)), (0, torch.ones(2, dtype=F64)),
                 *fn(1), *fn(2)[:2], (1, torch.ones(2, dtype=F64))]),
]
