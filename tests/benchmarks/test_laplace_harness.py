"""The Laplace benchmark's harness: its classifier is seeded and learns, its NLL and ECE equal
hand-computed values, the laplace-torch adapter returns probabilities, and the quick run
builds both tables (a missing laplace-torch only skips its columns)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import _laplace_cases as lc
from benchmarks import bench_laplace as bl


def test_classifier_is_seeded_and_beats_chance():
    a, b = lc.classifier(quick=True), lc.classifier(quick=True)
    assert torch.equal(a.X, b.X) and torch.equal(a.yt, b.yt)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    with torch.no_grad():
        acc = (a.model(a.Xt).argmax(1) == a.yt).float().mean()
    assert float(acc) > 0.3  # ten classes: chance is 0.1


def test_nll_and_ece_equal_hand_computed_values():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    y = torch.tensor([0, 1, 1, 1])
    assert lc.nll(probs, y) == pytest.approx(
        -(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.8)) / 4)
    # confidences 0.9, 0.6, 0.7, 0.8 fall in four different bins of width 1/15; correct:
    # yes, no, yes, yes -> |1 - 0.9| + |0 - 0.6| + |1 - 0.7| + |1 - 0.8|, each weighted 1/4
    assert lc.ece(probs, y) == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4)


def test_peer_adapter_returns_probabilities():
    pytest.importorskip("laplace", reason="laplace-torch is not installed")
    pb = lc.classifier(quick=True)
    p = lc.peer_predict(pb, "last_layer")
    assert p.shape == (len(pb.Xt), 10)
    torch.testing.assert_close(p.sum(1), torch.ones(len(pb.Xt)), rtol=0, atol=1e-5)


def test_quick_run_builds_both_tables(monkeypatch):
    monkeypatch.setattr(bl, "have", lambda module: False)  # as if laplace-torch were absent
    classifier, last = bl.run(quick=True)
    assert len(classifier.rows) == 4 and "skipped" in str(classifier.rows[1][-1])
    assert [r[0] for r in last.rows][1].startswith("functional variance")
    assert last.rows[1][-1] == "met"
