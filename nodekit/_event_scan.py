"""The event scan after a solve: sign changes of ``g(t, y, theta)`` over the
recorded steps, and their roots on each step's interpolant.

This is the path for a Python event function (or a Python right-hand
side): :func:`scan` runs interpreted over a dense solution, with the same
crossing test and the same Brent iteration (:func:`nodekit._kernels.brent`)
that the compiled loop runs inside itself for a jitted event on an
``nk.ODE`` (:class:`nodekit._kernels.EventSystem`).  Per event it walks the
accepted steps, evaluates ``g`` at every step end, and where the sign
changes in the event's direction finds the root on that step's
interpolant, to a few ulps of ``t``.
"""
from typing import NamedTuple

import numpy as np

from . import _kernels
from ._kernels import crossed, dense_point

brent = _kernels.brent_py  # the interpreted twin: the scan calls a Python `g`


class ScanPoint(NamedTuple):
    """The event ``g`` on recorded step ``idx``, as :func:`brent` reads it."""

    g: object
    theta: object
    P: np.ndarray
    t_grid: np.ndarray
    h_grid: np.ndarray
    y_grid: np.ndarray
    K_grid: np.ndarray
    idx: int
    w: np.ndarray
    y: np.ndarray

    def value(point, tq):
        dense_point(tq, point.P, point.t_grid, point.h_grid, point.y_grid, point.K_grid,
                    point.idx, point.w, point.y)
        return point.g(tq, point.y, point.theta)


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
        point = ScanPoint(g, theta, P, t_grid, h_grid, y_grid, K_grid, k, w, y)
        if k + 1 < steps:   # the step's end is the next step's recorded start
            tb = t_grid[k + 1]
            gb = g(tb, y_grid[k + 1], theta)
        else:
            tb = t_reached
            gb = point.value(tb)
        if crossed(g_prev, gb, direction):
            if gb == 0.0:
                tr = tb
            elif g_prev == 0.0:
                tr = ta
            else:
                tr = brent(point, ta, tb, g_prev, gb)
            if tr != t0:
                out_t[count] = tr
                count += 1
                if stop_after > 0 and count >= stop_after:
                    return count, True
        g_prev = gb
    return count, False
