"""The NIST StRD nonlinear regression problems: parser, models in torch, residuals and LRE.

The 27 problems of https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml, each fitted from
two starting points. The data files are not part of the repository: they are read from a
directory (``--data DIR``, else ``$JACOBITE_NIST_DIR``, else ``../shared/data/nist_strd`` next
to the repository root).

    >>> from benchmarks.nist import MODELS, PROBLEMS, lre
    >>> len(PROBLEMS), set(PROBLEMS) == set(MODELS)
    (27, True)
    >>> lre([1.000001], [1.0]) > 5.99
    True

``model(x, b)`` evaluates the fitted function (for Nelson: of ``log y``); ``residual(problem)``
returns ``r(b) = response(y) - model(x, b)``, whose sum of squares at the certified parameters is
the certified residual sum of squares (``check_certified`` verifies it to about 10 digits).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "nist_strd"
ENV_VAR = "JACOBITE_NIST_DIR"

# NIST's own order: by level of difficulty (lower, average, higher), then as listed there.
PROBLEMS: tuple[str, ...] = (
    "Misra1a", "Chwirut2", "Chwirut1", "Lanczos3", "Gauss1", "Gauss2", "DanWood", "Misra1b",
    "Kirby2", "Hahn1", "Nelson", "MGH17", "Lanczos1", "Lanczos2", "Gauss3", "Misra1c", "Misra1d",
    "Roszman1", "ENSO",
    "MGH09", "Thurber", "BoxBOD", "Rat42", "MGH10", "Eckerle4", "Rat43", "Bennett5",
)

LRE_CAP = 11.0  # the certified values carry 11 significant digits

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Problem:
    """One NIST StRD nonlinear regression problem, as read from its ``.dat`` file.

    ``x`` is ``(n,)`` for one predictor and ``(n, k)`` for ``k`` predictors (only Nelson has
    two); every array is float64.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    start1: np.ndarray
    start2: np.ndarray
    certified: np.ndarray
    certified_sd: np.ndarray
    certified_rss: float
    residual_sd: float
    dof: int
    difficulty: str
    model_text: str
    path: Path | None = None

    @property
    def n_params(self) -> int:
        return int(self.certified.size)

    @property
    def n_obs(self) -> int:
        return int(self.y.size)

    @property
    def starts(self) -> tuple[np.ndarray, np.ndarray]:
        return self.start1, self.start2


# ---------------------------------------------------------------------------------------------
# Parsing

def parse(path: str | os.PathLike[str]) -> Problem:
    """Read one NIST StRD nonlinear regression ``.dat`` file.

    Raises ``ValueError`` naming the file when it does not have the expected layout (parameter
    table, certified statistics, data block whose size agrees with the header).
    """
    path = Path(path)
    lines = path.read_text().splitlines()

    def fail(why: str) -> ValueError:
        return ValueError(f"{path}: not a NIST StRD nonlinear regression file ({why})")

    text = "\n".join(lines)
    m = re.search(r"Dataset Name:\s*(\S+)", text)
    name = m.group(1) if m else path.stem

    m = re.search(r"^\s*(\d+)\s+Parameters", text, re.M)
    if not m:
        raise fail("no 'N Parameters' line")
    n_params = int(m.group(1))

    params: dict[int, list[float]] = {}
    pat = re.compile(rf"^\s*b(\d+)\s*=\s*({_NUM})\s+({_NUM})\s+({_NUM})\s+({_NUM})\s*$")
    for line in lines:
        pm = pat.match(line)
        if pm:
            params[int(pm.group(1))] = [float(pm.group(i)) for i in range(2, 6)]
    if sorted(params) != list(range(1, n_params + 1)):
        raise fail(f"expected parameter lines b1..b{n_params}, found {sorted(params)}")
    table = np.array([params[i] for i in range(1, n_params + 1)], dtype=np.float64)

    def stat(label: str) -> float:
        sm = re.search(rf"^{label}:\s*({_NUM})\s*$", text, re.M)
        if not sm:
            raise fail(f"no '{label}' line")
        return float(sm.group(1))

    rss = stat("Residual Sum of Squares")
    rsd = stat("Residual Standard Deviation")
    dof = int(stat("Degrees of Freedom"))
    n_obs = int(stat("Number of Observations"))

    m = re.search(r"(Lower|Average|Higher) Level of Difficulty", text)
    difficulty = m.group(1) if m else "?"

    model_lines: list[str] = []
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Model:")), None)
    if start is not None:
        for ln in lines[start + 1:]:
            if re.match(r"^\s*Starting [Vv]alues", ln):
                break
            s = ln.strip()
            if s and "Parameters" not in s:
                model_lines.append(s)
    model_text = " ".join(model_lines)

    header = next((i for i, ln in enumerate(lines) if re.match(r"^Data:\s+y\b", ln)), None)
    if header is None:
        raise fail("no 'Data:  y  x' header")
    columns = lines[header].split()[1:]
    rows = []
    for ln in lines[header + 1:]:
        if not ln.strip():
            continue
        try:
            row = [float(t) for t in ln.split()]
        except ValueError:
            raise fail(f"bad data line {ln.strip()!r}") from None
        if len(row) != len(columns):
            raise fail(f"data line {ln.strip()!r} does not have the {len(columns)} columns "
                       f"{columns}")
        rows.append(row)
    data = np.array(rows, dtype=np.float64).reshape(-1, len(columns))
    if data.shape[0] != n_obs:
        raise fail(f"{data.shape[0]} data rows but 'Number of Observations: {n_obs}'")
    m = re.search(r"Data\s+\(lines\s+(\d+)\s+to\s+(\d+)\)", text)
    if m and int(m.group(2)) - int(m.group(1)) + 1 != n_obs:
        raise fail(f"header says data on lines {m.group(1)} to {m.group(2)}, "
                   f"but there are {n_obs} observations")
    yi = columns.index("y")
    y = data[:, yi]
    x = np.delete(data, yi, axis=1)
    if x.shape[1] == 1:
        x = x[:, 0]
    return Problem(
        name=name, x=np.ascontiguousarray(x), y=np.ascontiguousarray(y),
        start1=table[:, 0].copy(), start2=table[:, 1].copy(),
        certified=table[:, 2].copy(), certified_sd=table[:, 3].copy(),
        certified_rss=rss, residual_sd=rsd, dof=dof, difficulty=difficulty,
        model_text=model_text, path=path,
    )


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$JACOBITE_NIST_DIR``, else the default."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_DIR


def available(path: str | os.PathLike[str] | None = None) -> bool:
    """True when the data directory holds at least one problem's ``.dat`` file."""
    d = data_dir(path)
    return d.is_dir() and any((d / f"{n}.dat").is_file() for n in PROBLEMS)


def select(only: Iterable[str] | None = None) -> list[str]:
    """Problem names in NIST order; ``only`` picks some (case-insensitive)."""
    if not only:
        return list(PROBLEMS)
    lower = {n.lower(): n for n in PROBLEMS}
    out = []
    for want in only:
        name = lower.get(want.removesuffix(".dat").lower())
        if name is None:
            raise ValueError(f"unknown NIST problem {want!r}; known: {', '.join(PROBLEMS)}")
        if name not in out:
            out.append(name)
    return out


def load(name: str, path: str | os.PathLike[str] | None = None) -> Problem:
    """Parse ``<data dir>/<name>.dat``."""
    return parse(data_dir(path) / f"{name}.dat")


def load_all(path: str | os.PathLike[str] | None = None,
             only: Iterable[str] | None = None) -> list[Problem]:
    """Parse every problem (or those in ``only``) that has a file in the data directory."""
    d = data_dir(path)
    return [parse(d / f"{n}.dat") for n in select(only) if (d / f"{n}.dat").is_file()]


# ---------------------------------------------------------------------------------------------
# Models, transcribed from the files' "Model:" sections. ``x`` is a tensor of shape (n,) (Nelson:
# (n, 2)); ``b`` a 1-D tensor of the parameters b1..bk (b[0] is b1).

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

TWO_PI = 2.0 * math.pi


def _misra1a(x, b):  # also BoxBOD
    return b[0] * (1 - torch.exp(-b[1] * x))


def _chwirut(x, b):
    return torch.exp(-b[0] * x) / (b[1] + b[2] * x)


def _lanczos(x, b):
    return b[0] * torch.exp(-b[1] * x) + b[2] * torch.exp(-b[3] * x) + b[4] * torch.exp(-b[5] * x)


def _gauss(x, b):
    return (b[0] * torch.exp(-b[1] * x)
            + b[2] * torch.exp(-((x - b[3]) ** 2) / b[4] ** 2)
            + b[5] * torch.exp(-((x - b[6]) ** 2) / b[7] ** 2))


def _danwood(x, b):
    return b[0] * x ** b[1]


def _misra1b(x, b):
    return b[0] * (1 - (1 + b[1] * x / 2) ** (-2))


def _kirby2(x, b):
    return (b[0] + b[1] * x + b[2] * x ** 2) / (1 + b[3] * x + b[4] * x ** 2)


def _cubic_cubic(x, b):  # Hahn1, Thurber
    return ((b[0] + b[1] * x + b[2] * x ** 2 + b[3] * x ** 3)
            / (1 + b[4] * x + b[5] * x ** 2 + b[6] * x ** 3))


def _nelson(x, b):  # models log(y); x[:, 0] = time, x[:, 1] = temperature
    return b[0] - b[1] * x[:, 0] * torch.exp(-b[2] * x[:, 1])


def _mgh17(x, b):
    return b[0] + b[1] * torch.exp(-x * b[3]) + b[2] * torch.exp(-x * b[4])


def _misra1c(x, b):
    return b[0] * (1 - (1 + 2 * b[1] * x) ** (-0.5))


def _misra1d(x, b):
    return b[0] * b[1] * x * (1 + b[1] * x) ** (-1)


def _roszman1(x, b):
    return b[0] - b[1] * x - torch.atan(b[2] / (x - b[3])) / math.pi


def _enso(x, b):
    return (b[0] + b[1] * torch.cos(TWO_PI * x / 12) + b[2] * torch.sin(TWO_PI * x / 12)
            + b[4] * torch.cos(TWO_PI * x / b[3]) + b[5] * torch.sin(TWO_PI * x / b[3])
            + b[7] * torch.cos(TWO_PI * x / b[6]) + b[8] * torch.sin(TWO_PI * x / b[6]))


def _mgh09(x, b):
    return b[0] * (x ** 2 + x * b[1]) / (x ** 2 + x * b[2] + b[3])


def _rat42(x, b):
    return b[0] / (1 + torch.exp(b[1] - b[2] * x))


def _mgh10(x, b):
    return b[0] * torch.exp(b[1] / (x + b[2]))


def _eckerle4(x, b):
    return (b[0] / b[1]) * torch.exp(-0.5 * ((x - b[2]) / b[1]) ** 2)


def _rat43(x, b):
    return b[0] / (1 + torch.exp(b[1] - b[2] * x)) ** (1 / b[3])


def _bennett5(x, b):
    return b[0] * (b[1] + x) ** (-1 / b[2])


MODELS: dict[str, Model] = {
    "Misra1a": _misra1a, "Chwirut2": _chwirut, "Chwirut1": _chwirut, "Lanczos3": _lanczos,
    "Gauss1": _gauss, "Gauss2": _gauss, "DanWood": _danwood, "Misra1b": _misra1b,
    "Kirby2": _kirby2, "Hahn1": _cubic_cubic, "Nelson": _nelson, "MGH17": _mgh17,
    "Lanczos1": _lanczos, "Lanczos2": _lanczos, "Gauss3": _gauss, "Misra1c": _misra1c,
    "Misra1d": _misra1d, "Roszman1": _roszman1, "ENSO": _enso,
    "MGH09": _mgh09, "Thurber": _cubic_cubic, "BoxBOD": _misra1a, "Rat42": _rat42,
    "MGH10": _mgh10, "Eckerle4": _eckerle4, "Rat43": _rat43, "Bennett5": _bennett5,
}

N_PARAMS: dict[str, int] = {
    "Misra1a": 2, "Chwirut2": 3, "Chwirut1": 3, "Lanczos3": 6, "Gauss1": 8, "Gauss2": 8,
    "DanWood": 2, "Misra1b": 2, "Kirby2": 5, "Hahn1": 7, "Nelson": 3, "MGH17": 5,
    "Lanczos1": 6, "Lanczos2": 6, "Gauss3": 8, "Misra1c": 2, "Misra1d": 2, "Roszman1": 4,
    "ENSO": 9, "MGH09": 4, "Thurber": 7, "BoxBOD": 2, "Rat42": 3, "MGH10": 3, "Eckerle4": 3,
    "Rat43": 4, "Bennett5": 3,
}

# The response the model predicts, when it is not y itself ("log[y] = b1 - ..." for Nelson).
RESPONSES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"Nelson": np.log}


def model(problem: Problem | str) -> Model:
    """The torch model ``f(x, b)`` of a problem (or problem name)."""
    name = problem if isinstance(problem, str) else problem.name
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise ValueError(f"no model for NIST problem {name!r}; known: {known}") from None


def response(problem: Problem) -> np.ndarray:
    """What the model fits: ``y``, or ``log(y)`` for Nelson."""
    f = RESPONSES.get(problem.name)
    return problem.y if f is None else f(problem.y)


def residual(problem: Problem, dtype: torch.dtype = torch.float64
             ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``r(b) = response(y) - f(x, b)`` as a torch function of the 1-D parameter tensor ``b``."""
    f = model(problem)
    x = torch.as_tensor(problem.x, dtype=dtype)
    y = torch.as_tensor(response(problem), dtype=dtype)

    def r(b: torch.Tensor) -> torch.Tensor:
        return y - f(x, b)

    r.__name__ = f"nist_{problem.name}_residual"
    return r


def rss(problem: Problem, b: Sequence[float] | np.ndarray) -> float:
    """Residual sum of squares at ``b`` (float64)."""
    r = residual(problem)(torch.as_tensor(np.asarray(b, dtype=np.float64)))
    return float((r * r).sum())


# ---------------------------------------------------------------------------------------------
# Scoring

def lre_one(estimate: float, certified: float, cap: float = LRE_CAP) -> float:
    """Log relative error of one value: −log10(|b − c| / |c|), clipped to [0, cap].

    For ``c == 0`` the absolute error is used (−log10 |b|). Exact agreement gives ``cap``; a
    non-finite estimate gives 0.
    """
    b, c = float(estimate), float(certified)
    if not math.isfinite(b):
        return 0.0
    err = abs(b - c)
    if err == 0.0:
        return cap
    scale = abs(c) if c != 0.0 else 1.0
    return min(cap, max(0.0, -math.log10(err / scale)))


def lre(estimate: Sequence[float] | np.ndarray | torch.Tensor,
        certified: Sequence[float] | np.ndarray, cap: float = LRE_CAP) -> float:
    """Minimum over parameters of the log relative error (``lre_one``); 0 on a shape mismatch."""
    if isinstance(estimate, torch.Tensor):
        estimate = estimate.detach().cpu().numpy()
    b = np.asarray(estimate, dtype=np.float64).ravel()
    c = np.asarray(certified, dtype=np.float64).ravel()
    if b.shape != c.shape or b.size == 0:
        return 0.0
    return min(lre_one(bi, ci, cap) for bi, ci in zip(b, c, strict=True))


def check_certified(problem: Problem) -> float:
    """LRE of the residual sum of squares at the certified parameters against the certified RSS.

    ≥ 6 proves the model transcription (the RSS is certified to 11 digits; the value found in
    float64 typically agrees to 9-11).
    """
    return lre_one(rss(problem, problem.certified), problem.certified_rss)


def rounding_rss(problem: Problem) -> float:
    """The RSS that rounding the certified parameters to their 11 printed digits can produce.

    A bound ``‖ |J| · (5e-11 |c|) ‖²`` from the model's Jacobian at the certified values: when
    the certified RSS is below it (Lanczos1, an exact fit: 1.4e-25), the certified parameters
    cannot reproduce that RSS in any arithmetic, and the check is against this bound instead.
    """
    r = residual(problem)
    c = torch.as_tensor(problem.certified, dtype=torch.float64)
    J = torch.func.jacfwd(r)(c)
    dev = J.abs() @ (5e-11 * c.abs())
    return float((dev * dev).sum())


def check_transcription(problem: Problem, digits: float = 6.0) -> tuple[bool, str]:
    """Does the RSS at the certified parameters match the certified RSS to ``digits`` digits?

    Returns ``(ok, explanation)``; for exact-fit problems whose certified RSS is below what the
    11-digit certified parameters can resolve, ``ok`` means the RSS found is below that bound.
    """
    found = rss(problem, problem.certified)
    agree = lre_one(found, problem.certified_rss)
    if agree >= digits:
        return True, f"RSS agrees to {agree:.1f} digits"
    bound = rounding_rss(problem)
    if problem.certified_rss <= bound:
        ok = found <= 4 * bound + problem.certified_rss
        return ok, (f"exact fit: certified RSS {problem.certified_rss:.2e} is below what 11-digit "
                    f"parameters resolve ({bound:.1e}); RSS found {found:.2e}"
                    + ("" if ok else " EXCEEDS it"))
    return False, (f"RSS at the certified parameters {found:.10e} vs certified "
                   f"{problem.certified_rss:.10e}: {agree:.1f} digits")
