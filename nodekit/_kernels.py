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
once and loaded from Numba's on-disk cache by every later process.  Each
kernel call returns a fault code (nonzero when the kernel raised, see
:mod:`nodekit.ode`); the loop stops at the first one with ``FAILED_KERNEL``.
(Numba keys this module's cache on its own text only: after editing a helper
it calls from another module, change this file too, or clear the cache.)
"""
import math
import types
import warnings

import numba as nb
import numpy as np
from numba import types as nbt
from numba.core import cgutils
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.extending import intrinsic, overload

from . import _interrupt
from ._interrupt import INTERRUPTED, interrupted
from .controllers import (accept_factor, error_norm, initial_step_final,
                          initial_step_trial, reject_factor)

# First-class functions are how every right-hand side reaches the one loop.
warnings.filterwarnings("ignore", message="First-class function type feature is experimental",
                        category=NumbaExperimentalFeatureWarning)

# Status codes, shared with nodekit.integrate.
SUCCESS = 0
FAILED_NONFINITE = -1
FAILED_STEP_UNDERFLOW = -2
FAILED_MAX_STEPS = -3
FAILED_KERNEL = -4  #: a compiled kernel raised; see ``fault``
assert INTERRUPTED == -5  # Ctrl-C: see nodekit._interrupt


_jit = nb.njit(cache=True, nogil=True)
_inline = nb.njit(cache=True, nogil=True, inline="always")


# ---------------------------------------------------------------------------
# Borrowed arrays: the loop's hot path free of reference counting.
# ---------------------------------------------------------------------------
# Numba counts references to every array it passes around (an atomic
# increment and decrement for each view such as ``K[k]``, each tuple item
# read, each variable re-bound), and inside a loop with many exits most of
# these survive its pruning: on Lotka-Volterra they were more than half of
# the loop's time.  The loop therefore runs on *borrowed* arrays (the same
# data, without a reference-count record, so every count update is a no-op)
# while its caller holds the owned arrays alive.
def _borrow_value(context, builder, ty, val):
    if isinstance(ty, nbt.Array):
        ary = context.make_array(ty)(context, builder, val)
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()
    if isinstance(ty, nbt.BaseTuple):
        items = [_borrow_value(context, builder, t, builder.extract_value(val, i))
                 for i, t in enumerate(ty)]
        return context.make_tuple(builder, ty, items)
    context.nrt.incref(builder, ty, val)  # returned as a new reference
    return val


@intrinsic
def borrowed(typingctx, x):
    """``x`` (an array, or a tuple holding arrays) with every array's
    reference-count record removed: views and copies of it cost no atomic
    operations.  The caller must keep the owned ``x`` alive meanwhile (see
    :func:`keep_alive`)."""
    def codegen(context, builder, sig, args):
        return _borrow_value(context, builder, sig.args[0], args[0])
    return x(x), codegen


@intrinsic
def keep_alive(typingctx, x):
    """A use of ``x`` that does nothing: placed after the call that used
    :func:`borrowed` views of ``x``, it keeps ``x`` owned until then."""
    def codegen(context, builder, sig, args):
        return context.get_dummy_value()
    return nbt.none(x), codegen


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
def outer_into(M, h, c, v):
    """``M[s, :] = h * c[s] * v`` for every row ``s``."""
    for s in range(M.shape[0]):
        for i in range(v.size):
            M[s, i] = h * c[s] * v[i]


@_inline
def add_outer_row(M, h, c, G, j):
    """``M[s, :] += h * c[s] * G[j, :]`` for every row ``s``."""
    for s in range(M.shape[0]):
        if c[s] != 0.0:
            for i in range(M.shape[1]):
                M[s, i] += h * c[s] * G[j, i]


@_inline
def add_outer_prefix(M, h, A, s, v):
    """``M[r, :] += h * A[s, r] * v`` for the rows ``r < s``."""
    for r in range(s):
        a = h * A[s, r]
        if a != 0.0:
            for i in range(v.size):
                M[r, i] += a * v[i]


@_inline
def add_row(x, G, j):
    """``x += G[j, :]``."""
    for i in range(x.size):
        x[i] += G[j, i]


@_inline
def add_into(x, v):
    """``x += v``."""
    for i in range(x.size):
        x[i] += v[i]


@_inline
def row_is_zero(M, r):
    """True when ``M[r, :]`` is all zeros."""
    for i in range(M.shape[1]):
        if M[r, i] != 0.0:
            return False
    return True


@_jit
def strictly_monotone(t):
    """True when the 1-D array ``t`` is strictly increasing or decreasing."""
    if t.size < 2:
        return True
    up = t[1] > t[0]
    for i in range(1, t.size):
        if (t[i] > t[i - 1]) != up or t[i] == t[i - 1]:
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


@_inline
def locate(tq, t_grid, count, direction, hint):
    """Index of the stored step containing time ``tq`` (``hint`` first)."""
    if 0 <= hint < count and direction * (tq - t_grid[hint]) >= 0.0 and (
            hint == count - 1 or direction * (tq - t_grid[hint + 1]) < 0.0):
        return hint
    lo = 0
    hi = count - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if direction * (tq - t_grid[mid]) >= 0.0:
            lo = mid
        else:
            hi = mid - 1
    return lo


@_inline
def dense_point(tq, P, t_grid, h_grid, y_grid, K_grid, idx, w, out):
    """``out = y(tq)`` from stored step ``idx``: ``y_k + h sum_s w_s(theta) K_s``."""
    h = h_grid[idx]
    dense_weights(P, (tq - t_grid[idx]) / h, w)
    S = P.shape[0]
    for i in range(out.size):
        acc = 0.0
        for s in range(S):
            acc += w[s] * K_grid[idx, s, i]
        out[i] = y_grid[idx, i] + h * acc


@_inline
def record_values(y_rec, y, K_rec, K):
    """Append ``y`` and ``K`` (row by row) to the flat step record."""
    for i in range(y.size):
        y_rec.append(y[i])
    for s in range(K.shape[0]):
        for i in range(K.shape[1]):
            K_rec.append(K[s, i])


@_jit
def stack_record(t_rec, h_rec, y_rec, K_rec, n, S):
    """The recorded steps as arrays: ``t_grid, h_grid, y_grid, K_grid, count``."""
    count = len(t_rec)
    t_grid = np.empty(count)
    h_grid = np.empty(count)
    y_grid = np.empty((count, n))
    K_grid = np.empty((count, S, n))
    for r in range(count):
        t_grid[r] = t_rec[r]
        h_grid[r] = h_rec[r]
        for i in range(n):
            y_grid[r, i] = y_rec[r * n + i]
        for s in range(S):
            for i in range(n):
                K_grid[r, s, i] = K_rec[(r * S + s) * n + i]
    return t_grid, h_grid, y_grid, K_grid, count


@_jit
def dense_eval(tq, P, t_grid, h_grid, y_grid, K_grid, count, direction, out):
    """Evaluate a stored dense solution at the times ``tq`` into ``out``.

    Step ``k`` spans ``[t_grid[k], t_grid[k] + h_grid[k]]``; its stage
    derivatives are ``K_grid[k]`` and its interpolant the tableau's ``P``.
    """
    w = np.empty(P.shape[0])
    row = np.empty(y_grid.shape[1])
    idx = 0
    for r in range(tq.size):
        idx = locate(tq[r], t_grid, count, direction, idx)
        dense_point(tq[r], P, t_grid, h_grid, y_grid, K_grid, idx, w, row)
        set_row(out, r, row)


# ---------------------------------------------------------------------------
# The right-hand side, by mode.
# ---------------------------------------------------------------------------
# A right-hand side reaches the loop as a tuple ``system`` whose length says
# what it is, so that Numba picks the evaluation at compile time (a runtime
# branch that merely could call the adjoint code costs the plain ODE loop a
# factor of 1.6).  The loop is compiled and cached once per kind.
ODE_SYSTEM = 2           #: (rhs, theta): dy/dt = rhs(t, y, theta)
ADJOINT_SYSTEM = 8       #: (rhs, vjp, theta, ipar, drift, W1, W2, gbuf)
INTERPOLATED_SYSTEM = 11  #: (vjp, theta, ipar, work, W2, P, grid_t, grid_h, grid_y, grid_K, gbuf)


def ode_system(rhs, theta):
    """The plain ODE ``dy/dt = rhs(t, y, theta)``."""
    return (rhs, theta)


def adjoint_system(rhs, vjp, theta, n, p, W1, W2, quadrature=True):
    """The backward system of the continuous adjoint on ``z = [x, a, g]``.

    ``x' = f``, ``a' = -a^T df/dx``, ``g' = -a^T df/dtheta`` (Chen et al.
    2018, eq. 4 and appendix B).  At the ``j``-th time of the backward pass
    :func:`apply_jump` re-seeds ``x`` from ``W1[j]`` (the forward solution)
    and adds ``W2[j] = dL/dy(t_j)`` to ``a``; the drift of the backward ``x``
    from ``W1[j]`` is recorded in ``system[4][j]``.  Without ``quadrature``
    (nobody asked for ``dL/dtheta``) the state is ``[x, a]`` only.
    """
    return (rhs, vjp, theta, np.array([n, p, 0, int(quadrature)], dtype=np.int64),
            np.zeros(W1.shape[0]), W1, W2, np.empty(p))


def interpolated_system(vjp, theta, n, p, W2, P, grid_t, grid_h, grid_y, grid_K,
                        quadrature=True):
    """The backward system on ``z = [a, g]`` with ``x(t)`` read from the
    forward pass's dense output (no backsolve drift); ``W2[j]`` is added to
    ``a`` at the ``j``-th time of the backward pass.  Without ``quadrature``
    the state is ``[a]`` only."""
    return (vjp, theta, np.array([n, p, 0, int(quadrature)], dtype=np.int64),
            np.empty(n + P.shape[0]), W2, P, grid_t, grid_h, grid_y, grid_K, np.empty(p))


def evaluate(system, t, y, out):
    """Evaluate the right-hand side of ``system`` at ``(t, y)`` into ``out``.

    Returns the fault code of a kernel that raised (``nodekit.ode.RHS_FAULT``
    or ``VJP_FAULT``), else 0 (a Python right-hand side may return ``None``
    or ``0.0``: only its truth value counts).  This Python function serves
    the interpreted loop; compiled code gets the implementation for the
    system's kind through the overload below.
    """
    return _EVALUATE[len(system)](system, t, y, out)


def _evaluate_ode(system, t, y, out):
    return system[0](t, y, system[1], out)


def _evaluate_adjoint(system, t, y, out):
    ipar = system[3]
    n = ipar[0]
    p = ipar[1]
    x = y[:n]
    code = system[0](t, x, system[2], out[:n])
    if code:
        return code
    code = system[1](t, x, system[2], y[n:2 * n], out[n:2 * n],
                     either(ipar[3], out[2 * n:2 * n + p], system[7]))
    negate(out, n, 2 * n + p * ipar[3])
    return code


def _evaluate_interpolated(system, t, y, out):
    ipar = system[2]
    n = ipar[0]
    p = ipar[1]
    x = system[3][:n]
    forward_state(t, ipar, system[3], system[5], system[6], system[7], system[8],
                  system[9], x)
    code = system[0](t, x, system[1], y[:n], out[:n],
                     either(ipar[3], out[n:n + p], system[10]))
    negate(out, 0, n + p * ipar[3])
    return code


@_jit
def either(flag, a, b):
    """``a`` if ``flag`` else ``b`` (without quadrature the VJP's ``out_theta``
    goes to scratch); a call, so that the inlined evaluations stay branch-free."""
    if flag:
        return a
    return b


@_jit
def forward_state(t, ipar, work, P, grid_t, grid_h, grid_y, grid_K, x):
    """``x = y(t)`` from a forward dense output (``ipar[2]``: the search hint,
    ``work[n:]``: scratch for the interpolant weights)."""
    n = ipar[0]
    direction = 1.0 if grid_t.size < 2 or grid_t[1] >= grid_t[0] else -1.0
    idx = locate(t, grid_t, grid_t.size, direction, ipar[2])
    ipar[2] = idx
    dense_point(t, P, grid_t, grid_h, grid_y, grid_K, idx, work[n:], x)


_EVALUATE = {ODE_SYSTEM: _evaluate_ode, ADJOINT_SYSTEM: _evaluate_adjoint,
             INTERPOLATED_SYSTEM: _evaluate_interpolated}


@overload(evaluate, inline="always")
def _overload_evaluate(system, t, y, out):
    return _EVALUATE[len(system)]


def apply_jump(system, j, y):
    """At the ``j``-th output time of a backward pass, add ``dL/dy(t_j)`` to
    the adjoint and (adjoint system) re-seed ``x`` from the forward pass,
    recording the drift ``max|x_back - x_fwd| / max(1, max|x_fwd|)``."""
    _JUMP[len(system)](system, j, y)


def _jump_none(system, j, y):
    pass


def _jump_adjoint(system, j, y):
    n = system[3][0]
    W1 = system[5]
    W2 = system[6]
    drift = 0.0
    scale = 1.0
    for i in range(n):
        drift = max(drift, abs(y[i] - W1[j, i]))
        scale = max(scale, abs(W1[j, i]))
        y[i] = W1[j, i]
        y[n + i] += W2[j, i]
    system[4][j] = drift / scale


def _jump_interpolated(system, j, y):
    W2 = system[4]
    for i in range(W2.shape[1]):
        y[i] += W2[j, i]


_JUMP = {ODE_SYSTEM: _jump_none, ADJOINT_SYSTEM: _jump_adjoint,
         INTERPOLATED_SYSTEM: _jump_interpolated}


@overload(apply_jump, inline="always")
def _overload_apply_jump(system, j, y):
    return _JUMP[len(system)]


@_inline
def negate(x, i0, i1):
    """``x[i0:i1] *= -1``."""
    for i in range(i0, i1):
        x[i] = -x[i]


@_inline
def note_fault(fault, code, t, y):
    """Record a kernel fault: ``fault = [code, t, y...]`` (the failed call)."""
    fault[0] = code
    fault[1] = t
    for i in range(y.size):
        fault[2 + i] = y[i]


@_inline
def stages(system, t, y, h, A, C, K, k0, k1, tmp, fault):
    """Evaluate the stage slots ``k0 <= k < k1`` of a step from ``(t, y)``.

    ``tmp`` is a scratch vector.  Returns 0, or the fault code of a kernel
    that raised (recorded in ``fault``; the later stages are not evaluated).
    """
    for k in range(k0, k1):
        stage_input(y, h, A, k, K, tmp)
        code = evaluate(system, t + C[k] * h, tmp, K[k])
        if code:
            note_fault(fault, code, t + C[k] * h, tmp)
            return code
    return 0


@_inline
def checked_evaluate(system, t, y, out, fault):
    """:func:`evaluate`, recording a fault in ``fault``; returns its code."""
    code = evaluate(system, t, y, out)
    if code:
        note_fault(fault, code, t, y)
    return code


# ---------------------------------------------------------------------------
# The integration loop.
# ---------------------------------------------------------------------------
@_jit
def integrate(system, y0, ts, A, C, B, E, E2, has_e2, P, n_stages, f1_index,
              fsal, error_order, rtol, atol, n_err, ctrl, first_step,
              max_step, max_steps, fixed_step, dense, jumps, out, fault):
    """Integrate ``system`` from ``ts[0]`` through every time in ``ts``.

    One loop serves every explicit tableau (given as the float arrays of
    :class:`nodekit.tableaux.ButcherTableau`), adaptive (``fixed_step == 0``)
    or fixed-step (``fixed_step > 0``), forwards or backwards in time, for the
    ODE and for its adjoint systems.  Output times are reached by the
    tableau's dense output, never by shortening steps, except with ``jumps``:
    then steps end exactly at every output time, where :func:`apply_jump`
    changes the state (the step size proposed before that stop is kept).

    Parameters
    ----------
    system : tuple
        As built by :func:`ode_system`, :func:`adjoint_system` or
        :func:`interpolated_system`.
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
    dense : bool
        Record every accepted step (start time, size, state, all stage
        derivatives): the dense solution and the discrete adjoint's tape.
    out : ndarray, shape (m, n)
        Receives ``y(ts)`` (after any jump); rows past a failure are left
        untouched.
    fault : ndarray, shape (n + 2,)
        With status ``FAILED_KERNEL``: ``[code, t, state...]`` of the kernel
        call that raised (see :func:`note_fault`).

    Returns
    -------
    status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out,
    t_grid, h_grid, y_grid, K_grid, n_dense
    """
    n = y0.size
    S = A.shape[0]
    work = (np.zeros((S, n)), y0.copy(), np.empty(n), np.empty(n), np.empty(n),
            np.empty(S))
    res = _integrate(borrowed(system), borrowed(y0), borrowed(ts), borrowed(A),
                     borrowed(C), borrowed(B), borrowed(E), borrowed(E2), has_e2,
                     borrowed(P), n_stages, f1_index, fsal, error_order, borrowed(rtol),
                     borrowed(atol), n_err, borrowed(ctrl), first_step, max_step,
                     max_steps, fixed_step, dense, jumps, borrowed(out), borrowed(fault),
                     borrowed(work))
    keep_alive(work)
    return res


@_jit
def _integrate(system, y0, ts, A, C, B, E, E2, has_e2, P, n_stages, f1_index,
               fsal, error_order, rtol, atol, n_err, ctrl, first_step,
               max_step, max_steps, fixed_step, dense, jumps, out, fault, work):
    """The body of :func:`integrate`, on borrowed arrays (``work``: the
    stage derivatives, state, new state and three scratch vectors)."""
    n = y0.size
    m = ts.size
    S = A.shape[0]
    K, y, ynew, tmp, fk, w = work
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
    span = abs(t_end - t0)
    adaptive = fixed_step <= 0.0

    # the record of accepted steps (dense output, discrete adjoint): lists, so
    # that no array of the loop is re-bound as the record grows
    t_rec = [t0 for _ in range(0)]
    h_rec = [t0 for _ in range(0)]
    y_rec = [t0 for _ in range(0)]  # n values a step
    K_rec = [t0 for _ in range(0)]  # S * n values a step

    set_row(out, 0, y0)
    n_out = 1
    nfev = 0
    nsteps = 0
    naccept = 0
    nreject = 0
    status = SUCCESS
    t = t0
    h = 0.0

    if checked_evaluate(system, t, y, fk, fault):
        return (FAILED_KERNEL, t, h, nfev, nsteps, naccept, nreject, n_out) + \
            stack_record(t_rec, h_rec, y_rec, K_rec, n, S)
    set_row(K, 0, fk)
    nfev += 1
    if not all_finite(fk):
        return (FAILED_NONFINITE, t, h, nfev, nsteps, naccept, nreject, n_out) + \
            stack_record(t_rec, h_rec, y_rec, K_rec, n, S)

    if adaptive:
        if first_step > 0.0:
            h_abs = first_step
        else:
            h0, d1 = initial_step_trial(y, fk, span, rtol, atol, n_err)
            axpy(y, direction * h0, fk, tmp)
            nfev += 1
            if checked_evaluate(system, t0 + direction * h0, tmp, ynew, fault):
                return (FAILED_KERNEL, t, h, nfev, nsteps, naccept, nreject, n_out) + \
                    stack_record(t_rec, h_rec, y_rec, K_rec, n, S)
            h_abs = initial_step_final(h0, d1, fk, ynew, y, span, max_step,
                                       error_order, rtol, atol, n_err)
    else:
        h_abs = fixed_step
    exponent = -1.0 / (error_order + 1.0)
    err = 0.0
    err_prev = 1.0
    n_main = n_stages - 1 if fsal else n_stages
    rejected = False
    n_fixed = 0
    h_proposed = h_abs

    while direction * (t_end - t) > 0.0:
        if nsteps >= max_steps:
            status = FAILED_MAX_STEPS
            break
        if interrupted():
            status = INTERRUPTED
            break
        min_step = 10.0 * abs(np.nextafter(t, direction * np.inf) - t)
        t_stop = ts[n_out] if jumps else t_end
        if adaptive:
            if h_abs > max_step:
                h_abs = max_step
            elif h_abs < min_step:
                h_abs = min_step
            h_proposed = h_abs
            t_new = t + direction * h_abs
            if direction * (t_new - t_stop) > 0.0:
                t_new = t_stop
        else:
            t_new = t0 + direction * (n_fixed + 1) * fixed_step
            if direction * (t_stop - t_new) < 1e-9 * fixed_step:
                t_new = t_stop
        h = t_new - t
        h_abs = abs(h)

        nfev += n_main - 1
        if stages(system, t, y, h, A, C, K, 1, n_main, tmp, fault):
            status = FAILED_KERNEL
            break
        combine(y, h, B, K, ynew)
        if fsal:
            nfev += 1
            if checked_evaluate(system, t_new, ynew, K[f1_index], fault):
                status = FAILED_KERNEL
                break
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
            nfev += 1
            if checked_evaluate(system, t_new, ynew, K[f1_index], fault):
                status = FAILED_KERNEL
                break
        if not all_finite(K[f1_index]):
            status = FAILED_NONFINITE
            break
        naccept += 1
        if t_new != t_stop:
            n_fixed += 1

        extras = f1_index + 1 < S
        if dense:
            if extras:
                nfev += S - f1_index - 1
                if stages(system, t, y, h, A, C, K, f1_index + 1, S, tmp, fault):
                    status = FAILED_KERNEL
                    break
                extras = False
            t_rec.append(t)
            h_rec.append(h)
            record_values(y_rec, y, K_rec, K)

        jumped = False
        failed = False
        while n_out < m and direction * (ts[n_out] - t_new) <= 0.0:
            if ts[n_out] == t_new:
                if jumps:
                    apply_jump(system, n_out, ynew)
                    jumped = True
                set_row(out, n_out, ynew)
            else:
                if extras:
                    nfev += S - f1_index - 1
                    if stages(system, t, y, h, A, C, K, f1_index + 1, S, tmp, fault):
                        failed = True
                        break
                    extras = False
                dense_weights(P, (ts[n_out] - t) / h, w)
                combine(y, h, w, K, tmp)
                set_row(out, n_out, tmp)
            n_out += 1
        if failed:
            status = FAILED_KERNEL
            break

        t = t_new
        copy_into(ynew, y)
        if jumped:
            # the state changed: the first stage of the next step is new
            nfev += 1
            if checked_evaluate(system, t, y, fk, fault):
                status = FAILED_KERNEL
                break
            set_row(K, 0, fk)
        else:
            copy_row(K, f1_index, 0)

        if adaptive:
            h_abs *= accept_factor(err, err_prev, exponent, ctrl, rejected)
            if t_new == t_stop and h_abs < h_proposed:
                h_abs = h_proposed  # a step cut short by a stop says nothing
            err_prev = max(err, 1e-4)
            rejected = False

    return (status, t, h, nfev, nsteps, naccept, nreject, n_out) + \
        stack_record(t_rec, h_rec, y_rec, K_rec, n, S)


@_jit
def rhs_at_points(rhs, ts, ys, theta, F):
    """``F[j] = rhs(ts[j], ys[j], theta)`` for every row (a compiled rhs).

    Returns 0, or the fault code of the first call that raised (the later
    rows are not evaluated).
    """
    for j in range(ts.size):
        code = rhs(ts[j], ys[j], theta, F[j])
        if code:
            return code
    return 0


# ---------------------------------------------------------------------------
# Reverse mode through the recorded steps: the discrete adjoint.
# ---------------------------------------------------------------------------
@_jit
def reverse_steps(vjp, theta, ts, g, A, C, B, P, t_grid, h_grid, y_grid, K_grid,
                  count, ybar, thbar):
    """Reverse-mode derivative of a recorded forward solve (step sizes fixed).

    Each accepted step ``y_{k+1} = y_k + h sum_s B_s K_s`` with ``K_s =
    f(t_k + C_s h, y_k + h sum_r A[s, r] K_r)`` and each output ``y(t_j) = y_k
    + h sum_s w_s(theta_j) K_s`` is differentiated exactly, so the result is
    the gradient of the numbers the forward pass produced (the paper's
    "RK-Net"), not of the exact flow.

    Parameters
    ----------
    vjp : first-class function or callable
        ``vjp(t, y, theta, a, out_y, out_theta)``.
    ts : ndarray, shape (m,)
        Output times of the forward pass.
    g : ndarray, shape (m, n)
        Cotangents ``dL/dy(ts)``.
    t_grid, h_grid, y_grid, K_grid, count
        The forward record (``integrate(..., dense=True)``).
    ybar : ndarray, shape (n,)
        Receives ``dL/dy0``.
    thbar : ndarray, shape (p,)
        Receives ``dL/dtheta``.

    Returns
    -------
    nvjp : int
        Number of VJP evaluations, or ``FAILED_KERNEL`` (negative) when the
        ``vjp`` kernel raised, or ``INTERRUPTED`` on Ctrl-C; then ``ybar`` and
        ``thbar`` are meaningless.
    """
    m = ts.size
    n = ybar.size
    S = A.shape[0]
    Kbar = np.zeros((S, n))
    w = np.empty(S)
    Y = np.empty(n)
    ay = np.empty(n)
    ath = np.empty(thbar.size)
    ybar[:] = 0.0
    thbar[:] = 0.0
    direction = 1.0 if ts[m - 1] >= ts[0] else -1.0
    j = m - 1
    nvjp = 0
    for k in range(count - 1, -1, -1):
        if interrupted():
            return INTERRUPTED
        t = t_grid[k]
        h = h_grid[k]
        # ybar holds dL/dy_{k+1}: the update y_{k+1} = y_k + h sum_s B_s K_s
        outer_into(Kbar, h, B, ybar)
        # outputs interpolated inside (t_k, t_k + h]
        while j >= 1 and direction * (ts[j] - t) > 0.0:
            dense_weights(P, (ts[j] - t) / h, w)
            add_outer_row(Kbar, h, w, g, j)
            add_row(ybar, g, j)
            j -= 1
        # stages in reverse order
        for s in range(S - 1, -1, -1):
            if row_is_zero(Kbar, s):
                continue
            stage_input(y_grid[k], h, A, s, K_grid[k], Y)
            if vjp(t + C[s] * h, Y, theta, Kbar[s], ay, ath):
                return FAILED_KERNEL
            nvjp += 1
            add_into(thbar, ath)
            add_into(ybar, ay)
            add_outer_prefix(Kbar, h, A, s, ay)
    add_row(ybar, g, 0)
    return nvjp


# ---------------------------------------------------------------------------
# The same loop, executed by the interpreter for Python right-hand sides.
# ---------------------------------------------------------------------------
def python_twins(namespace, names, base=None):
    """Interpreted versions of the jitted functions ``names`` of ``namespace``
    (a module's globals).

    They share one globals dict in which those names (and the interpreted
    functions of ``base``, another module's twins) refer to each other's
    interpreted versions, while every element-wise helper stays compiled (a
    compiled helper called from the interpreter costs about a microsecond,
    less than the NumPy expression it replaces on small arrays).  Python
    interrupts the interpreted loops itself, so their Ctrl-C check is a no-op.
    """
    g = dict(namespace)
    g.update(base or {})
    g["interrupted"] = _interrupt.never
    g["borrowed"] = _identity
    g["keep_alive"] = _identity
    for name in names:
        fn = g[name].py_func
        g[name] = types.FunctionType(fn.__code__, g, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
    return {name: g[name] for name in names}


def _identity(x):
    return x


_PY = python_twins(globals(), ["stages", "checked_evaluate", "integrate", "_integrate",
                               "reverse_steps",
                     "rhs_at_points", "stack_record", "record_values"])
integrate_py = _PY["integrate"]
reverse_steps_py = _PY["reverse_steps"]
rhs_at_points_py = _PY["rhs_at_points"]
