"""Entries for jacobite.check_logdet (log-det checks of normalizing flows)."""

from __future__ import annotations

import torch

import jacobite

from . import F64, choice, entry, fn, tensor, tol

ENTRIES = [
    entry("jacobite.check_logdet", jacobite.check_logdet, torch.distributions.ExpTransform(),
          torch.zeros(2, 3, dtype=F64),
          cases=[*fn(0), (0, object()), *tensor(1, (3,), (0, 3)), *tol("rtol"),
                 *tol("atol"), *choice("kind")]),
]
