"""Test problems shared by the test modules: compiled kernels (module level, so
Numba caches them) and their autograd-NumPy twins."""
import autograd.numpy as anp
import numba
import numpy as np

import nodekit as nk
from nodekit.validation.kernels import lotka_volterra_rhs as lv_rhs
from nodekit.validation.kernels import lotka_volterra_vjp as lv_vjp
from nodekit.validation.kernels import van_der_pol_rhs as vdp_rhs

LV_THETA = np.array([1.5, 1.0, 3.0, 1.0])
LV_Y0 = np.array([1.0, 1.0])


def lv_py(t, y, th):
    return anp.array([th[0] * y[0] - th[1] * y[0] * y[1],
                      -th[2] * y[1] + th[3] * y[0] * y[1]])


LV = nk.ODE(lv_rhs, lv_vjp)


@numba.njit(cache=True)
def linear_rhs(t, y, th, out):
    """dy/dt = M y with M = theta reshaped (n, n); any n."""
    n = y.size
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += th[i * n + j] * y[j]
        out[i] = acc


@numba.njit(cache=True)
def linear_vjp(t, y, th, a, out_y, out_th):
    n = y.size
    for j in range(n):
        acc = 0.0
        for i in range(n):
            acc += a[i] * th[i * n + j]
        out_y[j] = acc
    for i in range(n):
        for j in range(n):
            out_th[i * n + j] = a[i] * y[j]
    return 0.0


LINEAR = nk.ODE(linear_rhs, linear_vjp)


def linear_py(t, y, th):
    n = y.shape[-1]
    return anp.dot(anp.reshape(th, (n, n)), y)


def vdp_py(t, y, th):
    return anp.array([y[1], th[0] * (1.0 - y[0] ** 2) * y[1] - y[0]])


VDP = nk.ODE(vdp_rhs)


@numba.njit(cache=True)
def cosgrowth_rhs(t, y, th, out):
    """Nonautonomous: dy/dt = theta0 * cos(t) * y, so y = y0 exp(theta0 sin t)."""
    for i in range(y.size):
        out[i] = th[0] * np.cos(t) * y[i]


@numba.njit(cache=True)
def cosgrowth_vjp(t, y, th, a, out_y, out_th):
    c = np.cos(t)
    out_th[0] = 0.0
    dfdt = 0.0
    for i in range(y.size):
        out_y[i] = a[i] * th[0] * c
        out_th[0] += a[i] * c * y[i]
        dfdt -= a[i] * th[0] * np.sin(t) * y[i]
    return dfdt


COSGROWTH = nk.ODE(cosgrowth_rhs, cosgrowth_vjp)


def cosgrowth_py(t, y, th):
    return th[0] * anp.cos(t) * y


@numba.njit(cache=True)
def blowup_rhs(t, y, th, out):
    """dy/dt = y**2: y = 1/(1/y0 - t) blows up at t = 1/y0."""
    out[0] = y[0] * y[0]


BLOWUP = nk.ODE(blowup_rhs)


@numba.njit(cache=True)
def linear_jac(t, y, th, out):
    """``df/dy = M`` for :func:`linear_rhs`."""
    n = y.size
    for i in range(n):
        for j in range(n):
            out[i, j] = th[i * n + j]
