"""Compiled (Numba) twins of the reference problems in :mod:`validation.cases`.

Written by hand, at module level so that Numba caches them on disk; the
suite checks them against the SymPy systems before trusting them (check
family "finite differences": "compiled kernels match SymPy").  They let the
suite exercise ``nk.ODE``'s nopython path, forward and backward, on the same
problems as the Python path.
"""
import numba
import numpy as np

import nodekit as nk


@numba.njit(cache=True)
def lotka_volterra_rhs(t, y, th, out):
    out[0] = th[0] * y[0] - th[1] * y[0] * y[1]
    out[1] = -th[2] * y[1] + th[3] * y[0] * y[1]


@numba.njit(cache=True)
def lotka_volterra_vjp(t, y, th, a, out_y, out_th):
    out_y[0] = a[0] * (th[0] - th[1] * y[1]) + a[1] * th[3] * y[1]
    out_y[1] = -a[0] * th[1] * y[0] + a[1] * (-th[2] + th[3] * y[0])
    out_th[0] = a[0] * y[0]
    out_th[1] = -a[0] * y[0] * y[1]
    out_th[2] = -a[1] * y[1]
    out_th[3] = a[1] * y[0] * y[1]
    return 0.0


@numba.njit(cache=True)
def van_der_pol_rhs(t, y, th, out):
    out[0] = y[1]
    out[1] = th[0] * (1.0 - y[0] * y[0]) * y[1] - y[0]


@numba.njit(cache=True)
def van_der_pol_vjp(t, y, th, a, out_y, out_th):
    out_y[0] = a[1] * (-2.0 * th[0] * y[0] * y[1] - 1.0)
    out_y[1] = a[0] + a[1] * th[0] * (1.0 - y[0] * y[0])
    out_th[0] = a[1] * (1.0 - y[0] * y[0]) * y[1]
    return 0.0


@numba.njit(cache=True)
def lorenz_rhs(t, y, th, out):
    out[0] = th[0] * (y[1] - y[0])
    out[1] = y[0] * (th[1] - y[2]) - y[1]
    out[2] = y[0] * y[1] - th[2] * y[2]


@numba.njit(cache=True)
def lorenz_vjp(t, y, th, a, out_y, out_th):
    out_y[0] = -th[0] * a[0] + a[1] * (th[1] - y[2]) + a[2] * y[1]
    out_y[1] = th[0] * a[0] - a[1] + a[2] * y[0]
    out_y[2] = -a[1] * y[0] - th[2] * a[2]
    out_th[0] = a[0] * (y[1] - y[0])
    out_th[1] = a[1] * y[0]
    out_th[2] = -a[2] * y[2]
    return 0.0


#: Compiled ODEs by reference-problem name.
COMPILED = {
    "lotka-volterra": nk.ODE(lotka_volterra_rhs, lotka_volterra_vjp, name="lotka-volterra"),
    "van der pol": nk.ODE(van_der_pol_rhs, van_der_pol_vjp, name="van der pol"),
    "lorenz": nk.ODE(lorenz_rhs, lorenz_vjp, name="lorenz"),
}


def kernel_mismatch(ref, ode, n_points=5, seed=0):
    """Largest relative difference between a compiled ``ode`` and the SymPy
    system ``ref`` (right-hand side and both VJPs) at random points."""
    rng = np.random.default_rng(seed)
    theta = np.asarray(ref.theta, dtype=float)
    n, p = ref.dim, theta.size
    worst = 0.0
    for _ in range(n_points):
        tt = float(rng.uniform(*ref.t_span))
        y = rng.normal(size=n) * 2.0
        a = rng.normal(size=n)
        out = np.empty(n)
        ode.rhs(tt, y, theta, out)
        want = np.asarray(ref.numpy_fun()(tt, y, theta), dtype=float)
        out_y, out_th = np.empty(n), np.empty(p)
        ode.vjp(tt, y, theta, a, out_y, out_th)
        vy, vth = ref.vjp()(tt, y, theta, a)
        for got, exp in ((out, want), (out_y, vy), (out_th, vth)):
            worst = max(worst, np.max(np.abs(got - exp)) / max(np.max(np.abs(exp)), 1e-300))
    return float(worst)
