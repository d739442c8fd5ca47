"""The event scan: sign changes of ``g(t, y, theta)`` over a solve's recorded
steps, and their roots on each step's interpolant.

One source, run two ways (as the integration loop is): compiled, with the
event function a Numba-jitted ``g`` called in nopython mode, and
interpreted, for a Python ``g``.  Per event, :func:`scan` walks the accepted
steps, evaluates ``g`` at every step end on the dense output, and where the
sign changes in the event's direction finds the root with Brent's method on
that step's interpolant (:func:`brent`), to a few ulps of ``t``.
"""
import math

import numba as nb
import numpy as np

from . import _kernels
from ._kernels import dense_point

_jit = nb.njit(cache=True)

_EPS = np.finfo(np.float64).eps


@_jit
def crossed(g0, g1, direction):
    """``g`` changes sign from ``g0`` to ``g1`` in ``direction`` (-1, 0, +1)?
    A zero end counts once: leaving zero is not a crossing."""
    up = (g0 < 0.0 <= g1) or (g0 <= 0.0 < g1 and g0 != 0.0)
    down = (g0 > 0.0 >= g1) or (g0 >= 0.0 > g1 and g0 != 0.0)
    return (up and direction >= 0) or (down and direction <= 0)


@_jit
def g_on_step(g, theta, t, P, t_grid, h_grid, y_grid, K_grid, idx, w, y):
    """``g(t, y(t), theta)`` with ``y(t)`` from the interpolant of step ``idx``."""
    dense_point(t, P, t_grid, h_grid, y_grid, K_grid, idx, w, y)
    return g(t, y, theta)


@_jit
def brent(g, theta, P, t_grid, h_grid, y_grid, K_grid, idx, w, y, a, b, fa, fb):
    """Brent's method for the root of ``g`` on step ``idx`` between ``a`` and
    ``b`` (``fa``, ``fb`` of opposite signs): inverse quadratic interpolation
    or secant steps, bisection whenever they would not shrink the bracket
    fast enough; stops at a bracket of a few ulps."""
    c, fc = a, fa
    d = e = b - a
    for _ in range(200):
        if (fb > 0.0) == (fc > 0.0):          # keep the root between b and c
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):                 # b is the best estimate
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * _EPS * max(1.0, abs(b))
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:                        # secant
                p = 2.0 * m * s
                q = 1.0 - s
            else:                             # inverse quadratic interpolation
                q0 = fa / fc
                r = fb / fc
                p = s * (2.0 * m * q0 * (q0 - r) - (b - a) * (r - 1.0))
                q = (q0 - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e = d
                d = p / q
            else:
                d = m
                e = m
        else:
            d = m
            e = m
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, m)
        fb = g_on_step(g, theta, b, P, t_grid, h_grid, y_grid, K_grid, idx, w, y)
    return b


@_jit
def scan(g, theta, P, t_grid, h_grid, y_grid, K_grid, t_reached, direction, stop_after,
         out_t):
    """The crossings of one event over the recorded steps, in integration order.

    Writes the event times into ``out_t`` (room for one per step) and
    returns ``(count, stopped)``: ``stopped`` when the event occurred
    ``stop_after`` times (``stop_after == 0``: never stops).  A root at the
    initial time is not reported (a solve restarted at an event must not
    stop at once), as in SciPy.
    """
    steps = t_grid.size
    w = np.empty(P.shape[0])
    y = np.empty(y_grid.shape[1])
    t0 = t_grid[0]
    g_prev = g(t0, y_grid[0], theta)
    count = 0
    for k in range(steps):
        ta = t_grid[k]
        if k + 1 < steps:   # the step's end is the next step's recorded start
            tb = t_grid[k + 1]
            gb = g(tb, y_grid[k + 1], theta)
        else:
            tb = t_reached
            gb = g_on_step(g, theta, tb, P, t_grid, h_grid, y_grid, K_grid, k, w, y)
        if crossed(g_prev, gb, direction):
            if gb == 0.0:
                tr = tb
            elif g_prev == 0.0:
                tr = ta
            else:
                tr = brent(g, theta, P, t_grid, h_grid, y_grid, K_grid, k, w, y,
                           ta, tb, g_prev, gb)
            if tr != t0:
                out_t[count] = tr
                count += 1
                if stop_after > 0 and count >= stop_after:
                    return count, True
        g_prev = gb
    return count, False


_PY = _kernels.python_twins(globals(), ["crossed", "g_on_step", "brent", "scan"])
scan_py = _PY["scan"]
