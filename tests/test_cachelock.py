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
