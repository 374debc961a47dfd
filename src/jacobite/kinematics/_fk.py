"""Forward kinematics and the geometric Jacobian in one batched pass.

Every moving joint's local transform ``origin @ motion(θ)`` is affine in ``(sin θ, cos θ, θ)``,
so all joints' transforms for the whole batch come from one ``baddbmm`` against constant
coefficient matrices; a short loop over the joints composes them, and the Jacobian's columns
come from the same frames (``z × (p_ref − p_joint)`` and ``z`` for a revolute joint).

>>> import numpy as np, torch
>>> from ._tree import JointSpec, build_model
>>> j = JointSpec("j", "revolute", "a", "b", np.eye(4), np.array([0.0, 0.0, 1.0]))
>>> k = Kernel(build_model([j], end=None, base=None))
>>> pose, jac = k.run(torch.zeros(1, 1, dtype=torch.float64), None, "world", None, True)
>>> pose.shape, jac.shape
(torch.Size([1, 1, 4, 4]), torch.Size([1, 1, 6, 1]))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._tree import Model

__all__ = ["Kernel"]


@dataclass
class _Consts:
    """The kernel's constants as tensors of one dtype and device."""

    c0: torch.Tensor          # (M, 1, 16)
    cc: torch.Tensor          # (M, k, 16): coefficients of sin θ, cos θ (and θ)
    ac: torch.Tensor          # (M, 1, 4, 2): joint axis (w = 0) and point (w = 1) in its frame
    tool: torch.Tensor        # (F, 4, 4)
    mask: torch.Tensor        # (F, M, 1, 1): 1 where node is an ancestor of the end
    rev: torch.Tensor         # (M, 1, 1)
    pri: torch.Tensor         # (M, 1, 1)
    q_index: torch.Tensor     # (M,)
    multiplier: torch.Tensor  # (M,)
    offset: torch.Tensor      # (M,)
    mimic: torch.Tensor       # (M, dof): column map from nodes to independent joints


class Kernel:
    """Batched FK and Jacobian of a :class:`~._tree.Model`, optionally after a constant ``base``
    transform. Constants are kept in float64 and cast once per (dtype, device)."""

    def __init__(self, model: Model, base: np.ndarray | None = None) -> None:
        m = model
        n, f = len(m.parent), len(m.end_parent)
        origin = m.origin.copy()
        tool = m.tool.copy()
        if base is not None:
            origin[m.parent < 0] = base @ origin[m.parent < 0]
            tool[m.end_parent < 0] = base @ tool[m.end_parent < 0]
        # node i's motion: rotation R = I + sin K + (1 - cos) K², or translation θ a
        post = np.repeat(np.eye(4)[None], n, axis=0)  # tool folded onto a node's frame
        children = np.bincount(m.parent[m.parent >= 0], minlength=n) if n else np.zeros(0)
        users = np.bincount(m.end_parent[m.end_parent >= 0], minlength=n) if n else np.zeros(0)
        self.end_node = m.end_parent.copy()          # node whose frame is the end's frame
        self.end_tool = np.zeros(f, dtype=bool)      # end needs `tool` after that frame
        for e in range(f):
            p = m.end_parent[e]
            if p >= 0 and children[p] == 0 and users[p] == 1:
                post[p] = tool[e]
            else:
                self.end_tool[e] = p >= 0
        c0 = np.zeros((n, 4, 4))
        cc = np.zeros((n, 3, 4, 4))
        ac = np.zeros((n, 4, 2))
        for i in range(n):
            a = m.axis[i]
            k = np.zeros((4, 4))
            k[:3, :3] = [[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]]
            k2 = k @ k
            o, t = origin[i], post[i]
            if m.prismatic[i]:
                u = np.zeros((4, 4))
                u[:3, 3] = a
                c0[i] = o @ t
                cc[i, 2] = o @ u @ t
            else:  # I + sin K + (1 - cos) K²  =  (I + K²) + sin K - cos K²
                c0[i] = o @ (np.eye(4) + k2) @ t
                cc[i, 0] = o @ k @ t
                cc[i, 1] = -(o @ k2 @ t)
            tinv = np.linalg.inv(t)
            ac[i, :3, 0] = t[:3, :3].T @ a
            ac[i, :, 1] = tinv[:, 3]
        self.serial = bool(np.all(m.parent == np.arange(n) - 1))
        self.any_prismatic = bool(m.prismatic.any())
        self.all_prismatic = bool(m.prismatic.all()) and n > 0
        ncoef = 3 if self.any_prismatic else 2
        anc = np.zeros((f, n))
        for e in range(f):
            p = m.end_parent[e]
            while p >= 0:
                anc[e, p] = 1.0
                p = m.parent[p]
        self.full_mask = bool(np.all(anc == 1.0))
        dof = m.dof
        mimic = np.zeros((n, dof))
        mimic[np.arange(n), m.q_index] = m.multiplier
        self.plain_q = bool(n == dof and np.array_equal(m.q_index, np.arange(n))
                            and np.all(m.multiplier == 1.0) and np.all(m.offset == 0.0))
        self.parent = m.parent.tolist()
        self.n, self.f, self.dof = n, f, dof
        self._np = {
            "c0": c0.reshape(n, 1, 16), "cc": cc[:, :ncoef].reshape(n, ncoef, 16),
            "ac": ac.reshape(n, 1, 4, 2), "tool": tool, "mask": anc.reshape(f, n, 1, 1),
            "rev": (~m.prismatic).astype(np.float64).reshape(n, 1, 1),
            "pri": m.prismatic.astype(np.float64).reshape(n, 1, 1),
            "q_index": m.q_index, "multiplier": m.multiplier, "offset": m.offset,
            "mimic": mimic,
        }
        self._cache: dict[tuple[torch.dtype, torch.device], _Consts] = {}

    def consts(self, dtype: torch.dtype, device: torch.device) -> _Consts:
        key = (dtype, device)
        c = self._cache.get(key)
        if c is None:
            t = {k: torch.as_tensor(v, device=device,
                                    dtype=torch.int64 if k == "q_index" else dtype)
                 for k, v in self._np.items()}
            c = self._cache[key] = _Consts(**t)
        return c

    def frames(self, q: torch.Tensor, c: _Consts) -> torch.Tensor:
        """Every node's frame, (M, B, 4, 4), for q of shape (B, dof)."""
        b = q.shape[0]
        th = q if self.plain_q else q[:, c.q_index] * c.multiplier + c.offset
        th = th.transpose(0, 1)  # (M, B)
        parts = [th.sin(), th.cos()] if not self.any_prismatic else [th.sin(), th.cos(), th]
        w = torch.stack(parts, dim=-1)  # (M, B, k)
        local = torch.baddbmm(c.c0, w, c.cc).view(self.n, b, 4, 4).unbind(0)
        frames: list[torch.Tensor] = []
        if self.serial:
            cur = local[0]
            frames.append(cur)
            for i in range(1, self.n):
                cur = torch.bmm(cur, local[i])
                frames.append(cur)
        else:
            for i, p in enumerate(self.parent):
                frames.append(local[i] if p < 0 else torch.bmm(frames[p], local[i]))
        return torch.stack(frames)

    def ends(self, s: torch.Tensor | None, c: _Consts, b: int) -> torch.Tensor:
        """The end poses, (F, B, 4, 4)."""
        out = []
        for e in range(self.f):
            p = int(self.end_node[e])
            if p < 0:
                out.append(c.tool[e].expand(b, 4, 4))
            elif self.end_tool[e]:
                out.append(s[p] @ c.tool[e])  # type: ignore[index]
            else:
                out.append(s[p])  # type: ignore[index]
        return torch.stack(out)

    def run(self, q: torch.Tensor, point: torch.Tensor | None, frame: str,
            sel: list[int] | None, jac: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Poses (B, F, 4, 4) and, with ``jac``, Jacobians (B, F, 6, dof) for q (B, dof)."""
        c = self.consts(q.dtype, q.device)
        b = q.shape[0]
        s = self.frames(q, c) if self.n else None
        e = self.ends(s, c, b)
        if sel is not None:
            e = e[sel]
        pose = e.transpose(0, 1)
        if not jac:
            return pose, None
        if s is None:
            return pose, q.new_zeros(b, e.shape[0], 6, self.dof)
        x = torch.matmul(s[:, :, :3, :], c.ac)  # (M, B, 3, 2)
        z, pj = x[..., 0], x[..., 1]
        mask = c.mask if sel is None else c.mask[sel]
        if frame == "world":
            lin = torch.linalg.cross(pj, z).unsqueeze(0)  # (1, M, B, 3)
        else:
            pe = e[:, :, :3, 3]  # (F, B, 3)
            if point is not None:
                pe = pe + (e[:, :, :3, :3] @ point.unsqueeze(-1)).squeeze(-1)
            lin = torch.linalg.cross(z.unsqueeze(0), pe.unsqueeze(1) - pj.unsqueeze(0))
        ang = z.unsqueeze(0)
        if self.any_prismatic:
            lin = lin * c.rev + z * c.pri
            ang = ang * c.rev
        cols = torch.cat([lin, ang.expand_as(lin)], dim=-1)  # (F|1, M, B, 6)
        if not self.full_mask or cols.shape[0] != mask.shape[0]:
            cols = cols * mask
        jm = cols.permute(2, 0, 3, 1)  # (B, F, 6, M)
        if frame == "local":
            rt = e[:, :, :3, :3].transpose(0, 1).transpose(-1, -2).unsqueeze(2)  # (B,F,1,3,3)
            jm = (rt @ jm.reshape(b, -1, 2, 3, self.n)).reshape(b, -1, 6, self.n)
        if not self.plain_q:
            jm = jm @ c.mimic
        return pose, jm
