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
import types
import warnings

import numba as nb
import numpy as np

from . import _kernels
from ._kernels import (FAILED_MAX_STEPS, FAILED_NONFINITE, FAILED_STEP_UNDERFLOW,
                       SUCCESS, all_finite, axpy, combine, copy_into, dense_weights,
                       evaluate, record_values, set_row, stack_record, stage_input)
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
def fd_jacobian(system, t, y, f0, J, ytmp, ftmp):
    """Forward-difference ``J = df/dy`` at ``(t, y)``; returns the evaluations."""
    n = y.size
    copy_into(y, ytmp)
    for j in range(n):
        yj = y[j]
        ytmp[j] = yj + _SQRT_EPS * max(abs(yj), 1e-5)
        delta = ytmp[j] - yj
        evaluate(system, t, ytmp, ftmp)
        for i in range(n):
            J[i, j] = (ftmp[i] - f0[i]) / delta
        ytmp[j] = yj
    return n


@_jit
def fd_time_derivative(system, t, y, f0, dfdt, ftmp, direction):
    """Forward difference ``df/dt`` at ``(t, y)`` (one evaluation)."""
    tt = t + direction * _SQRT_EPS * max(abs(t), 1e-5)
    delta = tt - t
    evaluate(system, tt, y, ftmp)
    for i in range(y.size):
        dfdt[i] = (ftmp[i] - f0[i]) / delta
    return 1


@_inline
def stage_rhs(fk, Cm, k, K, hd, dfdt, out):
    """``out = fk + sum_{j<k} Cm[k, j] K[j] + hd * dfdt``."""
    for i in range(out.size):
        acc = fk[i] + hd * dfdt[i]
        for j in range(k):
            acc += Cm[k, j] * K[j, i]
        out[i] = acc


@_jit
def rosenbrock_stages(system, t, y, h, A, Cm, c, d, K, f0, dfdt, W, piv, tmp, fk):
    """All stages of one step into ``K``; returns the evaluations."""
    s = A.shape[0]
    nfev = 0
    for k in range(s):
        if k == 0:
            copy_into(f0, fk)
        else:
            stage_input(y, h, A, k, K, tmp)
            evaluate(system, t + c[k] * h, tmp, fk)
            nfev += 1
        stage_rhs(fk, Cm, k, K, h * d[k], dfdt, tmp)
        lu_solve(W, piv, tmp)
        set_row(K, k, tmp)
    return nfev


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------
@_jit
def rosenbrock(system, jac, has_jac, theta, y0, ts, A, Cm, M, E, c, d, P, gamma,
               error_order, rtol, atol, n_err, ctrl, first_step, max_step, max_steps,
               dense, out):
    """Integrate ``system`` through every time in ``ts`` with a Rosenbrock method.

    Arguments and results as :func:`nodekit._kernels.integrate` (adaptive,
    without jumps), with the tableau arrays of
    :class:`~nodekit.tableaux.rosenbrock.RosenbrockTableau`, the Jacobian
    ``jac(t, y, theta, J)`` (used when ``has_jac``; otherwise forward
    differences of ``system``) and two more results, the Jacobian evaluations and LU factorisations:
    ``status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out,
    njev, nlu, t_grid, h_grid, y_grid, K_grid, n_dense``.
    """
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

    t_rec = [t0 for _ in range(0)]
    h_rec = [t0 for _ in range(0)]
    y_rec = [t0 for _ in range(0)]
    K_rec = [t0 for _ in range(0)]

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

    evaluate(system, t, y, f0)
    nfev += 1
    if not all_finite(f0):
        return (FAILED_NONFINITE, t, h, nfev, nsteps, naccept, nreject, n_out, njev,
                nlu) + stack_record(t_rec, h_rec, y_rec, K_rec, n, S)
    if first_step > 0.0:
        h_abs = first_step
    else:
        h0, d1 = initial_step_trial(y, f0, span, rtol, atol, n_err)
        axpy(y, direction * h0, f0, tmp)
        evaluate(system, t0 + direction * h0, tmp, fk)
        nfev += 1
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
        if fresh:
            if has_jac:
                jac(t, y, theta, J)
            else:
                nfev += fd_jacobian(system, t, y, f0, J, tmp, fk)
            nfev += fd_time_derivative(system, t, y, f0, dfdt, fk, direction)
            njev += 1
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
            nfev += rosenbrock_stages(system, t, y, h, A, Cm, c, d, K, f0, dfdt, W, piv,
                                      tmp, fk)
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
            t_rec.append(t)
            h_rec.append(h)
            record_values(y_rec, y, K_rec, K)
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
        evaluate(system, t, y, f0)
        nfev += 1
        if not all_finite(f0):
            status = FAILED_NONFINITE
            break
        fresh = True
        h_abs = abs(h) * accept_factor(err, err_prev, exponent, ctrl, rejected)
        err_prev = max(err, 1e-4)
        rejected = False

    return (status, t, h, nfev, nsteps, naccept, nreject, n_out, njev, nlu) + \
        stack_record(t_rec, h_rec, y_rec, K_rec, n, S)


def _python_twins(names):
    """Interpreted versions of the jitted functions ``names`` of this module
    (as :func:`nodekit._kernels._python_twins`): element-wise helpers stay
    compiled, the loop and whatever calls the right-hand side run in Python."""
    g = dict(globals())
    g.update(_kernels._PY)          # the step record's interpreted versions
    for name in names:
        fn = g[name].py_func
        g[name] = types.FunctionType(fn.__code__, g, fn.__name__,
                                     fn.__defaults__, fn.__closure__)
    return {name: g[name] for name in names}


_PY = _python_twins(["rosenbrock", "rosenbrock_stages", "fd_jacobian",
                     "fd_time_derivative"])
rosenbrock_py = _PY["rosenbrock"]


# ---------------------------------------------------------------------------
# The driver behind nk.solve(method='rodas5')
# ---------------------------------------------------------------------------
#: Signature of a compiled Jacobian ``jac(t, y, theta, out)``, ``out`` (n, n).
JAC_SIG = nb.types.void(nb.types.float64, nb.types.float64[::1], nb.types.float64[::1],
                        nb.types.float64[:, ::1])
_JAC_CFUNCS = {}


def jacobian_kernel(ode):
    """The analytic ``df/dy`` kernel of an ``nk.ODE`` (its ``jac``: given to
    ``nk.ODE(rhs, jac=...)``, or generated by ``nk.symbolic``), or ``None``."""
    return getattr(ode, "jac", None)


def _jac_cfunc(jac):
    """The Jacobian kernel of an ``nk.ODE`` as a cached first-class function
    (``None`` without one)."""
    if jac is None:
        return None
    cf = _JAC_CFUNCS.get(jac)
    if cf is None:
        cf = _JAC_CFUNCS[jac] = nb.cfunc(JAC_SIG, cache=True, error_model="numpy")(
            jac.py_func)
    return cf


def _no_jac():
    """A placeholder Jacobian of the right signature (never called)."""
    return _jac_cfunc(_no_jac_kernel)


@nb.njit(cache=True)
def _no_jac_kernel(t, y, theta, out):  # pragma: no cover - compiled
    out[:, :] = np.nan


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
    if isinstance(method, RosenbrockTableau):
        return True
    return isinstance(method, str) and method.strip().lower() in ROSENBROCK_METHODS


def integrate(fun, y0, t, theta=None, *, method="rodas5", rtol=1e-6, atol=1e-9,
              first_step=None, max_step=np.inf, max_steps=None, step_size=None,
              dense=False, controller=None):
    """Validated inputs -> the Rosenbrock loop -> ``(ys, info, dense)``, in the
    form of :func:`nodekit.integrate.integrate` (``info`` also has ``njev`` and
    ``nlu``)."""
    from . import _checks
    from .integrate import (_DEFAULT_CONTROLLER, DEFAULT_MAX_STEPS, STATUS_MESSAGES,
                            DenseSolution, python_rhs)
    from .controllers import PIController
    from .ode import ODE
    from .tableaux.rosenbrock import ROSENBROCK_METHODS

    tab = method if not isinstance(method, str) else \
        ROSENBROCK_METHODS[method.strip().lower()]
    if step_size is not None:
        raise ValueError(f"`step_size` is not supported by the adaptive stiff method "
                         f"{tab.name!r}; leave it out (use `max_step` to bound steps).")
    compiled = isinstance(fun, ODE)
    if not compiled and not callable(fun):
        raise TypeError("`fun` must be a callable fun(t, y, theta) or an nk.ODE; got "
                        f"{type(fun).__name__}.")
    y0 = _checks.check_y0(y0)
    ts = _checks.check_t(t)
    theta = None if theta is None and not compiled else _checks.check_theta(theta, flat=compiled)
    rtol_a = _checks.check_tol(rtol, "rtol", y0.shape)
    atol_a = _checks.check_tol(atol, "atol", y0.shape)
    _checks.check_positive(max_step, "max_step")
    max_steps = DEFAULT_MAX_STEPS if max_steps is None else max_steps
    _checks.check_positive(max_steps, "max_steps", integer=True)
    if first_step is not None:
        _checks.check_positive(first_step, "first_step")
    controller = _DEFAULT_CONTROLLER if controller is None else controller
    if not isinstance(controller, PIController):
        raise TypeError(f"`controller` must be an nk.PIController; got {controller!r}.")

    shape = y0.shape
    y0f = np.ascontiguousarray(y0.ravel())
    n = y0f.size
    from ._kernels import ode_system
    system = ode_system(fun.rhs_cfunc if compiled else python_rhs(fun, shape), theta)
    out = np.full((ts.size, n), np.nan)
    if compiled:
        loop, jac = rosenbrock, _jac_cfunc(jacobian_kernel(fun))
    else:
        loop, jac = rosenbrock_py, _autograd_jacobian(fun, shape, ts[0], y0f, theta)
    has_jac = jac is not None
    jac = _no_jac() if jac is None else jac
    res = loop(system, jac, has_jac, theta, y0f, ts, tab.A, tab.Cm, tab.M, tab.E,
               tab.c_arr, tab.d_arr, tab.P,
               float(tab.gamma), tab.error_order, rtol_a, atol_a, n, controller.array,
               0.0 if first_step is None else float(first_step), float(max_step),
               int(max_steps), bool(dense), out)
    (status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out, njev, nlu,
     t_grid, h_grid, y_grid, K_grid, _) = res
    info = dict(status=int(status), t_reached=float(t_reached), h_last=float(h_last),
                nfev=int(nfev), nsteps=int(nsteps), naccept=int(naccept),
                nreject=int(nreject), n_out=int(n_out), max_steps=int(max_steps),
                njev=int(njev), nlu=int(nlu), method=tab.name, shape=shape, t=ts)
    info["message"] = STATUS_MESSAGES[info["status"]].format(
        t=info["t_reached"], h=info["h_last"], **{k: info[k] for k in (
            "nsteps", "nfev", "naccept", "nreject", "max_steps")})
    dense_data = None
    if dense:
        dense_data = DenseSolution(tab, t_grid, h_grid, y_grid, K_grid,
                                   float(ts[0]), float(t_reached), shape)
    return out, info, dense_data
