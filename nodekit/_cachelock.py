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

Finally, two processes that need the same cached function for the same
argument types at the same time (the workers of an ensemble or of the test
suite, started together on empty caches) would each compile it, for 30 s or
more in the case of the integration loop.  :func:`compile_lock` makes one of
them compile and the others wait and then load its machine code from the
cache: Numba's ``Dispatcher.compile`` takes an exclusive lock on a file named
after the function and the argument types before it looks in the cache.  A
process that waits longer than :data:`COMPILE_WAIT` compiles anyway.
"""
import contextlib
import functools
import hashlib
import os
import threading
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from numba.core import caching, dispatcher, sigutils

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
            try:
                fcntl.flock(handle, mode)
            except OSError:  # a file system without locks: unlocked, as before
                return method(self, *args, **kwargs)
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


#: Seconds a process waits for another one compiling the same function for
#: the same argument types before it compiles that function itself.
COMPILE_WAIT = 600.0

#: Compile-lock files this process holds (a compile inside a compile of the
#: same function and types, or another thread, must not wait for itself).
_held = set()
_held_guard = threading.Lock()


def compile_lock_path(function, sig):
    """The lock file that serialises compiling cached Numba ``function`` for
    argument types ``sig`` across processes, or None when the function is not
    cached on disk (or locks are not available)."""
    cache_file = getattr(getattr(function, "_cache", None), "_cache_file", None)
    if cache_file is None or fcntl is None:
        return None
    key = hashlib.sha256(f"{cache_file._index_name}\0{sig!r}".encode()).hexdigest()
    return os.path.join(cache_file._cache_path, f"compiling-{key[:32]}.lock")


def _acquire(handle, wait):
    """Lock ``handle`` exclusively within ``wait`` seconds; False when the
    wait runs out or the file system has no locks (``ENOLCK``, say)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        except OSError:
            return False


@contextlib.contextmanager
def exclusive(path, wait=None):
    """Hold an exclusive ``fcntl.flock`` on the file ``path`` (created if
    missing), waiting at most ``wait`` seconds (default
    :data:`COMPILE_WAIT`).  A no-op when ``path`` is None, when this process
    holds the lock already (a compile inside a compile, or another thread),
    when the file cannot be opened, or when the wait runs out: the caller
    then goes on unlocked, which costs at most a compile done twice."""
    with _held_guard:
        mine = path is not None and path not in _held
        if mine:
            _held.add(path)
    if not mine:
        yield
        return
    try:
        handle = open(path, "a")
    except OSError:  # no cache folder yet, or not writable
        handle = None
    try:
        if handle is not None and not _acquire(handle, COMPILE_WAIT if wait is None else wait):
            handle.close()
            handle = None
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases the lock
        with _held_guard:
            _held.discard(path)


def compile_lock(function, sig, wait=None):
    """:func:`exclusive` on :func:`compile_lock_path` of ``function`` and
    ``sig``: one process compiles, the others wait and load from the cache."""
    return exclusive(compile_lock_path(function, sig), wait)


def _compile_once(compile_):
    @functools.wraps(compile_)
    def compile(self, sig):
        args, _ = sigutils.normalize_signature(sig)
        if tuple(args) in self.overloads:  # compiled already: no lock to take
            return compile_(self, sig)
        with compile_lock(self, tuple(args)):
            return compile_(self, sig)
    compile._nodekit_once = True
    return compile


def install():
    """Wrap Numba's cache-file ``save`` and ``load`` in the lock, its source
    stamp of nodekit's own functions in the package fingerprint, and its
    ``Dispatcher.compile`` in :func:`compile_lock` (once per process)."""
    mixin = caching._SourceFileBackedLocatorMixin
    if not getattr(mixin.get_source_stamp, "_nodekit_stamped", False):
        mixin.get_source_stamp = _stamped(mixin.get_source_stamp)
    cls = caching.IndexDataCacheFile
    if fcntl is None or getattr(cls.save, "_nodekit_locked", False):
        return
    cls.save = _locked(cls.save, fcntl.LOCK_EX)
    cls.load = _locked(cls.load, fcntl.LOCK_SH)
    dispatcher.Dispatcher.compile = _compile_once(dispatcher.Dispatcher.compile)


install()
