"""beside() and in_order(): work on the second core, results and errors as if sequential."""

from __future__ import annotations

import sys
import threading
import time

import pyarrow as pa
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


def test_aligner_shared_by_two_threads_gives_the_aligned_frame() -> None:
    """Whichever thread takes which column, the frame is the plain alignment; repeated to
    give the race (the last column still being taken by the other thread) a chance."""
    import numpy as np
    import pandas as pd

    from csvimport.requirements import Aligner, align_current

    users = pd.DataFrame(
        {f"c{i}": [f"{i}-{u}" for u in range(300)] for i in range(12)},
        index=pd.Index([f"u{u}@x" for u in range(300)], name="email"),
        dtype="str",
    )
    keys = pd.Series([f"u{u}@x" for u in np.random.default_rng(1).integers(0, 400, 500)])
    index = pd.RangeIndex(2, 502)
    want = align_current(users, keys, index)
    for _ in range(30):
        aligner = Aligner(users, keys, index)
        with beside(aligner.run) as done:
            aligner.help()
            at, got = done.result()
        pd.testing.assert_frame_equal(got, want)
        assert (at >= 0).sum() == want["c0"].notna().sum()


def test_aligner_helper_does_not_hang_when_the_positions_fail() -> None:
    import pandas as pd

    from csvimport.requirements import Aligner

    users = pd.DataFrame({"c": pd.Series(["a"], dtype="str")}, index=pd.Index(["u@x"]))
    aligner = Aligner(users, pd.Series([object()]), pd.RangeIndex(1))  # not text: fails
    with pytest.raises((TypeError, ValueError, pa.ArrowException)), beside(aligner.run) as done:
        aligner.help()
        done.result()


def test_overlapping_callers_restore_the_interval_they_found() -> None:
    """Two jobs in threads, their side-by-side sections overlapping out of order: the
    process's interval comes back once both are done."""
    before = sys.getswitchinterval()
    inside = threading.Barrier(2)
    first_out = threading.Event()

    def job(leave_first: bool) -> None:
        with beside(time.sleep, 0):
            inside.wait()
            if not leave_first:
                first_out.wait()
        if leave_first:
            first_out.set()

    threads = [threading.Thread(target=job, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.getswitchinterval() == before
