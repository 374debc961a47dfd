"""Run every benchmark and write BENCHMARKS.md.

    python -m benchmarks.run                   # all benchmarks -> BENCHMARKS.md
    python -m benchmarks.run --quick           # smoke versions, printed to stdout
    python -m benchmarks.run --only dense_auto jax_mlp --output /tmp/part.md

Every ``benchmarks/bench_*.py`` defines ``run(quick: bool = False)`` returning a ``Section`` (or
a list of them). A benchmark whose optional peer is not installed (numdifftools, jax) shows up as
"skipped: install X"; one that crashes shows its error and makes the exit status 1, but does not
stop the others.

Threads: by default each library runs single-threaded (``--threads 1``): on a small shared
machine, OpenMP threads that wait on each other while another process holds a core make timings
swing by 10×, while the ratios these benchmarks report hardly depend on the thread count. Pass
``--threads 0`` to keep the libraries' own defaults. The setting is applied before torch, numpy
or jax are imported and is recorded in the header.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import platform
import re
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OPTIONAL_PEERS = {"numdifftools": "numdifftools", "jax": "jax jaxlib", "jaxlib": "jax jaxlib",
                  "psutil": "psutil", "theseus": "theseus-ai", "jenn": "jenn", "zuko": "zuko",
                  "nflows": "nflows", "normflows": "normflows", "FrEIA": "FrEIA",
                  "pinocchio": "pin", "pytorch_kinematics": "pytorch-kinematics",
                  "roboticstoolbox": "roboticstoolbox-python", "yourdfpy": "yourdfpy",
                  "kornia": "kornia", "skimage": "scikit-image",
                  "curvlinops": "curvlinops-for-pytorch (--no-deps)",
                  "backpack": "backpack-for-pytorch (--no-deps)",
                  "laplace": "laplace-torch (--no-deps)"}


# Sections appear in this order; benchmarks not listed follow alphabetically.
ORDER = ("dense_overhead", "dense_auto", "dense_memory", "jax_mlp", "numeric")


def available() -> list[str]:
    """Names of the benchmark modules (``bench_dense_auto`` -> ``dense_auto``), in report order."""
    names = [p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def select(only: list[str] | None) -> list[str]:
    names = available()
    if not only:
        return names
    chosen = []
    for want in only:
        want = want.removeprefix("bench_").removesuffix(".py")
        hits = [n for n in names if n == want] or [n for n in names if n.startswith(want)]
        if not hits:
            raise SystemExit(f"no benchmark matches {want!r}; available: {', '.join(names)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def limit_threads(n: int) -> None:
    """Ask every numeric library to use ``n`` threads; must run before they are imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> str:
    try:
        text = Path("/proc/meminfo").read_text()
        m = re.search(r"^MemTotal:\s*(\d+) kB", text, re.M)
        if m:
            return f"{int(m.group(1)) / 2**20:.1f} GiB RAM"
    except OSError:
        pass
    return "RAM unknown"


def header(command: str, quick: bool, threads: int) -> str:
    import torch

    libs = [("torch", "torch"), ("numpy", "numpy"), ("scipy", "scipy"), ("jacobite", "jacobite"),
            ("jax", "jax"), ("jaxlib", "jaxlib"), ("numdifftools", "numdifftools"),
            ("theseus", "theseus-ai"), ("jenn", "jenn"), ("zuko", "zuko"), ("nflows", "nflows"),
            ("normflows", "normflows"), ("FrEIA", "FrEIA"),
            ("pytorch_kinematics", "pytorch-kinematics"), ("pinocchio", "pin"),
            ("roboticstoolbox", "roboticstoolbox-python"), ("kornia", "kornia"),
            ("scikit-image", "scikit-image"), ("curvlinops", "curvlinops-for-pytorch"),
            ("backpack", "backpack-for-pytorch"), ("laplace-torch", "laplace-torch")]
    versions = ", ".join(f"{name} {v}" for name, dist in libs if (v := _version(dist)))
    missing = [name for name, dist in libs if _version(dist) is None]
    thread_txt = (f"{threads} (torch.get_num_threads() = {torch.get_num_threads()})"
                  if threads else f"library defaults (torch: {torch.get_num_threads()})")
    lines = [
        "# jacobite benchmarks",
        "",
        "Generated by `benchmarks/run.py`; every benchmark runs jacobite and its peer side by "
        "side in one process and reports ratios (medians of interleaved runs).",
        "",
        f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} logical cores, {_memory_total()}, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}"
        + (f"; not installed: {', '.join(missing)}" if missing else ""),
        f"- Threads per library: {thread_txt}",
        f"- Reproduce (from the repository root): `{command}` — after "
        "`pip install -e '.[bench]' jax jaxlib` and `pip install --no-deps -r "
        "benchmarks/peers-no-deps.txt` (a missing optional peer only skips its section)",
    ]
    if quick:
        lines.append("- **Quick (smoke) run: small sizes and few repeats; numbers are not "
                     "meaningful.**")
    return "\n".join(lines) + "\n"


def _skip_reason(exc: BaseException) -> str | None:
    """'install X' when ``exc`` is a missing optional dependency, else None."""
    from jacobite.errors import MissingExtraError

    if isinstance(exc, MissingExtraError):
        text = str(exc)
        extra = re.search(r"pip install (\S+)", text)
        module = re.search(r"dependency '([^']+)'", text)
        if extra is None:
            return text
        what = extra.group(1).strip("'\"")
        return f"{what} ({module.group(1)})" if module else what
    if isinstance(exc, ImportError):
        name = (getattr(exc, "name", None) or "").split(".")[0]
        if name in OPTIONAL_PEERS:
            return OPTIONAL_PEERS[name]
    return None


def run_one(name: str, quick: bool) -> tuple[list[object], bool, float]:
    """Import and run one benchmark; return (sections, ok, seconds)."""
    from ._common import Section

    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        out = module.run(quick=quick)
        sections = list(out) if isinstance(out, (list, tuple)) else [out]
        ok = True
    except Exception as exc:  # one broken benchmark must not lose the others' results
        why = _skip_reason(exc)
        if why is not None:
            sections = [Section(f"bench_{name}", ["status"], [[f"skipped: install {why}"]])]
            ok = True
        else:
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            sections = [Section(f"bench_{name}", ["status"], [["**failed**"]],
                                [f"`{last[:300]}`"])]
            traceback.print_exc()
            ok = False
    return sections, ok, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke versions (a few seconds each)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help=f"run only these (prefixes allowed): {', '.join(available())}")
    ap.add_argument("--output", metavar="FILE",
                    help="markdown file to write, '-' for stdout (default: BENCHMARKS.md, or "
                         "stdout with --quick)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per library (default 1; 0 keeps the libraries' defaults)")
    args = ap.parse_args(argv)
    output = args.output or ("-" if args.quick else str(ROOT / "BENCHMARKS.md"))
    if args.threads:
        limit_threads(args.threads)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    names = select(args.only)

    parts = ["python -m benchmarks.run"]
    if args.quick:
        parts.append("--quick")
    if args.only:
        parts += ["--only", *names]
    if args.threads != 1:
        parts += ["--threads", str(args.threads)]
    if output != "-" and Path(output).resolve() != ROOT / "BENCHMARKS.md":
        parts += ["--output", output]

    chunks = [header(" ".join(parts), args.quick, args.threads)]
    all_ok = True
    t_all = time.perf_counter()
    for name in names:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        sections, ok, secs = run_one(name, args.quick)
        all_ok &= ok
        print(f"[benchmarks] {name}: {'ok' if ok else 'FAILED'} in {secs:.1f} s", file=sys.stderr,
              flush=True)
        for sec in sections:
            chunks.append(sec.to_markdown().rstrip("\n") + f"\n\n_`bench_{name}` ran in "
                          f"{secs:.0f} s._\n")
    chunks.append(f"_All benchmarks ran in {time.perf_counter() - t_all:.0f} s._\n")
    text = "\n".join(chunks)
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text)
        print(f"[benchmarks] wrote {output}", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
