"""The allocator switch of chunked phases: inside, the system pool; after, whatever was."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc

from csvimport import arrowpool


def test_reusing_switches_to_the_system_pool_and_back() -> None:
    before = pa.default_memory_pool().backend_name
    with arrowpool.reusing():
        assert pa.default_memory_pool().backend_name == "system"
        with arrowpool.reusing():  # nested: the inner exit must not restore early
            pass
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == before


def test_overlapping_users_in_threads_restore_the_pool_once_all_are_out() -> None:
    before = pa.default_memory_pool().backend_name
    inside = threading.Barrier(2)
    first_out = threading.Event()
    seen: list[str] = []

    def early() -> None:
        with arrowpool.reusing():
            inside.wait()
        first_out.set()

    def late() -> None:
        with arrowpool.reusing():
            inside.wait()
            first_out.wait()
            seen.append(pa.default_memory_pool().backend_name)  # the other one has left

    threads = [threading.Thread(target=early), threading.Thread(target=late)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["system"]
    assert pa.default_memory_pool().backend_name == before


def test_a_buffer_made_inside_outlives_the_switch() -> None:
    with arrowpool.reusing():
        text = pc.binary_join_element_wise(
            pa.array(["a", "b"]), pa.array(["c", "d"]), pa.scalar("-")
        )
    assert text.to_pylist() == ["a-c", "b-d"]
