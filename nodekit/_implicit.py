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
import math
import warnings

from typing import NamedTuple

import numba as nb
import numpy as np

from . import _interrupt, _kernels
from ._interrupt import INTERRUPTED, interrupted
from ._kernels import (FAILED_KERNEL, FAILED_MAX_STEPS, FAILED_NONFINITE,
                       FAILED_STEP_UNDERFLOW, SUCCESS, all_finite, axpy, checked_evaluate,
                       combine, copy_into, dense_weights, float_list, note_fault, record_step,
                       set_row, stack_record, stage_input)
from .controllers import (accept_factor, error_norm, initial_step_final,
                          initial_step_trial, reject_factor)

_jit = nb.njit(cache=True, nogil=True)
_inline = nb.njit(cache=True, nogil=True, inline="always")

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
def fd_jacobian(system, t, y, f0, J, ytmp, ftmp, fault):
    """Forward-difference ``J = df/dy`` at ``(t, y)`` (``y.size`` evaluations);
    returns 0, or the fault code of a kernel that raised (see
    :func:`nodekit._kernels.checked_evaluate`)."""
    n = y.size
    copy_into(y, ytmp)
    for j in range(n):
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


@_jit
def jacobians(system, jac, has_jac, theta, t, y, f0, J, dfdt, tmp, fk, direction, fault):
    """``J = df/dy`` (the ``jac`` kernel, or forward differences) and
    ``df/dt`` at ``(t, y)``; returns ``(fault code, evaluations)``."""
    n = y.size
    nfev = 1
    if has_jac:
        code = jac(t, y, theta, J)
        if code:
            note_fault(fault, code, t, y)
            return code, 0
    else:
        code = fd_jacobian(system, t, y, f0, J, tmp, fk, fault)
        if code:
            return code, n
        nfev += n
    return fd_time_derivative(system, t, y, f0, dfdt, fk, direction, fault), nfev


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


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------
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


_LOOP_TABLEAUX = {}


def loop_tableau(tab):
    """The :class:`RosenbrockLoopTableau` of ``tab``, built once."""
    hit = _LOOP_TABLEAUX.get(id(tab))
    if hit is not None and hit[0] is tab:
        return hit[1]
    rec = RosenbrockLoopTableau(tab.A, tab.Cm, tab.M, tab.E, tab.c_arr, tab.d_arr, tab.P,
                                float(tab.gamma), int(tab.error_order))
    _LOOP_TABLEAUX[id(tab)] = (tab, rec)
    return rec


@_jit
def rosenbrock(system, jac, has_jac, theta, y0, ts, rtab, opt, out, fault):
    """Integrate ``system`` through every time in ``ts`` with a Rosenbrock method.

    Arguments and results as :func:`nodekit._kernels.integrate` (adaptive,
    without jumps: ``opt`` is a :class:`~nodekit._kernels.LoopOptions`), with
    the :class:`RosenbrockLoopTableau` ``rtab``, the Jacobian
    ``jac(t, y, theta, J)`` (used when ``has_jac``; otherwise forward
    differences of ``system``; a guarded kernel returning a fault code, see
    :mod:`nodekit.ode`), the ``fault`` record of a kernel that raised (status
    -4) and two more results, the Jacobian evaluations and LU factorisations:
    ``status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out,
    njev, nlu, t_grid, h_grid, y_grid, K_grid, n_dense``.
    """
    A, Cm, M, E, c, d, P, gamma, error_order = rtab
    rtol, atol, n_err, ctrl = opt.rtol, opt.atol, opt.n_err, opt.ctrl
    first_step, max_step, max_steps, dense = (opt.first_step, opt.max_step, opt.max_steps,
                                              opt.dense)
    n = y0.size
    m = ts.size
    S = A.shape[0]
    K = np.zeros((S, n))
    J = np.empty((n, n))
    W = np.empty((n, n))
    piv = np.zeros(n, dtype=np.int64)
    y = y0.copy()
    ynew = np.empty(n)
    tmp = np.empty(n)
    fk = np.empty(n)
    f0 = np.empty(n)
    dfdt = np.empty(n)
    w = np.empty(S)
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
    span = abs(t_end - t0)

    rec = (float_list(), float_list(), float_list(), float_list())

    set_row(out, 0, y0)
    n_out = 1
    nfev = 0
    nsteps = 0
    naccept = 0
    nreject = 0
    njev = 0
    nlu = 0
    status = SUCCESS
    t = t0
    h = 0.0

    nfev += 1
    if checked_evaluate(system, t, y, f0, fault):
        status = FAILED_KERNEL
    elif not all_finite(f0):
        status = FAILED_NONFINITE
    if status != SUCCESS:
        return (status, t, h, nfev, nsteps, naccept, nreject, n_out, njev,
                nlu) + stack_record(rec, n, S)
    if first_step > 0.0:
        h_abs = first_step
    else:
        h0, d1 = initial_step_trial(y, f0, span, rtol, atol, n_err)
        axpy(y, direction * h0, f0, tmp)
        nfev += 1
        if checked_evaluate(system, t0 + direction * h0, tmp, fk, fault):
            return (FAILED_KERNEL, t, h, nfev, nsteps, naccept, nreject, n_out, njev,
                    nlu) + stack_record(rec, n, S)
        h_abs = initial_step_final(h0, d1, f0, fk, y, span, max_step, error_order,
                                   rtol, atol, n_err)
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
            code, evals = jacobians(system, jac, has_jac, theta, t, y, f0, J, dfdt,
                                    tmp, fk, direction, fault)
            nfev += evals
            njev += 1
            if code:
                status = FAILED_KERNEL
                break
            fresh = False
        min_step = 10.0 * abs(np.nextafter(t, direction * np.inf) - t)
        if h_abs > max_step:
            h_abs = max_step
        elif h_abs < min_step:
            h_abs = min_step
        t_new = t + direction * h_abs
        if direction * (t_new - t_end) > 0.0:
            t_new = t_end
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
        else:
            err = np.inf
        if not err < 1.0:
            nreject += 1
            h_abs = abs(h) * reject_factor(err, exponent, ctrl)
            rejected = True
            if h_abs < min_step:
                status = FAILED_NONFINITE if not math.isfinite(err) \
                    else FAILED_STEP_UNDERFLOW
                break
            continue

        naccept += 1
        if dense:
            record_step(rec, t, h, y, K)
        while n_out < m and direction * (ts[n_out] - t_new) <= 0.0:
            if ts[n_out] == t_new:
                set_row(out, n_out, ynew)
            else:
                dense_weights(P, (ts[n_out] - t) / h, w)
                combine(y, h, w, K, tmp)
                set_row(out, n_out, tmp)
            n_out += 1

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
        err_prev = max(err, 1e-4)
        rejected = False

    return (status, t, h, nfev, nsteps, naccept, nreject, n_out, njev, nlu) + \
        stack_record(rec, n, S)


_PY = _kernels.python_twins(globals(), ["rosenbrock", "rosenbrock_stages", "fd_jacobian",
                                         "fd_time_derivative", "jacobians"], _kernels._PY)
rosenbrock_py = _PY["rosenbrock"]


# ---------------------------------------------------------------------------
# The driver behind nk.solve(method='rodas5')
# ---------------------------------------------------------------------------
_NO_JAC = []


def _no_jac():
    """A placeholder guarded Jacobian of the right signature (never called)."""
    from .ode import JAC_GUARDED_SIG
    if not _NO_JAC:
        _NO_JAC.append(nb.cfunc(JAC_GUARDED_SIG, cache=True)(_no_jac_kernel))
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


def is_rosenbrock(method):
    """True when ``method`` names (or is) a Rosenbrock tableau."""
    from .tableaux.rosenbrock import ROSENBROCK_METHODS, RosenbrockTableau
    if type(method) is str:
        if method in _EXPLICIT_NAMES:  # the common case, without the import
            return False
        return method.strip().lower() in ROSENBROCK_METHODS
    return isinstance(method, RosenbrockTableau)


def _explicit_names():
    from .tableaux import METHODS
    return frozenset(METHODS)


_EXPLICIT_NAMES = _explicit_names()


def run(fun, compiled, system, y0, ts, theta, method, rtol, atol, controller, *,
        first_step=None, max_step=np.inf, max_steps=100_000, dense=False, shape=None):
    """The Rosenbrock loop on inputs that :func:`nodekit.integrate.integrate`
    validated (flat ``y0``, per-component ``rtol``/``atol``); returns
    ``(ys, info, dense)`` in the form of :func:`nodekit.integrate.run`
    (``info`` also has ``njev`` and ``nlu``)."""
    from .integrate import STATUS_MESSAGES, DenseSolution, kernel_fault_message, loop_options
    from .tableaux.rosenbrock import ROSENBROCK_METHODS

    tab = method if not isinstance(method, str) else \
        ROSENBROCK_METHODS[method.strip().lower()]
    n = y0.size
    shape = (n,) if shape is None else shape
    out = np.full((ts.size, n), np.nan)
    fault = np.zeros(n + 2)
    if compiled:
        loop, jac = rosenbrock, fun.jac_cfunc
    else:
        loop, jac = rosenbrock_py, _autograd_jacobian(fun, shape, ts[0], y0, theta)
    has_jac = jac is not None
    jac = _no_jac() if jac is None else jac
    with _interrupt.armed(compiled):
        opt = loop_options(rtol, atol, controller, first_step=first_step,
                           max_step=max_step, max_steps=max_steps, dense=dense)
        res = loop(system, jac, has_jac, theta, y0, ts, loop_tableau(tab), opt, out, fault)
    (status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out, njev, nlu,
     t_grid, h_grid, y_grid, K_grid, _) = res
    info = dict(status=int(status), t_reached=float(t_reached), h_last=float(h_last),
                nfev=int(nfev), nsteps=int(nsteps), naccept=int(naccept),
                nreject=int(nreject), n_out=int(n_out), max_steps=int(max_steps),
                njev=int(njev), nlu=int(nlu), method=tab.name, shape=shape, t=ts)
    if status == FAILED_KERNEL:
        info["fault_state"] = fault[2:].copy()
        info["message"] = kernel_fault_message(system, fault, nsteps, nfev,
                                               jac=(jac, theta))
    else:
        info["message"] = STATUS_MESSAGES[info["status"]].format(
            t=info["t_reached"], h=info["h_last"], **{k: info[k] for k in (
                "nsteps", "nfev", "naccept", "nreject", "max_steps")})
    dense_data = None
    if dense:
        dense_data = DenseSolution(tab, t_grid, h_grid, y_grid, K_grid,
                                   float(ts[0]), float(t_reached), shape)
    return out, info, dense_data
