"""Numba kernels: one generic explicit Runge-Kutta integrator for every tableau.

Everything here is written once and executed two ways:

* compiled (``@numba.njit(cache=True)``) when the right-hand side is a
  compiled :class:`nodekit.ODE`: the whole solve, output interpolation
  included, runs in nopython mode, with stage buffers allocated once per solve;
* as plain Python (:data:`integrate_py`) when the right-hand side is a Python
  function: the *same* loop source runs in the interpreter, while every O(n)
  array operation it performs is still a call to a compiled helper below.

The loop never touches array elements itself, only through the helpers, so the
Python execution costs a handful of compiled calls per stage and the compiled
execution inlines them.  There is no second copy of the algorithm.

The right-hand side reaches the loop through ``system``, a tuple whose first
entry is a mode and whose other entries are what :func:`evaluate` needs (the
user's kernels as first-class functions, ``theta``, workspaces).  Mode 0 is a
plain ODE ``dy/dt = f(t, y, theta)``; augmented systems (adjoints) add modes.
First-class function arguments (``numba.cfunc`` objects) keep the compiled
loop's signature independent of the user's function, so the loop is compiled
once and loaded from Numba's on-disk cache by every later process.
"""
import math
import types

import numba as nb
import numpy as np

from .controllers import (accept_factor, error_norm, initial_step_final,
                          initial_step_trial, reject_factor)

# Status codes, shared with nodekit.integrate.
SUCCESS = 0
FAILED_NONFINITE = -1
FAILED_STEP_UNDERFLOW = -2
FAILED_MAX_STEPS = -3


_jit = nb.njit(cache=True, nogil=True)
_inline = nb.njit(cache=True, nogil=True, inline="always")


# ---------------------------------------------------------------------------
# Array helpers: the only places that touch array elements.
# ---------------------------------------------------------------------------
@_inline
def stage_input(y, h, A, k, K, out):
    """Write ``y + h * sum_{j<k} A[k, j] K[j]`` into ``out``."""
    for i in range(y.size):
        acc = 0.0
        for j in range(k):
            acc += A[k, j] * K[j, i]
        out[i] = y[i] + h * acc


@_inline
def combine(y, h, w, K, out):
    """Write ``y + h * sum_j w[j] K[j]`` into ``out`` (``w`` may be short)."""
    for i in range(y.size):
        acc = 0.0
        for j in range(w.size):
            acc += w[j] * K[j, i]
        out[i] = y[i] + h * acc


@_inline
def axpy(y, a, x, out):
    """Write ``y + a * x`` into ``out``."""
    for i in range(y.size):
        out[i] = y[i] + a * x[i]


@_inline
def set_row(M, r, x):
    """``M[r, :] = x`` without creating a view."""
    for i in range(x.size):
        M[r, i] = x[i]


@_inline
def copy_row(M, src, dst):
    """``M[dst, :] = M[src, :]`` without creating views."""
    for i in range(M.shape[1]):
        M[dst, i] = M[src, i]


@_inline
def copy_into(src, dst):
    """``dst[:] = src`` for 1-D arrays."""
    for i in range(src.size):
        dst[i] = src[i]


@_inline
def all_finite(x):
    """True when every entry of the 1-D array ``x`` is finite."""
    for i in range(x.size):
        if not math.isfinite(x[i]):
            return False
    return True


@_inline
def dense_weights(P, theta, w):
    """``w[k] = sum_j P[k, j] theta**(j+1)``: interpolant weights at ``theta``."""
    S, q = P.shape
    for k in range(S):
        acc = 0.0
        for j in range(q - 1, -1, -1):
            acc = (acc + P[k, j]) * theta
        w[k] = acc


@_jit
def store_dense(P, K, Q):
    """``Q[j] = sum_k P[k, j] K[k]``: the step's interpolant coefficients."""
    S, q = P.shape
    n = K.shape[1]
    for j in range(q):
        for i in range(n):
            acc = 0.0
            for k in range(S):
                acc += P[k, j] * K[k, i]
            Q[j, i] = acc


@_jit
def dense_eval(tq, t_grid, h_grid, y_grid, Q_grid, count, direction, out):
    """Evaluate a stored dense solution at the times ``tq`` into ``out``.

    Step ``m`` spans ``[t_grid[m], t_grid[m] + h_grid[m]]`` and its
    interpolant is ``y_grid[m] + h sum_j Q_grid[m, j] theta**(j+1)``.
    """
    n = y_grid.shape[1]
    q = Q_grid.shape[1]
    for r in range(tq.size):
        # binary search for the last step whose start is at or before tq[r]
        lo = 0
        hi = count - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if direction * (tq[r] - t_grid[mid]) >= 0.0:
                lo = mid
            else:
                hi = mid - 1
        h = h_grid[lo]
        theta = (tq[r] - t_grid[lo]) / h
        for i in range(n):
            acc = 0.0
            for j in range(q - 1, -1, -1):
                acc = (acc + Q_grid[lo, j, i]) * theta
            out[r, i] = y_grid[lo, i] + h * acc


# ---------------------------------------------------------------------------
# The right-hand side, by mode.
# ---------------------------------------------------------------------------
EMPTY_F = np.empty(0)
EMPTY_I = np.empty(0, dtype=np.int64)
EMPTY_F2 = np.empty((0, 0))
EMPTY_F3 = np.empty((0, 0, 0))

# Modes of ``system``.
MODE_ODE = 0


def make_system(mode, rhs, vjp, theta, ipar=EMPTY_I, fpar=EMPTY_F, work=EMPTY_F,
                grid_t=EMPTY_F, grid_h=EMPTY_F, grid_y=EMPTY_F2, grid_Q=EMPTY_F3):
    """Pack a right-hand side for :func:`integrate`.

    Every mode uses the same tuple layout (unused entries are empty arrays),
    so the compiled loop has a single signature and is compiled once:
    ``(mode, rhs, vjp, theta, ipar, fpar, work, grid_t, grid_h, grid_y,
    grid_Q)``.  ``rhs`` and ``vjp`` are first-class compiled functions (or
    Python callables for the interpreted loop).
    """
    return (int(mode), rhs, vjp, theta, ipar, fpar, work,
            grid_t, grid_h, grid_y, grid_Q)


@_inline
def evaluate(system, t, y, out):
    """Evaluate the right-hand side selected by ``system[0]`` into ``out``.

    Mode 0 (:data:`MODE_ODE`): the plain ODE ``dy/dt = rhs(t, y, theta)``.
    """
    system[1](t, y, system[3], out)


@_inline
def stages(system, t, y, h, A, C, K, k0, k1, tmp, fk):
    """Evaluate the stage slots ``k0 <= k < k1`` of a step from ``(t, y)``.

    ``tmp`` and ``fk`` are scratch vectors (the right-hand side writes into
    ``fk``, which is copied into the row: passing row views of ``K`` would
    cost reference counting on every evaluation).  Returns the number of
    right-hand-side evaluations made.
    """
    for k in range(k0, k1):
        stage_input(y, h, A, k, K, tmp)
        evaluate(system, t + C[k] * h, tmp, fk)
        set_row(K, k, fk)
    return k1 - k0


# ---------------------------------------------------------------------------
# The integration loop.
# ---------------------------------------------------------------------------
@_jit
def integrate(system, y0, ts, A, C, B, E, E2, has_e2, P, n_stages, f1_index,
              fsal, error_order, rtol, atol, n_err, ctrl, first_step,
              max_step, max_steps, fixed_step, dense, out):
    """Integrate ``system`` from ``ts[0]`` through every time in ``ts``.

    One loop serves every explicit tableau (given as the float arrays of
    :class:`nodekit.tableaux.ButcherTableau`), adaptive (``fixed_step == 0``)
    or fixed-step (``fixed_step > 0``), forwards or backwards in time.  Output
    times are reached by the tableau's dense output, never by shortening steps.

    Parameters
    ----------
    system : tuple
        ``(mode, ...)`` as understood by :func:`evaluate`.
    y0 : ndarray, shape (n,)
    ts : ndarray, shape (m,)
        Strictly monotone output times; ``ts[0]`` is the initial time.
    A, C, B, E, E2, P : ndarray
        Tableau arrays in the slot layout of ``ButcherTableau``.
    rtol, atol : ndarray, shape (n,)
    n_err : int
        Number of leading components that enter the error norm.
    ctrl : ndarray, shape (5,)
        safety, min_factor, max_factor, icoeff, pcoeff.
    out : ndarray, shape (m, n)
        Receives ``y(ts)``; rows past a failure are left untouched.

    Returns
    -------
    status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out,
    t_grid, h_grid, y_grid, Q_grid, n_dense
    """
    n = y0.size
    m = ts.size
    S = A.shape[0]
    q = P.shape[1]
    K = np.zeros((S, n))
    y = y0.copy()
    ynew = np.empty(n)
    tmp = np.empty(n)
    fk = np.empty(n)
    w = np.empty(S)
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
    span = abs(t_end - t0)
    adaptive = fixed_step <= 0.0

    cap = 16 if dense else 1
    t_grid = np.empty(cap)
    h_grid = np.empty(cap)
    y_grid = np.empty((cap, n))
    Q_grid = np.empty((cap, q, n))
    n_dense = 0

    copy_into(y0, out[0])
    n_out = 1
    nfev = 0
    nsteps = 0
    naccept = 0
    nreject = 0
    status = SUCCESS
    t = t0
    h = 0.0

    evaluate(system, t, y, K[0])
    nfev += 1
    if not all_finite(K[0]):
        return (FAILED_NONFINITE, t, h, nfev, nsteps, naccept, nreject, n_out,
                t_grid, h_grid, y_grid, Q_grid, n_dense)

    if adaptive:
        if first_step > 0.0:
            h_abs = first_step
        else:
            h0, d1 = initial_step_trial(y, K[0], span, rtol, atol, n_err)
            axpy(y, direction * h0, K[0], tmp)
            evaluate(system, t0 + direction * h0, tmp, ynew)
            nfev += 1
            h_abs = initial_step_final(h0, d1, K[0], ynew, y, span, max_step,
                                       error_order, rtol, atol, n_err)
    else:
        h_abs = fixed_step
    exponent = -1.0 / (error_order + 1.0)
    err = 0.0
    err_prev = 1.0
    n_main = n_stages - 1 if fsal else n_stages
    rejected = False

    while direction * (t_end - t) > 0.0:
        if nsteps >= max_steps:
            status = FAILED_MAX_STEPS
            break
        min_step = 10.0 * abs(np.nextafter(t, direction * np.inf) - t)
        if adaptive:
            if h_abs > max_step:
                h_abs = max_step
            elif h_abs < min_step:
                h_abs = min_step
            t_new = t + direction * h_abs
            if direction * (t_new - t_end) > 0.0:
                t_new = t_end
        else:
            t_new = t0 + direction * (naccept + 1) * fixed_step
            if direction * (t_end - t_new) < 1e-9 * fixed_step:
                t_new = t_end
        h = t_new - t
        h_abs = abs(h)

        nfev += stages(system, t, y, h, A, C, K, 1, n_main, tmp, fk)
        combine(y, h, B, K, ynew)
        if fsal:
            evaluate(system, t_new, ynew, fk)
            set_row(K, f1_index, fk)
            nfev += 1
        nsteps += 1

        if adaptive:
            err = error_norm(h, E, E2, has_e2, K, y, ynew, rtol, atol, n_err)
            if not err < 1.0:
                # rejected (a non-finite estimate counts as a huge error)
                nreject += 1
                h_abs *= reject_factor(err, exponent, ctrl)
                rejected = True
                if h_abs < min_step:
                    status = FAILED_NONFINITE if not math.isfinite(err) \
                        else FAILED_STEP_UNDERFLOW
                    break
                continue
        elif not all_finite(ynew):
            status = FAILED_NONFINITE
            break

        # accepted: make sure the slot f1 holds f(t_new, ynew)
        if not fsal:
            evaluate(system, t_new, ynew, fk)
            set_row(K, f1_index, fk)
            nfev += 1
        if not all_finite(fk):
            status = FAILED_NONFINITE
            break
        naccept += 1

        extras = f1_index + 1 < S
        if dense:
            if extras:
                nfev += stages(system, t, y, h, A, C, K, f1_index + 1, S, tmp, fk)
                extras = False
            if n_dense == cap:
                cap *= 2
                t_grid2 = np.empty(cap)
                h_grid2 = np.empty(cap)
                y_grid2 = np.empty((cap, n))
                Q_grid2 = np.empty((cap, q, n))
                t_grid2[:n_dense] = t_grid[:n_dense]
                h_grid2[:n_dense] = h_grid[:n_dense]
                y_grid2[:n_dense] = y_grid[:n_dense]
                Q_grid2[:n_dense] = Q_grid[:n_dense]
                t_grid, h_grid, y_grid, Q_grid = t_grid2, h_grid2, y_grid2, Q_grid2
            t_grid[n_dense] = t
            h_grid[n_dense] = h
            copy_into(y, y_grid[n_dense])
            store_dense(P, K, Q_grid[n_dense])
            n_dense += 1

        while n_out < m and direction * (ts[n_out] - t_new) <= 0.0:
            if ts[n_out] == t_new:
                set_row(out, n_out, ynew)
            else:
                if extras:
                    nfev += stages(system, t, y, h, A, C, K, f1_index + 1, S, tmp, fk)
                    extras = False
                dense_weights(P, (ts[n_out] - t) / h, w)
                combine(y, h, w, K, tmp)
                set_row(out, n_out, tmp)
            n_out += 1

        t = t_new
        copy_into(ynew, y)
        copy_row(K, f1_index, 0)

        if adaptive:
            h_abs *= accept_factor(err, err_prev, exponent, ctrl, rejected)
            err_prev = max(err, 1e-4)
            rejected = False

    return (status, t, h, nfev, nsteps, naccept, nreject, n_out,
            t_grid, h_grid, y_grid, Q_grid, n_dense)


# ---------------------------------------------------------------------------
# The same loop, executed by the interpreter for Python right-hand sides.
# ---------------------------------------------------------------------------
def _python_twins(names, vectorized):
    """Interpreted versions of the jitted functions ``names``.

    They share one globals dict in which those names refer to each other's
    interpreted versions and the element-wise helpers are replaced by the
    NumPy one-liners in ``vectorized`` (same results; a NumPy call costs less
    than a compiled call from the interpreter).  The algorithm itself is the
    one source above.
    """
    g = dict(globals())
    g.update(vectorized)
    for name in names:
        fn = g[name].py_func
        g[name] = types.FunctionType(fn.__code__, g, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
    return {name: g[name] for name in names}


def _np_stage_input(y, h, A, k, K, out):
    np.add(y, h * (A[k, :k] @ K[:k]), out=out)


def _np_combine(y, h, w, K, out):
    np.add(y, h * (w @ K[:w.size]), out=out)


def _np_axpy(y, a, x, out):
    np.add(y, a * x, out=out)


def _np_set_row(M, r, x):
    M[r] = x


def _np_copy_row(M, src, dst):
    M[dst] = M[src]


def _np_copy_into(src, dst):
    dst[:] = src


def _np_all_finite(x):
    return bool(np.isfinite(x).all())


def _np_dense_weights(P, theta, w):
    w[:] = P @ (theta ** np.arange(1, P.shape[1] + 1))


_VECTORIZED = {"stage_input": _np_stage_input, "combine": _np_combine, "axpy": _np_axpy,
               "set_row": _np_set_row, "copy_row": _np_copy_row,
               "copy_into": _np_copy_into, "all_finite": _np_all_finite,
               "dense_weights": _np_dense_weights}

_PY = _python_twins(["evaluate", "stages", "integrate"], {})
integrate_py = _PY["integrate"]
