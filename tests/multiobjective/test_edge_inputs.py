"""Every aggregator answers half-precision Jacobians and Gramians (solved in float32, returned
in the input's dtype) and Jacobians with no columns (an empty update)."""

from __future__ import annotations

import pytest
import torch

from .aggregator_table import MAKERS as _ANY_ROWS
from .aggregator_table import ROWS_2

MAKERS = {name: make for name, make in {**_ANY_ROWS, **ROWS_2}.items()
          if name not in ("Constant", "AlignedMTL-median", "AlignedMTL-rmse")}
DETERMINISTIC = ["ConFIG", "IMTLG", "AlignedMTL", "MGDA", "UPGrad", "DualProj", "CAGrad",
                 "Krum", "TrimmedMean", "Mean", "Sum"]


def _J() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randn(4, 6, generator=g) + torch.tensor([1.0, 0.5, 0, 0, 0, 0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(MAKERS))
def test_half_precision_has_an_answer_in_its_own_dtype(name: str, dtype: torch.dtype) -> None:
    d = MAKERS[name](_J())(_J().to(dtype))
    assert d.dtype == dtype and d.shape == (6,) and bool(torch.isfinite(d).all())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_half_precision_is_the_float32_answer_rounded(name: str) -> None:
    J = _J().half()
    torch.testing.assert_close(MAKERS[name](J)(J), MAKERS[name](J)(J.float()).half())


@pytest.mark.parametrize("name", list(MAKERS))
def test_no_columns_gives_an_empty_update(name: str) -> None:
    J = torch.zeros(3, 0, dtype=torch.float64)
    d = MAKERS[name](J)(J)
    assert d.shape == (0,) and d.dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "CAGrad", "IMTLG", "AlignedMTL"])
def test_half_precision_gramian_gives_the_float32_weights_rounded(name: str,
                                                                  dtype: torch.dtype) -> None:
    J = _J()
    G = (J @ J.T).to(dtype)
    agg = MAKERS[name](J)
    torch.testing.assert_close(agg.weights(G), agg.weights(G.float()).to(dtype))


@pytest.mark.parametrize("scale", [1e300, 1e200, 1e-200, 1e-300])
@pytest.mark.parametrize("name", [n for n in DETERMINISTIC if n != "CAGrad"])
def test_float64_jacobians_whose_gramian_over_or_underflows_scale_linearly(name: str,
                                                                         scale: float) -> None:
    # ‖gᵢ‖² leaves float64 beyond about 1e154 (Inf) or below 1e-154 (0): the weights, which do
    # not depend on J's scale, come from J times a power of two; the answer is the scale-1
    # answer times the scale (float64 oracle)
    J = _J().to(torch.float64)
    make = {**_ANY_ROWS, **ROWS_2}[name]
    want = make(J)(J) * scale
    got = make(J)(J * scale)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)
