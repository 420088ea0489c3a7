"""beside() and in_order(): work on the second core, results and errors as if sequential."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from csvimport.beside import beside, in_order


def test_in_order_keeps_order_and_bounds_the_work_in_flight() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.01 * ((7 - i) % 3))  # later items may finish first
        return i * i

    got = []
    for value in in_order(work, iter(range(8)), depth=2):
        got.append(value)
        # when result k is handed out, at most k + 2 items were ever submitted
        assert len(started) <= len(got) + 2
    assert got == [i * i for i in range(8)]


def test_in_order_raises_the_workers_error() -> None:
    def work(i: int) -> int:
        if i == 3:
            raise ValueError("item 3")
        return i

    with pytest.raises(ValueError, match="item 3"):
        list(in_order(work, range(6)))


def test_beside_runs_beside_and_restores_the_switch_interval() -> None:
    before = sys.getswitchinterval()
    main = threading.get_ident()
    with beside(threading.get_ident) as worker:
        assert sys.getswitchinterval() <= 0.0005
        assert worker.result() != main
    assert sys.getswitchinterval() == before
