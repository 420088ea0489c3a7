"""The allocator switch of chunked phases: inside, the system pool; after, whatever was."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest

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


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or arrowpool._malloc_trim() is None,
    reason="glibc's malloc_trim",
)
def test_release_heap_hands_back_the_free_pages_between_live_blocks() -> None:
    """Blocks freed between blocks still alive stay in glibc's heap (free() only trims its
    top); ``release_heap`` gives their pages back."""
    blocks = [bytes(4000) for _ in range(50_000)]  # ~200 MB of malloc'd blocks
    keep = blocks[::64]
    del blocks
    before = _resident_mib()
    arrowpool.release_heap()
    after = _resident_mib()
    assert before - after > 100, (before, after)
    assert len(keep) == 782


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return False
    return True


_ENCODE_A_CACHE = """
import csvimport, pandas as pd, pyarrow as pa
from csvimport import arrowpool
from csvimport.store import snapcache
arrowpool.configure()
text = pd.Series([f"user{i}@example.com" for i in range(200_000)], dtype="str")
users = pd.DataFrame({"first_name": text}, index=pd.Index(text, name="email"))
empty = pd.DataFrame({"email": text.iloc[:0]})
snapcache.encode(snapcache.Frames(users, empty, empty))
print(pa.default_memory_pool().backend_name, pa.mimalloc_memory_pool().max_memory())
"""


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow build has no jemalloc")
def test_arrow_cpp_buffers_come_from_the_configured_jemalloc_not_mimalloc() -> None:
    """The IPC writer's compression buffers come from Arrow's C++ default pool, which
    importing csvimport sets to jemalloc: mimalloc, which keeps freed pages resident, is
    never used (it held ~110 MB through a cold 1M-user job's memory peak)."""
    backend, mimalloc_peak = _run(_ENCODE_A_CACHE).split()
    assert backend == "jemalloc"
    assert mimalloc_peak == "0"


def test_an_administrators_choice_of_arrow_pool_is_kept() -> None:
    code = "import csvimport, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    assert _run(code, ARROW_DEFAULT_MEMORY_POOL="system") == "system"
