"""Events: what locating an event costs, against the same solve without one.

Lotka-Volterra (a, b, c, d) = (1.5, 1, 3, 1) from (1, 1) over [0, 3000]
(tens of thousands of steps, one prey threshold crossing every few steps),
Dormand-Prince 5(4) at rtol 1e-8, atol 1e-10, compiled right-hand side.
Rows: the plain solve; the same with ``dense=True`` (what a scan after the
solve needs); a jitted event (located inside the compiled loop); a terminal
jitted event at its 100th occurrence; and a Python event (scanned after the
solve, interpreted).

Run: ``python -m nodekit.benchmarks.events [--quick]`` (also part of ``nodekit bench``).
"""
import sys

import numba
import numpy as np

from ._timing import median_time, table
from .ensemble import cpu_model

TH = np.array([1.5, 1.0, 3.0, 1.0])
Y0 = np.array([1.0, 1.0])
RTOL, ATOL = 1e-8, 1e-10


@numba.njit(cache=True)
def prey_threshold(t, y, th):
    """The prey population crossing 2."""
    return y[0] - 2.0


def rows(t_end, repeat):
    import nodekit as nk
    from nodekit.validation.kernels import lotka_volterra_rhs
    lv = nk.ODE(lotka_volterra_rhs, name="lv")
    t = np.array([0.0, t_end])
    opts = dict(rtol=RTOL, atol=ATOL)
    py_event = nk.Event(lambda t, y, th: y[0] - 2.0, name="prey (Python)")
    runs = {
        "plain solve": lambda: nk.solve(lv, Y0, t, TH, **opts),
        "dense=True (no event)": lambda: nk.solve(lv, Y0, t, TH, dense=True, **opts),
        "jitted event, in the loop": lambda: nk.solve(lv, Y0, t, TH, events=prey_threshold,
                                                     **opts),
        "jitted event, terminal at the 100th": lambda: nk.solve(
            lv, Y0, t, TH, events=nk.Event(prey_threshold, terminal=100), **opts),
        "Python event, scanned after the solve": lambda: nk.solve(lv, Y0, t, TH,
                                                                 events=py_event, **opts),
    }
    sols = {name: run() for name, run in runs.items()}
    plain, looped, scanned = (sols["plain solve"], sols["jitted event, in the loop"],
                              sols["Python event, scanned after the solve"])
    assert looped.nfev == plain.nfev and looped.nsteps == plain.nsteps
    np.testing.assert_array_equal(looped.t_events[0], scanned.t_events[0])
    times = {name: median_time(run, repeat=repeat, warmup=1, min_time=0)
             for name, run in runs.items()}
    return times, sols


def run(quick=False):
    t_end = 300.0 if quick else 3000.0
    times, sols = rows(t_end, 3 if quick else 7)
    plain = sols["plain solve"]
    base = times["plain solve"]
    print(f"CPU: {cpu_model()}")
    print(f"Events: Lotka-Volterra over [0, {t_end:g}], dopri5 rtol {RTOL:g} atol {ATOL:g}: "
          f"{plain.nsteps} steps, {sols['jitted event, in the loop'].t_events[0].size} "
          "crossings of the prey threshold")
    out = []
    for name, s in times.items():
        sol = sols[name]
        n_ev = sol.t_events[0].size if getattr(sol, "t_events", None) else 0
        out.append((name, f"{1e3 * s:.2f}", f"{s / base:.2f}x", str(sol.nfev), str(n_ev)))
    print(table(out, ["solve", "ms", "time / plain", "nfev", "events"]))


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
