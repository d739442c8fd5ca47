"""nodekit._cachelock: two processes saving different signatures of one
cached Numba function at the same moment keep both entries, each pointing at
its own machine code (unlocked, Numba can give both the same data file)."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("fcntl")

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {folder!r})
    if {lock!r}:
        import nodekit  # noqa: F401  (installs the lock)
    from numba.core import caching
    save_index = caching.IndexDataCacheFile._save_index

    def slow_save_index(self, overloads):  # widen the window a race needs
        time.sleep(0.6)
        save_index(self, overloads)

    caching.IndexDataCacheFile._save_index = slow_save_index
    import racefn
    while time.time() < {start!r}:
        time.sleep(0.005)
    print(racefn.twice({arg}))
""")


def _race(tmp_path, lock):
    folder = str(tmp_path)
    with open(os.path.join(folder, "racefn.py"), "w") as fh:
        fh.write("import numba\n\n\n@numba.njit(cache=True)\ndef twice(x):\n    return x * 2\n")
    import time
    start = time.time() + 8.0  # after both children have imported and compiled
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "nbcache"))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.format(
        folder=folder, lock=lock, start=start, arg=arg)], env=env, stdout=subprocess.PIPE,
        text=True) for arg in ("1.5", "7")]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["3.0", "14"]
    index = [os.path.join(d, f) for d, _, fs in os.walk(env["NUMBA_CACHE_DIR"])
             for f in fs if f.endswith(".nbi")]
    with open(index[0], "rb") as fh:
        pickle.load(fh)
        _, overloads = pickle.loads(fh.read())
    return overloads


def test_concurrent_saves_keep_both_signatures(tmp_path):
    overloads = _race(tmp_path, lock=True)
    assert len(overloads) == 2
    assert len(set(overloads.values())) == 2  # each signature has its own data file


def test_package_fingerprint_follows_the_numba_modules(tmp_path):
    from nodekit._cachelock import package_fingerprint
    (tmp_path / "kernels.py").write_text("import numba\nX = 1\n")
    (tmp_path / "plain.py").write_text("Y = 1\n")
    first = package_fingerprint.__wrapped__(str(tmp_path))
    (tmp_path / "plain.py").write_text("Y = 2\n")          # no Numba: not part of it
    assert package_fingerprint.__wrapped__(str(tmp_path)) == first
    (tmp_path / "kernels.py").write_text("import numba\nX = 2\n")
    assert package_fingerprint.__wrapped__(str(tmp_path)) != first


def test_nodekit_functions_are_stamped_with_the_package(tmp_path):
    # a cached function of nodekit goes stale when any Numba module of the
    # package changes (its cached code includes what it calls); one outside
    # the package keeps Numba's own stamp
    from numba.core.caching import InTreeCacheLocator

    from nodekit import _cachelock, _kernels
    fn = _kernels.copy_into.py_func
    stamp = InTreeCacheLocator(fn, fn.__code__.co_filename).get_source_stamp()
    assert isinstance(stamp, tuple) and stamp[1] == _cachelock.package_fingerprint()
    outside = tmp_path / "outside.py"
    outside.write_text("def f():\n    return 1\n")
    ns = {}
    exec(compile(outside.read_text(), str(outside), "exec"), ns)
    assert not isinstance(InTreeCacheLocator(ns["f"], str(outside)).get_source_stamp(), tuple)


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {folder!r})
    from numba import types
    from nodekit import _cachelock
    import racefn
    with _cachelock.compile_lock(racefn.twice, (types.float64,)):
        print("locked", flush=True)
        time.sleep(3.0)  # another process needing twice(float64) waits
        racefn.twice(1.5)  # compiled and saved under the lock this process holds
""")

WAITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {folder!r})
    from nodekit import _cachelock
    _cachelock.COMPILE_WAIT = {wait!r}
    import racefn
    t0 = time.monotonic()
    value = racefn.twice(1.5)
    stats = racefn.twice.stats
    print(value, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()),
          round(time.monotonic() - t0, 2))
""")


def test_one_process_compiles_the_others_wait_and_load(tmp_path):
    # a process that needs a function another one is compiling for the same
    # argument types waits for it and loads its machine code from the cache;
    # one whose wait runs out compiles the function itself
    folder = str(tmp_path)
    with open(os.path.join(folder, "racefn.py"), "w") as fh:
        fh.write("import numba\n\n\n@numba.njit(cache=True)\ndef twice(x):\n    return x * 2\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "nbcache"))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(folder=folder)], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    waiters = [subprocess.Popen([sys.executable, "-c", WAITER.format(folder=folder, wait=wait)],
                                env=env, stdout=subprocess.PIPE, text=True)
               for wait in (600.0, 0.3)]
    patient, hasty = [w.communicate(timeout=120)[0].split() for w in waiters]
    holder.communicate(timeout=120)
    assert holder.returncode == 0
    assert patient[:3] == ["3.0", "1", "0"]  # loaded from the cache: no compile
    assert float(patient[3]) > 1.0  # after waiting for the holder
    assert hasty[:3] == ["3.0", "0", "1"]  # gave up waiting and compiled


def test_compile_lock_names_function_and_types():
    import numba
    from numba import types
    from nodekit._cachelock import compile_lock_path

    @numba.njit
    def uncached(x):
        return x

    assert compile_lock_path(uncached, (types.float64,)) is None
    from nodekit import _kernels
    cached = [f for f in vars(_kernels).values() if hasattr(f, "_cache")
              and compile_lock_path(f, (types.float64,)) is not None]
    assert cached, "nodekit's kernels are cached on disk"
    f = cached[0]
    a, b = (compile_lock_path(f, (t,)) for t in (types.float64, types.int64))
    assert a != b and os.path.dirname(a) == f._cache._cache_file._cache_path


def test_a_file_system_without_locks_compiles_unlocked(tmp_path, monkeypatch):
    # flock can fail with ENOLCK (some network file systems): the lock is
    # then skipped, never the compile
    import errno

    from nodekit import _cachelock

    def no_locks(handle, mode):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_cachelock.fcntl, "flock", no_locks)
    entered = []
    with _cachelock.exclusive(str(tmp_path / "x.lock"), wait=0.1):
        entered.append(True)
    assert entered
