"""Every per-sample entry point on every architecture of the zoo, against torch.func.

The reference for one sample ``x`` is ``model(x[None])[0]`` (each output tensor's first row),
differentiated by ``torch.func.jacrev`` in a plain loop over the samples (no vmap). An
architecture/entry-point pair listed in :data:`REFUSED` must raise that typed error instead
(integer token ids have no input Jacobian; a dict output is not one logits tensor).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jacrev
from torch.utils._pytree import tree_map

import jacobite
from jacobite.analysis import layer_report, spectral_norm
from jacobite.analysis.adversarial import fgsm, pgd
from jacobite.analysis.sensitivity import input_jacobians, saliency, sensitive_directions
from jacobite.cli.commands.inspect import compute
from jacobite.errors import DtypeError, JacobiteError, ModuleStateError, ShapeError
from jacobite.nn.regularization import jacobian_penalty

from .models import DT, ZOO, Arch

TOL = {"rtol": 1e-9, "atol": 1e-10}
ENTRIES = ("batch_jacobian", "module_jacobian", "spectral_norm", "layer_report",
           "input_jacobians", "saliency", "sensitive_directions", "fgsm", "jacobian_penalty",
           "inspect")
_INPUT = ("batch_jacobian", "spectral_norm", "input_jacobians", "saliency",
          "sensitive_directions", "fgsm", "jacobian_penalty", "inspect")
_ONE_TENSOR = ("saliency", "fgsm", "jacobian_penalty")
REFUSED: dict[tuple[str, str], type[JacobiteError]] = {
    **{("embedding", e): DtypeError for e in _INPUT},
    **{("dict_output", e): ShapeError for e in _ONE_TENSOR},
}


def per_sample(model: torch.nn.Module) -> Any:
    return lambda x: tree_map(lambda t: t[0], model(x[None]))


def ref_jacobians(model: torch.nn.Module, X: torch.Tensor) -> Any:
    """Per-sample Jacobians, one jacrev per sample."""
    each = [jacrev(per_sample(model))(x) for x in X]
    return tree_map(lambda *ts: torch.stack(ts), *each)


def flat_matrix(J: Any, n: int) -> torch.Tensor:
    """One sample's Jacobian (a tensor or a dict of them) as an (m, n) matrix."""
    leaves = list(J.values()) if isinstance(J, dict) else [J]
    return torch.cat([t.reshape(-1, n) for t in leaves])


def svdvals(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(flat_matrix(jacrev(per_sample(model))(x), x.numel())).detach()


def run_batch_jacobian(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    got = jacobite.batch_jacobian(model, X)
    torch.testing.assert_close(got, ref_jacobians(model, X), **TOL)


def run_module_jacobian(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    params = {k: v.detach() for k, v in model.named_parameters()}
    got = jacobite.module_jacobian(model, X[0], batched_model=True)
    ref = jacrev(lambda p: tree_map(lambda t: t[0], functional_call(model, p, (X[:1],))))(params)
    torch.testing.assert_close(got, ref, **TOL)
    # the batch as given: the Jacobian of the whole batch's output
    whole = jacobite.module_jacobian(model, X)
    torch.testing.assert_close(whole, jacrev(lambda p: functional_call(model, p, (X,)))(params),
                               **TOL)


def run_spectral_norm(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    got = spectral_norm(model, X[0], batched_model=True)
    assert got.shape == ()
    assert float(got.detach()) == pytest.approx(float(svdvals(model, X[0])[0]), rel=1e-8)


def run_layer_report(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    rep = layer_report(model, X)
    assert rep.rows and all(r.spectral_norm >= 0 for r in rep.rows)
    if arch.tokens:  # the input is not differentiable: no whole-network norm
        assert math.isnan(rep.total)
        return
    # the batch's Jacobian is block diagonal: its norm is the largest per-sample norm
    ref = max(float(svdvals(model, x)[0]) for x in X)
    assert rep.total == pytest.approx(ref, rel=1e-6)


def run_input_jacobians(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    got = input_jacobians(model, X)
    torch.testing.assert_close(got, ref_jacobians(model, X), **TOL)


def run_saliency(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    got = saliency(model, X, target=1)
    torch.testing.assert_close(got, ref_jacobians(model, X)[:, 1].abs(), **TOL)


def run_sensitive_directions(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    for method in ("dense", "matrix-free"):
        d = sensitive_directions(model, X[0], k=2, method=method)
        torch.testing.assert_close(d.values, svdvals(model, X[0])[:2], rtol=1e-7, atol=1e-10)


def run_fgsm(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    y = torch.tensor([0, 1, 2])
    got = fgsm(model, X, y, eps=0.1)
    g = torch.stack([grad(lambda v, t=t: F.cross_entropy(model(v[None]), t[None]))(x)
                     for x, t in zip(X, y, strict=True)])
    keep = g.abs() > 1e-12  # the sign of a gradient entry that is zero up to rounding is noise
    torch.testing.assert_close(got[keep], (X + 0.1 * g.sign())[keep], **TOL)
    one_step = pgd(model, X, y, eps=0.1, alpha=0.1, steps=1, random_start=False)
    torch.testing.assert_close(one_step[keep], got[keep], **TOL)


def run_jacobian_penalty(arch: Arch, model: torch.nn.Module, X: torch.Tensor) -> None:
    got = jacobian_penalty(model, X, nproj=-1)
    ref = 0.5 * ref_jacobians(model, X).pow(2).sum() / X.shape[0]
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-9)


def run_inspect(arch: Arch, model: torch.nn.Module, X: torch.Tensor, tmp: Path) -> None:
    src = tmp / "zoo_model.py"
    src.write_text("from tests.zoo.models import ZOO\n\n\ndef make():\n"
                   f"    return next(a for a in ZOO if a.name == {arch.name!r}).make()\n")
    shape = ",".join(map(str, arch.sample_shape))
    data, _ = compute(f"{src}:make", shape, batch=1, seed=3)
    x = torch.randn((1, *arch.sample_shape), generator=torch.Generator().manual_seed(3),
                    dtype=DT)
    assert data["total"] == pytest.approx(float(svdvals(model, x[0])[0]), rel=1e-6)


# the reference's jacrev runs PyTorch's fused CPU attention, which vmap batches by a loop
@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("arch", ZOO, ids=lambda a: a.name)
def test_zoo(arch: Arch, entry: str, tmp_path: Path) -> None:
    model, X = arch.make(), arch.batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    args: tuple[Any, ...] = (arch, model, X, tmp_path) if entry == "inspect" else (arch, model, X)
    expected = REFUSED.get((arch.name, entry))
    if expected is None:
        globals()[f"run_{entry}"](*args)
    else:
        with pytest.raises(expected, match=r"embedding|Embedding|tensor|logits"):
            globals()[f"run_{entry}"](*args)
    assert not model.training
    for k, v in model.state_dict().items():  # nothing changed the model
        assert torch.equal(v, state[k]), k


def test_the_zoo_is_large_enough() -> None:
    assert len(ZOO) >= 12


_MATRIX_FREE = ("spectral_norm", "layer_report", "input_jacobians", "saliency",
                "sensitive_directions")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e != "inspect"])
@pytest.mark.parametrize("name", ["batchnorm", "resnet", "mlp", "transformer"])
def test_training_mode_is_refused_or_per_sample(name: str, entry: str) -> None:
    """BatchNorm in training mode mixes samples: every entry point refuses it. Dropout in
    training mode: the tools that combine many products refuse it; the others differentiate
    the drawn mask (batch_jacobian one per sample)."""
    arch = next(a for a in ZOO if a.name == name)
    model, X = arch.make().train(), arch.batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if name in ("batchnorm", "resnet") or entry in _MATRIX_FREE:
        with pytest.raises(ModuleStateError, match=r"model\.eval\(\)|module\.eval\(\)"):
            globals()[f"run_{entry}"](arch, model, X)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_inspect_puts_a_training_model_in_eval_mode(tmp_path: Path) -> None:
    arch = next(a for a in ZOO if a.name == "batchnorm")
    model = arch.make()
    src = tmp_path / "train_model.py"
    src.write_text("from tests.zoo.models import ZOO\n\n\ndef make():\n"
                   "    return next(a for a in ZOO if a.name == 'batchnorm').make().train()\n")
    data, _ = compute(f"{src}:make", "4", seed=3)
    x = torch.randn((1, 4), generator=torch.Generator().manual_seed(3), dtype=DT)
    assert data["total"] == pytest.approx(float(svdvals(model, x[0])[0]), rel=1e-6)


def test_embedding_model_differentiates_the_embedding_output() -> None:
    """The documented route for token ids: split the model after the embedding."""
    arch = next(a for a in ZOO if a.name == "embedding")
    model, tokens = arch.make(), arch.batch()
    E = model.embed(tokens).detach()  # (B, L, d): what the rest of the model sees

    def head(e: torch.Tensor) -> torch.Tensor:  # the rest of the model, on a batch
        return model.head(e.mean(dim=1))

    J = jacobite.batch_jacobian(head, E, batched_model=True)
    ref = torch.stack([jacrev(lambda e: head(e[None])[0])(e) for e in E])
    torch.testing.assert_close(J, ref, **TOL)
    with pytest.raises(DtypeError, match="embedding output"):
        jacobite.batch_jacobian(model, tokens)
