"""Independent oracles for the kinematics tests: geometric Jacobians by automatic
differentiation through ``fk`` (``jacobite.jacobian``), and a NumPy product of DH matrices."""

from __future__ import annotations

import math

import numpy as np
import torch

import jacobite


def _vee(w: torch.Tensor) -> torch.Tensor:
    return torch.stack([w[2, 1] - w[1, 2], w[0, 2] - w[2, 0], w[1, 0] - w[0, 1]]) / 2


def ad_jacobian(chain, q: torch.Tensor, frame: str = "local_world_aligned", point=None,
                end=None) -> torch.Tensor:
    """The (6, dof) Jacobian of one configuration ``q`` from d fk / dq: the linear rows are the
    derivative of the reference point, the angular rows ``vee(dR Rᵀ)``."""
    pose = chain.fk(q, end=end)
    dpose = jacobite.jacobian(lambda v: chain.fk(v, end=end), q)  # (4, 4, dof)
    r, p = pose[:3, :3], pose[:3, 3]
    pt = torch.zeros(3, dtype=q.dtype) if point is None else torch.as_tensor(point, dtype=q.dtype)
    cols = []
    for k in range(q.shape[0]):
        dr = dpose[:3, :3, k]
        omega = _vee(dr @ r.T)
        v = dpose[:3, 3, k] + dr @ pt
        if frame == "world":
            v = v - torch.linalg.cross(omega, p + r @ pt)
        elif frame == "local":
            v, omega = r.T @ v, r.T @ omega
        cols.append(torch.cat([v, omega]))
    return torch.stack(cols, dim=1) if cols else torch.zeros(6, 0, dtype=q.dtype)


def dh_matrix(a: float, alpha: float, d: float, theta: float, modified: bool) -> np.ndarray:
    """One DH link transform written out (not composed from elementary rotations)."""
    ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
    if modified:
        return np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -sa * d],
                         [st * sa, ct * sa, ca, ca * d], [0, 0, 0, 1]])
    return np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st],
                     [0, sa, ca, d], [0, 0, 0, 1]])


def dh_fk(table: np.ndarray, q: np.ndarray, *, modified: bool, types: str | None = None,
          base: np.ndarray | None = None, tool: np.ndarray | None = None) -> np.ndarray:
    """The end pose of a DH chain at one configuration, as a NumPy product."""
    t = np.eye(4) if base is None else base.copy()
    for i, (a, alpha, d, theta) in enumerate(table):
        if types is not None and types[i] == "P":
            d = d + q[i]
        else:
            theta = theta + q[i]
        t = t @ dh_matrix(a, alpha, d, theta, modified)
    return t if tool is None else t @ tool
