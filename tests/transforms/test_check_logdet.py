"""check_logdet: no false alarms on correct transforms of each flow library, and seeded bugs
caught with the right diagnosis (exact values from a per-sample torch.func Jacobian)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import distributions as D

import jacobite
from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobianMismatchError,
    LogDetMismatchError,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.transforms.flows import LogDetCheck, check_logdet

F64 = torch.float64


def _x(b: int = 8, d: int = 4, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, d, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _torch_transforms() -> dict[str, D.Transform]:
    scale = torch.tensor([2.0, -3.0, 0.5, 1.5], dtype=F64)
    return {
        "affine": D.AffineTransform(torch.tensor(0.3, dtype=F64), scale),
        "exp": D.ExpTransform(),
        "tanh": D.TanhTransform(),
        "sigmoid": D.SigmoidTransform(),
        "composed": D.ComposeTransform([D.TanhTransform(), D.AffineTransform(1.0, 2.0),
                                        D.ExpTransform()]),
    }


@pytest.mark.parametrize("name", sorted(_torch_transforms()))
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_torch_distributions_transforms_pass(name: str, dtype: torch.dtype) -> None:
    res = check_logdet(_torch_transforms()[name], _x(dtype=dtype))
    assert res.ok and res.diagnosis == "ok" and res.kind == "torch.distributions", res.summary()


def test_exact_matches_torch_func() -> None:
    """The exact values equal slogdet of torch.func.jacrev per sample."""
    t = D.ComposeTransform([D.TanhTransform(), D.AffineTransform(0.0, 3.0)])
    x = _x(dtype=F64)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: t(v)))(x)
    res = check_logdet(t, x)
    torch.testing.assert_close(res.exact, torch.linalg.slogdet(jac)[1])
    torch.testing.assert_close(res.claimed, t.log_abs_det_jacobian(x, t(x)).sum(1))


def _zuko() -> dict[str, Any]:
    zuko = pytest.importorskip("zuko")
    torch.manual_seed(1)
    return {"MAF": zuko.flows.MAF(4, transforms=3, hidden_features=[16, 16]),
            "NSF": zuko.flows.NSF(4, transforms=3, hidden_features=[16, 16]),
            "RealNVP": zuko.flows.RealNVP(4, transforms=3, hidden_features=[16, 16])}


@pytest.mark.parametrize("name", ["MAF", "NSF", "RealNVP"])
def test_zuko_flows_pass(name: str) -> None:
    flow = _zuko()[name]
    x = _x()
    for t in (flow, flow.transform, flow.transform()):
        res = check_logdet(t, x)
        assert res.ok, res.summary()
    assert check_logdet(flow.transform(), x).kind == "zuko"


def _nflows() -> dict[str, Any]:
    nt = pytest.importorskip("nflows.transforms")
    nets = pytest.importorskip("nflows.nn.nets")
    torch.manual_seed(2)
    mask = torch.tensor([1, 0, 1, 0])
    return {
        "maf": nt.MaskedAffineAutoregressiveTransform(features=4, hidden_features=16),
        "coupling": nt.AffineCouplingTransform(
            mask, lambda i, o: nets.ResidualNet(i, o, hidden_features=16)),
    }


def _normflows() -> dict[str, Any]:
    nf = pytest.importorskip("normflows")
    torch.manual_seed(3)
    return {
        "planar": nf.flows.Planar((4,)),
        "masked-affine": nf.flows.MaskedAffineFlow(torch.tensor([1.0, 0, 1, 0]),
                                                   nf.nets.MLP([4, 16, 4]),
                                                   nf.nets.MLP([4, 16, 4])),
        "coupling": nf.flows.AffineCouplingBlock(nf.nets.MLP([2, 16, 4])),
    }


def _freia() -> dict[str, Any]:
    ff = pytest.importorskip("FrEIA.framework")
    fm = pytest.importorskip("FrEIA.modules")
    torch.manual_seed(4)

    def sub(i: int, o: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(i, 16), torch.nn.Tanh(),
                                   torch.nn.Linear(16, o))

    inn = ff.SequenceINN(4)
    inn.append(fm.AllInOneBlock, subnet_constructor=sub)
    inn.append(fm.GLOWCouplingBlock, subnet_constructor=sub)
    return {"all-in-one": fm.AllInOneBlock([(4,)], subnet_constructor=sub),
            "glow": fm.GLOWCouplingBlock([(4,)], subnet_constructor=sub),
            "sequence": inn}


LIBRARIES: dict[str, Callable[[], dict[str, Any]]] = {
    "nflows": _nflows, "normflows": _normflows, "FrEIA": _freia}


@pytest.mark.parametrize(("library", "name"), [
    ("nflows", "maf"), ("nflows", "coupling"), ("normflows", "planar"),
    ("normflows", "masked-affine"), ("normflows", "coupling"), ("FrEIA", "all-in-one"),
    ("FrEIA", "glow"), ("FrEIA", "sequence")])
def test_library_modules_pass(library: str, name: str) -> None:
    t = LIBRARIES[library]()[name]
    for seed in range(3):
        res = check_logdet(t, _x(b=6, seed=seed))
        assert res.ok and res.kind == library, res.summary()


def test_module_is_left_unchanged() -> None:
    t = _nflows()["maf"]
    before = {k: v.clone() for k, v in t.state_dict().items()}
    check_logdet(t, _x())
    after = t.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype
               for k in before)


# ---- seeded bugs ----------------------------------------------------------------------------

def _buggy(t: D.Transform, bug: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    def fwd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = t(x)
        return y, bug(t.log_abs_det_jacobian(x, y).sum(1))
    return fwd


TANH_AFFINE = D.ComposeTransform([D.TanhTransform(), D.AffineTransform(0.5, 2.0)])


def _one_off(ladj: torch.Tensor) -> torch.Tensor:
    return ladj + (torch.arange(ladj.shape[0]) == 3).to(ladj.dtype) * 0.7


@pytest.mark.parametrize(("bug", "diagnosis", "parameter"), [
    (lambda ladj: -ladj, "sign flipped", None),
    (lambda ladj: ladj - 4 * 0.6931471805599453, "constant offset", -4 * 0.6931471805599453),
    (lambda ladj: 2 * ladj, "scale", 2.0),
    (_one_off, "wrong in some samples", None),
    (lambda ladj: ladj.flip(0) + 1.0, "wrong", None),
])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_seeded_bugs_are_named(bug: Callable[[torch.Tensor], torch.Tensor], diagnosis: str,
                               parameter: float | None, dtype: torch.dtype) -> None:
    res = check_logdet(_buggy(TANH_AFFINE, bug), _x(dtype=dtype))
    assert not res.ok and res.diagnosis == diagnosis, res.summary()
    if parameter is not None:
        assert res.parameter == pytest.approx(parameter, rel=1e-3)
    if diagnosis == "wrong in some samples":
        assert res.bad == (3,) and res.worst == 3 and "samples 3" in res.summary()
        assert res.error == pytest.approx(0.7, rel=1e-3)
    with pytest.raises(LogDetMismatchError, match=diagnosis):
        res.raise_if_bad()


def test_library_flow_with_flipped_sign() -> None:
    t = _nflows()["maf"]

    def inverse_ladj(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, ladj = t(x)
        return y, -ladj

    with torch.no_grad():  # a nonzero log-det: scale the last layer's weights up
        for p in t.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5)))
    res = check_logdet(inverse_ladj, _x())
    assert res.diagnosis == "sign flipped", res.summary()
    with pytest.raises(JacobianMismatchError, match="forward map"):
        res.raise_if_bad()


def test_result_record() -> None:
    res = check_logdet(D.ExpTransform(), _x(b=3, dtype=F64))
    assert isinstance(res, LogDetCheck) and str(res) == res.summary()
    assert res.errors.shape == res.claimed.shape == res.exact.shape == (3,)
    assert jacobite.check_logdet is check_logdet and jacobite.LogDetCheck is LogDetCheck
    assert jacobite.transforms.check_logdet is check_logdet
    res.raise_if_bad()
    with pytest.raises(AttributeError):
        res.ok = False  # type: ignore[misc]


def test_images_are_flattened_per_sample() -> None:
    x = torch.randn(2, 2, 3, dtype=F64)
    assert check_logdet(D.TanhTransform(), x).ok


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), offset=st.floats(0.01, 50.0), sign=st.sampled_from([-1, 1]))
def test_dense_affine_maps_and_their_offsets(seed: int, offset: float, sign: int) -> None:
    """y = A x + b with log|det A| from numpy; a dropped constant is found with its value."""
    np = pytest.importorskip("numpy")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, dtype=F64, generator=g) + 2 * torch.eye(3, dtype=F64)
    ref = float(np.log(abs(np.linalg.det(a.numpy()))))

    def affine(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ a.T + 1.0, torch.full((x.shape[0],), ref, dtype=x.dtype)

    x = torch.randn(5, 3, dtype=F64, generator=g)
    assert check_logdet(affine, x).ok
    torch.testing.assert_close(check_logdet(affine, x).exact, torch.full((5,), ref, dtype=F64))
    res = check_logdet(lambda v: (affine(v)[0], affine(v)[1] + sign * offset), x)
    assert res.diagnosis == "constant offset", res.summary()
    assert res.parameter == pytest.approx(sign * offset, rel=1e-9)


def test_float32_parameters_fall_back_to_the_input_precision() -> None:
    w = torch.tensor([[2.0, 0.5], [0.0, 3.0]])  # float32: a float64 input cannot be multiplied

    def lin(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ w.T, torch.full((x.shape[0],), float(torch.log(torch.tensor(6.0))))

    res = check_logdet(lin, _x(b=4, d=2))
    assert res.ok, res.summary()


# ---- bad arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error"), [
    ({"x": "abc"}, ArgumentTypeError),
    ({"x": torch.ones(2, 3, dtype=torch.int64)}, DtypeError),
    ({"x": torch.ones(3)}, ShapeError),
    ({"x": torch.tensor([[0.5, float("nan")]])}, NonFiniteInputError),
    ({"transform": 3}, ArgumentTypeError),
    ({"transform": lambda x: x}, jacobite.errors.OutputTypeError),
    ({"transform": lambda x: (x[:, :1], x.sum(1))}, ShapeError),
    ({"transform": lambda x: (x, x.sum())}, None),  # a scalar log-det is broadcast
    ({"kind": "no-such-kind"}, InvalidOptionError),
    ({"rtol": -1.0}, InvalidOptionError),
    ({"atol": float("nan")}, InvalidOptionError),
])
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception] | None) -> None:
    args: dict[str, Any] = {"transform": D.ExpTransform(), "x": torch.zeros(2, 3)} | kwargs
    if error is None:
        check_logdet(**args)
        return
    with pytest.raises(error):
        check_logdet(**args)


def test_report_of_a_trainable_flow_holds_plain_tensors_and_warns_nothing() -> None:
    import warnings

    flow = _zuko()["MAF"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = check_logdet(flow, _x())
    assert res.ok and not res.exact.requires_grad and not res.errors.requires_grad
