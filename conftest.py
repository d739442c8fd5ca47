"""Test-suite setup shared by every test (pytest loads this file first).

Parallel runs.  The suite runs in worker processes (pytest-xdist, ``-n logical``
in setup.cfg's ``addopts``; ``-n 0`` runs it in one process).  Each worker gets
its own Numba on-disk cache folder, ``.pytest_cache/d/numba-<worker>``, through
``NUMBA_CACHE_DIR`` (inherited by the processes a test starts).  Numba's cache
index is not safe for two processes saving different compilations of one
function at the same moment: each reads the index, adds its entry under the
same free data-file number and writes the index back, so one entry is lost,
or left naming the other's machine code.  Every ``nk.ODE``'s guarded wrapper
is one function of ``nodekit/ode.py`` compiled once per kernel, so workers
sharing one cache folder would race on that index all the time.  A run in one
process leaves Numba's default (``__pycache__`` beside the sources) alone.
nodekit's own generated-code cache (``$NODEKIT_CACHE``) is shared by the
workers: its files are written atomically and an existing valid file is kept.
"""
import os
import sys
import tempfile


def _worker_numba_cache(config, worker):
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        return str(cache.mkdir(f"numba-{worker}"))
    return tempfile.mkdtemp(prefix=f"nodekit-numba-{worker}-")


def pytest_configure(config):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    if "numba" in sys.modules:  # too late: decorated functions chose their folder
        raise RuntimeError("numba was imported before conftest.py could give this "
                           f"test worker ({worker}) its own Numba cache folder.")
    os.environ["NUMBA_CACHE_DIR"] = _worker_numba_cache(config, worker)
