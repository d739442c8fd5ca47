"""Timing helpers for the benchmark scripts."""
import statistics
import subprocess
import sys
import time


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


def fresh_process_time(code, repeat=3):
    """Wall time of ``python -c code`` in new processes (min, median)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def table(rows, headers):
    """Format rows (lists of str) as a Markdown table."""
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])
