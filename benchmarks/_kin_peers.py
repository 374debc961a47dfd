"""The peers of ``bench_kinematics``, each behind a small adapter: pinocchio (frame Jacobians,
a CLIK loop per goal), pytorch_kinematics (batched Jacobian, ``PseudoInverseIK``) and
roboticstoolbox (``ETS.ik_LM``, its C++ Levenberg–Marquardt). Every adapter takes the robot as a
URDF file and the joints in jacobite's order, so configurations pass between them unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

FRAMES = ("local", "world", "local_world_aligned")


class Pin:
    """A pinocchio model of ``urdf`` with ``joints`` (names, in jacobite's order) and ``end``."""

    def __init__(self, urdf: Path, joints: list[str], end: str) -> None:
        import pinocchio as pin  # optional peer

        self.pin = pin
        self.model = pin.buildModelFromUrdf(str(urdf))
        self.data = self.model.createData()
        self.fid = self.model.getFrameId(end)
        if self.fid >= len(self.model.frames):
            raise KeyError(f"pinocchio has no frame {end!r}")
        ids = [self.model.getJointId(n) for n in joints]
        self.idx_q = [self.model.idx_qs[i] for i in ids]
        self.idx_v = [self.model.idx_vs[i] for i in ids]
        self.nq2 = [self.model.nqs[i] == 2 for i in ids]  # continuous joints: (cos, sin)
        self.ref = {f: getattr(pin.ReferenceFrame, f.upper()) for f in FRAMES}

    def q(self, q: np.ndarray) -> np.ndarray:
        out = self.pin.neutral(self.model)
        for x, i, two in zip(q, self.idx_q, self.nq2, strict=True):
            if two:
                out[i], out[i + 1] = math.cos(x), math.sin(x)
            else:
                out[i] = x
        return out

    def jacobian(self, qp: np.ndarray, frame: str) -> np.ndarray:
        """(6, dof) frame Jacobian at a pinocchio configuration ``qp`` (from :meth:`q`)."""
        J = self.pin.computeFrameJacobian(self.model, self.data, qp, self.fid, self.ref[frame])
        return J[:, self.idx_v]

    def fk_and_jacobian(self, qp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pin = self.pin
        pin.computeJointJacobians(self.model, self.data, qp)
        pose = pin.updateFramePlacement(self.model, self.data, self.fid)
        J = pin.getFrameJacobian(self.model, self.data, self.fid, self.ref["local_world_aligned"])
        return pose.homogeneous, J

    def pose(self, q: np.ndarray) -> np.ndarray:
        self.pin.framesForwardKinematics(self.model, self.data, self.q(q))
        return self.data.oMf[self.fid].homogeneous.copy()

    def clik(self, target: np.ndarray, starts: np.ndarray, lower: np.ndarray, upper: np.ndarray,
             tol: tuple[float, float], max_iter: int = 30) -> np.ndarray:
        """Closed-loop IK in a Python loop (pinocchio's textbook scheme: local log6 error,
        ``Jlog6``-corrected local Jacobian, a damped Gauss–Newton step of at most 0.5 rad per
        joint, clipped to the limits), ``max_iter`` steps from each start, one start after
        another until one meets ``tol``; returns the best q found. (Step cap and damping 1e-6
        were the fastest of a few settings tried on the KUKA goals; with 20 steps per start
        1.1 % of 1000 goals were left unsolved.)"""
        pin = self.pin
        model, data, fid = self.model, self.data, self.fid
        want = pin.SE3(target[:3, :3], target[:3, 3])
        best, best_err = starts[0], math.inf
        for start in starts:
            q = start.copy()
            for _ in range(max_iter):
                qp = self.q(q)
                pin.framesForwardKinematics(model, data, qp)
                now = data.oMf[fid]
                dp = float(np.linalg.norm(now.translation - want.translation))
                dr = float(np.linalg.norm(pin.log3(now.rotation.T @ want.rotation)))
                if dp + dr < best_err:
                    best, best_err = q.copy(), dp + dr
                if dp <= tol[0] and dr <= tol[1]:
                    return q
                err = pin.log6(want.actInv(now)).vector
                J = pin.computeFrameJacobian(model, data, qp, fid, pin.ReferenceFrame.LOCAL)
                J = pin.Jlog6(want.actInv(now)) @ J[:, self.idx_v]
                step = -J.T @ np.linalg.solve(J @ J.T + 1e-6 * np.eye(6), err)
                big = float(np.abs(step).max())
                q = np.clip(q + (step * (0.5 / big) if big > 0.5 else step), lower, upper)
        return best


def rtb_ets(pin_model: Pin) -> Any:
    """A roboticstoolbox ETS of the chain from pinocchio's joint placements (rtb reads URDFs
    only through its robot-data package, which is not needed for a serial chain)."""
    from roboticstoolbox import ET  # optional peer

    model = pin_model.model
    frame = model.frames[pin_model.fid]
    path, j = [], frame.parentJoint
    while j > 0:
        path.append(j)
        j = model.parents[j]
    ets = None
    kinds = {"RX": ET.Rx, "RY": ET.Ry, "RZ": ET.Rz, "PX": ET.tx, "PY": ET.ty, "PZ": ET.tz,
             "RUBX": ET.Rx, "RUBY": ET.Ry, "RUBZ": ET.Rz}
    column = {v: k for k, v in enumerate(pin_model.idx_v)}
    for j in reversed(path):
        kind = model.joints[j].shortname().removeprefix("JointModel")
        if kind not in kinds or model.idx_vs[j] not in column:
            raise NotImplementedError(f"joint type {kind} has no ETS in this adapter")
        iq = model.idx_qs[j]
        lim = [model.lowerPositionLimit[iq], model.upperPositionLimit[iq]]
        if kind.startswith("RUB"):
            lim = [-math.pi, math.pi]
        joint = kinds[kind](jindex=column[model.idx_vs[j]], qlim=np.array(lim))
        part = ET.SE3(model.jointPlacements[j].homogeneous) * joint
        ets = part if ets is None else ets * part
    ets = ets * ET.SE3(frame.placement.homogeneous)
    if ets.n != len(pin_model.idx_v):
        raise NotImplementedError("the chain has joints off the path to the end frame")
    return ets


def pk_chain(urdf: Path, end: str) -> Any:
    import pytorch_kinematics as pk  # optional peer

    return pk.build_serial_chain_from_urdf(urdf.read_text(), end).to(dtype=torch.float64)


def pk_ik(chain: Any, targets: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
          tol: tuple[float, float], retries: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``PseudoInverseIK`` on all goals × ``retries`` at once (its README's settings, our
    tolerances); returns the best retry's q per goal and pytorch_kinematics' own success flag."""
    import pytorch_kinematics as pk  # optional peer

    torch.manual_seed(seed)
    solver = pk.PseudoInverseIK(chain, pos_tolerance=tol[0], rot_tolerance=tol[1],
                                num_retries=retries, max_iterations=50,
                                joint_limits=torch.stack([lower, upper], -1),
                                early_stopping_any_converged=True,
                                early_stopping_no_improvement="all", lr=0.2)
    sol = solver.solve(pk.Transform3d(matrix=targets, dtype=torch.float64))
    err = sol.err_pos + sol.err_rot
    err = torch.where(sol.converged, torch.zeros_like(err), err)
    pick = err.argmin(dim=1)
    q = sol.solutions[torch.arange(len(pick)), pick]
    return q, sol.converged_any
