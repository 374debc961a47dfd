"""Every aggregator by name, with the options the tests use, built for a given Jacobian: one
table shared by the aggregator tests and the TorchJD peer tests.

>>> import torch
>>> J = torch.eye(3, dtype=torch.float64)
>>> sorted(type(make(J)).__name__ for make in ROWS_2.values())
['Krum', 'TrimmedMean']
>>> MAKERS["Constant"](J).weights_
tensor([0.3333, 0.3333, 0.3333], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from jacobite.multiobjective.aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    Constant,
    DualProj,
    GradDrop,
    Krum,
    Mean,
    NashMTL,
    PCGrad,
    Random,
    Sum,
    TrimmedMean,
    UPGrad,
)
from jacobite.multiobjective.aggregators._base import Aggregator

Maker = Callable[[torch.Tensor], Aggregator]


def _uniform(J: torch.Tensor) -> Constant:
    return Constant(torch.full((J.shape[0],), 1.0 / J.shape[0], dtype=J.dtype))


#: the aggregators that accept any number of rows
MAKERS: dict[str, Maker] = {
    "UPGrad": lambda J: UPGrad(), "DualProj": lambda J: DualProj(), "MGDA": lambda J: MGDA(),
    "CAGrad": lambda J: CAGrad(c=0.5), "AlignedMTL": lambda J: AlignedMTL(),
    "AlignedMTL-median": lambda J: AlignedMTL(scale_mode="median"),
    "AlignedMTL-rmse": lambda J: AlignedMTL(scale_mode="rmse"), "ConFIG": lambda J: ConFIG(),
    "Constant": _uniform, "GradDrop": lambda J: GradDrop(), "IMTLG": lambda J: IMTLG(),
    "Mean": lambda J: Mean(), "PCGrad": lambda J: PCGrad(), "Random": lambda J: Random(),
    "Sum": lambda J: Sum(), "NashMTL": lambda J: NashMTL(n_tasks=J.shape[0]),
}
#: the robust aggregators, which need at least two rows
ROWS_2: dict[str, Maker] = {"Krum": lambda J: Krum(n_byzantine=1),
                            "TrimmedMean": lambda J: TrimmedMean(1)}
