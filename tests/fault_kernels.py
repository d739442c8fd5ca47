"""Faulty compiled kernels for tests/test_faults.py (module level, so Numba
caches them)."""
import numba
import numpy as np


@numba.njit(cache=True)
def raises_late(t, y, th, out):
    """``dy/dt = -th[0] y``, raising for ``t > 0.5``."""
    if t > 0.5:
        raise ValueError("kernel refuses t > 0.5")
    for i in range(y.size):
        out[i] = -th[0] * y[i]


@numba.njit(cache=True, boundscheck=True)
def writes_past_end_late(t, y, th, out):
    """Writes ``out[5]`` for ``t > 0.5``: an IndexError under ``boundscheck``."""
    out[0] = -y[0]
    out[1] = -y[1]
    if t > 0.5:
        out[5] = 1.0


@numba.njit(cache=True)
def writes_past_end(t, y, th, out):
    """Writes ``out[5]`` (no bounds check: past a 2-state array)."""
    out[0] = -y[0]
    out[1] = -y[1]
    out[5] = 1.0


@numba.njit(cache=True)
def writes_first_only(t, y, th, out):
    """Writes ``out[0]`` only."""
    out[0] = -y[0]


@numba.njit(cache=True)
def modifies_y(t, y, th, out):
    y[0] = 0.0
    out[0] = -y[0]


@numba.njit(cache=True)
def lv(t, y, th, out):
    """Lotka-Volterra, two states, four parameters (hard-coded indices)."""
    out[0] = th[0] * y[0] - th[1] * y[0] * y[1]
    out[1] = -th[2] * y[1] + th[3] * y[0] * y[1]


@numba.njit(cache=True)
def decay(t, y, th, out):
    for i in range(y.size):
        out[i] = -th[0] * y[i]


@numba.njit(cache=True)
def decay_vjp_raises(t, y, th, a, out_y, out_th):
    """A VJP that raises at every call."""
    if t >= 0.0 or t < 0.0:
        raise RuntimeError("vjp is broken")
    return 0.0


@numba.njit(cache=True)
def decay_jac_raises_late(t, y, th, out):
    """The Jacobian of :func:`decay`, raising for ``t > 0.5``."""
    if t > 0.5:
        raise ValueError("jacobian refuses t > 0.5")
    for i in range(y.size):
        for j in range(y.size):
            out[i, j] = -th[0] if i == j else 0.0


@numba.njit(cache=True)
def decay_vjp_scribbling(t, y, th, a, out_y, out_th):
    """The exact VJP of :func:`decay`, which also allocates blocks of every
    small size and fills them with 1e300: it is handed, and overwrites, any
    block of that size that its caller has released while still reading it."""
    junk = 0.0
    for size in range(1, 4 * (y.size + th.size) + 4):
        for _ in range(3):
            block = np.full(size, 1e300)
            junk += block[size - 1]
    acc = 0.0
    for i in range(y.size):
        out_y[i] = -th[0] * a[i]
        acc += a[i] * y[i]
    out_th[0] = -acc + 0.0 * junk  # (0.0 * junk: keeps the blocks, adds 0)
    return 0.0
