"""Cross-process locking of Numba's on-disk cache.

Numba keeps one index file per cached function, mapping each compiled
signature to a numbered data file, and it does not lock that index across
processes.  When two processes save *different* signatures of the same
function at about the same time (two pytest-xdist workers compiling the loop
for two system types, two Dask workers, two users' scripts), both read the
index, both pick the same next free data-file number, and the writes can
interleave so that the index entry of one signature names the file holding
the other's machine code.  A later process loads that entry and runs the
wrong code for its arguments, without any error.  A reader can also find an
entry whose data file is not written yet.

Importing this module (``nodekit`` does, first) wraps Numba's ``IndexDataCacheFile.save`` and
``.load`` in an ``fcntl.flock`` on one lock file per cache folder: exclusive
for a save (index read, entry added, index and data written), shared for a
load (index read, data read).  Saves are rare and short, so the lock costs
nothing measurable.  Without ``fcntl`` (Windows), or when the cache folder is
not writable, Numba runs unlocked, as before.
"""
import functools
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from numba.core import caching

#: The lock file in each cache folder.
LOCK_NAME = "numba-cache.lock"


def _locked(method, mode):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            handle = open(os.path.join(self._cache_path, LOCK_NAME), "a")
        except OSError:  # no folder yet (nothing to load) or not writable
            return method(self, *args, **kwargs)
        with handle:
            fcntl.flock(handle, mode)
            try:
                return method(self, *args, **kwargs)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    wrapper._nodekit_locked = True
    return wrapper


def install():
    """Wrap Numba's cache-file ``save`` and ``load`` (once per process)."""
    cls = caching.IndexDataCacheFile
    if fcntl is None or getattr(cls.save, "_nodekit_locked", False):
        return
    cls.save = _locked(cls.save, fcntl.LOCK_EX)
    cls.load = _locked(cls.load, fcntl.LOCK_SH)


install()
