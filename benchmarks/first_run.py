"""The first run from empty caches: what ``nodekit demo spiral`` compiles.

A fresh process, with ``NUMBA_CACHE_DIR`` and ``NODEKIT_CACHE`` pointing at
new empty folders (and Python's bytecode cache off, so nothing is read from
an earlier run), runs the spiral demo for one iteration.  It reports the
wall time from the process start to the end of the first training iteration,
and every function Numba compiled on the way, from Numba's ``numba:compile``
events:

* ``own s``: the time of that compile minus the compiles it started itself
  (a loop compiles the kernels it calls first); the rows add up to the
  total compile time;
* ``total s``: the whole compile, nested compiles included;
* ``caller``: the compile that started this one (``-`` when Python called it).

Like ``nodekit demo spiral``, the run first starts the compile of the
adjoint's backward solve in a second process (``nodekit.cli.prepare_demo``);
that process's compiles are not in the table, and the backward solve's row
then shows this process loading it (after waiting for it, if it was not
done yet).

Run: ``python -m nodekit.benchmarks.first_run [--warm] [--top N]``.  With
``--warm`` the same folders are used a second time, which shows what a
cached run still compiles (nothing, if the caches work).  A cold run takes
about a minute on two cores.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from ._timing import child_env, table


class CompileLog:
    """A Numba event listener recording every compile, with nesting."""

    def __init__(self):
        from numba.core import event

        class _Listener(event.Listener):
            def on_start(inner, ev):
                self._stack.append([ev.data, time.perf_counter(), 0.0])

            def on_end(inner, ev):
                data, t0, nested = self._stack.pop()
                total = time.perf_counter() - t0
                if self._stack:
                    self._stack[-1][2] += total
                caller = _name(self._stack[-1][0]) if self._stack else "-"
                self.rows.append(dict(function=_name(data), signature=_signature(data),
                                      own=total - nested, total=total, caller=caller,
                                      start=t0))

        self.rows, self._stack = [], []
        self.listener = _Listener()
        self._event = event

    def __enter__(self):
        self._event.register("numba:compile", self.listener)
        return self

    def __exit__(self, *exc):
        self._event.unregister("numba:compile", self.listener)


def _name(data):
    fn = data["dispatcher"].py_func
    return f"{fn.__module__.rpartition('.')[2]}.{fn.__qualname__}"


def _signature(data):
    text = ", ".join(str(a) for a in data["args"])
    return text if len(text) <= 70 else text[:67] + "..."


def _child(started, top):
    """Run in the fresh process: the demo for one iteration, under the log."""
    marks = {}
    with CompileLog() as log:
        import nodekit  # noqa: F401
        marks["import"] = time.time()
        from nodekit.cli import prepare_demo
        from nodekit.examples import spiral
        helper = prepare_demo("spiral")  # as `nodekit demo spiral` does

        fit = spiral.fit

        def timed_fit(*args, **kwargs):
            kwargs["callback"] = lambda i, *rest: marks.setdefault("first_iteration",
                                                                   time.time()) and False
            return fit(*args, **kwargs)

        spiral.fit = timed_fit
        with tempfile.TemporaryDirectory() as out:
            spiral.main(iters=1, out=out, progress=False)
        if helper is not None:
            helper.wait()
    print(json.dumps(dict(import_s=marks["import"] - started,
                          first_iteration_s=marks["first_iteration"] - started,
                          rows=log.rows)))


def measure(numba_dir, nodekit_dir):
    """One run of the demo in a new process; returns its report (dict)."""
    env = child_env()
    env.update(NUMBA_CACHE_DIR=numba_dir, NODEKIT_CACHE=nodekit_dir,
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "nodekit.benchmarks.first_run", "--child",
                           repr(started)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the child run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(result, top=None, label="empty caches"):
    """Print the wall times and the table of compiles, most expensive first."""
    rows = sorted(result["rows"], key=lambda r: -r["own"])
    compile_s = sum(r["own"] for r in rows)
    print(f"{label}: import {result['import_s']:.1f} s, first iteration done at "
          f"{result['first_iteration_s']:.1f} s; {len(rows)} compiles, "
          f"{compile_s:.1f} s compiling")
    if rows:
        shown = rows if top is None else rows[:top]
        print(table([(r["function"], r["signature"], f"{r['own']:.2f}", f"{r['total']:.2f}",
                      r["caller"]) for r in shown],
                    ["function", "signature", "own s", "total s", "caller"],
                    align="llrrl"))
        if len(shown) < len(rows):
            rest = rows[len(shown):]
            print(f"... and {len(rest)} more, {sum(r['own'] for r in rest):.2f} s together")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warm", action="store_true", help="run a second time on the same caches")
    p.add_argument("--top", type=int, default=None, help="show only the N dearest compiles")
    p.add_argument("--json", default=None, help="also write the reports to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        return _child(float(args.child), args.top)
    from .ensemble import cpu_model
    print(f"first run of `nodekit demo spiral --iters 1` ({cpu_model()}, "
          f"{os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as numba_dir, tempfile.TemporaryDirectory() as nk_dir:
        results = [measure(numba_dir, nk_dir)]
        report(results[0], args.top)
        if args.warm:
            results.append(measure(numba_dir, nk_dir))
            print()
            report(results[1], args.top, label="same caches again")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
