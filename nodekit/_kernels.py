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

The right-hand side reaches the loop through ``system``, a named tuple whose
type (:class:`OdeSystem`, :class:`AdjointSystem`, :class:`InterpolatedSystem`)
says how it is evaluated and holds what that needs (the user's kernels as
first-class functions, ``theta``, workspaces).
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
from typing import NamedTuple

import numpy as np
from numba import types as nbt
from numba.core import cgutils
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.extending import intrinsic, overload

from . import _interrupt, _jitflags
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
STOPPED_AT_EVENT = 1  #: a terminal event occurred (an EventSystem)
assert INTERRUPTED == -5  # Ctrl-C: see nodekit._interrupt


_jit = _jitflags.jit
_inline = _jitflags.inline
_EPS = np.finfo(np.float64).eps
#: The loop body: compiled without reference counting (it allocates nothing
#: and runs on borrowed arrays, see :func:`borrowed`).
_body = _jitflags.body


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
    """Write ``y + h * sum_j w[j] K[j]`` into ``out`` (``w`` may be short;
    ``out`` must not be ``y`` or a row of ``K``).

    Two loop orders with the same operations in the same order (so the same
    bits): per component for small states, per stage for large ones, where
    the inner loop runs along a contiguous row (3x faster at 4000 values:
    the per-component order does not vectorise here)."""
    n = y.size
    if n < 32:
        for i in range(n):
            acc = 0.0
            for j in range(w.size):
                acc += w[j] * K[j, i]
            out[i] = y[i] + h * acc
        return
    for i in range(n):
        out[i] = 0.0
    for j in range(w.size):
        wj = w[j]
        for i in range(n):
            out[i] += wj * K[j, i]
    for i in range(n):
        out[i] = y[i] + h * out[i]


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


@_jit
def float_list():
    """An empty list of floats (typed before anything is appended)."""
    x = [0.0]
    x.pop()
    return x


@_jit
def new_record(n, S):
    """An empty record of accepted steps (states of size ``n``, ``S``
    stages): one-element lists holding the buffers of step starts, step
    sizes, states and stage derivatives, and the number of rows used (a
    one-element array).  :func:`grow_record` replaces full buffers by ones
    twice as long."""
    return ([np.empty(0)], [np.empty(0)], [np.empty((0, n))], [np.empty((0, S, n))],
            np.zeros(1, np.int64))


@_jit
def record_buffers(rec):
    """The record's current buffers and row count, borrowed: valid until the
    next :func:`grow_record` (the record's lists own them).  For compiled
    callers only: a record never leaves compiled code."""
    return borrowed((rec[0][0], rec[1][0], rec[2][0], rec[3][0], rec[4]))


@_jit
def grow_record(rec):
    """Replace the record's buffers by ones twice as long (64 rows at
    first), keeping the rows used; returns the new :func:`record_buffers`."""
    t_buf, h_buf, y_buf, K_buf, used = rec
    r = used[0]
    cap = max(64, 2 * r)
    t_old, h_old, y_old, K_old = t_buf[0], h_buf[0], y_buf[0], K_buf[0]
    _, S, n = K_old.shape
    t_new, h_new = np.empty(cap), np.empty(cap)
    y_new, K_new = np.empty((cap, n)), np.empty((cap, S, n))
    # (element loops, not slice assignments: Numba compiles the shape-mismatch
    # error of each slice assignment, seconds on a first run)
    for k in range(r):
        t_new[k] = t_old[k]
        h_new[k] = h_old[k]
        for i in range(n):
            y_new[k, i] = y_old[k, i]
        for s in range(S):
            for i in range(n):
                K_new[k, s, i] = K_old[k, s, i]
    t_buf[0], h_buf[0], y_buf[0], K_buf[0] = t_new, h_new, y_new, K_new
    return record_buffers(rec)


@_inline
def record_row(bufs, t, h, y, K):
    """Write one accepted step (start ``t``, size ``h``, state ``y``, stage
    derivatives ``K``) into the next row of the buffers ``bufs`` (from
    :func:`record_buffers`; the caller grows them when full)."""
    t_buf, h_buf, y_buf, K_buf, used = bufs
    r = used[0]
    used[0] = r + 1
    t_buf[r] = t
    h_buf[r] = h
    for i in range(y.size):
        y_buf[r, i] = y[i]
    for s in range(K.shape[0]):
        for i in range(y.size):
            K_buf[r, s, i] = K[s, i]


@_inline
def append_row(rec, bufs, t, h, y, K):
    """:func:`record_row` into ``rec``'s buffers ``bufs``, grown first when
    full; returns the buffers in use afterwards (the explicit loop's body
    keeps them, borrowed, from step to step)."""
    if bufs[4][0] == bufs[0].size:
        bufs = grow_record(rec)
    record_row(bufs, t, h, y, K)
    return bufs


@_jit
def record_step(rec, t, h, y, K):
    """Append one accepted step to the record ``rec`` (:func:`new_record`)."""
    append_row(rec, record_buffers(rec), t, h, y, K)


@_jit
def stack_record(rec, n, S):
    """The recorded steps as arrays: ``t_grid, h_grid, y_grid, K_grid,
    count`` (copies, sized to the steps recorded)."""
    t_buf, h_buf, y_buf, K_buf, used = rec
    count = used[0]
    return (t_buf[0][:count].copy(), h_buf[0][:count].copy(), y_buf[0][:count].copy(),
            K_buf[0][:count].copy(), count)


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
# The right-hand sides: one named tuple type per kind of system.
# ---------------------------------------------------------------------------
# A right-hand side reaches the loop as a *system*, a named tuple whose type
# says what it is, so that Numba picks its evaluation at compile time (a
# runtime branch that merely could call the adjoint code costs the plain ODE
# loop a factor of 1.6).  Each type carries its own ``evaluate`` and
# ``apply_jump``: the interpreted loop calls them as methods, the compiled
# loop gets them inlined through the overloads of :func:`evaluate` and
# :func:`apply_jump`, chosen by the system's type.  The loop is compiled and
# cached once per type.  (The methods name their record ``system``, as
# :func:`evaluate` does: an overload's implementation must use the overloaded
# function's argument names.)  The kernels are first-class functions returning a
# fault code: ``rhs(t, y, theta, out)``, ``vjp(t, y, theta, a, out_y,
# out_theta)`` (``out_theta`` receives ``a^T df/dtheta``).
class OdeSystem(NamedTuple):
    """The plain ODE ``dy/dt = rhs(t, y, theta)``."""

    rhs: object
    theta: np.ndarray

    def evaluate(system, t, y, out):
        return system.rhs(t, y, system.theta, out)

    def apply_jump(system, j, y):
        pass  # a forward solve has no jumps


class AdjointSystem(NamedTuple):
    """The backward system of the continuous adjoint on ``z = [x, a, g]``.

    ``x' = f``, ``a' = -a^T df/dx``, ``g' = -a^T df/dtheta`` (Chen et al.
    2018, eq. 4 and appendix B).  At the ``j``-th time of the backward pass
    :meth:`apply_jump` re-seeds ``x`` from ``W1[j]`` (the forward solution),
    adds ``W2[j] = dL/dy(t_j)`` to ``a`` and records the drift of the
    backward ``x`` in ``drift[j]``.  Without ``quadrature`` (nobody asked for
    ``dL/dtheta``) the state is ``[x, a]`` only.  Built by
    :func:`adjoint_system`.
    """

    rhs: object
    vjp: object
    theta: np.ndarray
    n: int                #: state size
    p: int                #: parameter size
    quadrature: bool      #: integrate ``g`` too
    drift: np.ndarray     #: (m,) out: ``max|x_back - x_fwd| / max(1, max|x_fwd|)``
    W1: np.ndarray        #: (m, n) the forward states at the stops
    W2: np.ndarray        #: (m, n) the cotangents added at the stops
    theta_scratch: np.ndarray  #: (p,) receives ``a^T df/dtheta`` without quadrature

    def evaluate(system, t, y, out):
        n = system.n
        p = system.p
        x = y[:n]
        code = system.rhs(t, x, system.theta, out[:n])
        if code:
            return code
        code = system.vjp(t, x, system.theta, y[n:2 * n], out[n:2 * n],
                        either(system.quadrature, out[2 * n:2 * n + p], system.theta_scratch))
        negate(out, n, 2 * n + p * system.quadrature)
        return code

    def apply_jump(system, j, y):
        n = system.n
        W1 = system.W1
        W2 = system.W2
        drift = 0.0
        scale = 1.0
        for i in range(n):
            drift = max(drift, abs(y[i] - W1[j, i]))
            scale = max(scale, abs(W1[j, i]))
            y[i] = W1[j, i]
            y[n + i] += W2[j, i]
        system.drift[j] = drift / scale


def adjoint_system(rhs, vjp, theta, n, p, W1, W2, quadrature=True):
    """The :class:`AdjointSystem` stopping at the rows of ``W1``/``W2``."""
    return AdjointSystem(rhs, vjp, theta, int(n), int(p), bool(quadrature),
                         np.zeros(W1.shape[0]), W1, W2, np.empty(p))


class InterpolatedSystem(NamedTuple):
    """The backward system on ``z = [a, g]`` with ``x(t)`` read from the
    forward pass's dense output (no backsolve drift); :meth:`apply_jump` adds
    ``W2[j]`` to ``a`` at the ``j``-th time of the backward pass.  Without
    ``quadrature`` the state is ``[a]`` only.  Built by
    :func:`interpolated_system`."""

    vjp: object
    theta: np.ndarray
    n: int
    p: int
    quadrature: bool
    hint: np.ndarray      #: (1,) int64: the forward step the last lookup found
    x: np.ndarray         #: (n,) scratch: the forward state at ``t``
    w: np.ndarray         #: (S,) scratch: the interpolant weights
    W2: np.ndarray        #: (m, n) the cotangents added at the stops
    P: np.ndarray         #: the forward tableau's dense-output matrix
    grid_t: np.ndarray    #: the forward record (see ``DenseSolution``)
    grid_h: np.ndarray
    grid_y: np.ndarray
    grid_K: np.ndarray
    theta_scratch: np.ndarray

    def evaluate(system, t, y, out):
        n = system.n
        p = system.p
        forward_state(t, system.hint, system.P, system.grid_t, system.grid_h, system.grid_y,
                      system.grid_K, system.w, system.x)
        code = system.vjp(t, system.x, system.theta, y[:n], out[:n],
                        either(system.quadrature, out[n:n + p], system.theta_scratch))
        negate(out, 0, n + p * system.quadrature)
        return code

    def apply_jump(system, j, y):
        W2 = system.W2
        for i in range(W2.shape[1]):
            y[i] += W2[j, i]


def interpolated_system(vjp, theta, n, p, W2, P, grid_t, grid_h, grid_y, grid_K,
                        quadrature=True):
    """The :class:`InterpolatedSystem` on the forward record ``grid_*``
    (interpolant ``P``), stopping at the rows of ``W2``."""
    return InterpolatedSystem(vjp, theta, int(n), int(p), bool(quadrature),
                              np.zeros(1, dtype=np.int64), np.empty(n), np.empty(P.shape[0]),
                              W2, P, grid_t, grid_h, grid_y, grid_K, np.empty(p))


class EventSystem(NamedTuple):
    """The plain ODE with events watched inside the loop.

    After every accepted step the loop evaluates each event function at the
    step's end (:func:`events_crossed`); where one changes sign in its
    ``direction``, the root is found on the step's interpolant with Brent's
    method and recorded with the state there (:func:`events_locate`), and a
    terminal event ends the loop at its ``stop_after``-th occurrence.  Only
    compiled: the event functions are guarded kernels like ``rhs``.  Built by
    :func:`event_system`.
    """

    rhs: object
    theta: np.ndarray
    g: object                #: the guarded kernel of all events: ``g(t, y, theta, out)``
                             #: sets ``out[k]`` to event ``k`` (``ode.events_cfunc``)
    direction: np.ndarray    #: (k,) int64: -1, 0 or +1
    stop_after: np.ndarray   #: (k,) int64: occurrences that end the solve (0: never)
    count: np.ndarray        #: (k,) int64 out: occurrences so far
    g_prev: np.ndarray       #: (k,) the events at the start of the step
    g_new: np.ndarray        #: (k,) and at its end
    roots: np.ndarray        #: (k,) scratch: the roots found in a step
    gval: np.ndarray         #: (k,) scratch: the events at a trial time
    yq: np.ndarray           #: (n,) scratch: the state at a trial time
    w: np.ndarray            #: (S,) scratch: interpolant weights

    def evaluate(system, t, y, out):
        return system.rhs(t, y, system.theta, out)

    def apply_jump(system, j, y):
        pass  # a forward solve has no jumps


def event_system(rhs, theta, g, direction, stop_after, n, n_stages):
    """The :class:`EventSystem` for right-hand side ``rhs`` and the guarded
    kernel ``g`` of all events (one per entry of ``direction`` and
    ``stop_after``: their directions and terminal counts)."""
    k = len(direction)
    return EventSystem(rhs, theta, g, np.asarray(direction, dtype=np.int64),
                       np.asarray(stop_after, dtype=np.int64), np.zeros(k, dtype=np.int64),
                       np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k), np.empty(n),
                       np.empty(n_stages))


@_jit
def either(flag, a, b):
    """``a`` if ``flag`` else ``b`` (without quadrature the VJP's ``out_theta``
    goes to scratch); a call, so that the inlined evaluations stay branch-free."""
    if flag:
        return a
    return b


@_jit
def forward_state(t, hint, P, grid_t, grid_h, grid_y, grid_K, w, x):
    """``x = y(t)`` from a forward dense output (``hint[0]``: the step the
    last lookup found, updated; ``w``: scratch for the interpolant weights)."""
    direction = 1.0 if grid_t.size < 2 or grid_t[1] >= grid_t[0] else -1.0
    idx = locate(t, grid_t, grid_t.size, direction, hint[0])
    hint[0] = idx
    dense_point(t, P, grid_t, grid_h, grid_y, grid_K, idx, w, x)


#: The kinds of system the loop accepts.
SYSTEMS = (OdeSystem, AdjointSystem, InterpolatedSystem, EventSystem)


def evaluate(system, t, y, out):
    """Evaluate the right-hand side of ``system`` at ``(t, y)`` into ``out``.

    Returns the fault code of a kernel that raised (``nodekit.ode.RHS_FAULT``
    or ``VJP_FAULT``), else 0 (a Python right-hand side may return ``None``
    or ``0.0``: only its truth value counts).  Interpreted, this calls the
    system's method; compiled, the overload below inlines the method of the
    system's type.
    """
    return system.evaluate(t, y, out)


def apply_jump(system, j, y):
    """At the ``j``-th output time of a backward pass, change the state ``y``
    as the system says (see each system's ``apply_jump``)."""
    system.apply_jump(j, y)


def system_class(ty):
    """The system class of the Numba type ``ty``, or ``None``."""
    cls = getattr(ty, "instance_class", None)
    return cls if cls in SYSTEMS else None


@overload(evaluate, inline="always")
def _overload_evaluate(system, t, y, out):
    cls = system_class(system)
    return None if cls is None else cls.evaluate


@overload(apply_jump, inline="always")
def _overload_apply_jump(system, j, y):
    cls = system_class(system)
    return None if cls is None else cls.apply_jump


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
# ---------------------------------------------------------------------------
# Events inside the loop (an EventSystem); nothing for every other system.
# ---------------------------------------------------------------------------
@_jit
def crossed(g0, g1, direction):
    """``g`` changes sign from ``g0`` to ``g1`` in ``direction`` (-1, 0, +1)?
    A zero end counts once: leaving zero is not a crossing."""
    up = (g0 < 0.0 <= g1) or (g0 <= 0.0 < g1 and g0 != 0.0)
    down = (g0 > 0.0 >= g1) or (g0 >= 0.0 > g1 and g0 != 0.0)
    return (up and direction >= 0) or (down and direction <= 0)


@_inline
def step_point(tq, P, t, h, y, K, w, out):
    """``out = y(tq)`` on the step of size ``h`` from ``(t, y)`` with stage
    derivatives ``K``: the tableau's interpolant ``P``."""
    dense_weights(P, (tq - t) / h, w)
    combine(y, h, w, K, out)


def value_at(point, tq):
    """The value at ``tq`` of the function whose root :func:`brent` seeks:
    ``point`` says which (an event on a step, :class:`StepEvent`, or the
    interpreted scan's own record); compiled, its type's ``value`` is inlined."""
    return point.value(tq)


@overload(value_at, inline="always")
def _overload_value_at(point, tq):
    return getattr(getattr(point, "instance_class", None), "value", None)


@_jit
def brent(point, a, b, fa, fb):
    """Brent's method for the root of ``value_at(point, .)`` between ``a`` and
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
        if abs(m) <= tol or fb == 0.0 or fb != fb:
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
        fb = value_at(point, b)
    return b


class StepEvent(NamedTuple):
    """Event ``k`` of an :class:`EventSystem` on the loop's current step, as
    :func:`brent` reads it (a kernel fault is recorded in ``fault`` and
    gives NaN, which ends the search)."""

    system: EventSystem
    k: int
    P: np.ndarray
    t: float
    h: float
    y: np.ndarray
    K: np.ndarray
    fault: np.ndarray

    def value(point, tq):
        s = point.system
        step_point(tq, point.P, point.t, point.h, point.y, point.K, s.w, s.yq)
        code = s.g(tq, s.yq, s.theta, s.gval)
        if code:
            note_fault(point.fault, code, tq, s.yq)
            return np.nan
        return s.gval[point.k]


@_inline
def event_values(system, t, y, out, fault):
    """``out[k] = g_k(t, y)`` for every event of ``system``; returns the fault
    code of an event kernel that raised (recorded in ``fault``), else 0."""
    code = system.g(t, y, system.theta, out)
    if code:
        note_fault(fault, code, t, y)
    return code


@_jit  # called from the loop body: needs NRT
def record_event(hits, k, t, y):
    """Append an occurrence of event ``k`` at ``t`` with state ``y`` to ``hits``."""
    hits.append(float(k))
    hits.append(t)
    for i in range(y.size):
        hits.append(y[i])


def events_start(system, t, y, fault):
    """Evaluate an :class:`EventSystem`'s events at the initial state; for
    any other system nothing.  Returns a fault code."""
    if isinstance(system, EventSystem):
        return event_values(system, t, y, system.g_prev, fault)
    return 0


def events_crossed(system, t_new, ynew, fault):
    """Evaluate the events at the end of an accepted step: ``(code, crossed)``,
    ``crossed`` when any changed sign in its direction (then
    :func:`events_locate` finds where); ``(0, False)`` for other systems."""
    if isinstance(system, EventSystem):
        return _crossed_in_step(system, t_new, ynew, fault)
    return 0, False


def events_locate(system, t, y, h, t_new, K, P, t0, hits, fault):
    """The roots of the events that crossed in the step from ``(t, y)`` to
    ``t_new`` (its stages ``K`` complete for the interpolant ``P``),
    recorded in ``hits`` in integration order; a root at the initial time
    ``t0`` is not an occurrence.  A terminal event ends the list at its
    ``stop_after``-th occurrence (later roots of the step are dropped, equal
    ones kept).  Returns ``(code, stop, t_stop)``; ``(0, False, 0.0)`` for
    other systems."""
    if isinstance(system, EventSystem):
        return _roots_in_step(system, t, y, h, t_new, K, P, t0, hits, fault)
    return 0, False, 0.0


def _crossed_in_step(system, t_new, ynew, fault):
    code = event_values(system, t_new, ynew, system.g_new, fault)
    if code:
        return code, False
    hit = False
    for k in range(system.g_new.size):
        if crossed(system.g_prev[k], system.g_new[k], system.direction[k]):
            hit = True
    if not hit:
        copy_into(system.g_new, system.g_prev)
    return 0, hit


def _roots_in_step(system, t, y, h, t_new, K, P, t0, hits, fault):
    s = system
    sign = 1.0 if h > 0.0 else -1.0
    for k in range(s.g_new.size):
        s.roots[k] = np.nan
        if crossed(s.g_prev[k], s.g_new[k], s.direction[k]):
            if s.g_new[k] == 0.0:
                s.roots[k] = t_new
            elif s.g_prev[k] == 0.0:
                s.roots[k] = t
            else:
                s.roots[k] = brent(StepEvent(s, k, P, t, h, y, K, fault), t, t_new,
                                   s.g_prev[k], s.g_new[k])
                if fault[0] != 0.0:
                    return int(fault[0]), False, 0.0
    copy_into(s.g_new, s.g_prev)
    stop = False
    t_stop = 0.0
    while True:
        k = -1
        for j in range(s.roots.size):   # the next root in integration order
            if s.roots[j] == s.roots[j] and (k < 0 or sign * (s.roots[j] - s.roots[k]) < 0.0):
                k = j
        if k < 0 or (stop and s.roots[k] != t_stop):
            break
        r = s.roots[k]
        s.roots[k] = np.nan
        if r == t0:
            continue
        step_point(r, P, t, h, y, K, s.w, s.yq)
        record_event(hits, k, r, s.yq)
        s.count[k] += 1
        if not stop and 0 < s.stop_after[k] <= s.count[k]:
            stop = True
            t_stop = r
    return 0, stop, t_stop


@overload(events_start, inline="always")
def _overload_events_start(system, t, y, fault):
    if system_class(system) is EventSystem:
        return lambda system, t, y, fault: event_values(system, t, y, system.g_prev, fault)
    return lambda system, t, y, fault: 0


@overload(events_crossed, inline="always")
def _overload_events_crossed(system, t_new, ynew, fault):
    if system_class(system) is EventSystem:
        return _crossed_in_step
    return lambda system, t_new, ynew, fault: (0, False)


@overload(events_locate, inline="always")
def _overload_events_locate(system, t, y, h, t_new, K, P, t0, hits, fault):
    if system_class(system) is EventSystem:
        return _roots_in_step
    return lambda system, t, y, h, t_new, K, P, t0, hits, fault: (0, False, 0.0)


class LoopTableau(NamedTuple):
    """A tableau as the loop reads it: the float arrays and constants of
    :class:`nodekit.tableaux.ButcherTableau` in its slot layout (built once
    per tableau by ``nodekit.integrate.loop_tableau``)."""

    A: np.ndarray        #: (S, S) stage coefficients
    C: np.ndarray        #: (S,) nodes
    B: np.ndarray        #: (S,) weights of the solution
    E: np.ndarray        #: (S,) weights of the error estimate
    E2: np.ndarray       #: (S,) second estimator (DOP853), else zeros
    P: np.ndarray        #: (S, q) dense-output polynomial coefficients
    has_e2: bool
    n_stages: int        #: stages of a step (the FSAL stage included)
    f1_index: int        #: the slot holding f(t + h, y_new)
    fsal: bool
    error_order: int
    stiff_stage: int     #: the stage Hairer's stiffness test reads (-1: no test)
    stiff_bound: float   #: and the bound on ``|h lambda|`` it compares with


class LoopOptions(NamedTuple):
    """The scalar options of one run of the loop (and the tolerances)."""

    rtol: np.ndarray     #: (n,) relative tolerances
    atol: np.ndarray     #: (n,) absolute tolerances
    n_err: int           #: leading components that enter the error norm
    ctrl: np.ndarray     #: (5,) safety, min_factor, max_factor, icoeff, pcoeff
    first_step: float    #: 0.0: Hairer's starting-step rule
    max_step: float
    max_steps: int
    fixed_step: float    #: > 0: fixed steps of this size, no error control
    dense: bool          #: record every accepted step with its stages
    jumps: bool          #: stop at every output time and apply_jump there


class LoopResult(NamedTuple):
    """What the loop returns."""

    status: int
    t_reached: float
    h_last: float
    nfev: int
    nsteps: int
    naccept: int
    nreject: int
    n_out: int           #: rows of ``out`` written
    t_grid: np.ndarray   #: the record (``dense``): start of each accepted step,
    h_grid: np.ndarray   #: its size,
    y_grid: np.ndarray   #: the state at its start,
    K_grid: np.ndarray   #: and its stage derivatives
    n_dense: int         #: number of recorded steps
    t_stiff: float       #: where the stiffness test fired, else NaN
    event_hits: np.ndarray  #: (an EventSystem) rows ``[k, t, y...]``: event ``k`` at ``t``


@_inline  # inlined: each compiled caller links the loop once (see the note below)
def integrate(system, y0, ts, tab, opt, out, fault):
    """Integrate ``system`` from ``ts[0]`` through every time in ``ts``.

    One loop serves every explicit tableau, adaptive (``opt.fixed_step ==
    0``) or fixed-step (``opt.fixed_step > 0``), forwards or backwards in
    time, for the ODE and for its adjoint systems.  Output times are reached
    by the tableau's dense output, never by shortening steps, except with
    ``opt.jumps``: then steps end exactly at every output time, where
    :func:`apply_jump` changes the state (the step size proposed before that
    stop is kept).

    Parameters
    ----------
    system : OdeSystem, AdjointSystem or InterpolatedSystem
        The right-hand side (see :data:`SYSTEMS`).
    y0 : ndarray, shape (n,)
    ts : ndarray, shape (m,)
        Strictly monotone output times; ``ts[0]`` is the initial time.
    tab : LoopTableau
    opt : LoopOptions
    out : ndarray, shape (m, n)
        Receives ``y(ts)`` (after any jump); rows past a failure are left
        untouched.
    fault : ndarray, shape (n + 2,)
        With status ``FAILED_KERNEL``: ``[code, t, state...]`` of the kernel
        call that raised (see :func:`note_fault`).

    Returns
    -------
    LoopResult

    Notes
    -----
    This wrapper is inlined into its callers (:func:`integrate_entry`, the
    compiled backward solve, the ensemble's chunks) rather than compiled on
    its own: LLVM optimises every compiled function's module again with the
    machine code of everything it calls linked in, so a separately compiled
    wrapper would optimise the whole loop body once more per system type
    (3 to 5 s of a first run from empty caches, for nothing).  Called from
    Python it still compiles as an ordinary function.
    """
    n = y0.size
    S = tab.A.shape[0]
    work = (np.zeros((S, n)), y0.copy(), np.empty(n), np.empty(n), np.empty(n),
            np.empty(S))
    # the record of accepted steps (dense output, discrete adjoint), written
    # by the body one row per step (append_row)
    rec = new_record(n, S)
    hits = float_list()  # occurrences of events (an EventSystem), by record_event
    r = _integrate(borrowed(system), borrowed(y0), borrowed(ts), borrowed(tab),
                   borrowed(opt), borrowed(out), borrowed(fault), borrowed(work), rec, hits)
    # Every argument too, not only work: inlined into a compiled caller, the
    # arguments are the caller's variables, and one that the caller does not
    # use again (a z0 or an options record built just for this call) would
    # otherwise be released as soon as it was borrowed, before the body ran
    keep_alive((system, y0, ts, tab, opt, out, fault, work))
    t_grid, h_grid, y_grid, K_grid, count = stack_record(rec, n, S)
    return LoopResult(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                      t_grid, h_grid, y_grid, K_grid, count, r[8], np.array(hits))


#: The fields of :class:`LoopResult` that :func:`integrate_entry` returns as
#: its ``stats``, in order,
STATS_FIELDS = ("status", "t_reached", "h_last", "nfev", "nsteps", "naccept", "nreject",
                "n_out", "n_dense", "t_stiff")
#: and as its ``record``.
RECORD_FIELDS = ("t_grid", "h_grid", "y_grid", "K_grid", "event_hits")


@_jit
def integrate_entry(system, y0, ts, tab, opt, out, fault):
    """:func:`integrate` for a caller in Python, with a result that is cheap
    to box: ``(stats, record)``, where ``stats`` holds the scalar fields of
    :class:`LoopResult` in order (``status`` to ``n_out``, ``n_dense``,
    ``t_stiff``: :data:`STATS_FIELDS`) and ``record`` its five arrays
    (:data:`RECORD_FIELDS`), or ``None`` when the run recorded nothing (no
    ``opt.dense``, no event hit).  Boxing the record type and its five
    arrays costs about 6 us per call, more than a short solve's steps;
    ``nodekit.integrate.run_loop`` rebuilds the :class:`LoopResult`."""
    r = integrate(system, y0, ts, tab, opt, out, fault)
    stats = (r.status, r.t_reached, r.h_last, r.nfev, r.nsteps, r.naccept, r.nreject,
             r.n_out, r.n_dense, r.t_stiff)
    if opt.dense or r.event_hits.size > 0:
        return stats, (r.t_grid, r.h_grid, r.y_grid, r.K_grid, r.event_hits)
    return stats, None


@_inline
def start(system, t0, direction, span, y, K, fk, tmp, ynew, tab, opt, fault):
    """Evaluate ``f(t0, y)`` into the first stage slot and choose the first
    step size (Hairer's rule unless given).

    Returns ``(status, nfev, h_abs)``; ``status`` is ``FAILED_KERNEL``,
    ``FAILED_NONFINITE`` or ``SUCCESS``.
    """
    if checked_evaluate(system, t0, y, fk, fault):
        return FAILED_KERNEL, 0, 0.0
    set_row(K, 0, fk)
    if not all_finite(fk):
        return FAILED_NONFINITE, 1, 0.0
    if opt.fixed_step > 0.0:
        return SUCCESS, 1, opt.fixed_step
    if opt.first_step > 0.0:
        return SUCCESS, 1, opt.first_step
    h0, d1 = initial_step_trial(y, fk, span, opt.rtol, opt.atol, opt.n_err)
    axpy(y, direction * h0, fk, tmp)
    if checked_evaluate(system, t0 + direction * h0, tmp, ynew, fault):
        return FAILED_KERNEL, 2, 0.0
    return SUCCESS, 2, initial_step_final(h0, d1, fk, ynew, y, span, opt.max_step,
                                          tab.error_order, opt.rtol, opt.atol, opt.n_err)


class StiffnessCount(NamedTuple):
    """The state of Hairer's stiffness test along a solve."""

    suspect: int      #: consecutive tests that found ``|h lambda|`` past the bound
    quiet: int        #: consecutive tests that did not, since the last that did
    t_from: float     #: where the test fired (15 suspect tests in a row), else NaN


#: Accepted steps between two stiffness tests while nothing is suspect (as in DOPRI5).
STIFF_TEST_EVERY = 1000


@_inline
def stiffness_test(count, h, t_new, y, ynew, K, tab, tmp):
    """Hairer's stiffness test (DOPRI5, DOP853): ``|h| ||f(y_new) - f(Y)|| /
    ||y_new - Y||`` (``Y``: the input of stage ``tab.stiff_stage``, at
    ``c = 1``) estimates ``|h lambda|`` for the dominant eigenvalue; a step
    size held at the stability boundary by stiffness keeps it near
    ``tab.stiff_bound``.  Tested every :data:`STIFF_TEST_EVERY` accepted steps,
    and at every step once a test was suspect; fires after 15 suspect tests
    in a row (six quiet ones reset the count).  Returns the new count."""
    stage_input(y, h, tab.A, tab.stiff_stage, K, tmp)
    num = 0.0
    den = 0.0
    for i in range(y.size):
        num += (K[tab.f1_index, i] - K[tab.stiff_stage, i]) ** 2
        den += (ynew[i] - tmp[i]) ** 2
    if den > 0.0 and abs(h) * math.sqrt(num / den) > tab.stiff_bound:
        suspect = count.suspect + 1
        t_from = t_new if suspect == 15 and count.t_from != count.t_from else count.t_from
        return StiffnessCount(suspect, 0, t_from)
    if count.quiet + 1 == 6:
        return StiffnessCount(0, 0, count.t_from)
    return StiffnessCount(count.suspect, count.quiet + 1, count.t_from)


@_inline
def min_step_at(t, direction):
    """The smallest step ``t`` resolves: 10 spacings of floats at ``t``
    toward ``direction``."""
    return 10.0 * abs(np.nextafter(t, direction * np.inf) - t)


@_inline
def below_min_step(h_abs, t, direction):
    """``h_abs < min_step_at(t, direction)``, with the spacing (a
    ``nextafter`` call) computed only when ``h_abs`` is near it:
    ``11 (|t| 2**-52 + 2**-1074)`` bounds the smallest step from above."""
    return (h_abs < 11.0 * (abs(t) * 2.220446049250313e-16 + 5e-324)
            and h_abs < min_step_at(t, direction))


@_inline
def propose(t, t0, h_abs, t_stop, direction, n_fixed, opt):
    """The end ``t_new`` of the next step from ``t``.

    Returns ``(t_new, h_abs)``: the step size clipped to ``[min_step_at(t),
    max_step]`` (adaptive).  A step never passes ``t_stop``; fixed steps are
    counted from ``t0`` so that rounding does not accumulate.
    """
    if opt.fixed_step > 0.0:
        t_new = t0 + direction * (n_fixed + 1) * opt.fixed_step
        if direction * (t_stop - t_new) < 1e-9 * opt.fixed_step:
            t_new = t_stop
        return t_new, h_abs
    return adaptive_step(t, h_abs, t_stop, direction, opt.max_step)


@_inline
def adaptive_step(t, h_abs, t_stop, direction, max_step):
    """``(t_new, h_abs)`` of an adaptive step from ``t``: ``h_abs`` clipped to
    ``[min_step_at(t), max_step]``, the step never past ``t_stop``."""
    if h_abs > max_step:
        h_abs = max_step
    elif below_min_step(h_abs, t, direction):
        h_abs = min_step_at(t, direction)
    t_new = t + direction * h_abs
    if direction * (t_new - t_stop) > 0.0:
        t_new = t_stop
    return t_new, h_abs


@_inline
def emit_outputs(system, ts, n_out, direction, t, y, h, t_new, ynew, tab, K, extras,
                 jumps, tmp, w, out, fault):
    """Write ``y`` at every output time in ``(t, t_new]`` into ``out``: the
    step's end, or the dense output inside it (evaluating the extra stages
    once when needed); with ``jumps`` apply the jump at a step end.

    Returns ``(n_out, jumped, failed, nfev)``: the next output row, whether
    the state jumped, whether a kernel raised and the evaluations made.
    """
    S = tab.A.shape[0]
    jumped = False
    nfev = 0
    while n_out < ts.size and direction * (ts[n_out] - t_new) <= 0.0:
        if ts[n_out] == t_new:
            if jumps:
                apply_jump(system, n_out, ynew)
                jumped = True
            set_row(out, n_out, ynew)
        else:
            if extras:
                nfev += S - tab.f1_index - 1
                if stages(system, t, y, h, tab.A, tab.C, K, tab.f1_index + 1, S, tmp,
                          fault):
                    return n_out, jumped, True, nfev
                extras = False
            dense_weights(tab.P, (ts[n_out] - t) / h, w)
            combine(y, h, w, K, tmp)
            set_row(out, n_out, tmp)
        n_out += 1
    return n_out, jumped, False, nfev


@_body
def _integrate(system, y0, ts, tab, opt, out, fault, work, rec, hits):
    """The body of :func:`integrate`, on borrowed arrays (``work``: the
    stage derivatives, state, new state and three scratch vectors; ``rec``:
    the step record, see :func:`new_record`; ``hits``: the events'
    occurrences).  Returns the first eight fields of :class:`LoopResult`."""
    m = ts.size
    S = tab.A.shape[0]
    f1 = tab.f1_index
    K, y, ynew, tmp, fk, w = work
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
    adaptive = opt.fixed_step <= 0.0
    bufs = record_buffers(rec)  # borrowed; replaced when grow_record grows them

    set_row(out, 0, y0)
    n_out = 1
    nsteps = 0
    naccept = 0
    nreject = 0
    t = t0
    h = 0.0
    status, nfev, h_abs = start(system, t0, direction, abs(t_end - t0), y, K, fk, tmp,
                                ynew, tab, opt, fault)
    if status != SUCCESS:
        return (status, t, h, nfev, nsteps, naccept, nreject, n_out, np.nan)
    if events_start(system, t0, y, fault):
        return (FAILED_KERNEL, t, h, nfev, nsteps, naccept, nreject, n_out, np.nan)

    exponent = -1.0 / (tab.error_order + 1.0)
    err = 0.0
    err_prev = 1.0
    n_main = tab.n_stages - 1 if tab.fsal else tab.n_stages
    rejected = False
    n_fixed = 0
    h_proposed = h_abs
    stiff = StiffnessCount(0, 0, np.nan)

    while direction * (t_end - t) > 0.0:
        if nsteps >= opt.max_steps:
            status = FAILED_MAX_STEPS
            break
        if interrupted():
            status = INTERRUPTED
            break
        t_stop = ts[n_out] if opt.jumps else t_end
        t_new, h_abs = propose(t, t0, h_abs, t_stop, direction, n_fixed, opt)
        h_proposed = h_abs
        h = t_new - t
        h_abs = abs(h)

        # the stages and the new state (FSAL: with f(t_new, ynew) in slot f1)
        nfev += n_main - 1
        if stages(system, t, y, h, tab.A, tab.C, K, 1, n_main, tmp, fault):
            status = FAILED_KERNEL
            break
        combine(y, h, tab.B, K, ynew)
        if tab.fsal:
            nfev += 1
            if checked_evaluate(system, t_new, ynew, K[f1], fault):
                status = FAILED_KERNEL
                break
        nsteps += 1

        # accept or reject
        if adaptive:
            err = error_norm(h, tab.E, tab.E2, tab.has_e2, K, y, ynew, opt.rtol, opt.atol,
                             opt.n_err)
            if not err < 1.0:
                # rejected (a non-finite estimate counts as a huge error)
                nreject += 1
                h_abs *= reject_factor(err, exponent, opt.ctrl)
                rejected = True
                if below_min_step(h_abs, t, direction):
                    status = FAILED_NONFINITE if not math.isfinite(err) \
                        else FAILED_STEP_UNDERFLOW
                    break
                continue
        elif not all_finite(ynew):
            status = FAILED_NONFINITE
            break
        if not tab.fsal:
            nfev += 1
            if checked_evaluate(system, t_new, ynew, K[f1], fault):
                status = FAILED_KERNEL
                break
        if not all_finite(K[f1]):
            status = FAILED_NONFINITE
            break
        naccept += 1
        if t_new != t_stop:
            n_fixed += 1
        if adaptive and tab.stiff_stage >= 0 and (stiff.suspect > 0
                                                  or naccept % STIFF_TEST_EVERY == 0):
            stiff = stiffness_test(stiff, h, t_new, y, ynew, K, tab, tmp)

        # events, record, emit the outputs, advance
        code, crossing = events_crossed(system, t_new, ynew, fault)
        if code:
            status = FAILED_KERNEL
            break
        extras = f1 + 1 < S
        if extras and (opt.dense or crossing):
            nfev += S - f1 - 1
            if stages(system, t, y, h, tab.A, tab.C, K, f1 + 1, S, tmp, fault):
                status = FAILED_KERNEL
                break
            extras = False
        if opt.dense:
            bufs = append_row(rec, bufs, t, h, y, K)
        stop = False
        if crossing:
            code, stop, t_event = events_locate(system, t, y, h, t_new, K, tab.P, t0, hits,
                                                fault)
            if code:
                status = FAILED_KERNEL
                break
        n_out, jumped, failed, extra_fev = emit_outputs(
            system, ts, n_out, direction, t, y, h, t_new, ynew, tab, K, extras,
            opt.jumps, tmp, w, out, fault)
        nfev += extra_fev
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
            copy_row(K, f1, 0)
        if stop:
            status = STOPPED_AT_EVENT
            t = t_event
            break

        if adaptive:
            h_abs *= accept_factor(err, err_prev, exponent, opt.ctrl, rejected)
            if t_new == t_stop and h_abs < h_proposed:
                h_abs = h_proposed  # a step cut short by a stop says nothing
            err_prev = max(err, 1e-4)
            rejected = False

    return (status, t, h, nfev, nsteps, naccept, nreject, n_out, stiff.t_from)


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
    n = ybar.size
    S = A.shape[0]
    work = (np.zeros((S, n)), np.empty(S), np.empty(n), np.empty(n), np.empty(thbar.size))
    nvjp = _reverse_steps(vjp, borrowed(theta), borrowed(ts), borrowed(g), borrowed(A),
                          borrowed(C), borrowed(B), borrowed(P), borrowed(t_grid),
                          borrowed(h_grid), borrowed(y_grid), borrowed(K_grid), count,
                          borrowed(ybar), borrowed(thbar), borrowed(work))
    keep_alive(work)
    return nvjp


@_body
def _reverse_steps(vjp, theta, ts, g, A, C, B, P, t_grid, h_grid, y_grid, K_grid, count,
                   ybar, thbar, work):
    """The body of :func:`reverse_steps`, on borrowed arrays (``work``: the
    stage cotangents, interpolant weights, a stage input and the kernel's two
    outputs)."""
    Kbar, w, Y, ay, ath = work
    m = ts.size
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
        for s in range(Kbar.shape[0] - 1, -1, -1):
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
    g["float_list"] = list
    for name in names:
        fn = g[name].py_func
        g[name] = types.FunctionType(fn.__code__, g, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
    return {name: g[name] for name in names}


def _identity(x):
    return x


_PY = python_twins(globals(), ["stages", "checked_evaluate", "integrate", "_integrate",
                               "start", "propose", "emit_outputs", "reverse_steps",
                               "_reverse_steps", "rhs_at_points", "new_record",
                               "stack_record", "record_step", "append_row", "record_buffers",
                               "grow_record",
                               "brent",
                               "record_event", "stiffness_test"])
integrate_py = _PY["integrate"]
reverse_steps_py = _PY["reverse_steps"]
rhs_at_points_py = _PY["rhs_at_points"]
brent_py = _PY["brent"]
