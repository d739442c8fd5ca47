"""Ctrl-C (SIGINT) stops a long compiled solve promptly with KeyboardInterrupt,
and leaves Python's own Ctrl-C handling intact (see nodekit/_interrupt.py)."""
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the chained SIGINT handler is Linux-only")

CHILD = r"""
import sys, time
import numba, numpy as np
import nodekit as nk

@numba.njit  # no cache: this source has no file
def oscillator(t, y, th, out):
    out[0] = y[1]
    out[1] = -y[0]

ode = nk.ODE(oscillator)
method = sys.argv[1]
nk.solve(ode, [1.0, 0.0], [0.0, 1.0],                         # compile / load
         method="dopri5" if method == "ensemble" else method)
if method == "ensemble":
    run = lambda: nk.solve_ensemble(ode, np.tile([1.0, 0.0], (4, 1)), [0.0, 1e9], None,
                                    rtol=1e-10, max_steps=10**12, workers=2)
    nk.solve_ensemble(ode, np.tile([1.0, 0.0], (4, 1)), [0.0, 1.0], None, workers=2)
else:
    run = lambda: nk.solve(ode, [1.0, 0.0], [0.0, 1e9], method=method, rtol=1e-10,
                           max_steps=10**12)
print("ready", flush=True)
start = time.perf_counter()
try:
    run()
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted %.3f" % (time.perf_counter() - start), flush=True)
sol = nk.solve(ode, [1.0, 0.0], [0.0, 1.0])                    # still works
print("after", sol.status, round(float(sol.y[-1, 0]), 6), flush=True)
try:
    time.sleep(60)                                             # Python code: Python's Ctrl-C
    print("slept", flush=True)
except KeyboardInterrupt:
    print("python interrupted", flush=True)
"""


def _run_child(method):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, method], stdout=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith(("ready", "after")):
                time.sleep(0.5)
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    return lines


@pytest.mark.parametrize("method", ["dopri5", "rodas5", "ensemble"])
def test_ctrl_c_stops_a_long_compiled_solve(method):
    lines = _run_child(method)
    assert lines[0] == "ready", lines
    assert lines[1].startswith("interrupted"), lines
    # the signal came 0.5 s after the start; the loop stops within its next step
    assert float(lines[1].split()[1]) < 5.0, lines
    assert lines[2] == "after 0 0.540302", lines
    assert lines[3] == "python interrupted", lines
