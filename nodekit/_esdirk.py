"""The ESDIRK loop for stiff problems (``method='kvaerno5'``, ``'trbdf2'``).

One step of an ESDIRK method (:mod:`nodekit.tableaux.esdirk`) with ``s``
stages: stage 1 is ``K_1 = f(t, y)`` (the previous step's end), and each
later stage solves ``Y_i = base_i + h gamma f(t + c_i h, Y_i)`` with
``base_i = y + h sum_{j<i} a_ij K_j`` by simplified Newton iterations::

    (I / gamma - h J) dY = h f(Y) - (Y - base_i) / gamma,     Y <- Y + dY

(Hairer and Wanner, *Solving ODEs II*, Sec. IV.8), from the guess
``Y = base_i + h gamma K_{i-1}``; then ``K_i = (Y_i - base_i) / (h gamma)``.
The iterations stop when ``theta / (1 - theta) ||dY|| <= tol`` with the
contraction rate ``theta = ||dY_k|| / ||dY_{k-1}||`` (so at least two
iterations, unless ``||dY|| <= NEGLIGIBLE tol`` or ``dY`` is at the rounding
level of ``Y`` (:data:`ROUNDING`): carrying the rate over from the previous
stage, as Hairer and Wanner do to save one, accepted iterates with stale
Jacobians that were far from converged and cost accuracy on Robertson), and
fail when ``theta >= 1`` or when the rate predicts no convergence within
:data:`NEWTON_MAX_ITER` iterations (Hairer and Wanner's test, as in SciPy's
Radau); ``tol = max(10 eps / rtol, min(0.03, sqrt(rtol)))`` in the error
norm (the choice of RADAU5 and SciPy's Radau).

Reuse of the linear algebra: ``J`` is kept across steps and taken afresh
only when the Newton iterations fail with an old ``J`` (the step is retried
with the new one), or after an accepted step whose iterations converged
slowly (more than two iterations at a rate above :data:`SLOW_RATE`, SciPy's
Radau rule).  The factorisation of ``I / gamma - h J`` is redone only when
``h`` or ``J`` changes; when the controller asks to grow the step by a
factor in ``[1, KEEP_H]`` the step size is kept instead, so the factors
stay valid (RADAU5's rule).  A Newton failure with a fresh ``J`` halves the
step.  A method whose estimate is filtered with ``(I - h gamma J)^-1``
(``trbdf2``) also takes ``J`` afresh after an error-test rejection: an old
``J`` (left from a relaxation jump, say) makes the filter too weak and the
steps tiny (Van der Pol, mu = 1000, rtol 1e-3: 7940 steps, 473 with it).

Every output time is a step end: the Hermite cubic (third order, the only
dense output these stages allow: with stage order 2 the order-4 conditions
on the eight slots have rank 5) loses accuracy over the long steps stiff
problems take (2 % on Robertson's ``y2`` at ``t = 4000`` within a step of
``h = 14000``).  ``dense=True`` still records every step, and
``Solution(t)`` interpolates with that cubic.

Everything else is shared with the other loops: the starting step
(:func:`nodekit._kernels.start`), the error norm and the controller
(:mod:`nodekit.controllers`), the LU helpers, the Jacobian and the output
writer of :mod:`nodekit._implicit`, the step record, the status codes and
the result record :class:`~nodekit._implicit.StiffLoopResult`.  The dense
output is the tableau's Hermite cubic in the common ``P`` form.
"""
import math
from typing import NamedTuple

import numpy as np

from . import _implicit, _jitflags, _kernels
from ._implicit import (iteration_matrix, jacobian_y, lu_factor, lu_solve, stiff_result,
                        stiff_workspace, write_outputs)
from ._interrupt import INTERRUPTED, interrupted
from ._kernels import (FAILED_KERNEL, FAILED_MAX_STEPS, FAILED_NONFINITE,
                       FAILED_STEP_UNDERFLOW, SUCCESS, add_into, add_outer_prefix, add_row,
                       all_finite, below_min_step, checked_evaluate, combine, copy_into,
                       new_record, outer_into, propose, record_step, row_is_zero, set_row,
                       stage_input, start)
from .controllers import accept_factor, error_norm, reject_factor, scaled_rms

_jit = _jitflags.jit

_EPS = float(np.finfo(np.float64).eps)
#: Newton iterations allowed per stage before the step is retried.
NEWTON_MAX_ITER = 7
#: After an accepted step whose stages needed more than two iterations at a
#: contraction rate above this, ``J`` is taken afresh.
SLOW_RATE = 1e-3
#: A Newton correction below this fraction of the tolerance has converged
#: whatever the rate (the rate of corrections at rounding level is noise).
NEGLIGIBLE = 0.01
#: A Newton correction no larger than this many machine epsilons of ``|Y|``
#: in every component has converged too: ``Y`` is a fixed point of the
#: iteration in floating point (adding a correction below half an ulp leaves
#: ``Y`` unchanged, the next correction is the same, and its "rate" of 1
#: would be taken for divergence).  With tight tolerances (rtol 1e-10) such
#: corrections lie above ``NEGLIGIBLE tol`` in the error norm, and the
#: stages failed to converge at every step size down to underflow.
ROUNDING = 4.0 * _EPS
#: A proposed step-size factor in ``[1, KEEP_H]`` keeps the step size (and
#: the factorisation).
KEEP_H = 1.2


class ESDIRKLoopTableau(NamedTuple):
    """An ESDIRK tableau as the loop reads it (the arrays of
    :class:`~nodekit.tableaux.esdirk.ESDIRKTableau`), built once per tableau
    by :func:`loop_tableau`."""

    A: np.ndarray        #: (S, S) stage coefficients, diagonal included
    C: np.ndarray        #: (S,) nodes
    B: np.ndarray        #: (S,) solution weights
    E: np.ndarray        #: (S,) error weights
    P: np.ndarray        #: (S, 3) Hermite dense output
    gamma: float
    n_stages: int        #: s; slot s holds f(t + h, y_new)
    error_order: int
    smooth_error: bool   #: filter the estimate with (I - h gamma J)^-1


_LOOP_TABLEAUX = {}


def loop_tableau(tab):
    """The :class:`ESDIRKLoopTableau` of ``tab``, built once."""
    hit = _LOOP_TABLEAUX.get(id(tab))
    if hit is not None and hit[0] is tab:
        return hit[1]
    rec = ESDIRKLoopTableau(tab.A, tab.C, tab.B, tab.E, tab.P, float(tab.gamma),
                            int(tab.n_stages), int(tab.error_order), bool(tab.smooth_error))
    _LOOP_TABLEAUX[id(tab)] = (tab, rec)
    return rec


@_jit
def newton_tolerance(rtol):
    """Newton's stopping tolerance in the error norm for the tolerances ``rtol``."""
    r = rtol.min()
    return max(10.0 * _EPS / r, min(0.03, math.sqrt(r)))


@_jit
def newton_stage(system, t_i, base, h, gamma, W, piv, y, Y, fk, dY, opt, tol, fault):
    """Simplified Newton iterations for ``Y = base + h gamma f(t_i, Y)``
    from the guess in ``Y`` with the factors ``W`` of ``I / gamma - h J``.

    Returns ``(code, iterations, converged, rate)``: a kernel fault code (0
    if none), the evaluations made, whether ``Y`` converged, and the last
    contraction rate.
    """
    nd_prev = 0.0
    rate = 0.0
    for it in range(NEWTON_MAX_ITER):
        code = checked_evaluate(system, t_i, Y, fk, fault)
        if code:
            return code, it + 1, False, rate
        for i in range(Y.size):
            dY[i] = h * fk[i] - (Y[i] - base[i]) / gamma
        lu_solve(W, piv, dY)
        rounding = True  # the correction is at the rounding level of Y
        for i in range(Y.size):
            if abs(dY[i]) > ROUNDING * abs(Y[i]):
                rounding = False
            Y[i] += dY[i]
        nd = scaled_rms(dY, y, opt.rtol, opt.atol, opt.n_err)
        if not math.isfinite(nd):
            return 0, it + 1, False, rate
        if nd <= NEGLIGIBLE * tol or rounding:
            return 0, it + 1, True, rate
        if it > 0:
            rate = nd / nd_prev
            if rate >= 1.0 or rate ** (NEWTON_MAX_ITER - 1 - it) / (1.0 - rate) * nd > tol:
                return 0, it + 1, False, rate
            if rate / (1.0 - rate) * nd <= tol:
                return 0, it + 1, True, rate
        nd_prev = nd
    return 0, NEWTON_MAX_ITER, False, rate


@_jit
def esdirk_stages(system, t, y, h, etab, K, W, piv, base, Y, fk, dY, opt, tol, fault):
    """The implicit stages ``1 .. s-1`` of one step into ``K`` (``K[0] =
    f(t, y)`` is set).

    Returns ``(code, nfev, converged, worst_rate, most_iterations)``; the
    later stages are skipped after a fault or a failed stage.
    """
    gamma = etab.gamma
    hg = h * gamma
    nfev = 0
    worst = 0.0
    most = 0
    for k in range(1, etab.n_stages):
        stage_input(y, h, etab.A, k, K, base)
        for i in range(y.size):
            Y[i] = base[i] + hg * K[k - 1, i]
        code, it, ok, rate = newton_stage(system, t + etab.C[k] * h, base, h, gamma, W, piv,
                                          y, Y, fk, dY, opt, tol, fault)
        nfev += it
        worst = max(worst, rate)
        most = max(most, it)
        if code or not ok:
            return code, nfev, False, worst, most
        for i in range(y.size):
            K[k, i] = (Y[i] - base[i]) / hg
    return 0, nfev, True, worst, most


@_jit
def esdirk_error(h, etab, K, y, ynew, W, piv, est, est_row, one, opt):
    """The scaled norm of the step's error estimate ``h sum_k E_k K_k``,
    filtered with ``(I - h gamma J)^-1`` when the tableau says so (the
    factors ``W`` of ``I / gamma - h J`` give it as ``W^-1 v / gamma``)."""
    if not etab.smooth_error:
        return error_norm(h, etab.E, etab.E, False, K, y, ynew, opt.rtol, opt.atol,
                          opt.n_err)
    for i in range(y.size):
        acc = 0.0
        for k in range(etab.E.size):
            acc += etab.E[k] * K[k, i]
        est[i] = acc
    lu_solve(W, piv, est)
    set_row(est_row, 0, est)
    return error_norm(h / etab.gamma, one, one, False, est_row, y, ynew, opt.rtol,
                      opt.atol, opt.n_err)


@_jit
def esdirk(system, jac, plan, theta, y0, ts, etab, opt, out, fault):
    """Integrate ``system`` through every time in ``ts`` with an ESDIRK method.

    Arguments as :func:`nodekit._implicit.rosenbrock`, with the
    :class:`ESDIRKLoopTableau` ``etab``; returns a
    :class:`~nodekit._implicit.StiffLoopResult`.  With ``opt.jumps`` the
    system's jump is applied at every output time (each is a step end);
    ``f`` and ``J`` are then taken afresh at the new state.
    """
    n = y0.size
    m = ts.size
    S = etab.A.shape[0]
    s = etab.n_stages
    K, J, W, piv, y, ynew, tmp, fk, f0, w = stiff_workspace(y0, S)
    base = np.empty(n)
    Y = np.empty(n)
    dY = np.empty(n)
    est_row = np.empty((1, n))
    one = np.ones(1)
    t0 = ts[0]
    t_end = ts[m - 1]
    direction = 1.0 if t_end >= t0 else -1.0
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
    status, nfev, h_abs = start(system, t0, direction, abs(t_end - t0), y, K, f0, tmp,
                                ynew, etab, opt, fault)
    if status != SUCCESS:
        return stiff_result(status, t, h, (nfev, nsteps, naccept, nreject, n_out, njev, nlu),
                            rec, n, S)

    exponent = -1.0 / (etab.error_order + 1.0)
    err_prev = 1.0
    rejected = False
    need_jac = True        # take J at (t, y) before the next attempt
    jac_current = False    # J was taken at (t, y)
    h_lu = 0.0             # the step size W was factorised for (0: none)
    rate = 0.0
    iters = 0
    tol = newton_tolerance(opt.rtol)

    while direction * (t_end - t) > 0.0:
        if nsteps >= opt.max_steps:
            status = FAILED_MAX_STEPS
            break
        if interrupted():
            status = INTERRUPTED
            break
        if need_jac:
            code, evals = jacobian_y(system, jac, plan, theta, t, y, f0, J, tmp, fk,
                                     fault)
            nfev += evals
            njev += 1
            if code:
                status = FAILED_KERNEL
                break
            need_jac = False
            jac_current = True
            h_lu = 0.0
        t_stop = ts[n_out]
        t_new, h_abs = propose(t, t0, h_abs, t_stop, direction, 0, opt)
        h_proposed = h_abs
        h = t_new - t

        singular = False
        if h != h_lu:
            iteration_matrix(J, h, etab.gamma, W)
            nlu += 1
            h_lu = h
            singular = not lu_factor(W, piv)
        nsteps += 1
        converged = False
        if not singular:
            set_row(K, 0, f0)
            code, evals, converged, rate, iters = esdirk_stages(
                system, t, y, h, etab, K, W, piv, base, Y, fk, dY, opt, tol, fault)
            nfev += evals
            if code:
                status = FAILED_KERNEL
                break
        if not converged:
            # Newton failed: retry with a fresh J, or with half the step
            nreject += 1
            rejected = True
            if singular:
                h_lu = 0.0
            if not jac_current:
                need_jac = True
            else:
                h_abs = abs(h) * 0.5
                if below_min_step(h_abs, t, direction):
                    status = FAILED_STEP_UNDERFLOW
                    break
            continue

        combine(y, h, etab.B, K, ynew)
        err = esdirk_error(h, etab, K, y, ynew, W, piv, tmp, est_row, one, opt)
        if not err < 1.0:
            nreject += 1
            h_abs = abs(h) * reject_factor(err, exponent, opt.ctrl)
            rejected = True
            if etab.smooth_error and not jac_current:
                need_jac = True    # the filtered estimate needs a current J
            if below_min_step(h_abs, t, direction):
                status = FAILED_NONFINITE if not math.isfinite(err) \
                    else FAILED_STEP_UNDERFLOW
                break
            continue

        # accepted: f at the new point is the next step's first stage
        nfev += 1
        if checked_evaluate(system, t_new, ynew, fk, fault):
            status = FAILED_KERNEL
            break
        if not all_finite(fk):
            status = FAILED_NONFINITE
            break
        set_row(K, s, fk)
        naccept += 1
        if opt.dense:
            record_step(rec, t, h, y, K)
        n_out, jumped = write_outputs(system, ts, n_out, direction, t, y, h, t_new, ynew,
                                      etab.P, K, w, tmp, out, opt.jumps)
        t = t_new
        copy_into(ynew, y)
        jac_current = False
        if jumped:
            # the state changed: f (the next first stage) and J are new
            nfev += 1
            if checked_evaluate(system, t, y, f0, fault):
                status = FAILED_KERNEL
                break
            need_jac = True
        else:
            copy_into(fk, f0)
        if iters > 2 and rate > SLOW_RATE:
            need_jac = True
        factor = accept_factor(err, err_prev, exponent, opt.ctrl, rejected)
        h_abs = abs(h) * factor
        if not need_jac and 1.0 <= factor <= KEEP_H:
            h_abs = abs(h)
        if t_new == t_stop and h_abs < h_proposed:
            h_abs = h_proposed  # a step cut short by an output time says nothing
        err_prev = max(err, 1e-4)
        rejected = False

    return stiff_result(status, t, h, (nfev, nsteps, naccept, nreject, n_out, njev, nlu),
                        rec, n, S)


_PY = _kernels.python_twins(globals(), ["esdirk", "esdirk_stages", "newton_stage"],
                            {**_kernels._PY, **_implicit._PY})
esdirk_py = _PY["esdirk"]


# ---------------------------------------------------------------------------
# The discrete adjoint: reverse mode through the recorded ESDIRK steps
# ---------------------------------------------------------------------------
@_jit
def reverse_esdirk(vjp, theta, ts, g, A, C, B, t_grid, h_grid, y_grid, K_grid, count,
                  ybar, thbar):
    """The exact derivative of a recorded ESDIRK solve (step sizes held fixed).

    Each accepted step ``y_new = y + h sum_i b_i K_i`` has the stages ``K_i =
    f(t + c_i h, Y_i)``, ``Y_i = y + h sum_{j<i} a_ij K_j + h a_ii K_i``.  The
    implicit-function theorem gives ``(I - h a_ii J_i) dK_i = J_i (dy + h
    sum_{j<i} a_ij dK_j) + df/dtheta dtheta`` with ``J_i = df/dy(Y_i)``, so the
    reverse sweep solves ``(I - h a_ii J_i)^T u = Kbar_i`` and passes ``u`` to
    one VJP; ``J_i`` is formed exactly from ``n`` VJPs at the unit vectors.
    The recorded ``K_i = (Y_i - base_i) / (h a_ii)`` reproduce the converged
    Newton iterates exactly, so the result is the derivative of the exact
    stage solution at them (the stages Newton would reach with no iteration
    error), not of the truncated iteration.  Every output time is a step end
    (the loop stops there), so the outputs are the steps' ``y_new``.

    Arguments as :func:`nodekit._kernels.reverse_steps` (the explicit
    methods' sweep), without the dense output: ``vjp(t, y, theta, a, out_y,
    out_theta)`` returns a fault code; ``A, C, B`` are the ESDIRK tableau's
    arrays; ``ybar`` and ``thbar`` receive ``dL/dy0`` and ``dL/dtheta``.

    Returns
    -------
    nvjp : int
        VJP evaluations, or ``FAILED_KERNEL`` when the ``vjp`` raised,
        ``FAILED_NONFINITE`` when a stage matrix ``I - h a_ii J_i`` is
        singular, ``INTERRUPTED`` on Ctrl-C.
    """
    m = ts.size
    n = ybar.size
    S = A.shape[0]
    Kbar = np.zeros((S, n))
    Y = np.empty(n)
    u = np.empty(n)
    unit = np.zeros(n)
    ay = np.empty(n)
    ath = np.empty(thbar.size)
    J = np.empty((n, n))
    M = np.empty((n, n))
    piv = np.zeros(n, dtype=np.int64)
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
        K = K_grid[k]
        while j >= 1 and direction * (ts[j] - t) > 0.0:   # outputs are step ends
            add_row(ybar, g, j)
            j -= 1
        outer_into(Kbar, h, B, ybar)
        for s in range(S - 1, -1, -1):
            if row_is_zero(Kbar, s):
                continue
            ti = t + C[s] * h
            stage_input(y_grid[k], h, A, s, K, Y)
            for i in range(n):
                Y[i] += h * A[s, s] * K[s, i]
                u[i] = Kbar[s, i]
            if A[s, s] != 0.0:
                for r in range(n):           # J[r] = e_r^T J, one VJP each
                    unit[r] = 1.0
                    code = vjp(ti, Y, theta, unit, ay, ath)
                    unit[r] = 0.0
                    if code:
                        return FAILED_KERNEL
                    set_row(J, r, ay)
                nvjp += n
                for r in range(n):           # M = (I - h a_ss J)^T
                    for q in range(n):
                        M[r, q] = (1.0 if r == q else 0.0) - h * A[s, s] * J[q, r]
                if not lu_factor(M, piv):
                    return FAILED_NONFINITE
                lu_solve(M, piv, u)
            if vjp(ti, Y, theta, u, ay, ath):
                return FAILED_KERNEL
            nvjp += 1
            add_into(ybar, ay)
            add_into(thbar, ath)
            add_outer_prefix(Kbar, h, A, s, ay)
    add_row(ybar, g, 0)
    return nvjp


reverse_esdirk_py = _kernels.python_twins(globals(), ["reverse_esdirk"],
                                          {**_kernels._PY, **_implicit._PY})["reverse_esdirk"]
