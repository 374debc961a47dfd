"""Forward kinematics and the geometric Jacobian in one batched pass.

Each moving joint gets an internal frame whose z axis is its axis (a free choice: only the end
frames are observable), so its local transform ``origin @ motion_z(θ)`` is affine in
``(sin θ, cos θ, θ)``: all joints' transforms for the whole batch come from one ``baddbmm``
against constant coefficient matrices, a short loop over the joints composes them, and the
Jacobian's columns come from the same frames (z axis ``z``, origin ``p``: ``z × (p_ref − p)``
and ``z`` for a revolute joint, ``z`` and ``0`` for a prismatic one).

Two ways to compose: for a few configurations (where each torch op's overhead dominates), all
frames at once from one triangular solve with the "path matrix" ``I − N`` (``N`` holds each
joint's local transform in the block row of its parent), built by one ``addmm``; for many, the
batch last, ``(3, 4, B)``, composed joint by joint with broadcast multiply-adds (``bmm`` of 4×4
matrices is slow per matrix on a CPU). The Jacobian is assembled batch-last in both.

>>> import numpy as np, torch
>>> from ._tree import JointSpec, build_model
>>> j = JointSpec("j", "revolute", "a", "b", np.eye(4), np.array([1.0, 0.0, 0.0]))
>>> k = Kernel(build_model([j], end=None, base=None))
>>> pose, jac = k.run(torch.zeros(1, 1, dtype=torch.float64), None, "world", None, True)
>>> pose.shape, jac[0, 0, :, 0]
(torch.Size([1, 1, 4, 4]), tensor([0., 0., 0., 1., 0., 0.], dtype=torch.float64))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._tree import Model

__all__ = ["LARGE_BATCH", "Kernel"]

#: from this many configurations on, cross products are taken by components
LARGE_BATCH = 16


@dataclass
class _Consts:
    """The kernel's constants as tensors of one dtype and device."""

    a0: torch.Tensor          # (D²,): the path matrix I − N at sin = cos = q = 0
    g: torch.Tensor           # (2M, D²): its coefficients of (sin θ, cos θ) per node
    gq: torch.Tensor          # (dof, D²): its coefficients of q (prismatic joints)
    rep: torch.Tensor         # (dof, 2M): θ and θ + π/2 of each node = q @ rep + phase
    phase: torch.Tensor       # (2M,)
    e0: torch.Tensor          # (4, D): [I 0 … 0]
    pick: torch.Tensor        # (F, 2, D, 2M + 4): from row block 0, per end: (z | p_e − p |
                              # end pose) for frames at the end, (p | z | end pose) for world
    rep_t: torch.Tensor       # (2M, dof): θ_i and θ_i + π/2 interleaved = rep_t @ q + phase_t
    phase_t: torch.Tensor     # (2M, 1)
    c0t: torch.Tensor         # (M, 16, 1): each node's local transform at 0,
    cct: torch.Tensor         # (M, 16, k): and its coefficients of sin θ, cos θ (and θ)
    tool: torch.Tensor        # (F, 4, 4)
    tool4: torch.Tensor       # (F, 4, 4, 1)
    mask: torch.Tensor        # (F, M, 1, 1): 1 where node is an ancestor of the end
    rev: torch.Tensor         # (M, 1, 1)
    pri: torch.Tensor         # (M, 1, 1)
    q_index: torch.Tensor     # (M,)
    multiplier: torch.Tensor  # (M,)
    offset: torch.Tensor      # (M,)
    mimic: torch.Tensor       # (M, dof): column map from nodes to independent joints
    bottom: torch.Tensor      # (1, 1, 4): the row [0, 0, 0, 1]


def _to_z(a: np.ndarray) -> np.ndarray:
    """A rotation (4×4) taking the z axis to the unit vector ``a``."""
    q = np.eye(4)
    c = float(a[2])
    v = np.cross([0.0, 0.0, 1.0], a)
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        if c < 0:
            q[:3, :3] = np.diag([1.0, -1.0, -1.0])
        return q
    k = v / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    q[:3, :3] = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return q


def _compose3(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``s ∘ t`` batch-last: ``s`` the top rows (3, 4, B) of an affine map, ``t`` a whole one
    (4, 4, B) or (4, 4, 1); one broadcast product and one sum (few ops at any batch size)."""
    return (s.unsqueeze(2) * t).sum(1)


def _cross(a: torch.Tensor, b: torch.Tensor, dim: int, large: bool) -> torch.Tensor:
    """``a × b`` along ``dim``: one op for small tensors, by components for large ones (where
    ``linalg.cross`` is slower on a CPU)."""
    if not large:
        return torch.linalg.cross(a, b, dim=dim)
    ax, ay, az = a.unbind(dim)
    bx, by, bz = b.unbind(dim)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim)


class Kernel:
    """Batched FK and Jacobian of a :class:`~._tree.Model`, optionally after a constant ``base``
    transform. Constants are kept in float64 and cast once per (dtype, device)."""

    def __init__(self, model: Model, base: np.ndarray | None = None) -> None:
        m = model
        n, f = len(m.parent), len(m.end_parent)
        rot = [_to_z(a) for a in m.axis]
        b = np.eye(4) if base is None else base

        def before(p: int) -> np.ndarray:  # from the parent's internal frame
            return b if p < 0 else rot[p].T

        origin = [before(m.parent[i]) @ m.origin[i] @ rot[i] for i in range(n)]
        tool = np.array([before(m.end_parent[e]) @ m.tool[e] for e in range(f)]).reshape(f, 4, 4)
        ez = np.zeros((4, 4))
        ez[2, 3] = 1.0
        kz = np.zeros((4, 4))
        kz[0, 1], kz[1, 0] = -1.0, 1.0
        c0 = np.zeros((n, 4, 4))
        cc = np.zeros((n, 3, 4, 4))
        for i in range(n):
            o = origin[i]
            if m.prismatic[i]:  # o @ Tz(θ)
                c0[i] = o
                cc[i, 2] = o @ ez
            else:  # o @ Rz(θ) = o (I + K²) + sin θ o K − cos θ o K²
                c0[i] = o @ (np.eye(4) + kz @ kz)
                cc[i, 0] = o @ kz
                cc[i, 1] = -(o @ kz @ kz)
        self.any_prismatic = bool(m.prismatic.any())
        k = 3 if self.any_prismatic else 2
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
        self.end_parent = m.end_parent.tolist()
        self.n, self.f, self.dof = n, f, dof
        # the path matrix: block (parent + 1, i + 1) of N holds node i's local transform and
        # block (parent + 1, 1 + M + e) end e's tool, so row block 0 of (I − N)⁻¹ holds every
        # node's frame and every end's pose (one path from the base to each block in a tree);
        # its constants grow as M D², so large trees compose joint by joint at any batch size
        nb = 1 + n + f
        self.nb = nb
        self.use_path = 4 * nb <= 128 and n > 0
        # up to this batch size the solve beats composing joint by joint (measured on a CPU:
        # about 80 configurations for 7 joints, 8 for 25)
        self.path_batch = 64 if 4 * nb <= 72 else 8
        d = 4 * nb if self.use_path else 0
        a0 = np.eye(d)
        g = np.zeros((3, n, d, d))
        for i in range(n if self.use_path else 0):
            r, col = 4 * (m.parent[i] + 1), 4 * (i + 1)
            a0[r:r + 4, col:col + 4] -= c0[i]
            g[:, i, r:r + 4, col:col + 4] = -cc[i]
        for e in range(f if self.use_path else 0):
            r, col = 4 * (m.end_parent[e] + 1), 4 * (1 + n + e)
            a0[r:r + 4, col:col + 4] -= tool[e]
        e0 = np.zeros((4, d))
        e0[:, :min(d, 4)] = np.eye(4)[:, :min(d, 4)]
        pick = np.zeros((f, 2, d, 2 * n + 4))
        for e in range(f if self.use_path else 0):
            pe = 4 * (1 + n + e) + 3
            for i in range(n):
                z, p = 4 * (1 + i) + 2, 4 * (1 + i) + 3
                pick[e, 0, z, i] = 1.0                   # z_i
                pick[e, 0, pe, n + i] = 1.0              # p_e − p_i
                pick[e, 0, p, n + i] = -1.0
                pick[e, 1, p, i] = 1.0                   # p_i
                pick[e, 1, z, n + i] = 1.0               # z_i
            pick[e, :, 4 * (1 + n + e) + np.arange(4), 2 * n + np.arange(4)] = 1.0
        # θ = q @ mimicᵀ + offset enters linearly through prismatic nodes
        gq = mimic.T @ g[2].reshape(n, d * d)
        a0 = a0.reshape(-1) + m.offset @ g[2].reshape(n, d * d)
        rep = np.concatenate([mimic.T, mimic.T], axis=1)
        phase = np.concatenate([m.offset, m.offset + np.pi / 2])
        self._np = {
            "a0": a0, "g": g[:2].reshape(2 * n, d * d), "gq": gq, "rep": rep, "phase": phase,
            "e0": e0, "pick": pick,
            "rep_t": rep.reshape(dof, 2, n).transpose(2, 1, 0).reshape(2 * n, dof),
            "phase_t": phase.reshape(2, n).T.reshape(2 * n, 1),
            "c0t": c0.reshape(n, 16, 1),
            "cct": cc[:, :k].reshape(n, k, 16).transpose(0, 2, 1).copy(),
            "tool": tool, "tool4": tool[..., None].copy(),
            "mask": anc.reshape(f, n, 1, 1),
            "rev": (~m.prismatic).astype(np.float64).reshape(n, 1, 1),
            "pri": m.prismatic.astype(np.float64).reshape(n, 1, 1),
            "q_index": m.q_index, "multiplier": m.multiplier, "offset": m.offset,
            "mimic": mimic, "bottom": np.array([[[0.0, 0.0, 0.0, 1.0]]]),
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

    def _path(self, q: torch.Tensor, c: _Consts) -> torch.Tensor:
        """Row block 0 of ``(I − N)⁻¹``, (B, 4, D): the path matrix from one ``addmm`` (sines
        and cosines as sines of ``θ`` and ``θ + π/2``), every frame from one triangular solve."""
        b = q.shape[0]
        a = torch.addmm(c.a0, torch.addmm(c.phase, q, c.rep).sin(), c.g)
        if self.any_prismatic:
            a = torch.addmm(a, q, c.gq)
        d = 4 * self.nb
        return torch.linalg.solve_triangular(a.view(b, d, d), c.e0, upper=True, left=False,
                                             unitriangular=True)

    def _small(self, q: torch.Tensor, c: _Consts) -> tuple[torch.Tensor, torch.Tensor]:
        """Node axes and origins (M, 3, 2, B) and end poses (B, F, 4, 4) for a few
        configurations."""
        x = self._path(q, c).view(q.shape[0], 4, self.nb, 4)
        s = x[:, :3, 1:1 + self.n, 2:].permute(2, 1, 3, 0)
        return s, x[:, :, 1 + self.n:].transpose(1, 2)

    def single(self, q: torch.Tensor, end: int, point: torch.Tensor | None, frame: str,
               jac: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pose (B, 4, 4) and Jacobian (B, 6, dof) of one end for a few configurations (the
        fewest torch ops: each costs microseconds at this size)."""
        c = self.consts(q.dtype, q.device)
        b, n = q.shape[0], self.n
        x = self._path(q, c)
        if not jac:
            return x.view(b, 4, self.nb, 4)[:, :, 1 + n + end], None
        # the columns the Jacobian needs, as one product with a 0/±1 matrix
        r = x @ c.pick[end, int(frame == "world")]  # (B, 4, 2M + 4)
        pose = r[..., 2 * n:]
        u, v = r[:, :3, :2 * n].unflatten(-1, (2, n)).unbind(2)  # (B, 3, M) each
        if point is not None:  # the reference point moves by R_e point
            v = v + pose[:, :3, :3] @ point.view(-1, 3, 1)
        lin = torch.linalg.cross(u, v, dim=1)  # z × (p_ref − p), or p × z for "world"
        z = v if frame == "world" else u
        ang = z
        if self.any_prismatic:
            rev, pri = c.rev.view(n), c.pri.view(n)
            lin = lin * rev + z * pri
            ang = z * rev
        jm = torch.cat([lin, ang], dim=1)  # (B, 6, M)
        if not self.full_mask:
            jm = jm * c.mask[end].view(n)
        if frame == "local":
            rt = pose[:, :3, :3].transpose(1, 2).unsqueeze(1)
            jm = (rt @ jm.view(b, 2, 3, n)).view(b, 6, n)
        if not self.plain_q:
            jm = jm @ c.mimic
        return pose, jm

    def _large(self, q: torch.Tensor, c: _Consts
               ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Node axes and origins (M, 3, 2, B) and end frames (F, 3, 4, B), batch last."""
        b = q.shape[0]
        if not self.n:
            return None, c.tool4[:, :3].expand(self.f, 3, 4, b)
        if self.any_prismatic:
            th = q if self.plain_q else q[:, c.q_index] * c.multiplier + c.offset
            th = th.transpose(0, 1)
            w = torch.stack([th.sin(), th.cos(), th], dim=1)
        else:  # (sin θ, cos θ) per node as sines of θ and θ + π/2, from one addmm
            w = torch.addmm(c.phase_t, c.rep_t, q.transpose(0, 1)).sin().view(self.n, 2, b)
        local = torch.baddbmm(c.c0t, c.cct, w)
        loc = local.view(self.n, 4, 4, b).unbind(0)
        frames: list[torch.Tensor] = []
        for i, p in enumerate(self.parent):
            frames.append(loc[i][:3] if p < 0 else _compose3(frames[p], loc[i]))
        ends = [c.tool4[e][:3].expand(3, 4, b) if p < 0 else _compose3(frames[p], c.tool4[e])
                for e, p in enumerate(self.end_parent)]
        return torch.stack([f[:, 2:] for f in frames]), torch.stack(ends)

    def run(self, q: torch.Tensor, point: torch.Tensor | None, frame: str,
            sel: list[int] | None, jac: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Poses (B, F, 4, 4) and, with ``jac``, Jacobians (B, F, 6, dof) for q (B, dof);
        ``sel`` picks ends (None: all), ``point`` is (3,) or (B, 3)."""
        c = self.consts(q.dtype, q.device)
        b = q.shape[0]
        s: torch.Tensor | None
        if self.use_path and b <= self.path_batch:
            s, pose = self._small(q, c)
            if sel is not None:
                pose = pose[:, sel]
            if not jac:
                return pose, None
            e = pose.permute(1, 2, 3, 0)[:, :3]  # (F, 3, 4, B)
        else:
            s, e = self._large(q, c)
            if sel is not None:
                e = e[sel]
            p3 = e.permute(3, 0, 1, 2)
            pose = torch.cat([p3, c.bottom.expand(b, p3.shape[1], 1, 4)], dim=2)
            if not jac:
                return pose, None
        if s is None:
            return pose, q.new_zeros(b, e.shape[0], 6, self.dof)
        return pose, self._assemble(s, e, point, frame, sel, c)

    def _assemble(self, s: torch.Tensor, e: torch.Tensor, point: torch.Tensor | None,
                  frame: str, sel: list[int] | None, c: _Consts) -> torch.Tensor:
        """Jacobians (B, F, 6, dof) from node axes and origins (M, 3, 2, B) and end frames
        (F, 3, 4, B)."""
        z, p = s[:, :, 0], s[:, :, 1]  # (M, 3, B)
        single = e.shape[0] == 1
        large = z.shape[-1] >= LARGE_BATCH
        if large and single and frame != "local" and not self.any_prismatic and self.full_mask:
            # the six rows by components, stacked once
            a, d = (p, z) if frame == "world" else (z, self._ref(e, point)[0] - p)
            ax, ay, az = a.unbind(1)
            dx, dy, dz = d.unbind(1)
            cols = torch.stack([ay * dz - az * dy, az * dx - ax * dz, ax * dy - ay * dx,
                                *z.unbind(1)], dim=1).unsqueeze(0)
            jm = cols.permute(3, 0, 2, 1)
            return jm if self.plain_q else jm @ c.mimic
        if frame == "world":
            lin = _cross(p, z, 1, large)
            if not single:
                lin = lin.unsqueeze(0)
        else:
            pe = self._ref(e, point)
            if single:
                lin = _cross(z, pe[0] - p, 1, large)
            else:
                zf = z.unsqueeze(0).expand(pe.shape[0], *z.shape)
                lin = _cross(zf, pe.unsqueeze(1) - p, 2, large)
        ang = z if single else z.unsqueeze(0)
        if self.any_prismatic:
            lin = lin * c.rev + z * c.pri
            ang = ang * c.rev
        cols = torch.cat([lin, ang.expand_as(lin)], dim=-2)  # ([F,] M, 6, B)
        mask = c.mask if sel is None else c.mask[sel]
        if single:
            if not self.full_mask:
                cols = cols * mask[0]
            cols = cols.unsqueeze(0)
        elif not self.full_mask or cols.shape[0] != mask.shape[0]:
            cols = cols * mask
        if frame == "local":  # both blocks in the end frame's axes: Rᵀ v
            f, n, b = e.shape[0], self.n, e.shape[-1]
            r = e[:, :, :3].reshape(f, 1, 1, 3, 3, b)
            cols = (cols.reshape(f, n, 2, 3, 1, b) * r).sum(3).reshape(f, n, 6, b)
        jm = cols.permute(3, 0, 2, 1)  # (B, F, 6, M)
        if not self.plain_q:
            jm = jm @ c.mimic
        return jm

    @staticmethod
    def _ref(e: torch.Tensor, point: torch.Tensor | None) -> torch.Tensor:
        """The reference points (F, 3, B): the end frames' origins, moved by ``point``."""
        pe = e[:, :, 3]
        if point is None:
            return pe
        pt = point.unsqueeze(-1) if point.ndim == 1 else point.transpose(0, 1)
        return pe + (e[:, :, :3] * pt.unsqueeze(-3)).sum(2)
