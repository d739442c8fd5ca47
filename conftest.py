"""Test-suite setup shared by every test (pytest loads this file first).

Parallel runs.  The suite runs in worker processes (pytest-xdist, ``-n logical``
in setup.cfg's ``addopts``; ``-n 0`` runs it in one process).  The workers
share Numba's on-disk cache (``__pycache__`` beside the sources, as a run in
one process uses) and nodekit's generated-code cache (``$NODEKIT_CACHE``).
Sharing is safe and saves compiles: :mod:`nodekit._cachelock` locks Numba's
cache index across processes, and when two workers need the same compiled
function for the same argument types at once, one compiles it while the
other waits and then loads it from the cache.  nodekit's own generated files
are written atomically and an existing valid file is kept.
"""
