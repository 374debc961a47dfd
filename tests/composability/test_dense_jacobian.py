"""``jacobite.jacobian`` and ``value_and_jacobian`` under autograd, torch.func and compile."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev

import jacobite
from jacobite.errors import UnsupportedOperationError

from ._cases import BY_NAME, bind, loop_only
from ._harness import CONFIGS, DEVICES, DIFF_TRANSFORMS, MODES, Known, check, params

# ----------------------------------------------------------------------------- known failures
# One rule per bug in src/jacobite/dense; delete a rule when its fix lands (strict xfail).
KNOWN: tuple[Known, ...] = ()

GRID = ("matmul_chain", "dict_in")  # one tensor (fast lane) and one pytree (general engine)
SWEEP = ("sin", "tuple_out", "dict_out", "broadcast", "mlp_input", "conv1d")
SWEEP_CONFIGS = (("auto", "auto"), ("forward", None))


def _jacobian(case_name: str, mode: str, chunk, device: str, with_value: bool = False):
    case = BY_NAME[case_name]
    f, args_at, x = bind(case, device)

    def fn(t):
        if with_value:
            return jacobite.value_and_jacobian(f, *args_at(t), argnums=case.argnums, mode=mode,
                                               chunk_size=chunk)
        return jacobite.jacobian(f, *args_at(t), argnums=case.argnums, mode=mode,
                                 chunk_size=chunk)

    def ref(t):
        J = jacrev(f, argnums=case.argnums)(*args_at(t))
        return (f(*args_at(t)), J) if with_value else J

    return fn, ref, x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("jacobian", (*DIFF_TRANSFORMS, "vmap"), CONFIGS, GRID, KNOWN)
                         + params("jacobian", (*DIFF_TRANSFORMS, "vmap"), SWEEP_CONFIGS, SWEEP,
                                  KNOWN))
def test_jacobian(transform, mode, chunk, case, device):
    fn, ref, x = _jacobian(case, mode, chunk, device)
    check(transform, fn, ref, x, what=f"jacobian {case} {mode} {chunk}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("value_and_jacobian", (*DIFF_TRANSFORMS, "vmap"), CONFIGS,
                                ("matmul_chain",), KNOWN)
                         + params("value_and_jacobian", (*DIFF_TRANSFORMS, "vmap"),
                                  SWEEP_CONFIGS, ("tuple_out",), KNOWN))
def test_value_and_jacobian(transform, mode, chunk, case, device):
    fn, ref, x = _jacobian(case, mode, chunk, device, with_value=True)
    check(transform, fn, ref, x, what=f"value_and_jacobian {case} {mode} {chunk}")


@pytest.mark.parametrize(("path", "mode"), [("jacobian", "forward"), ("jacobian", "reverse"),
                                            ("jacobian", "auto"), ("value_and_jacobian", "auto")])
def test_compile(path, mode):
    fn, ref, x = _jacobian("matmul_chain", mode, "auto", "cpu",
                           with_value=path == "value_and_jacobian")
    check("compile", fn, ref, x, what=f"{path} {mode} compiled")


# ----------------------------------------------------------------------------- chunk_size=1


@pytest.mark.parametrize("mode", MODES)
def test_chunk_size_one_is_a_plain_loop(mode):
    x = torch.tensor([0.3, -0.1, 0.7], dtype=torch.float64)
    J = jacobite.jacobian(loop_only, x, mode=mode, chunk_size=1)
    torch.testing.assert_close(J, torch.diag(2.0 * torch.cos(x)), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- no_grad regions


def _no_grad_scale(x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        s = x.square().sum()  # a constant for differentiation, by the no_grad contract
    return x * s


def test_modes_agree_on_no_grad_regions():
    """Every mode gives reverse mode's answer (the no_grad part is a constant), or refuses."""
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    expected = jacrev(_no_grad_scale)(x)
    for mode in MODES:
        try:
            J = jacobite.jacobian(_no_grad_scale, x, mode=mode)
        except UnsupportedOperationError as exc:
            assert mode == "forward" and "reverse" in str(exc)
            continue
        torch.testing.assert_close(J, expected, rtol=1e-12, atol=1e-12, msg=mode)
