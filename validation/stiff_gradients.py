"""Gradients through the stiff methods: every method, Robertson and Van der Pol.

Run as ``python -m validation.stiff_gradients`` from the repository root.
Prints, for every stiff method, the worst relative error of the gradient of
``sum(y(t)^2)`` with respect to ``y0`` and every parameter (``gradient=
'interpolated'`` for every method, ``'discrete'`` for the ESDIRK ones; Python
right-hand sides traced by autograd) against central differences of
SciPy's Radau at rtol 1e-12 -- Robertson (k = 0.04, 3e7, 1e4) to t = 100 and
Van der Pol (mu = 1000) to t = 5 -- and the time taken.
"""
import time

import autograd
import autograd.numpy as anp
import numpy as np
from scipy.integrate import solve_ivp

import nodekit as nk


def robertson(t, y, k):
    return anp.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                      k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                      k[1] * y[1] ** 2])


def van_der_pol(t, y, mu):
    return anp.array([y[1], mu[0] * ((1.0 - y[0] ** 2) * y[1]) - y[0]])


PROBLEMS = {
    "robertson": (robertson, np.array([1.0, 0.0, 0.0]), np.array([0.04, 3e7, 1e4]),
                  np.array([0.0, 1.0, 10.0, 100.0]), 1e-2, 1e-12),
    "van_der_pol": (van_der_pol, np.array([2.0, 0.0]), np.array([1000.0]),
                    np.array([0.0, 1.0, 5.0]), 1.0, 1e-10),
}


#: (method, gradient mode): 'interpolated' for every stiff method, 'discrete'
#: for the ESDIRK ones.
MODES = [(m, "interpolated") for m in sorted(nk.STIFF_METHODS)] + [
    ("kvaerno5", "discrete"), ("trbdf2", "discrete")]


def radau_gradient(fun, y0, theta, ts, floor, rel=1e-5):
    """Central differences of ``sum(y(ts)^2)`` by SciPy's Radau at rtol 1e-12."""
    def loss(p):
        sol = solve_ivp(lambda t, v: np.array(fun(t, v, p[y0.size:])), (ts[0], ts[-1]),
                        p[:y0.size], method="Radau", t_eval=ts, rtol=1e-12, atol=1e-20)
        return np.sum(sol.y ** 2)

    p = np.concatenate([y0, theta])
    g = np.empty(p.size)
    for i in range(p.size):
        d = np.zeros(p.size)
        d[i] = rel * max(abs(p[i]), floor)
        g[i] = (loss(p + d) - loss(p - d)) / (2 * d[i])
    return g


def relative_error(g, ref):
    return float(np.max(np.abs(g - ref) / np.maximum(np.abs(ref), 1e-3 * np.abs(ref).max())))


def nodekit_gradient(fun, y0, theta, ts, method, rtol, atol, mode):
    def loss(y0, theta):
        return anp.sum(nk.odeint(fun, y0, ts, theta, method=method, gradient=mode,
                                 rtol=rtol, atol=atol) ** 2)
    return np.concatenate(autograd.grad(loss, (0, 1))(y0, theta))


def main():
    for name, (fun, y0, theta, ts, floor, atol) in PROBLEMS.items():
        ref = radau_gradient(fun, y0, theta, ts, floor)
        print(f"{name}: t = {ts.tolist()}, reference gradient {np.array2string(ref, precision=6)}")
        for method, mode in MODES:
            for rtol in (1e-6, 1e-8):
                t0 = time.perf_counter()
                g = nodekit_gradient(fun, y0, theta, ts, method, rtol, atol, mode)
                print(f"  {method:9s} {mode:12s} rtol {rtol:.0e}: worst relative error "
                      f"{relative_error(g, ref):.2e}  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
