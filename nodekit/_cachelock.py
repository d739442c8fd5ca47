"""Safety of Numba's on-disk cache: cross-process locking, and one source
stamp for the whole package.

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

Numba also decides that a cached function is fresh by its own source file
alone, while the machine code it stores includes every jitted function it
calls, from other files too.  After an edit to ``controllers.py`` the cached
loop of ``_implicit.py`` kept the old controller, silently.  So the
source stamp of every function defined in ``nodekit`` also carries
:func:`package_fingerprint`, a hash of every module of the package that uses
Numba: any change to one of them makes all of nodekit's cached code stale
together, and it is compiled again.  An installed release never changes, so
this costs users nothing; in a development tree an edit costs a fresh
compile of what the next run uses.
"""
import functools
import hashlib
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


#: The package's folder: functions defined under it get the package stamp.
PACKAGE = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def package_fingerprint(folder=PACKAGE):
    """SHA-256 over the path and contents of every module under ``folder``
    (the package) whose source mentions ``numba`` or uses the package's Numba
    presets (:mod:`nodekit._jitflags`); read once per process,
    about a millisecond."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                data = fh.read()
            if b"numba" in data or b"_jitflags" in data:
                digest.update(os.path.relpath(path, folder).encode() + b"\0" + data)
    return digest.hexdigest()


def _in_package(path):
    return path is not None and os.path.abspath(path).startswith(PACKAGE + os.sep)


def _stamped(method):
    @functools.wraps(method)
    def wrapper(self):
        stamp = method(self)
        if _in_package(getattr(self, "_py_file", None)):
            return (stamp, package_fingerprint())
        return stamp
    wrapper._nodekit_stamped = True
    return wrapper


def install():
    """Wrap Numba's cache-file ``save`` and ``load`` in the lock, and its
    source stamp of nodekit's own functions in the package fingerprint (once
    per process)."""
    mixin = caching._SourceFileBackedLocatorMixin
    if not getattr(mixin.get_source_stamp, "_nodekit_stamped", False):
        mixin.get_source_stamp = _stamped(mixin.get_source_stamp)
    cls = caching.IndexDataCacheFile
    if fcntl is None or getattr(cls.save, "_nodekit_locked", False):
        return
    cls.save = _locked(cls.save, fcntl.LOCK_EX)
    cls.load = _locked(cls.load, fcntl.LOCK_SH)


install()
