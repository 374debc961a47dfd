"""Robot kinematics: the two pictures of ``docs/kinematics.md``.

1. ``kinematics_frames.png`` — what ``frame=`` means, on a planar two-link arm turning about
   z: the end frame's origin ``p`` moves with ``v_p`` (the linear rows of the
   ``"local_world_aligned"`` Jacobian, in world axes; ``"local"`` gives the same vector in the
   end frame's axes), while the ``"world"`` Jacobian's linear rows give ``v_o = v_p − ω × p``,
   the velocity of the body-fixed point that is at the world origin right now.
2. ``kinematics_path.png`` — a KUKA iiwa 7 moves its tool, pointing down, along a V: out to
   the edge of its reach (the elbow almost straight) and back. Each waypoint is solved by
   ``ik``, warm-started from the previous solution; the velocity ellipsoids of the tool
   (linear part) are drawn along the way, and the manipulability and smallest singular value
   of the whole 6×7 Jacobian are plotted against the path parameter, with the
   least-conditioned point found by ``nearest_singularity``.

    python examples/kinematics_path.py            # both pictures, prints the path's numbers
    python examples/kinematics_path.py --no-plot
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from jacobite.kinematics import (
    Chain,
    example_urdf,
    ik,
    manipulability,
    nearest_singularity,
    singular_values,
    velocity_ellipsoid,
)

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
KUKA = example_urdf("kuka_iiwa7")
F64 = torch.float64


def tool_down_path(T: int, corners: tuple[tuple[float, float, float], ...] = (
        (0.40, -0.30, 0.45), (0.76, 0.0, 0.45), (0.40, 0.30, 0.45))) -> torch.Tensor:
    """``T`` poses (T, 4, 4) spread evenly along straight segments through ``corners``, the
    tool's z axis pointing down (a rotation by π about the world x axis)."""
    c = torch.tensor(corners, dtype=F64)
    s = torch.linspace(0.0, 1.0, T, dtype=F64) * (len(c) - 1)
    i = s.floor().long().clamp(max=len(c) - 2)
    w = (s - i).unsqueeze(-1)
    poses = torch.eye(4, dtype=F64).repeat(T, 1, 1)
    poses[:, :3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    poses[:, :3, 3] = c[i] * (1 - w) + c[i + 1] * w
    return poses


def follow(chain: Chain, poses: torch.Tensor, q_start: torch.Tensor) -> torch.Tensor:
    """Solve the waypoints one after another, each from the previous solution (one seed: the
    arm moves smoothly instead of jumping to another of its redundant solutions)."""
    q, out = q_start, []
    for pose in poses:
        res = ik(chain, pose, q0=q, seeds=1, max_iter=50)
        if not bool(res.success):
            raise RuntimeError(f"waypoint not reached: {res.status}")
        q = res.q
        out.append(q)
    return torch.stack(out)


def frames_picture(path: Path) -> None:
    """Picture 1: v_p and v_o = v_p − ω × p on a planar two-link arm."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    l1, l2, q1, q2 = 1.0, 0.8, 0.5, 0.9
    elbow = (l1 * math.cos(q1), l1 * math.sin(q1))
    p = (elbow[0] + l2 * math.cos(q1 + q2), elbow[1] + l2 * math.sin(q1 + q2))
    qd1, qd2 = 0.6, 0.8  # joint speeds [rad/s]
    w = qd1 + qd2  # the end body turns about z at ω = q̇1 + q̇2
    v_p = (-qd1 * p[1] - qd2 * (p[1] - elbow[1]), qd1 * p[0] + qd2 * (p[0] - elbow[0]))
    v_o = (v_p[0] + w * p[1], v_p[1] - w * p[0])  # v_p − ω × p
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, elbow[0], p[0]], [0, elbow[1], p[1]], "-o", color="0.55", lw=5, ms=9, zorder=1)
    arrow = {"head_width": 0.05, "length_includes_head": True, "zorder": 3}
    for origin, angle, name, dx_text in (((0.0, 0.0), 0.0, "world frame, origin o", 0.1),
                                         (p, q1 + q2, "end frame, origin p", 0.12)):
        for k, (dx, dy) in enumerate(((math.cos(angle), math.sin(angle)),
                                      (-math.sin(angle), math.cos(angle)))):
            ax.arrow(*origin, 0.35 * dx, 0.35 * dy, color=("tab:red", "tab:green")[k], **arrow)
        ax.text(origin[0] + dx_text, origin[1] - 0.2, name, fontsize=9)
    note = {"fontsize": 8.5, "arrowprops": {"arrowstyle": "-", "color": "0.6", "lw": 0.8}}
    ax.arrow(*p, 0.5 * v_p[0], 0.5 * v_p[1], color="tab:blue", width=0.015, **arrow)
    ax.annotate("v_p — linear rows of 'local_world_aligned'\n(world axes; 'local': the same "
                "velocity\nin the end frame's axes)", (p[0] + 0.3 * v_p[0], p[1] + 0.3 * v_p[1]),
                xytext=(-1.35, 1.9), color="tab:blue", **note)
    ax.arrow(0, 0, 0.5 * v_o[0], 0.5 * v_o[1], color="tab:purple", width=0.015, **arrow)
    ax.annotate("v_o = v_p − ω × p — linear rows of 'world'\n(the body-fixed point now at o)",
                (0.3 * v_o[0], 0.3 * v_o[1]), xytext=(0.2, -0.75), color="tab:purple", **note)
    off = (0.3 * math.cos(q1 + q2 + 1.9), 0.3 * math.sin(q1 + q2 + 1.9))
    ax.plot([p[0], p[0] + off[0]], [p[1], p[1] + off[1]], ":", color="tab:orange", zorder=2)
    ax.plot(p[0] + off[0], p[1] + off[1], "o", color="tab:orange", zorder=2)
    ax.annotate("point=: an offset in end-frame coordinates\n(another reference point on the "
                "end body)", (p[0] + off[0], p[1] + off[1]), xytext=(-1.35, 0.9),
                color="tab:orange", **note)
    ax.text(1.05, 2.05, f"q̇ = ({qd1}, {qd2}) rad/s\nω = q̇1 + q̇2 = {w:.1f} rad/s (about z)",
            fontsize=8.5)
    ax.set_aspect("equal")
    ax.set_xlim(-1.4, 2.2)
    ax.set_ylim(-0.95, 2.4)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title("J rows 0–2: linear velocity of the reference point; rows 3–5: ω", fontsize=10)
    fig.savefig(path, dpi=110)


def path_picture(path: Path, chain: Chain, info: dict[str, Any]) -> None:
    """Picture 2: the path with velocity ellipsoids, and the measures along it (``info`` from
    :func:`main`)."""
    from jacobite.kinematics.plots import plot_ellipsoids, plot_path_measures
    from jacobite.viz._common import new_figure

    fig = new_figure((11.0, 4.6))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    Q, poses = info["q"], info["poses"]
    every = Q[:: max(1, len(Q) // 6)]
    J = chain.jacobian(every)
    plot_ellipsoids(velocity_ellipsoid(J), chain.fk(every)[:, :3, 3], path=poses[:, :3, 3],
                    scale=0.25, ax=ax3, title="tool velocity ellipsoids (‖q̇‖ ≤ 1 rad/s, ×0.25)")
    ax = fig.add_subplot(1, 2, 2)
    r = info["nearest"]
    plot_path_measures(r.t_samples, {"manipulability √det(J Jᵀ)": info["w"],
                                     "σ_min of J (6×7)": r.sigma_samples},
                       nearest=r, ax=ax, title="along the path")
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waypoints", type=int, default=41)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    chain = Chain.from_urdf(KUKA)
    poses = tool_down_path(args.waypoints)
    q_start = torch.tensor([0.0, 0.5, 0.0, -1.4, 0.0, 1.2, 0.0], dtype=F64)
    Q = follow(chain, poses, q_start)
    J = chain.jacobian(Q)
    w = manipulability(J)
    nearest = nearest_singularity(chain, Q, samples=len(Q))
    err = (chain.fk(Q)[:, :3, 3] - poses[:, :3, 3]).norm(dim=-1).max()
    info = {"q": Q, "poses": poses, "w": w, "nearest": nearest,
            "max_position_error": float(err),
            "sigma_min_first": float(singular_values(J[0])[-1])}
    print(f"{len(Q)} waypoints solved, max position error {float(err):.1e} m; "
          f"manipulability {float(w[0]):.4f} -> {float(w[-1]):.4f}; least σ_min "
          f"{nearest.sigma_min:.4f} at t = {nearest.t:.3f}")
    if not args.no_plot:
        IMG.mkdir(parents=True, exist_ok=True)
        frames_picture(IMG / "kinematics_frames.png")
        path_picture(IMG / "kinematics_path.png", chain, info)
        print(f"wrote {IMG / 'kinematics_frames.png'} and {IMG / 'kinematics_path.png'}")
    print(f"{time.perf_counter() - t0:.1f} s")
    return info


if __name__ == "__main__":
    main()
