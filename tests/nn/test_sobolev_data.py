"""sobolev_data (training targets) and check_sobolev_data (supplied data against f).

Targets are checked against analytic Jacobians and torch.func.jacrev; the check against data
with seeded bugs, each flagged with its diagnosis at exactly the corrupted samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import jacrev, vmap

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InconsistentDataError,
    InvalidOptionError,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.nn import DataCheck, SobolevData, check_sobolev_data, sobolev_data, sobolev_loss

F64 = torch.float64
Map = Callable[[torch.Tensor], torch.Tensor]


def rosenbrock(v: torch.Tensor) -> torch.Tensor:
    return (1 - v[:, 0]) ** 2 + 100 * (v[:, 1] - v[:, 0] ** 2) ** 2


def rosenbrock_grad(v: torch.Tensor) -> torch.Tensor:
    a, b = v[:, 0], v[:, 1]
    return torch.stack([-2 * (1 - a) - 400 * a * (b - a ** 2), 200 * (b - a ** 2)], dim=1)


def three_to_two(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([v[:, 0] * v[:, 1] * v[:, 2], v[:, 0] ** 2 + torch.sin(v[:, 2])], dim=1)


def three_to_two_jac(v: torch.Tensor) -> torch.Tensor:
    a, b, c = v[:, 0], v[:, 1], v[:, 2]
    z = torch.zeros_like(a)
    return torch.stack([torch.stack([b * c, a * c, a * b], 1),
                        torch.stack([2 * a, z, torch.cos(c)], 1)], 1)


def square(v: torch.Tensor) -> torch.Tensor:
    """R³ → R³ with a non-symmetric Jacobian at every sample used below."""
    return torch.stack([v[:, 0] * v[:, 1], torch.sin(v[:, 1]) + 3 * v[:, 2],
                        v[:, 0] ** 3 - v[:, 2]], dim=1)


def points(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, generator=g, dtype=F64) * 2 + 0.25


# ---- targets ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ad", "numeric", "auto"])
def test_rosenbrock_gradient_matches_the_analytic_one(method: Any) -> None:
    x = points(6, 2)
    d = sobolev_data(rosenbrock, x, method=method)
    assert isinstance(d, SobolevData)
    assert d.y.shape == (6,) and d.dydx.shape == (6, 2)
    torch.testing.assert_close(d.y, rosenbrock(x))
    torch.testing.assert_close(d.dydx, rosenbrock_grad(x), rtol=1e-10, atol=1e-10)
    assert d.method == ("numeric" if method == "numeric" else "ad")
    assert (d.error is None) == (d.method == "ad")


@pytest.mark.parametrize("method", ["ad", "numeric"])
def test_x_sin_x_on_a_vector_batch(method: Any) -> None:
    x = torch.linspace(-2, 2, 7, dtype=F64)
    d = sobolev_data(lambda v: v * torch.sin(v), x, method=method)
    assert d.dydx.shape == (7, 1)
    torch.testing.assert_close(d.dydx[:, 0], torch.sin(x) + x * torch.cos(x), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("method", ["ad", "numeric"])
@pytest.mark.parametrize("batched", [True, False])
def test_three_to_two_map(method: Any, batched: bool) -> None:
    x = points(5, 3, seed=1)
    f = three_to_two if batched else (lambda s: three_to_two(s[None])[0])
    d = sobolev_data(f, x, method=method, batched_model=batched)
    assert d.y.shape == (5, 2) and d.dydx.shape == (5, 2, 3)
    torch.testing.assert_close(d.dydx, three_to_two_jac(x), rtol=1e-10, atol=1e-12)


def test_module_targets_equal_jacrev_per_sample() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3)).double()
    x = torch.randn(10, 4, dtype=F64)
    d = sobolev_data(model, x)
    expected = vmap(jacrev(lambda s: model(s[None])[0]))(x)
    assert d.method == "ad" and not d.dydx.requires_grad and not d.y.requires_grad
    torch.testing.assert_close(d.dydx, expected, rtol=1e-12, atol=1e-14)


def test_numeric_error_estimate_covers_the_true_error() -> None:
    x = points(8, 3, seed=2)
    d = sobolev_data(three_to_two, x, method="numeric")
    true_error = (d.dydx - three_to_two_jac(x)).abs()
    assert d.error is not None and d.error.shape == d.dydx.shape
    assert bool((true_error <= d.error + 1e-15).all()), (true_error - d.error).max()
    assert float(d.error.max()) < 1e-9


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy ufuncs on a torch tensor
def test_numpy_black_box_goes_numeric_and_returns_numpy(caplog: pytest.LogCaptureFixture) -> None:
    def f(v: np.ndarray) -> np.ndarray:
        return np.stack([np.exp(v[:, 0]) * v[:, 1], np.cos(v[:, 1])], axis=1)

    x = points(4, 2, seed=3).numpy()
    with caplog.at_level(logging.DEBUG, logger="jacobite.nn.sobolev.data"):
        d = sobolev_data(f, x)
    assert d.method == "numeric" and "finite differences" in caplog.text
    assert isinstance(d.dydx, np.ndarray) and d.dydx.dtype == np.float64
    a, b = x[:, 0], x[:, 1]
    exact = np.stack([np.stack([np.exp(a) * b, np.exp(a)], 1),
                      np.stack([0 * a, -np.sin(b)], 1)], 1)
    np.testing.assert_allclose(d.dydx, exact, rtol=1e-10, atol=1e-12)
    with pytest.raises(UnsupportedOperationError):
        sobolev_data(f, x, method="ad")


def test_auto_sends_a_detaching_function_to_finite_differences() -> None:
    x = points(3, 2)
    d = sobolev_data(lambda v: torch.sin(v.detach()), x)
    assert d.method == "numeric"
    torch.testing.assert_close(d.dydx, torch.diag_embed(torch.cos(x)), rtol=1e-10, atol=1e-12)


def test_numpy_input_is_float64_and_torch_f_still_gets_ad() -> None:
    x = [[1, 2], [3, 4]]  # ints in a list: computed in float64
    d = sobolev_data(rosenbrock, x)
    assert d.method == "ad" and isinstance(d.y, np.ndarray) and d.y.dtype == np.float64
    np.testing.assert_allclose(d.dydx, rosenbrock_grad(torch.tensor(x, dtype=F64)).numpy())


@pytest.mark.parametrize(("f", "x"), [
    (rosenbrock, points(5, 2)), (three_to_two, points(5, 3)),
    (lambda v: v * torch.sin(v), torch.linspace(0.1, 2, 5, dtype=F64)),
])
def test_targets_fit_sobolev_loss_and_the_true_function_has_zero_loss(
        f: Map, x: torch.Tensor) -> None:
    d = sobolev_data(f, x, method="numeric")
    res = sobolev_loss(f, x, d.y, d.dydx)
    assert float(res.value.detach()) == 0.0 and float(res.jacobian.detach()) < 1e-18


# ---- checks of supplied data -------------------------------------------------------------

B = 12
BAD = [2, 5, 9]


def _clean(f: Map = square) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = points(B, 3, seed=4)
    d = sobolev_data(f, x, method="ad")
    return x, d.y, d.dydx


def test_clean_data_passes() -> None:
    x, y, dydx = _clean()
    res = check_sobolev_data(square, x, y, dydx)
    assert isinstance(res, DataCheck) and res.ok and res.bad.tolist() == []
    assert res.diagnosis == {} and res.max_error < 1e-9 and res.max_value_error == 0
    assert "all 12 samples agree" in str(res)
    assert res.raise_if_bad() is res


def _corrupt(dydx: torch.Tensor, fix: Map) -> torch.Tensor:
    out = dydx.clone()
    for i in BAD:
        out[i] = fix(out[i].clone())
    return out


@pytest.mark.parametrize(("kind", "corrupt", "words"), [
    ("zeros", torch.zeros_like, "NaN"),
    ("sign", lambda J: -J, "negate"),
    ("transposed", lambda J: J.T, "transpose"),
    ("scaled", lambda J: J * math.pi / 180, "π/180"),
    ("swapped_columns", lambda J: J[:, [1, 0, 2]], "order = [1, 0, 2]"),
    ("swapped_rows", lambda J: J[[0, 2, 1]], "order = [0, 2, 1]"),
])
def test_seeded_bad_partials_are_flagged_and_diagnosed(
        kind: str, corrupt: Map, words: str) -> None:
    x, y, dydx = _clean()
    res = check_sobolev_data(square, x, y, _corrupt(dydx, corrupt))
    assert not res.ok and res.bad.tolist() == BAD
    assert res.diagnosis == dict.fromkeys(BAD, kind)
    with pytest.raises(InconsistentDataError, match=kind) as info:
        res.raise_if_bad()
    assert words in str(info.value) and isinstance(info.value, ValueError)


def test_a_batch_with_every_kind_of_bug_gets_each_sample_right() -> None:
    x, y, dydx = _clean()
    bugs: dict[int, tuple[str, Map]] = {
        1: ("swapped_rows", lambda J: J[[0, 2, 1]]), 3: ("sign", lambda J: -J),
        4: ("swapped_columns", lambda J: J[:, [2, 1, 0]]), 6: ("zeros", torch.zeros_like),
        7: ("transposed", lambda J: J.T), 8: ("scaled", lambda J: 180 / math.pi * J),
        10: ("mismatch", lambda J: J + torch.eye(3, dtype=F64)),
    }
    bad = dydx.clone()
    for i, (_, corrupt) in bugs.items():
        bad[i] = corrupt(bad[i].clone())
    res = check_sobolev_data(square, x, y, bad)
    assert res.diagnosis == {i: kind for i, (kind, _) in bugs.items()}
    assert "order = [2, 1, 0]" in str(res) and "multiply them by π/180" in str(res)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), picks=st.sets(st.integers(0, B - 1), max_size=B),
       factor=st.sampled_from([-1.0, math.pi / 180, 2.0]))
def test_exactly_the_corrupted_samples_are_flagged(seed: int, picks: set[int],
                                                   factor: float) -> None:
    x = points(B, 3, seed=seed % 1000)
    d = sobolev_data(square, x, method="ad")
    bad = d.dydx.clone()
    bad[sorted(picks)] *= factor
    res = check_sobolev_data(square, x, d.y, bad)
    assert res.bad.tolist() == sorted(picks)
    assert set(res.diagnosis.values()) <= {"sign" if factor == -1 else "scaled"}


def test_corrupted_values_are_flagged() -> None:
    x, y, dydx = _clean()
    y = y.clone()
    y[BAD, 1] += 1e-3
    res = check_sobolev_data(square, x, y, dydx)
    assert res.bad.tolist() == BAD and res.diagnosis == dict.fromkeys(BAD, "value")
    assert res.max_value_error == pytest.approx(1e-3, rel=1e-6)
    dydx = _corrupt(dydx, lambda J: -J)
    assert check_sobolev_data(square, x, y, dydx).diagnosis == dict.fromkeys(BAD, "value+sign")


def test_rows_out_of_order_are_diagnosed_as_shuffled() -> None:
    x, y, dydx = _clean()
    order = list(range(B))
    order[2], order[9] = 9, 2
    res = check_sobolev_data(square, x, y[order], dydx)
    assert res.diagnosis == {2: "shuffled", 9: "shuffled"} and "y[2] ≈ f(x[9])" in str(res)
    res = check_sobolev_data(square, x, y, dydx[order])
    assert res.diagnosis == {2: "shuffled", 9: "shuffled"}
    assert "dydx[9] ≈ ∂f/∂x at x[2]" in str(res) or "dydx[2] ≈ ∂f/∂x at x[9]" in str(res)


def test_nan_values_are_wrong_values_not_shuffled_rows() -> None:
    x, y, dydx = _clean()
    y = y.clone()
    y[4] = float("nan")
    assert check_sobolev_data(square, x, y, dydx).diagnosis == {4: "value"}


def test_transposed_layout_with_a_flipped_sign_names_both_fixes() -> None:
    x, y, dydx = _clean(three_to_two)
    dydx = dydx.clone()
    dydx[1] *= -1
    res = check_sobolev_data(three_to_two, x, y, dydx.transpose(-1, -2))
    assert res.diagnosis[1] == "transposed+sign" and res.diagnosis[0] == "transposed"
    assert "transpose them" in str(res) and "then negate them" in str(res)


def test_jacobians_laid_out_n_by_m_read_as_transposed() -> None:
    x, y, dydx = _clean(three_to_two)
    res = check_sobolev_data(three_to_two, x, y, dydx.transpose(-1, -2))
    assert res.bad.tolist() == list(range(B))
    assert set(res.diagnosis.values()) == {"transposed"}
    with pytest.raises(InconsistentDataError, match=r"dydx\.transpose\(-1, -2\)"):
        res.raise_if_bad()


def test_missing_partials_are_skipped_and_a_wrong_one_is_a_mismatch() -> None:
    x, y, dydx = _clean(three_to_two)
    dydx = dydx.clone()
    dydx[0, 1, 2] = float("nan")
    assert check_sobolev_data(three_to_two, x, y, dydx).ok
    dydx[3, 0, 1] += 0.5
    res = check_sobolev_data(three_to_two, x, y, dydx)
    assert res.diagnosis == {3: "mismatch"} and "[0, 1]" in res.summary()
    torch.testing.assert_close(res.reference.dydx, three_to_two_jac(x), rtol=1e-10, atol=1e-12)


def test_tolerances_decide_what_is_flagged() -> None:
    x, y, dydx = _clean(three_to_two)
    noisy = dydx * (1 + 1e-4)
    assert not check_sobolev_data(three_to_two, x, y, noisy).ok
    assert check_sobolev_data(three_to_two, x, y, noisy, rtol=1e-3).ok


def test_numpy_black_box_data() -> None:
    def f(v: np.ndarray) -> np.ndarray:
        return np.sin(v).sum(axis=1)

    x = points(6, 2).numpy()
    y, dydx = f(x), np.cos(x)
    assert check_sobolev_data(f, x, y, dydx).ok
    assert check_sobolev_data(f, x, y, dydx[:, ::-1]).diagnosis == {
        i: "swapped_columns" for i in range(6)}


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), m=st.integers(1, 3),
       b=st.integers(1, 5))
def test_clean_data_from_random_smooth_maps_is_never_flagged(seed: int, n: int, m: int,
                                                              b: int) -> None:
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(n, 6, generator=g, dtype=F64)
    W2 = torch.randn(6, m, generator=g, dtype=F64)
    x = torch.randn(b, n, generator=g, dtype=F64) * 2

    def f(v: torch.Tensor) -> torch.Tensor:
        return torch.tanh(v @ W1) @ W2 + torch.sin(v).sum(1, keepdim=True)

    d = sobolev_data(f, x, method="ad")
    res = check_sobolev_data(f, x, d.y, d.dydx)
    assert res.ok, res.summary()


# ---- bad input ----------------------------------------------------------------------------

def test_bad_arguments_raise_typed_errors_naming_the_fix() -> None:
    x = points(3, 2)
    y, dydx = rosenbrock(x), rosenbrock_grad(x)
    with pytest.raises(ArgumentTypeError, match="callable"):
        sobolev_data("rosenbrock", x)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"\(B, n\)"):
        sobolev_data(rosenbrock, torch.ones(2, 2, 2, dtype=F64))
    with pytest.raises(ShapeError, match=r"\(3, m\) or \(3,\).*batched_model=False"):
        sobolev_data(lambda v: v[:, :, None] * v[:, None, :], x)
    with pytest.raises(ShapeError, match=r"one sample to shape \(m,\)"):
        sobolev_data(lambda s: torch.outer(s, s), x, batched_model=False, method="numeric")
    with pytest.raises(DtypeError, match=r"x\.double\(\)"):
        sobolev_data(rosenbrock, torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(NonFiniteInputError):
        sobolev_data(rosenbrock, torch.tensor([[1.0, math.nan]], dtype=F64))
    with pytest.raises(InvalidOptionError, match="method"):
        sobolev_data(rosenbrock, x, method="fd")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"y must have shape \(3,\)"):
        check_sobolev_data(rosenbrock, x, y[:2], dydx)
    with pytest.raises(ShapeError, match=r"dydx must have shape \(3, 2\) \(B, n\)"):
        check_sobolev_data(rosenbrock, x, y, dydx[:, :1])
    bn = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).double()
    for method in ("ad", "numeric"):
        with pytest.raises(ModuleStateError, match=r"eval\(\)"):
            sobolev_data(bn, x, method=method)
    with pytest.raises(InvalidOptionError, match="rtol"):
        check_sobolev_data(rosenbrock, x, y, dydx, rtol=-1.0)
