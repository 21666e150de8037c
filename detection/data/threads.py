"""Runs independent NumPy / SciPy / OpenCV calls on the CPU's cores from one Python thread.

``thread_map(function, items)`` is ``list(map(function, items))`` on a shared pool of
``os.cpu_count()`` threads: worth it where each call spends its time in C code that releases
the GIL (scipy.ndimage's interpolation: matterport's exact resize of an image's channels, its
mask pasting; bench/detect_profile.py has the figures). Results come back in order, and each
call computes what it would alone, so the results are the same as ``map``'s. A call made from
one of the pool's own threads runs serially (no pool waiting on itself).
"""

import concurrent.futures
import os
import threading

_PREFIX = "detection-thread-map"
_lock = threading.Lock()
_pool = None


def _shared_pool():
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=_PREFIX)
        return _pool


def thread_map(function, items):
    """[function(item) for item in items], the calls spread over the shared thread pool."""
    items = list(items)
    if len(items) < 2 or (os.cpu_count() or 1) < 2 or threading.current_thread().name.startswith(_PREFIX):
        return [function(item) for item in items]
    return list(_shared_pool().map(function, items))
