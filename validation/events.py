"""Validation of events (slower than the tests; ``python -m nodekit.validation.events``).

* The bouncing ball in closed form (SymPy): every bounce time of ``k``
  bounces and its derivatives with respect to the initial height, the initial
  velocity, gravity and the restitution coefficient, against the hybrid
  system composed of :func:`nodekit.odeint_event` flights, at several
  parameter points.
* Event times of :func:`nodekit.solve` against SciPy's ``solve_ivp`` events:
  pendulum zero crossings in every direction, both time directions, with
  terminal counts, and a threshold on Lotka-Volterra.
"""
import sys
from functools import lru_cache

import autograd
import autograd.numpy as anp
import numpy as np
from scipy.integrate import solve_ivp

import nodekit as nk

#: Radius of the ball: it bounces when its centre is this far above the floor.
RADIUS = 0.2
#: Bounce-time tolerance of the closed-form checks (values and derivatives).
TOL = 1e-8


def fall(t, y, p):
    """Free flight under gravity ``p[0]``: position and velocity."""
    return anp.array([y[1], -p[0]])


FLOOR = nk.Event(lambda t, y, p: y[0] - RADIUS, direction=-1, name="floor")


def bounce_times(x0, v0, g, e, k, rtol=1e-11, atol=1e-12):
    """The first ``k`` bounce times of the hybrid system (differentiable):
    flights ended by the floor event, the bounce ``v -> -e v`` between them."""
    t, y, times = 0.0, anp.array([x0, v0]), []
    for _ in range(k):
        t, y = nk.odeint_event(fall, y, t, anp.array([g]), FLOOR, t_max=t + 100.0,
                               rtol=rtol, atol=atol)
        times.append(t)
        y = anp.array([y[0], -e * y[1]])
    return anp.stack(times)


@lru_cache(maxsize=None)
def bounce_closed_form(k):
    """``(times, jacobian)`` as functions of ``(x0, v0, g, e)`` from SymPy:
    ``t_1 = (v0 + s) / g`` with ``s = sqrt(v0^2 + 2 g (x0 - R))``, then
    ``t_{j+1} = t_j + 2 e^j s / g``."""
    import sympy as sp
    x0, v0, g, e = args = sp.symbols("x0 v0 g e", positive=True)
    s = sp.sqrt(v0 ** 2 + 2 * g * (x0 - sp.nsimplify(RADIUS)))
    times = [(v0 + s) / g]
    for j in range(1, k):
        times.append(times[-1] + 2 * e ** j * s / g)
    m = sp.Matrix(times)
    return sp.lambdify(args, m), sp.lambdify(args, m.jacobian(sp.Matrix(args)))


def check_bounces(point, k):
    """Largest errors of the bounce times and their Jacobian at ``point``."""
    exact, jac = bounce_closed_form(k)
    got = bounce_times(*point, k=k)
    grad = np.stack(autograd.jacobian(lambda p: bounce_times(p[0], p[1], p[2], p[3], k))(
        np.array(point, dtype=float)))
    return (float(np.max(np.abs(got - np.ravel(exact(*point))))),
            float(np.max(np.abs(grad - np.asarray(jac(*point), dtype=float)))))


def pendulum(t, y, th):
    return anp.array([y[1], -th[0] * anp.sin(y[0])])


def check_against_scipy(direction, backwards, terminal):
    """Largest difference of pendulum crossing times from SciPy's."""
    span = (12.0, 0.0) if backwards else (0.0, 12.0)

    def angle(t, y, th):
        return y[0]
    ev = nk.Event(angle, terminal=terminal, direction=direction)
    sol = nk.solve(pendulum, [1.0, 0.2], np.linspace(*span, 7), [1.3], events=ev,
                   method="dop853", rtol=1e-12, atol=1e-12)

    def ref_ev(t, y):
        return y[0]
    ref_ev.direction, ref_ev.terminal = direction, terminal
    ref = solve_ivp(lambda t, y: pendulum(t, y, [1.3]), span, [1.0, 0.2], events=ref_ev,
                    method="DOP853", rtol=1e-13, atol=1e-13)
    if sol.t_events[0].size != ref.t_events[0].size:
        return np.inf
    return float(np.max(np.abs(sol.t_events[0] - ref.t_events[0]), initial=0.0))


def run(quick=False):
    """Print the tables; return True when every check passes."""
    ok = True
    points = [(10.0, 0.0, 9.8, 0.8), (5.0, 2.0, 9.8, 0.5), (3.0, -1.0, 1.6, 0.9)]
    print("Bouncing ball against the closed form (SymPy), "
          f"tolerance {TOL:g} on times and derivatives")
    print("| x0 | v0 | g | e | bounces | max time error | max derivative error | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for point in points[:1] if quick else points:
        for k in (1, 3) if quick else (1, 3, 6):
            et, ed = check_bounces(point, k)
            good = et < TOL and ed < TOL
            ok &= good
            print(f"| {' | '.join(f'{v:g}' for v in point)} | {k} | {et:.2e} | {ed:.2e} | "
                  f"{'yes' if good else 'NO'} |")
    print("\nPendulum crossings against solve_ivp (DOP853, rtol 1e-13), tolerance 1e-10")
    print("| direction | backwards | terminal | max |t - t_scipy| | ok |")
    print("|---|---|---|---|---|")
    for direction in (-1, 0, 1):
        for backwards in (False, True):
            for terminal in (False, 2):
                err = check_against_scipy(direction, backwards, terminal)
                good = err < 1e-10
                ok &= good
                print(f"| {direction} | {backwards} | {terminal} | {err:.2e} | "
                      f"{'yes' if good else 'NO'} |")
    return ok


if __name__ == "__main__":
    sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
