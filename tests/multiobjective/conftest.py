"""Fixtures of the multi-objective tests: the per-layer forms each engine test runs on."""

from __future__ import annotations

import pytest

from jacobite.multiobjective import _layers


@pytest.fixture(params=["auto", "kernel", "gradients"])
def form(request, monkeypatch):
    if request.param != "auto":
        monkeypatch.setattr(_layers, "_kernel_cheaper",
                            lambda *a: request.param == "kernel")
    return request.param


@pytest.fixture(params=["auto", "ghost", "gradients"])
def ghost_form(request, monkeypatch):
    from jacobite.multiobjective import _ghost
    if request.param != "auto":
        monkeypatch.setattr(_ghost, "_ghost_cheaper", lambda *a: request.param == "ghost")
    return request.param
