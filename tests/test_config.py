"""jacobite.config: parse_bytes, format_bytes and the thread-local memory budget."""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import jacobite
from jacobite import config
from jacobite.config import format_bytes, get_memory_budget, memory_budget, parse_bytes
from jacobite.errors import JacobiteError

DEFAULT = 2**30


@pytest.fixture(autouse=True)
def _restore_budget():
    """Whatever a test does, the next test in this process sees the default budget."""
    before = get_memory_budget()
    yield
    config.set_memory_budget(before)


@pytest.mark.parametrize(("text", "expected"), [
    (1024, 1024), (1, 1), (2.9, 2), (10**12, 10**12),
    ("1024", 1024), ("10b", 10), ("10 B", 10),
    ("1.5 KiB", 1536), ("512 MiB", 512 * 2**20), ("2 GiB", 2 * 2**30), ("1 TiB", 2**40),
    ("2GB", 2 * 10**9), ("3 kb", 3000), ("7 MB", 7 * 10**6), ("1 TB", 10**12),
    ("3k", 3 * 1024), ("3 K", 3 * 1024), ("5m", 5 * 2**20), ("1g", 2**30), ("2t", 2 * 2**40),
    ("  64   mib  ", 64 * 2**20), (".5 GiB", 2**29), ("0.25 KiB", 256),
])
def test_parse_bytes(text, expected: int) -> None:
    assert parse_bytes(text) == expected
    assert isinstance(parse_bytes(text), int)


@pytest.mark.parametrize("bad", [0, -1, -2.5, 0.0, True, False, "", "abc", "12 parsecs",
                                 "-1 MiB", "1e3 MiB", "MiB", "1,024", "0 KiB", "0.0001 B",
                                 None, "1 2 MiB"])
def test_parse_bytes_rejects(bad) -> None:
    with pytest.raises(JacobiteError, match=r"memory size|MiB|positive"):
        parse_bytes(bad)


@given(st.integers(1, 2**53))
def test_parse_bytes_of_an_int_is_itself(n: int) -> None:
    assert parse_bytes(n) == n
    assert parse_bytes(str(n)) == n
    assert parse_bytes(f"{n} B") == n


def test_parse_bytes_is_exact_for_large_integer_strings() -> None:
    """A string of digits is an exact byte count, even above 2**53 (no detour through float)."""
    n = 2**53 + 1
    assert parse_bytes(n) == n
    assert parse_bytes(str(n)) == n
    assert parse_bytes(f"{2**44 + 1} KiB") == (2**44 + 1) * 1024


@given(st.integers(1, 10**6), st.sampled_from([("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30),
                                               ("kB", 10**3), ("MB", 10**6)]))
def test_parse_bytes_units(k: int, unit) -> None:
    name, factor = unit
    assert parse_bytes(f"{k} {name}") == k * factor
    assert parse_bytes(f"{k}{name.lower()}") == k * factor


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"),
    (2**20, "1.00 MiB"), (3 * 2**30, "3.00 GiB"), (2**40, "1.00 TiB"), (2**50, "1024.00 TiB"),
])
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@given(st.integers(1, 2**50))
def test_format_then_parse_is_close(n: int) -> None:
    back = parse_bytes(format_bytes(n))
    assert abs(back - n) <= max(1, 0.005 * n)  # two decimals of the unit


def test_default_budget() -> None:
    assert get_memory_budget() == DEFAULT == config.DEFAULT_MEMORY_BUDGET


def test_memory_budget_context_manager() -> None:
    with memory_budget("64 MiB") as b:
        assert b == 64 * 2**20 == get_memory_budget()
        with memory_budget(1000) as inner:
            assert inner == 1000 == get_memory_budget()
        assert get_memory_budget() == 64 * 2**20
    assert get_memory_budget() == DEFAULT


def test_memory_budget_restored_after_an_exception() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), memory_budget("1 KiB"):
        assert get_memory_budget() == 1024
        raise Boom
    assert get_memory_budget() == DEFAULT
    # an error raised by jacobite inside the block (the budget is too small) restores it too
    with pytest.raises(jacobite.errors.JacobianTooLarge), memory_budget("1 KiB"):
        jacobite.jacobian(torch.sin, torch.zeros(20, dtype=torch.float64))
    assert get_memory_budget() == DEFAULT


def test_bad_budget_leaves_the_budget_alone() -> None:
    with pytest.raises(JacobiteError), memory_budget("junk"):
        pass  # pragma: no cover
    assert get_memory_budget() == DEFAULT
    with pytest.raises(JacobiteError):
        config.set_memory_budget(-5)
    assert get_memory_budget() == DEFAULT


def test_set_memory_budget() -> None:
    config.set_memory_budget("2 MiB")
    assert get_memory_budget() == 2 * 2**20
    plan = jacobite.jacobian_plan(torch.sin, torch.zeros(3, dtype=torch.float64))
    assert plan.budget == 2 * 2**20


def test_budget_is_thread_local() -> None:
    seen: dict[str, int] = {}
    ready = threading.Event()
    go_on = threading.Event()

    def worker() -> None:
        seen["start"] = get_memory_budget()  # a new thread starts from the default
        with memory_budget("5 MiB"):
            seen["inside"] = get_memory_budget()
            ready.set()
            go_on.wait(5)
        seen["after"] = get_memory_budget()

    with memory_budget("7 MiB"):
        t = threading.Thread(target=worker)
        t.start()
        assert ready.wait(5)
        assert get_memory_budget() == 7 * 2**20  # the worker's budget does not leak here
        go_on.set()
        t.join(5)
    assert seen == {"start": DEFAULT, "inside": 5 * 2**20, "after": DEFAULT}
    assert get_memory_budget() == DEFAULT


def test_budget_only_changes_how_not_what() -> None:
    g = torch.Generator().manual_seed(50)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    x = torch.randn(30, generator=g, dtype=torch.float64)

    def f(v):
        return torch.tanh(A @ v)

    big = jacobite.jacobian(f, x)
    with memory_budget(9000):  # 7200 B result: forces chunks of a few rows
        assert jacobite.jacobian_plan(f, x).num_chunks > 1
        small = jacobite.jacobian(f, x)
    torch.testing.assert_close(small, big, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(big, torch.func.jacrev(f)(x), rtol=1e-12, atol=1e-12)
