"""csvimport: bulk user import for unified-communications partner portals."""

import os

# Arrow's C++ code allocates some buffers from its own default pool, not from the one pyarrow
# calls use (``arrowpool.configure`` sets that): the IPC writer's compression buffers, up to
# ~160 MB when a 1M-user org's snapshot cache is encoded. That pool is mimalloc unless this
# variable says otherwise, and it is chosen once, when pyarrow is first imported: so here,
# before any module of the package imports it. mimalloc kept those pages resident through the
# planner's memory peak (~110 MB after a cold read); jemalloc, as ``configure`` sets it up,
# hands them back. A value set by the administrator is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"
