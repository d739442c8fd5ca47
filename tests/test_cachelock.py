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
