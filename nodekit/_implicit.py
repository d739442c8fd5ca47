"""The Rosenbrock loop for stiff problems (``method='rodas5'``).

One step of a Rosenbrock method (:mod:`nodekit.tableaux.rosenbrock`) with
``s`` stages, in the slot variables ``K_i = U_i / h`` of the explicit loop::

    (I / gamma - h J) K_i = f(t + c_i h, y + h sum_j a_ij K_j)
                            + sum_j C_ij K_j + h d_i df/dt
    y_new = y + h sum_i M_i K_i,     error estimate  h sum_i E_i K_i

``J = df/dy`` and ``df/dt`` are taken once per accepted step; the matrix
``I / gamma - h J`` is factorised (LU with partial pivoting) once per step
size and reused by every stage, and after a rejection only the
factorisation is redone.  Everything else is shared with the explicit loop
of :mod:`nodekit._kernels` and :mod:`nodekit.controllers`: the error norm,
the PI controller, the starting step, the dense output through the
tableau's ``P`` matrix (so ``dense=True`` gives the same
:class:`~nodekit.integrate.DenseSolution`), the record of steps and the
status codes.

Like the explicit loop, the loop runs compiled for an :class:`nodekit.ODE`
and interpreted (the same source) for a Python right-hand side.  The
Jacobian is a forward difference of the right-hand side, computed in the
loop, with the increment ``sqrt(eps) * max(|y_j|, 1e-5)`` (the choice of
Hairer's codes and SciPy's ``num_jac`` floor); ``df/dt`` likewise.
"""
import functools
import math
import warnings

from typing import NamedTuple

import numba as nb
import numpy as np

from . import _interrupt, _jitflags, _kernels
from ._interrupt import INTERRUPTED, interrupted
from ._kernels import (FAILED_KERNEL, FAILED_MAX_STEPS, FAILED_NONFINITE,
                       FAILED_STEP_UNDERFLOW, SUCCESS, all_finite, apply_jump, below_min_step,
                       checked_evaluate, combine, copy_into, dense_weights, new_record,
                       note_fault, propose, record_step, set_row, stack_record, stage_input,
                       start)
from .controllers import accept_factor, error_norm, reject_factor

_jit = _jitflags.jit
_inline = _jitflags.inline

_SQRT_EPS = math.sqrt(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------
# Linear algebra and difference quotients (nopython)
# ---------------------------------------------------------------------------
@_jit
def lu_factor(W, piv):
    """In-place LU factorisation with partial pivoting; False if singular."""
    n = W.shape[0]
    for k in range(n):
        p = k
        big = abs(W[k, k])
        for i in range(k + 1, n):
            if abs(W[i, k]) > big:
                big = abs(W[i, k])
                p = i
        piv[k] = p
        if big == 0.0 or not math.isfinite(big):
            return False
        if p != k:
            for j in range(n):
                tmp = W[k, j]
                W[k, j] = W[p, j]
                W[p, j] = tmp
        inv = 1.0 / W[k, k]
        for i in range(k + 1, n):
            W[i, k] *= inv
            f = W[i, k]
            if f != 0.0:
                for j in range(k + 1, n):
                    W[i, j] -= f * W[k, j]
    return True


@_jit
def lu_solve(W, piv, b):
    """Solve ``W x = b`` in place with the factors of :func:`lu_factor`."""
    n = b.size
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(n):
        acc = b[i]
        for j in range(i):
            acc -= W[i, j] * b[j]
        b[i] = acc
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, n):
            acc -= W[i, j] * b[j]
        b[i] = acc / W[i, i]


@_jit
def iteration_matrix(J, h, gamma, W):
    """``W = I / gamma - h J``."""
    n = J.shape[0]
    for i in range(n):
        for j in range(n):
            W[i, j] = -h * J[i, j]
        W[i, i] += 1.0 / gamma


@_jit
def fd_jacobian(system, t, y, f0, J, ytmp, ftmp, fault, n_cols):
    """Forward-difference columns ``0 .. n_cols - 1`` of ``J = df/dy`` at
    ``(t, y)`` (``n_cols`` evaluations); returns 0, or the fault code of a
    kernel that raised (see :func:`nodekit._kernels.checked_evaluate`)."""
    n = y.size
    copy_into(y, ytmp)
    for j in range(n_cols):
        yj = y[j]
        ytmp[j] = yj + _SQRT_EPS * max(abs(yj), 1e-5)
        delta = ytmp[j] - yj
        code = checked_evaluate(system, t, ytmp, ftmp, fault)
        if code:
            return code
        for i in range(n):
            J[i, j] = (ftmp[i] - f0[i]) / delta
        ytmp[j] = yj
    return 0


@_jit
def linear_columns(system, t, y, J, ytmp, ftmp, fault, c0, c1):
    """Columns ``c0 .. c1 - 1`` of ``J`` exactly, for a right-hand side
    linear in those components jointly (the adjoint ``a``): column ``j`` is
    ``f(z + e_j) - f(z)`` with ``z`` = ``y`` whose components ``c0 .. c1 - 1``
    are zero (``c1 - c0 + 1`` evaluations); returns a fault code as
    :func:`fd_jacobian`."""
    n = y.size
    base = np.empty(n)
    copy_into(y, ytmp)
    for j in range(c0, c1):
        ytmp[j] = 0.0
    code = checked_evaluate(system, t, ytmp, base, fault)
    if code:
        return code
    for j in range(c0, c1):
        ytmp[j] = 1.0
        code = checked_evaluate(system, t, ytmp, ftmp, fault)
        if code:
            return code
        for i in range(n):
            J[i, j] = ftmp[i] - base[i]
        ytmp[j] = 0.0
    return 0


@_jit
def fd_time_derivative(system, t, y, f0, dfdt, ftmp, direction, fault):
    """Forward difference ``df/dt`` at ``(t, y)`` (one evaluation); returns a
    fault code as :func:`fd_jacobian`."""
    tt = t + direction * _SQRT_EPS * max(abs(t), 1e-5)
    delta = tt - t
    code = checked_evaluate(system, tt, y, ftmp, fault)
    if code:
        return code
    for i in range(y.size):
        dfdt[i] = (ftmp[i] - f0[i]) / delta
    return 0


class JacobianPlan(NamedTuple):
    """How a stiff loop forms ``J = df/dy`` of its system.

    With ``kernel``, the ``jac`` kernel gives all of it.  Otherwise columns
    ``0 .. n_fd - 1`` are forward differences (:func:`fd_jacobian`), the next
    ``n_lin`` are exact for a system linear in those components
    (:func:`linear_columns`: the adjoint ``a`` of the backward systems), and
    the rest are zero (components nothing depends on: the parameter
    quadrature ``g``).  Built by :func:`jacobian_plan`.
    """

    kernel: bool
    n_fd: int
    n_lin: int


def jacobian_plan(kernel, n_fd, n_lin=0):
    """The :class:`JacobianPlan` with the loop's field types."""
    return JacobianPlan(bool(kernel), int(n_fd), int(n_lin))


@_jit
def jacobian_y(system, jac, plan, theta, t, y, f0, J, tmp, fk, fault):
    """``J = df/dy`` at ``(t, y)`` (``f0 = f(t, y)``) as the
    :class:`JacobianPlan` says; returns ``(fault code, evaluations)``."""
    if plan.kernel:
        code = jac(t, y, theta, J)
        if code:
            note_fault(fault, code, t, y)
        return code, 0
    code = fd_jacobian(system, t, y, f0, J, tmp, fk, fault, plan.n_fd)
    if code:
        return code, plan.n_fd
    c1 = plan.n_fd + plan.n_lin
    if plan.n_lin:
        code = linear_columns(system, t, y, J, tmp, fk, fault, plan.n_fd, c1)
        if code:
            return code, plan.n_fd + plan.n_lin + 1
    for i in range(y.size):
        for j in range(c1, y.size):
            J[i, j] = 0.0
    return 0, plan.n_fd + (plan.n_lin + 1 if plan.n_lin else 0)


@_jit
def jacobians(system, jac, plan, theta, t, y, f0, J, dfdt, tmp, fk, direction, fault):
    """``J = df/dy`` (:func:`jacobian_y`) and ``df/dt`` at ``(t, y)``; returns
    ``(fault code, evaluations)``."""
    code, nfev = jacobian_y(system, jac, plan, theta, t, y, f0, J, tmp, fk, fault)
    if code:
        return code, nfev
    return fd_time_derivative(system, t, y, f0, dfdt, fk, direction, fault), nfev + 1


@_inline
def write_outputs(system, ts, n_out, direction, t, y, h, t_new, ynew, P, K, w, tmp, out,
                  jumps):
    """Write ``y`` at every output time in ``(t, t_new]`` into ``out``: the
    step's end, or the dense output ``P`` inside the step; with ``jumps``
    apply the system's jump (:func:`nodekit._kernels.apply_jump`) at a step
    end.  Returns ``(next output row, whether the state jumped)``.  (The
    stiff loops' counterpart of :func:`nodekit._kernels.emit_outputs`,
    without extra stages.)"""
    jumped = False
    while n_out < ts.size and direction * (ts[n_out] - t_new) <= 0.0:
        if ts[n_out] == t_new:
            if jumps:
                apply_jump(system, n_out, ynew)
                jumped = True
            set_row(out, n_out, ynew)
        else:
            dense_weights(P, (ts[n_out] - t) / h, w)
            combine(y, h, w, K, tmp)
            set_row(out, n_out, tmp)
        n_out += 1
    return n_out, jumped


@_inline
def stage_rhs(fk, Cm, k, K, hd, dfdt, out):
    """``out = fk + sum_{j<k} Cm[k, j] K[j] + hd * dfdt``."""
    for i in range(out.size):
        acc = fk[i] + hd * dfdt[i]
        for j in range(k):
            acc += Cm[k, j] * K[j, i]
        out[i] = acc


@_jit
def rosenbrock_stages(system, t, y, h, A, Cm, c, d, K, f0, dfdt, W, piv, tmp, fk,
                      fault):
    """All stages of one step into ``K`` (``s - 1`` evaluations); returns 0,
    or the fault code of a kernel that raised (the later stages are skipped)."""
    s = A.shape[0]
    for k in range(s):
        if k == 0:
            copy_into(f0, fk)
        else:
            stage_input(y, h, A, k, K, tmp)
            code = checked_evaluate(system, t + c[k] * h, tmp, fk, fault)
            if code:
                return code
        stage_rhs(fk, Cm, k, K, h * d[k], dfdt, tmp)
        lu_solve(W, piv, tmp)
        set_row(K, k, tmp)
    return 0


@_jit
def defect_error(system, t, y, h, K, theta, weights, W, piv, gamma, tmp, fk, ynew, opt,
                 fault):
    """Second error estimate of a Rosenbrock step: the defect of its dense
    output at ``t + theta h``, ``h (u'(t + theta h) - f(t + theta h, u))``,
    filtered by ``(I - h gamma J)^-1`` so that stiff components, where a
    defect is large but harmless, do not count, in the error norm.  Returns
    ``(fault code, norm)``; one evaluation of ``system``."""
    combine(y, h, weights[0], K, tmp)
    code = checked_evaluate(system, t + theta * h, tmp, fk, fault)
    if code:
        return code, np.inf
    slope = weights[1]
    for i in range(tmp.size):
        acc = 0.0
        for k in range(slope.size):
            acc += slope[k] * K[k, i]
        tmp[i] = h * (acc - fk[i]) / gamma
    lu_solve(W, piv, tmp)                     # W = I / gamma - h J
    return 0, error_norm(1.0, _ONE, _ONE, False, tmp.reshape((1, tmp.size)), y, ynew,
                         opt.rtol, opt.atol, opt.n_err)


_ONE = np.ones(1)


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------
class StiffLoopResult(NamedTuple):
    """What the stiff loops (Rosenbrock and ESDIRK) return: the fields of
    :class:`nodekit._kernels.LoopResult` and the Jacobian and LU counts."""

    status: int
    t_reached: float
    h_last: float
    nfev: int
    nsteps: int
    naccept: int
    nreject: int
    n_out: int           #: rows of ``out`` written
    njev: int            #: Jacobian evaluations (kernel calls or difference Jacobians)
    nlu: int             #: LU factorisations
    t_grid: np.ndarray   #: the record (``dense``): start of each accepted step,
    h_grid: np.ndarray   #: its size,
    y_grid: np.ndarray   #: the state at its start,
    K_grid: np.ndarray   #: and its stage derivatives
    n_dense: int         #: number of recorded steps


@_jit
def stiff_result(status, t, h, counts, rec, n, S):
    """The :class:`StiffLoopResult` of a stiff loop; ``counts`` is ``(nfev,
    nsteps, naccept, nreject, n_out, njev, nlu)``."""
    nfev, nsteps, naccept, nreject, n_out, njev, nlu = counts
    t_grid, h_grid, y_grid, K_grid, count = stack_record(rec, n, S)
    return StiffLoopResult(status, t, h, nfev, nsteps, naccept, nreject, n_out, njev, nlu,
                           t_grid, h_grid, y_grid, K_grid, count)


@_jit
def stiff_workspace(y0, S):
    """The arrays every stiff loop allocates once per solve: ``K`` (S, n),
    ``J`` and ``W`` (n, n), the pivots, the state ``y = y0``, and ``ynew``,
    ``tmp``, ``fk``, ``f0`` (n) and ``w`` (S)."""
    n = y0.size
    return (np.zeros((S, n)), np.empty((n, n)), np.empty((n, n)),
            np.zeros(n, dtype=np.int64), y0.copy(), np.empty(n), np.empty(n), np.empty(n),
            np.empty(n), np.empty(S))


class RosenbrockLoopTableau(NamedTuple):
    """A Rosenbrock tableau as the loop reads it (the arrays of
    :class:`~nodekit.tableaux.rosenbrock.RosenbrockTableau`), built once per
    tableau by :func:`loop_tableau`."""

    A: np.ndarray
    Cm: np.ndarray
    M: np.ndarray
    E: np.ndarray
    c: np.ndarray
    d: np.ndarray
    P: np.ndarray
    gamma: float
    error_order: int
    defect_theta: float   #: 0, or where the dense output's defect is checked
    defect_weights: np.ndarray  #: (2, S): its value and slope weights there


_LOOP_TABLEAUX = {}


def loop_tableau(tab):
    """The :class:`RosenbrockLoopTableau` of ``tab``, built once."""
    hit = _LOOP_TABLEAUX.get(id(tab))
    if hit is not None and hit[0] is tab:
        return hit[1]
    theta = 0.0 if tab.defect_theta is None else float(tab.defect_theta)
    rec = RosenbrockLoopTableau(tab.A, tab.Cm, tab.M, tab.E, tab.c_arr, tab.d_arr, tab.P,
                                float(tab.gamma), int(tab.error_order), theta,
                                tab.defect_weights)
    _LOOP_TABLEAUX[id(tab)] = (tab, rec)
    return rec


@_jit
def rosenbrock(system, jac, plan, theta, y0, ts, rtab, opt, out, fault):
    """Integrate ``system`` through every time in ``ts`` with a Rosenbrock method.

    Arguments and results as :func:`nodekit._kernels.integrate` (adaptive:
    ``opt`` is a :class:`~nodekit._kernels.LoopOptions`; with ``opt.jumps``
    every output time is a step end where the system's jump is applied, as
    the backward passes of :mod:`nodekit.adjoint` need), with the
    :class:`RosenbrockLoopTableau` ``rtab``, the Jacobian ``jac(t, y, theta,
    J)`` and the :class:`JacobianPlan` ``plan`` saying whether it is used
    (otherwise differences of ``system``; ``jac`` is a guarded kernel
    returning a fault code, see :mod:`nodekit.ode`) and the ``fault`` record
    of a kernel that raised (status -4).  Returns a :class:`StiffLoopResult`.
    """
    A, Cm, M, E, c, d, P, gamma, error_order, defect_theta, defect_w = rtab
    rtol, atol, n_err, ctrl = opt.rtol, opt.atol, opt.n_err, opt.ctrl
    max_steps, dense = opt.max_steps, opt.dense
    n = y0.size
    m = ts.size
    S = A.shape[0]
    K, J, W, piv, y, ynew, tmp, fk, f0, w = stiff_workspace(y0, S)
    dfdt = np.empty(n)
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
    span = abs(t_end - t0)

    rec = new_record(n, S)

    set_row(out, 0, y0)
    n_out = 1
    nsteps = 0
    naccept = 0
    nreject = 0
    njev = 0
    nlu = 0
    t = t0
    h = 0.0
    status, nfev, h_abs = start(system, t0, direction, span, y, K, f0, tmp, ynew, rtab,
                                opt, fault)
    if status != SUCCESS:
        return stiff_result(status, t, h, (nfev, nsteps, naccept, nreject, n_out, njev, nlu),
                            rec, n, S)
    exponent = -1.0 / (error_order + 1.0)
    err_prev = 1.0
    rejected = False
    fresh = True           # J and df/dt must be taken at (t, y)

    while direction * (t_end - t) > 0.0:
        if nsteps >= max_steps:
            status = FAILED_MAX_STEPS
            break
        if interrupted():
            status = INTERRUPTED
            break
        if fresh:
            code, evals = jacobians(system, jac, plan, theta, t, y, f0, J, dfdt,
                                    tmp, fk, direction, fault)
            nfev += evals
            njev += 1
            if code:
                status = FAILED_KERNEL
                break
            fresh = False
        t_stop = ts[n_out] if opt.jumps else t_end
        t_new, h_abs = propose(t, t0, h_abs, t_stop, direction, 0, opt)
        h_proposed = h_abs
        h = t_new - t

        iteration_matrix(J, h, gamma, W)
        nlu += 1
        nsteps += 1
        if lu_factor(W, piv):
            nfev += S - 1
            if rosenbrock_stages(system, t, y, h, A, Cm, c, d, K, f0, dfdt, W, piv,
                                 tmp, fk, fault):
                status = FAILED_KERNEL
                break
            combine(y, h, M, K, ynew)
            err = error_norm(h, E, E, False, K, y, ynew, rtol, atol, n_err)
            if defect_theta > 0.0 and err < 1.0:
                nfev += 1
                code, err_d = defect_error(system, t, y, h, K, defect_theta, defect_w, W,
                                           piv, gamma, tmp, fk, ynew, opt, fault)
                if code:
                    status = FAILED_KERNEL
                    break
                if not err_d <= err:          # (a NaN defect rejects the step)
                    err = err_d
        else:
            err = np.inf
        if not err < 1.0:
            nreject += 1
            h_abs = abs(h) * reject_factor(err, exponent, ctrl)
            rejected = True
            if below_min_step(h_abs, t, direction):
                status = FAILED_NONFINITE if not math.isfinite(err) \
                    else FAILED_STEP_UNDERFLOW
                break
            continue

        naccept += 1
        if dense:
            record_step(rec, t, h, y, K)
        # (a jump changes ynew: f0 is evaluated at the new state below anyway)
        n_out, _ = write_outputs(system, ts, n_out, direction, t, y, h, t_new, ynew, P, K,
                                 w, tmp, out, opt.jumps)

        t = t_new
        copy_into(ynew, y)
        nfev += 1
        if checked_evaluate(system, t, y, f0, fault):
            status = FAILED_KERNEL
            break
        if not all_finite(f0):
            status = FAILED_NONFINITE
            break
        fresh = True
        h_abs = abs(h) * accept_factor(err, err_prev, exponent, ctrl, rejected)
        if t_new == t_stop and h_abs < h_proposed:
            h_abs = h_proposed  # a step cut short by a stop says nothing
        err_prev = max(err, 1e-4)
        rejected = False

    return stiff_result(status, t, h, (nfev, nsteps, naccept, nreject, n_out, njev, nlu),
                        rec, n, S)


_PY = _kernels.python_twins(globals(), ["rosenbrock", "rosenbrock_stages", "defect_error",
                                         "fd_jacobian", "linear_columns", "fd_time_derivative",
                                         "write_outputs",
                                         "jacobian_y", "jacobians", "stiff_result"],
                            _kernels._PY)
rosenbrock_py = _PY["rosenbrock"]


# ---------------------------------------------------------------------------
# The driver behind nk.solve(method='rodas5')
# ---------------------------------------------------------------------------
_NO_JAC = []


def _no_jac():
    """A placeholder guarded Jacobian of the right signature (never called)."""
    from ._kernel_type import as_kernel
    from .ode import JAC_GUARDED_SIG
    if not _NO_JAC:
        _NO_JAC.append(as_kernel(nb.cfunc(JAC_GUARDED_SIG, cache=True)(_no_jac_kernel)))
    return _NO_JAC[0]


def _no_jac_kernel(t, y, theta, out):  # pragma: no cover - compiled
    return 0


def _autograd_jacobian(fun, shape, t0, y0, theta):
    """``jac(t, y, theta, out)`` from autograd for a Python right-hand side,
    or ``None`` when autograd cannot trace ``fun`` at ``(t0, y0)`` (plain
    NumPy code, say): then the loop takes forward differences."""
    import autograd

    def jac(t, y, theta, out):
        def f(v):
            return np.reshape(fun(t, np.reshape(v, shape), theta), (-1,))
        out[:, :] = autograd.jacobian(f)(y)

    J = np.empty((y0.size, y0.size))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            jac(t0, y0, theta, J)
        except Exception:  # untraceable code: any error means "use differences"
            return None
    # plain NumPy code can "succeed" with a zero Jacobian, and autograd warns
    # that the output seems independent of the input
    if caught or not np.all(np.isfinite(J)):
        return None
    return jac


def is_stiff(method):
    """True when ``method`` names (or is) a stiff tableau (Rosenbrock or ESDIRK)."""
    if type(method) is str:
        if method in _EXPLICIT_NAMES:
            return False  # the common case, before any import statement (each costs a few us)
        from .tableaux import STIFF_METHODS
        return method.strip().lower() in STIFF_METHODS
    return isinstance(method, _stiff_classes())


@functools.cache
def _stiff_classes():
    """The stiff tableau classes (imported once, on first use)."""
    from .tableaux.esdirk import ESDIRKTableau
    from .tableaux.rosenbrock import RosenbrockTableau
    return RosenbrockTableau, ESDIRKTableau


def _explicit_names():
    from .tableaux import METHODS
    return frozenset(METHODS)


_EXPLICIT_NAMES = _explicit_names()


def _family_loop(tab, compiled):
    """``(loop, loop tableau)`` of the stiff family of ``tab``."""
    from .tableaux.esdirk import ESDIRKTableau
    if isinstance(tab, ESDIRKTableau):
        from . import _esdirk
        return (_esdirk.esdirk if compiled else _esdirk.esdirk_py), _esdirk.loop_tableau(tab)
    return (rosenbrock if compiled else rosenbrock_py), loop_tableau(tab)


def stiff_tableau(method):
    """The stiff tableau named (or given by) ``method``."""
    from .tableaux import STIFF_METHODS
    return method if not isinstance(method, str) else STIFF_METHODS[method.strip().lower()]


def run(fun, compiled, system, y0, ts, theta, method, rtol, atol, controller, *,
        first_step=None, max_step=np.inf, max_steps=100_000, dense=False, shape=None):
    """A stiff loop (Rosenbrock or ESDIRK, by the method) on inputs that
    :func:`nodekit.integrate.integrate` validated (flat ``y0``,
    per-component ``rtol``/``atol``); returns ``(ys, info, dense)`` in the
    form of :func:`nodekit.integrate.run` (``info`` also has ``njev`` and
    ``nlu``).  The Jacobian: ``fun``'s ``jac`` kernel (an ``nk.ODE``),
    autograd (a Python ``fun`` it can trace), else forward differences."""
    shape = (y0.size,) if shape is None else shape
    if compiled:
        jac = fun.jac_cfunc
    else:
        jac = _autograd_jacobian(fun, shape, ts[0], y0, theta)
    plan = jacobian_plan(jac is not None, y0.size)
    return run_system(compiled, system, y0, ts, method, rtol, atol, controller, jac=jac,
                      plan=plan, theta=theta, first_step=first_step, max_step=max_step,
                      max_steps=max_steps, dense=dense, shape=shape)


def run_system(compiled, system, y0, ts, method, rtol, atol, controller, *, plan,
               jac=None, theta=None, first_step=None, max_step=np.inf, max_steps=100_000,
               dense=False, shape=None, n_err=None, jumps=False):
    """A stiff loop on any system of :data:`nodekit._kernels.SYSTEMS` (the
    backward passes of :mod:`nodekit.adjoint` too), its Jacobian formed as
    the :class:`JacobianPlan` ``plan`` says; ``n_err`` and ``jumps`` as in
    :func:`nodekit.integrate.run`.  Returns ``(ys, info, dense)``."""
    from .integrate import STATUS_MESSAGES, DenseSolution, kernel_fault_message, loop_options

    tab = stiff_tableau(method)
    n = y0.size
    shape = (n,) if shape is None else shape
    out = np.full((ts.size, n), np.nan)
    fault = np.zeros(n + 2)
    loop, ltab = _family_loop(tab, compiled)
    jac = _no_jac() if jac is None else jac
    # the theta the jac kernel reads (a placeholder when there is none)
    kernel_theta = np.empty(0) if theta is None and compiled else theta
    with _interrupt.armed(compiled):
        opt = loop_options(rtol, atol, controller, n_err=n_err, first_step=first_step,
                           max_step=max_step, max_steps=max_steps, dense=dense, jumps=jumps)
        res = loop(system, jac, plan, kernel_theta, y0, ts, ltab, opt, out, fault)
    info = dict(status=int(res.status), t_reached=float(res.t_reached),
                h_last=float(res.h_last), nfev=int(res.nfev), nsteps=int(res.nsteps),
                naccept=int(res.naccept), nreject=int(res.nreject), n_out=int(res.n_out),
                max_steps=int(max_steps), njev=int(res.njev), nlu=int(res.nlu),
                method=tab.name, shape=shape, t=ts)
    if res.status == FAILED_KERNEL:
        info["fault_state"] = fault[2:].copy()
        info["message"] = kernel_fault_message(
            system, fault, res.nsteps, res.nfev,
            jac=(jac, kernel_theta) if plan.kernel else None)
    else:
        info["message"] = STATUS_MESSAGES[info["status"]].format(
            t=info["t_reached"], h=info["h_last"], **{k: info[k] for k in (
                "nsteps", "nfev", "naccept", "nreject", "max_steps")})
    dense_data = None
    if dense:
        dense_data = DenseSolution(tab, res.t_grid, res.h_grid, res.y_grid, res.K_grid,
                                   float(ts[0]), float(res.t_reached), shape)
    return out, info, dense_data
