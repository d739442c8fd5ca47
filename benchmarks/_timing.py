"""Timing helpers for the benchmark scripts."""
import os
import statistics
import subprocess
import sys
import time

from nodekit._tables import table  # noqa: F401  (the benchmarks' table formatter)


def median_time(fn, repeat=20, warmup=2, min_time=0.2):
    """Median wall time of ``fn()`` in seconds over at least ``repeat`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) > 10000:
            break
    return statistics.median(times)


def child_env():
    """Environment for a child ``python`` that imports the same nodekit as this
    process (installed, or a source checkout), as ``nodekit.benchmarks`` etc."""
    import nodekit

    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(nodekit.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def fresh_process_time(code, repeat=3):
    """Wall time of ``python -c code`` in new processes (min, median)."""
    times = []
    env = child_env()
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)
