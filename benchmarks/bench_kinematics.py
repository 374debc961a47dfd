"""Robot kinematics: forward kinematics + Jacobian, batched IK and Jacobian agreement, beside
pytorch_kinematics, pinocchio and roboticstoolbox.

Three tables, float64, 1 thread, side by side in one process; robots from the URDF files
jacobite ships (``src/jacobite/kinematics/data``, :func:`jacobite.kinematics.example_urdf`);
times are medians of interleaved repeats on the runner's clock
(``bench_dense_overhead.bench_clock``).

1. FK + 6×7 Jacobian of the KUKA iiwa 7 at B = 1 and B = 1000: ``chain.fk_and_jacobian`` vs
   pytorch_kinematics ``chain.jacobian(..., ret_eef_pose=True)`` vs a Python loop of pinocchio
   ``computeJointJacobians`` + ``getFrameJacobian``. Targets: ≤ 0.05 ms at B = 1, ≤ 1.0 ms at
   B = 1000.
2. IK of 1000 reachable goals (FK of seeded random configurations within the limits), ≤ 10
   seeds per goal: ``jacobite.kinematics.ik`` vs pytorch_kinematics ``PseudoInverseIK`` (10
   retries, batched), a pinocchio CLIK loop per goal and roboticstoolbox ``ETS.ik_LM`` per
   goal. Success is recomputed for every route alike (pinocchio FK of the returned q, within
   the limits, ≤ 1e-4 m and ≤ 1e-3 rad). Targets: ≤ 0.10 ms per goal, ≥ 99.9 % success with
   truthful per-goal status, one goal ≤ 2 ms.
3. Jacobian agreement with pinocchio, KUKA iiwa 7 / UR5 / Panda, 100 random configurations,
   frames local / world / local_world_aligned. Target ≤ 1e-10 (float64).

    python -m benchmarks.run --only kinematics --output /tmp/kin.md   # [--quick]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import _kin_peers as peers
from ._common import Section, have, median, met
from .bench_dense_overhead import bench_clock, clock_note, time_interleaved

ROBOTS = Path(__file__).resolve().parents[1] / "src" / "jacobite" / "kinematics" / "data"
FILES = {"KUKA iiwa 7": "kuka_iiwa7.urdf", "UR5": "ur5.urdf", "Panda": "panda.urdf"}
TOL = (1e-4, 1e-3)
SEEDS = 10


class _Missing(Exception):
    """A robot file is not there: the section is skipped, naming it."""


def _robot(name: str) -> tuple[Path, Any]:
    from jacobite.kinematics import Chain

    path = ROBOTS / FILES[name]
    if not path.is_file():
        raise _Missing(f"skipped: robot file {path.relative_to(ROBOTS.parents[3])} is absent")
    return path, Chain.from_urdf(path)


def _configs(chain: Any, n: int, seed: int) -> torch.Tensor:
    lo = torch.clamp(chain.lower.to(torch.float64), min=-math.pi)
    hi = torch.clamp(chain.upper.to(torch.float64), max=math.pi)
    u = torch.rand(n, chain.dof, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64)
    return lo + u * (hi - lo)


def _times(fns: list[Callable[[], object]], quick: bool) -> tuple[list[float], list[float]]:
    """Median seconds of each of ``fns`` and the median over rounds of each one's time over the
    first one's."""
    samples = time_interleaved(fns, repeats=3 if quick else 11, min_time=0.01 if quick else 0.05)
    ratios = [median([b / a for a, b in zip(samples[0], s, strict=True)]) for s in samples]
    return [median(s) for s in samples], ratios


# ---------------------------------------------------------------------------------------------
# 1. FK + Jacobian


def fk_jacobian(quick: bool) -> Section:
    sec = Section("bench_kinematics: FK + 6×7 Jacobian, KUKA iiwa 7 (float64, 1 thread)",
                  ["route", "B", "ms per batch", "µs per configuration", "× jacobite's time",
                   "max abs diff of J vs jacobite"])
    try:
        path, chain = _robot("KUKA iiwa 7")
    except _Missing as why:
        sec.rows.append([str(why), "", "", "", "", ""])
        return sec
    end = chain.end_names[0]
    pkc = peers.pk_chain(path, end) if have("pytorch_kinematics") else None
    pin = peers.Pin(path, list(chain.joint_names), end) if have("pinocchio") else None
    results: dict[int, float] = {}
    for B in (1, 100 if quick else 1000):
        Q = _configs(chain, B, seed=B)
        q_one = Q[0] if B == 1 else Q
        _, J_ref = chain.fk_and_jacobian(q_one)
        J_ref = J_ref.reshape(B, 6, chain.dof)
        names = ["jacobite chain.fk_and_jacobian"]
        fns: list[Callable[[], object]] = [lambda q=q_one: chain.fk_and_jacobian(q)]
        diffs = [0.0]
        if pkc is not None:
            names.append("pytorch_kinematics chain.jacobian(ret_eef_pose=True)")
            fns.append(lambda Q=Q: pkc.jacobian(Q, ret_eef_pose=True))
            diffs.append(float((pkc.jacobian(Q) - J_ref).abs().max()))
        if pin is not None:
            qps = [pin.q(x) for x in Q.numpy()]
            names.append("pinocchio, Python loop over configurations")
            fns.append(lambda qps=qps: [pin.fk_and_jacobian(x) for x in qps])
            J_pin = np.stack([pin.fk_and_jacobian(x)[1][:, pin.idx_v] for x in qps])
            diffs.append(float(np.abs(J_pin - J_ref.numpy()).max()))
        times, ratios = _times(fns, quick)
        results[B] = times[0]
        for name, t, r, d in zip(names, times, ratios, diffs, strict=True):
            sec.rows.append([name, B, t * 1e3, t * 1e6 / B, r, d])
    t1, tB = results[1] * 1e3, results[max(results)] * 1e3
    sec.notes.append(f"Targets: ≤ 0.05 ms at B = 1 ({t1:.4f} ms: {met(t1 <= 0.05)}); ≤ 1.0 ms "
                     f"at B = 1000 ({tB:.3f} ms at B = {max(results)}: {met(tB <= 1.0)}).")
    sec.notes.append("jacobite at B = 1 takes one unbatched configuration (dof,); the peers a "
                     "(1, dof) batch. Every route returns the end pose and the Jacobian with "
                     "world axes at the end frame's origin (pinocchio's LOCAL_WORLD_ALIGNED).")
    sec.notes.append("pytorch_kinematics differs by ~1e-7 in float64: its URDF parser builds "
                     "the joint offsets in float32 and casts them afterwards (entries that are "
                     "sin π = 0 come out as ±8.74e-8 in its offset matrices of the KUKA).")
    sec.notes.append(clock_note())
    return sec


# ---------------------------------------------------------------------------------------------
# 2. IK


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    clock = bench_clock()
    t0 = clock()
    out = call()
    return clock() - t0, out


def _check(pin: Any, chain: Any, q: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per goal: the returned q is within the limits and its pose (pinocchio FK, or jacobite's
    when pinocchio is absent) meets TOL."""
    if pin is not None:
        poses = np.stack([pin.pose(x) for x in q])
    else:
        poses = chain.fk(torch.as_tensor(q)).numpy()
    dp = np.linalg.norm(poses[:, :3, 3] - targets[:, :3, 3], axis=-1)
    R = np.swapaxes(poses[:, :3, :3], -1, -2) @ targets[:, :3, :3]
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    dr = np.arccos(cos)
    inside = np.all((q >= chain.lower.numpy() - 1e-9) & (q <= chain.upper.numpy() + 1e-9), -1)
    return inside & (dp <= TOL[0]) & (dr <= TOL[1])


def ik_section(quick: bool) -> Section:
    G = 50 if quick else 1000
    sec = Section(f"bench_kinematics: IK, KUKA iiwa 7, {G} reachable goals, ≤ {SEEDS} seeds "
                  "per goal (float64, 1 thread)",
                  ["route", "ms (all goals)", "ms per goal", "× jacobite's time",
                   "success (recomputed)", "claimed success", "claims that are true"])
    try:
        path, chain = _robot("KUKA iiwa 7")
    except _Missing as why:
        sec.rows.append([str(why), "", "", "", "", "", ""])
        return sec
    from jacobite import kinematics

    ik = getattr(kinematics, "ik", None)
    if ik is None:
        sec.rows.append(["skipped: this jacobite has no kinematics.ik", "", "", "", "", "",
                         ""])
        return sec
    end = chain.end_names[0]
    targets = chain.fk(_configs(chain, G, seed=7))
    T = targets.numpy()
    lower, upper = chain.lower.numpy(), chain.upper.numpy()
    pin = peers.Pin(path, list(chain.joint_names), end) if have("pinocchio") else None
    routes: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {}

    def jac() -> tuple[np.ndarray, np.ndarray]:
        r = ik(chain, targets, seeds=SEEDS, tol=TOL, seed=0)
        return r.q.numpy(), r.success.numpy()

    routes["jacobite ik (goals × seeds in one batch)"] = jac
    if have("pytorch_kinematics"):
        pkc = peers.pk_chain(path, end)

        def pk() -> tuple[np.ndarray, np.ndarray]:
            q, ok = peers.pk_ik(pkc, targets, chain.lower, chain.upper, TOL, SEEDS, seed=0)
            return q.numpy(), ok.numpy()

        routes[f"pytorch_kinematics PseudoInverseIK ({SEEDS} retries, batched)"] = pk
    if pin is not None:
        starts = _configs(chain, G * SEEDS, seed=11).numpy().reshape(G, SEEDS, -1)

        def clik() -> tuple[np.ndarray, np.ndarray]:
            q = np.stack([pin.clik(T[g], starts[g], lower, upper, TOL) for g in range(G)])
            return q, np.full(G, np.nan)

        routes["pinocchio CLIK, Python loop per goal"] = clik
    rtb_note = ("roboticstoolbox: not installed (`pip install roboticstoolbox-python`)"
                if not have("roboticstoolbox") else
                "roboticstoolbox: skipped (its chain is built from pinocchio's model)")
    if pin is not None and have("roboticstoolbox"):
        try:
            ets = peers.rtb_ets(pin)
        except Exception as exc:  # a model rtb cannot express: say so, keep the others
            rtb_note = f"roboticstoolbox: skipped ({exc})"
        else:
            rtb_note = ("roboticstoolbox ik_LM: C++ Levenberg–Marquardt ('chan'), tol = 1e-10 "
                        "on ½‖e‖², up to 10 random restarts, joint limits on")

            def rtb() -> tuple[np.ndarray, np.ndarray]:
                np.random.seed(0)
                sols = [ets.ik_LM(T[g], ilimit=30, slimit=SEEDS, tol=1e-10, joint_limits=True)
                        for g in range(G)]
                return (np.stack([np.asarray(s.q) for s in sols]),
                        np.array([bool(s.success) for s in sols]))

            routes["roboticstoolbox ETS.ik_LM, loop per goal"] = rtb
    reps = 1 if quick else 3
    times: dict[str, list[float]] = {k: [] for k in routes}
    outs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for r in range(reps):  # interleaved rounds, order flipped every round
        for name in (list(routes) if r % 2 == 0 else list(reversed(routes))):
            t, outs[name] = _timed(routes[name])
            times[name].append(t)
    per_goal: dict[str, float] = {}
    success: dict[str, float] = {}
    jname = next(iter(routes))
    for name, (q, claim) in outs.items():
        ok = _check(pin, chain, q, T)
        t = median(times[name])
        per_goal[name] = t * 1e3 / G
        success[name] = float(ok.mean())
        has_claim = not np.isnan(claim.astype(float)).all()
        ratio = median([a / b for a, b in zip(times[name], times[jname], strict=True)])
        sec.rows.append([name, t * 1e3, t * 1e3 / G, ratio, f"{100 * ok.mean():.1f} %",
                         f"{100 * claim.astype(float).mean():.1f} %" if has_claim else "—",
                         f"{100 * (claim.astype(bool) == ok).mean():.1f} %" if has_claim
                         else "—"])
    one = [ik(chain, targets[0], seeds=SEEDS, tol=TOL, seed=s) for s in range(2)]
    (t_one,), _ = _times([lambda: ik(chain, targets[0], seeds=SEEDS, tol=TOL, seed=0)], quick)
    sec.rows.append(["jacobite ik, one goal", t_one * 1e3, t_one * 1e3, 1.0,
                     f"{100 * np.mean([bool(o.success) for o in one]):.0f} %", "", ""])
    if have("pytorch_kinematics"):
        pkc = peers.pk_chain(path, end)
        t_pk1, _ = _timed(lambda: peers.pk_ik(pkc, targets[:1], chain.lower, chain.upper, TOL,
                                              SEEDS, seed=0))
        sec.rows.append(["pytorch_kinematics PseudoInverseIK, one goal", t_pk1 * 1e3,
                         t_pk1 * 1e3, t_pk1 / t_one, "", "", ""])
    sec.notes.append(f"Targets: ≤ 0.10 ms per goal ({per_goal[jname]:.4f} ms: "
                     f"{met(per_goal[jname] <= 0.10)}); success ≥ 99.9 % "
                     f"({100 * success[jname]:.1f} %: {met(success[jname] >= 0.999)}); one "
                     f"goal ≤ 2 ms ({t_one * 1e3:.3f} ms: {met(t_one * 1e3 <= 2)}).")
    sec.notes.append("Success is recomputed for every route alike: the pose of the returned q "
                     "by pinocchio's FK, within 1e-4 m and 1e-3 rad of the goal, q within the "
                     "joint limits. 'Claimed' is the solver's own per-goal flag (pinocchio's "
                     "loop has none); 'claims that are true' counts goals where the flag equals "
                     "the recomputed success. pytorch_kinematics runs with its README's settings "
                     "(lr 0.2, 50 iterations, early stopping) at the same tolerances.")
    sec.notes.append(rtb_note + ".")
    sec.notes.append(f"Times: median of {reps} interleaved runs of all goals; the ratio is the "
                     "median over runs of each route's time over jacobite's in the same run; "
                     "one goal: jacobite's median of repeated calls, pytorch_kinematics' one "
                     "call. " + clock_note())
    return sec


# ---------------------------------------------------------------------------------------------
# 3. agreement with pinocchio


def agreement(quick: bool) -> Section:
    n = 20 if quick else 100
    sec = Section(f"bench_kinematics: Jacobian agreement with pinocchio, {n} random "
                  "configurations within the limits (float64)",
                  ["robot", "dof", "end frame", *[f"max abs error, {f}" for f in peers.FRAMES],
                   "pytorch_kinematics, local_world_aligned"])
    if not have("pinocchio"):
        sec.rows.append(["skipped: install pin (pinocchio)", "", "", "", "", "", ""])
        return sec
    worst = 0.0
    for name in FILES:
        try:
            path, chain = _robot(name)
        except _Missing as why:
            sec.rows.append([name, str(why), "", "", "", "", ""])
            continue
        end = chain.end_names[0]
        pin = peers.Pin(path, list(chain.joint_names), end)
        Q = _configs(chain, n, seed=3)
        qps = [pin.q(x) for x in Q.numpy()]
        errs = []
        for frame in peers.FRAMES:
            J = chain.jacobian(Q, frame=frame).numpy()
            ref = np.stack([pin.jacobian(x, frame) for x in qps])
            errs.append(float(np.abs(J - ref).max()))
        pk_err: object = "—"
        if have("pytorch_kinematics"):
            ref = np.stack([pin.jacobian(x, "local_world_aligned") for x in qps])
            pk_err = float(np.abs(peers.pk_chain(path, end).jacobian(Q).numpy() - ref).max())
        worst = max(worst, *errs)
        sec.rows.append([name, chain.dof, end, *errs, pk_err])
    sec.notes.append(f"Target ≤ 1e-10 in every frame ({worst:.1e}: {met(worst <= 1e-10)}). "
                     "Frames mean pinocchio's LOCAL, WORLD and LOCAL_WORLD_ALIGNED; rows are "
                     "linear then angular in both libraries.")
    return sec


def run(quick: bool = False) -> list[Section]:
    t0 = time.perf_counter()
    out = [fk_jacobian(quick), ik_section(quick), agreement(quick)]
    out[-1].notes.append(f"The three tables ran in {time.perf_counter() - t0:.0f} s.")
    return out
