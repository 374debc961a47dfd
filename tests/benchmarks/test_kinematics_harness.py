"""The kinematics benchmark's harness: its peer adapters agree with pinocchio (the ETS built for
roboticstoolbox, the CLIK loop), the success check recomputes poses, and a missing robot file
skips a section instead of failing it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _kin_peers as peers
from benchmarks import bench_kinematics as bk

pytest.importorskip("pinocchio")
pytest.importorskip("yourdfpy")


@pytest.fixture(scope="module")
def kuka() -> tuple[object, object]:
    path, chain = bk._robot("KUKA iiwa 7")
    return chain, peers.Pin(path, list(chain.joint_names), chain.end_names[0])


def test_pinocchio_adapter_matches_jacobite_in_every_frame(kuka) -> None:
    chain, pin = kuka
    Q = bk._configs(chain, 5, seed=0)
    for frame in peers.FRAMES:
        ref = np.stack([pin.jacobian(pin.q(x), frame) for x in Q.numpy()])
        np.testing.assert_allclose(chain.jacobian(Q, frame=frame).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(np.stack([pin.pose(x) for x in Q.numpy()]), chain.fk(Q).numpy(),
                               atol=1e-12)


def test_roboticstoolbox_ets_has_the_same_kinematics(kuka) -> None:
    pytest.importorskip("roboticstoolbox")
    chain, pin = kuka
    ets = peers.rtb_ets(pin)
    Q = bk._configs(chain, 5, seed=1).numpy()
    np.testing.assert_allclose(np.stack([ets.fkine(x).A for x in Q]), np.stack(
        [pin.pose(x) for x in Q]), atol=1e-12)
    np.testing.assert_allclose(ets.qlim, np.stack([chain.lower.numpy(), chain.upper.numpy()]))


def test_clik_and_the_success_check(kuka) -> None:
    chain, pin = kuka
    T = chain.fk(bk._configs(chain, 3, seed=2)).numpy()
    starts = bk._configs(chain, 30, seed=3).numpy().reshape(3, 10, -1)
    lo, hi = chain.lower.numpy(), chain.upper.numpy()
    q = np.stack([pin.clik(T[g], starts[g], lo, hi, bk.TOL) for g in range(3)])
    assert bk._check(pin, chain, q, T).all()
    wrong = q.copy()
    wrong[:, 0] += 1e-2  # 1 cm and more off at the end
    assert not bk._check(pin, chain, wrong, T).any()
    outside = q.copy()
    outside[0, 1] = chain.upper[1].item() + 0.1
    assert not bk._check(pin, chain, outside, T)[0]


def test_missing_robot_files_skip_the_sections(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(bk, "ROBOTS", tmp_path / "src" / "jacobite" / "kinematics" / "data")
    for section in (bk.fk_jacobian(True), bk.ik_section(True)):
        assert section.rows[0][0].startswith("skipped: robot file")
    rows = bk.agreement(True).rows
    assert len(rows) == 3 and all("skipped: robot file" in r[1] for r in rows)


def test_missing_peers_leave_jacobite_rows(monkeypatch) -> None:
    monkeypatch.setattr(bk, "have", lambda name: False)
    fk = bk.fk_jacobian(True)
    assert [r[0] for r in fk.rows] == ["jacobite chain.fk_and_jacobian"] * 2
    ik = bk.ik_section(True)
    assert ik.rows[0][0].startswith("jacobite ik") and ik.rows[0][4] == "100.0 %"
    assert any("roboticstoolbox: not installed" in n for n in ik.notes)
    assert bk.agreement(True).rows[0][0].startswith("skipped: install pin")
