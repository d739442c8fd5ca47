"""Backward passes: gradients of a loss through a recorded forward solve.

Three ways, chosen by ``gradient=`` in :func:`nodekit.odeint`:

``"adjoint"``
    The continuous adjoint of Chen et al. (2018): the augmented system
    ``[y, a, g_theta]`` is integrated backwards from ``t[-1]`` to ``t[0]`` by
    the same integration loop as the forward pass, stopping at every output
    time, where ``dL/dy(t_j)`` is added to ``a`` and ``y`` is re-seeded from
    the stored forward output.  Memory O(len(t)) whatever the number of
    steps.  The step size is carried across output times.  Backwards
    integration of ``y`` can drift from the forward trajectory on dissipative
    or chaotic problems; the drift at every output time is reported.
``"interpolated"``
    The forward pass keeps its dense solution; the backward pass integrates
    only ``[a, g_theta]``, reading ``y(t)`` from the interpolant: no drift,
    memory O(steps).
``"discrete"``
    The exact derivative of the forward computation (reverse mode through
    the recorded Runge-Kutta steps, step sizes held fixed): the paper's
    RK-Net.  Memory O(steps x stages).

Gradients with respect to the times use the exact identities
``dL/dt_j = dL/dy(t_j) . f(t_j, y_j)`` for ``j >= 1`` and ``dL/dt_0 =
-a(t_0^+) . f(t_0, y_0)``, where ``a(t_0^+)`` is ``dL/dy0`` without the
direct term ``dL/dy(t_0)``: moving the initial time moves the whole flow.
(They make the ``a . df/dt`` quadrature of the paper's augmented system
unnecessary: ``d(a . f)/dt = a . df/dt`` along the adjoint.)  In
``"discrete"`` mode they are the continuous-time derivatives, not those of the
discrete computation.
"""
import warnings
from typing import NamedTuple

import numba as nb
import numpy as np
from autograd import make_vjp
from autograd.tracer import isbox

from . import _checkpoint, _implicit, _interrupt, _jitflags, _kernels
from ._errors import GradientError
from ._warnings import AdjointDriftWarning, UntracedFunctionWarning
from .integrate import integrate, loop_tableau, python_rhs, run

#: The continuous adjoint warns (:class:`nodekit.AdjointDriftWarning`) when the
#: drift of its backwards-integrated ``y`` exceeds this many times the backward
#: tolerance ``max(adjoint_rtol, adjoint_atol)``.
DRIFT_FACTOR = 1000.0


def python_vjp(fun, shape, theta):
    """``vjp(t, y, theta, a, out_y, out_theta)`` for a Python ``fun``, by autograd.

    One trace of ``fun`` per call gives ``a^T df/dy`` and ``a^T df/dtheta``
    together.  ``y`` and ``theta`` arrive flat; ``fun`` sees them in their
    user shapes (``theta`` may be ``None``).
    """
    n = int(np.prod(shape))
    theta_shape = None if theta is None else np.shape(theta)

    untraced = []  # warn once per backward pass

    def f_flat(z, t):
        y = z[:n].reshape(shape)
        th = None if theta_shape is None else z[n:].reshape(theta_shape)
        f = fun(t, y, th)
        if not isbox(f) and not untraced:
            untraced.append(True)
            warnings.warn(UntracedFunctionWarning(
                "nk.odeint: the Python `fun` returned values that autograd cannot follow "
                "back to `y` and `theta`, so every derivative through it reads as zero. "
                "Write `fun` with `autograd.numpy` (`import autograd.numpy as anp`; "
                "`anp.array`, `anp.stack`, `anp.exp`, ...) instead of plain NumPy "
                "(`np.array([...])` drops the trace), or pass an nk.ODE with a `vjp` "
                "kernel."), stacklevel=2)
        return f

    def vjp(t, y, th, a, out_y, out_theta):
        z = y if th is None else np.concatenate([y, np.ravel(th)])
        back, f = make_vjp(f_flat)(z, t)
        gz = back(a.reshape(np.shape(f)))
        out_y[:] = gz[:n]
        out_theta[:] = gz[n:]
        return 0.0

    return vjp


def _rhs_at_outputs(record):
    """``f(t_j, y_j)`` at every output, shape ``(m, n)``, for the time gradients."""
    if record.compiled:
        F = np.empty_like(record.ys)
        args = (record.fun.rhs_cfunc, record.ts, record.ys, record.theta_flat, F)
        if _kernels.rhs_at_points(*args):
            from .integrate import replay_fault_message
            raise GradientError("nk.odeint: " + replay_fault_message(
                _kernels.rhs_at_points_py, args, "the time gradients at the outputs"))
        return F
    return np.stack([np.ravel(record.fun(t, y.reshape(record.shape), record.theta))
                     for t, y in zip(record.ts, record.ys)])


def _vjp_kernel(record):
    if record.compiled:
        if record.fun.vjp is None:
            raise TypeError(
                f"Cannot differentiate through {record.fun!r}: it has no `vjp` kernel. "
                "Pass nk.ODE(rhs, vjp) with a Numba-jitted vjp(t, y, theta, a, out_y, "
                "out_theta) -> a.df/dt, or build the ODE with nk.symbolic, which "
                "derives the VJP exactly.")
        return record.fun.vjp_cfunc
    return python_vjp(record.fun, record.shape, record.theta)


class Problem:
    """What every backward pass reads: the forward record, the cotangent and the
    kernels, prepared once by :func:`backward`."""

    def __init__(self, record, g, need_theta):
        self.record = record
        self.g = g
        self.n = g.shape[1]
        self.p = record.theta_flat.size
        self.need_theta = need_theta
        self.vjp = _vjp_kernel(record)
        # compiled kernels take the flat vector, Python functions the user's theta
        self.theta = record.theta_flat if record.compiled else record.theta


class _Strategy:
    """One gradient mode: what its forward pass keeps, how its backward pass runs."""

    name = None          #: the value of ``gradient=`` that selects it
    keeps_dense = False  #: the forward pass records every step (when traced)

    def backward_atol(self, atol):
        """The backward pass's absolute tolerance, from the given or forward
        one; 0 (a forward ``atol=0``, a pure relative test) is refused where
        the backward solve needs an absolute tolerance."""
        if atol == 0.0:
            raise ValueError(
                f"`atol`=0 is a pure relative test, which the backward pass of gradient="
                f"{self.name!r} cannot use (its parameter gradients start at 0): pass "
                "`adjoint_atol` (e.g. 1e-3 * rtol), or use gradient='discrete'.")
        return atol

    def forward(self, fun, y0, t, theta, opts, traced):
        """The forward solve with the :class:`~nodekit.options.Options` ``opts``:
        ``(ys, info, record)`` as from :func:`nodekit.integrate.integrate`;
        ``traced``: a gradient can follow."""
        return integrate(fun, y0, t, theta,
                         opts._replace(dense=traced and self.keeps_dense))


class Discrete(_Strategy):
    """``gradient="discrete"``: reverse mode through the recorded steps, with
    checkpoints (:mod:`nodekit._checkpoint`) when the solve is long."""

    name = "discrete"
    keeps_dense = True

    def backward_atol(self, atol):
        return atol or 1.0  # no backward solve: unused

    def forward(self, fun, y0, t, theta, opts, traced):
        if not (traced and opts.checkpoints) or _implicit.is_stiff(opts.method):
            return super().forward(fun, y0, t, theta, opts, traced)
        return _checkpoint.solve(fun, y0, t, theta, opts)

    def gradients(self, pb, stats):
        """``(dL/dy0, dL/dtheta)`` of the problem ``pb``; fills ``stats``."""
        d = pb.record.dense
        if not isinstance(d, _checkpoint.Tape) and _implicit.is_stiff(d.tableau):
            return _stiff_reverse(pb, d, stats)
        reverse = _checked_reverse(pb.record.compiled)
        if isinstance(d, _checkpoint.Tape):
            gy0, gth, nvjp, nsteps = _checkpoint.reverse(
                d, reverse, pb.vjp, pb.theta, pb.record.ts, pb.g, d.last.tableau, pb.p)
            stats.update(nfev_backward=nvjp, nsteps_backward=nsteps,
                         checkpoints=len(d.checkpoints))
            return gy0, gth
        gy0 = np.empty(pb.n)
        gth = np.empty(pb.p)
        nvjp = reverse(pb.vjp, pb.theta, pb.record.ts, pb.g, d.tableau.A, d.tableau.C,
                       d.tableau.B, d.tableau.P, d.t_grid, d.h_grid, d.y_grid, d.K_grid,
                       d.t_grid.size, gy0, gth)
        stats.update(nfev_backward=int(nvjp), nsteps_backward=int(d.t_grid.size))
        return gy0, gth


def _stiff_reverse(pb, d, stats):
    """``(dL/dy0, dL/dtheta)`` through a recorded ESDIRK solve
    (:func:`nodekit._esdirk.reverse_esdirk`, compiled for an ``nk.ODE``)."""
    from ._esdirk import reverse_esdirk, reverse_esdirk_py
    tab = d.tableau
    gy0 = np.empty(pb.n)
    gth = np.empty(pb.p)
    reverse = _checked_reverse(pb.record.compiled, (reverse_esdirk, reverse_esdirk_py))
    nvjp = reverse(pb.vjp, pb.theta, pb.record.ts, pb.g, tab.A, tab.C, tab.B, d.t_grid,
                   d.h_grid, d.y_grid, d.K_grid, d.t_grid.size, gy0, gth)
    stats.update(nfev_backward=int(nvjp), nsteps_backward=int(d.t_grid.size))
    return gy0, gth


def _checked_reverse(compiled, sweeps=None):
    """The discrete reverse sweep (compiled or interpreted), raising
    :class:`GradientError` when a kernel inside it failed (negative count).
    ``sweeps``: the (compiled, interpreted) pair, by default the explicit
    methods' :func:`nodekit._kernels.reverse_steps`."""
    fast, slow = sweeps or (_kernels.reverse_steps, _kernels.reverse_steps_py)
    sweep = fast if compiled else slow

    def reverse(*args):
        with _interrupt.armed(compiled):
            nvjp = sweep(*args)
        if nvjp == _kernels.FAILED_NONFINITE:
            raise GradientError(
                "nk.odeint: the discrete backward pass met a singular stage matrix "
                "I - h*gamma*J of the recorded solve. Tighten rtol (smaller steps) or use "
                "gradient='interpolated'.")
        if nvjp < 0:
            from .integrate import replay_fault_message
            raise GradientError("nk.odeint: " + replay_fault_message(
                slow, args, "the discrete backward pass"))
        return nvjp

    return reverse


@_jitflags.jit
def backward_stops(g):
    """The output rows a continuous backward pass stops at, last first,
    ending at row 0: those the loss reads (a row of the cotangent ``g`` that
    is not all zero) and the initial time.  Empty when the loss reads no row
    after the first: there is nothing to integrate backwards."""
    m, n = g.shape
    read = np.zeros(m, dtype=np.bool_)
    count = 1
    for j in range(1, m):
        for i in range(n):
            if g[j, i] != 0.0:
                read[j] = True
                count += 1
                break
    if count == 1:
        return np.empty(0, dtype=np.int64)
    keep = np.empty(count, dtype=np.int64)
    k = 0
    for j in range(m - 1, 0, -1):
        if read[j]:
            keep[k] = j
            k += 1
    keep[k] = 0
    return keep


@_jitflags.jit
def adjoint_atol(rtol, atol, g, offset, n):
    """The absolute tolerances of a backward solve: ``atol`` with, on the
    ``n`` adjoint components from ``offset``, at least ``rtol`` times the
    largest cotangent ``max |g|``.

    The adjoint ``a`` is of the size of the cotangents it accumulates, not of
    ``y``, and its components change sign along an oscillating solution: with
    the forward ``atol`` (sized for ``y``) a component passing through zero
    would be held to ``atol`` absolutely, a relative accuracy far beyond
    ``rtol`` for the vector ``a``, and the backward steps would shrink for
    nothing.  Measured relative to the size of ``a`` the accuracy asked for is
    unchanged.
    """
    out = atol.copy()
    scale = 0.0
    for j in range(g.shape[0]):
        for i in range(g.shape[1]):
            scale = max(scale, abs(g[j, i]))
    for i in range(offset, offset + n):
        out[i] = max(out[i], rtol[i] * scale)
    return out


@_jitflags.jit
def time_gradients(g, F, gy0, gt):
    """``gt[j] = dL/dt_j`` from the cotangent ``g`` (m, n), ``F[j] = f(t_j,
    y_j)`` and ``gy0 = dL/dy0``: ``g_j . F_j`` for ``j >= 1`` and ``-(gy0 -
    g_0) . F_0`` (see the module's description)."""
    m, n = g.shape
    for j in range(m):
        acc = 0.0
        for i in range(n):
            acc += g[j, i] * F[j, i]
        gt[j] = acc
    acc = 0.0
    for i in range(n):
        acc -= (gy0[i] - g[0, i]) * F[0, i]
    gt[0] = acc


class BacksolveOptions(NamedTuple):
    """The backward solve of ``gradient="adjoint"`` as :func:`backsolve` runs
    it: what :class:`Backsolve` would hand the loop, from the options of
    :func:`nodekit.primitive.backward_options` (built by
    :func:`backsolve_options`)."""

    tab: _kernels.LoopTableau
    rtol: np.ndarray      #: (2n + q,) the backward tolerances (q = p with the quadrature)
    atol: np.ndarray
    n_err: int            #: ``2n`` with ``seminorm``, else every component
    ctrl: np.ndarray      #: the controller's parameters
    max_step: float
    max_steps: int        #: the stops at the output times read come on top
    fixed_step: float     #: 0.0: adaptive
    quadrature: bool      #: integrate ``g_theta`` too (``dL/dtheta`` is wanted)


def backsolve_options(adj, n, p, quadrature=True):
    """The :class:`BacksolveOptions` of the backward options ``adj`` (a dict
    from :func:`nodekit.primitive.backward_options`, explicit tableau) for a
    state of ``n`` and ``p`` parameters."""
    size = 2 * n + (p if quadrature else 0)
    return BacksolveOptions(loop_tableau(adj["tableau"]), np.full(size, adj["rtol"]),
                            np.full(size, adj["atol"]), 2 * n if adj["seminorm"] else size,
                            adj["controller"].array, float(adj["max_step"]),
                            int(adj["max_steps"]), float(adj["step_size"] or 0.0),
                            bool(quadrature))


class BacksolveResult(NamedTuple):
    """What :func:`backsolve` returns: the backward loop's status and counts."""

    status: int
    t_reached: float
    h_last: float
    nfev: int
    nsteps: int
    naccept: int
    nreject: int
    t_stiff: float        #: where the stiffness test fired, else NaN
    stops: int            #: the output times the backward pass stopped at


@_jitflags.jit
def backsolve(rhs, vjp, theta, t, ys, g, first_step, back, gy0, gth, drift, fault):
    """The continuous adjoint of one forward solve, in one compiled call.

    ``[y, a, g_theta]`` (``[y, a]`` without ``back.quadrature``) is
    integrated backwards from the last output time the loss reads
    (:func:`backward_stops`) to ``t[0]`` by the integration loop, which
    stops at every output time read, re-seeds ``y`` from ``ys`` there and
    adds the cotangent ``g`` to ``a`` (:class:`nodekit._kernels.AdjointSystem`).

    Parameters
    ----------
    rhs, vjp : first-class functions
        The compiled kernels (an :class:`nodekit.ODE`'s ``rhs_cfunc`` and ``vjp_cfunc``).
    theta : ndarray, shape (p,)
    t : ndarray, shape (m,)
        The forward output times.
    ys : ndarray, shape (m, n)
        The forward solution at ``t``.
    g : ndarray, shape (m, n)
        ``dL/dy(t_j)``.
    first_step : float
        The backward solve's first step (the forward pass's mean accepted step).
    back : BacksolveOptions
    gy0, gth : ndarray, shape (n,) and (p,)
        Receive ``dL/dy0`` and ``dL/dtheta`` (zeros without the quadrature).
    drift : ndarray, shape (m,)
        Receives the relative drift of the backwards-integrated ``y`` at
        every stop, NaN at the output times the pass did not stop at.
    fault : ndarray, shape (2n + q + 2,)
        With status ``FAILED_KERNEL``: ``[code, t, state...]`` of the kernel
        call that raised.

    Returns
    -------
    BacksolveResult
    """
    n = ys.shape[1]
    p = theta.size
    q = p if back.quadrature else 0
    drift[:] = np.nan
    gth[:] = 0.0
    keep = backward_stops(g)
    if keep.size == 0:
        _kernels.copy_into(g[0], gy0)
        return BacksolveResult(0, t[0], 0.0, 0, 0, 0, 0, np.nan, 0)
    W1 = np.empty((keep.size, n))
    W2 = np.empty((keep.size, n))
    ts_b = np.empty(keep.size)
    for k in range(keep.size):
        ts_b[k] = t[keep[k]]
        _kernels.set_row(W1, k, ys[keep[k]])
        _kernels.set_row(W2, k, g[keep[k]])
    # (copy_into, not slice assignments: Numba compiles the shape-mismatch
    # error of each slice assignment, seconds on a first run)
    z0 = np.zeros(2 * n + q)
    _kernels.copy_into(W1[0], z0[:n])
    _kernels.copy_into(W2[0], z0[n:2 * n])
    system = _kernels.AdjointSystem(rhs, vjp, theta, n, p, back.quadrature,
                                    np.zeros(keep.size), W1, W2, np.empty(p))
    # max_steps counts the steps the error control chooses; the stops at the
    # output times read come on top (each can cut one step short).  The first
    # step is the forward pass's mean accepted step: no trial evaluation, and
    # a start the error control has already seen work
    atol = adjoint_atol(back.rtol, back.atol, W2, n, n)
    opt = _kernels.LoopOptions(back.rtol, atol, back.n_err, back.ctrl, first_step,
                               back.max_step, back.max_steps + keep.size, back.fixed_step,
                               False, True)
    out = np.full((keep.size, 2 * n + q), np.nan)
    res = _kernels.integrate(system, z0, ts_b, back.tab, opt, out, fault)
    last = keep.size - 1
    _kernels.copy_into(out[last, n:2 * n], gy0)
    if back.quadrature:
        _kernels.copy_into(out[last, 2 * n:], gth)
    for k in range(keep.size):
        drift[keep[k]] = system.drift[k]
    return BacksolveResult(res.status, res.t_reached, res.h_last, res.nfev, res.nsteps,
                           res.naccept, res.nreject, res.t_stiff, keep.size)


_BACKSOLVE_ENTRY = []


def run_backsolve(args):
    """:func:`backsolve` on ``args``, through its compiled entry point.

    Numba's dispatcher infers the type of every argument on every call
    (about 90 us for the first-class functions and the options record); the
    entry point, compiled once for the first call's types, skips that.  The
    callers pass float64 C-contiguous arrays, the kernels of an
    :class:`nodekit.ODE` and a :class:`BacksolveOptions` (the entry point
    unboxes without checking).  Ctrl-C stops the solve and raises
    ``KeyboardInterrupt`` here.
    """
    if not _BACKSOLVE_ENTRY:
        sig = tuple(nb.typeof(a) for a in args)
        backsolve.compile(sig)
        _BACKSOLVE_ENTRY.append(backsolve.overloads[sig].entry_point)
    _interrupt.arm()
    try:
        return _BACKSOLVE_ENTRY[0](*args)
    finally:
        _interrupt.disarm()


class _Continuous(_Strategy):
    """A backward solve of an augmented system by the integration loop.

    It stops only at the output times the loss reads (nonzero cotangent) and
    starts from the last of them: outputs nobody differentiates cost nothing.
    Subclasses say which system is solved (:meth:`system`) and what its final
    state means (:meth:`finish`).
    """

    def gradients(self, pb, stats):
        """``(dL/dy0, dL/dtheta)`` of the problem ``pb``; fills ``stats``."""
        g, p = pb.g, pb.p
        keep = backward_stops(g)
        if keep.size == 0:
            stats.update(nfev_backward=0, nsteps_backward=0, naccept_backward=0,
                         nreject_backward=0)
            self.no_solve(pb, stats)
            return g[0].copy(), np.zeros(p)
        ts_b = np.ascontiguousarray(pb.record.ts[keep])
        W2 = np.ascontiguousarray(g[keep])
        opts = pb.record.adjoint_options
        system, z0, n_err = self.system(pb, keep, W2, opts["seminorm"])
        rtol = np.full(z0.size, float(opts["rtol"]))
        atol = np.full(z0.size, float(opts["atol"]))
        if not opts["stiff"]:
            # (the stiff loop keeps the forward atol: measured, the scaled one
            # stalled rodas4/kvaerno5 backward solves of a decay problem)
            atol = adjoint_atol(rtol, atol, W2, self.adjoint_offset(pb), pb.n)
        # max_steps counts the steps the error control chooses; the stops at
        # the output times read come on top (each can cut one step short).
        # The first step is the forward pass's mean accepted step: no trial
        # evaluation, and a start the error control has already seen work
        max_steps = opts["max_steps"] + keep.size
        tab = opts["tableau"]
        args = (pb.record.compiled, system, z0, ts_b, tab, rtol, atol, opts["controller"])
        common = dict(max_steps=max_steps, max_step=opts["max_step"], n_err=n_err,
                      jumps=True, first_step=pb.record.mean_step)
        if opts["stiff"]:
            # a stiff backward pass: the adjoint is as stiff as the forward problem
            out, info, _ = _implicit.run_system(*args, plan=self.jacobian_plan(pb), **common)
        else:
            out, info, _ = run(*args, step_size=opts["step_size"], **common)
        if info["status"] != 0:
            raise GradientError(self._advice(info, keep.size))
        stats.update(nfev_backward=info["nfev"], nsteps_backward=info["nsteps"],
                     naccept_backward=info["naccept"], nreject_backward=info["nreject"])
        return self.finish(pb, system, out[-1], keep, stats)

    def _advice(self, info, stops):
        if info["status"] not in (_kernels.FAILED_MAX_STEPS, _kernels.FAILED_NONFINITE,
                                  _kernels.FAILED_STEP_UNDERFLOW):
            # e.g. a kernel that raised: its own message says what happened
            return f"The backward ({self.name}) solve failed: {info['message']}"
        if info["status"] == _kernels.FAILED_MAX_STEPS:
            return (f"The backward ({self.name}) solve failed: it reached max_steps="
                    f"{info['max_steps']} (the `max_steps` of nk.odeint plus one step for "
                    f"each of the {stops} output times it stops at) at t="
                    f"{info['t_reached']:.6g}. Increase `max_steps`; with many output "
                    "times, differentiate fewer of them or use gradient='discrete' "
                    "(no stops).")
        return (f"The backward ({self.name}) solve failed: {info['message']} Try a "
                "tighter forward tolerance, gradient='interpolated' (no backwards "
                "integration of y) or 'discrete', or seminorm=True.")

    def no_solve(self, pb, stats):
        """Fill ``stats`` when no backward solve was needed."""

    def adjoint_offset(self, pb):
        """Where the adjoint ``a`` starts in the state of :meth:`system`."""
        return pb.n


class Backsolve(_Continuous):
    """``gradient="adjoint"``: the continuous adjoint on ``[y, a, g_theta]``,
    ``y`` integrated backwards and re-seeded at every stop; warns when it
    drifted (:data:`DRIFT_FACTOR`)."""

    name = "adjoint"
    keeps_dense = False
    #: an ``nk.ODE`` with an explicit backward method runs :func:`backsolve`
    #: (one compiled call); False sends every case through the loop's driver
    compiled_path = True

    def gradients(self, pb, stats):
        """``(dL/dy0, dL/dtheta)`` of the problem ``pb``; fills ``stats``."""
        rec = pb.record
        if not (self.compiled_path and rec.compiled and not rec.adjoint_options["stiff"]):
            return super().gradients(pb, stats)
        back = backsolve_options(rec.adjoint_options, pb.n, pb.p, pb.need_theta)
        gy0 = np.empty(pb.n)
        gth = np.empty(pb.p)
        drift = np.empty(rec.ts.size)
        fault = np.zeros(back.rtol.size + 2)
        args = (rec.fun.rhs_cfunc, pb.vjp, pb.theta, np.ascontiguousarray(rec.ts),
                np.ascontiguousarray(rec.ys), pb.g, float(rec.mean_step), back, gy0, gth,
                drift, fault)
        res = run_backsolve(args)
        message = _stiffness_note(res, rec.adjoint_options["tableau"].name)
        if res.status != 0:
            raise GradientError(self._advice(dict(
                status=res.status, t_reached=res.t_reached, max_steps=back.max_steps
                + res.stops, message=_failure_message(pb, res, back, fault) + message),
                res.stops))
        stats.update(nfev_backward=res.nfev, nsteps_backward=res.nsteps,
                     naccept_backward=res.naccept, nreject_backward=res.nreject,
                     drift=drift)
        _warn_drift(rec, drift)
        return gy0, gth

    def jacobian_plan(self, pb):
        """The stiff backward pass's Jacobian of ``[x, a, g]``: the ``x``
        columns (second derivatives of ``f``) by forward differences, the
        ``a`` columns exactly (the system is linear in ``a``: ``n`` VJPs), the
        ``g`` columns zero."""
        return _implicit.jacobian_plan(False, pb.n, pb.n)

    def system(self, pb, keep, W2, seminorm):
        rec = pb.record
        W1 = np.ascontiguousarray(rec.ys[keep])
        rhs = rec.fun.rhs_cfunc if rec.compiled else python_rhs(rec.fun, rec.shape)
        system = _kernels.adjoint_system(rhs, pb.vjp, pb.theta, pb.n, pb.p, W1, W2,
                                         pb.need_theta)
        z0 = np.concatenate([W1[0], W2[0], np.zeros(pb.p if pb.need_theta else 0)])
        return system, z0, 2 * pb.n if seminorm else z0.size

    def no_solve(self, pb, stats):
        stats["drift"] = np.full(pb.record.ts.size, np.nan)

    def finish(self, pb, system, z, keep, stats):
        n = pb.n
        drift = np.full(pb.record.ts.size, np.nan)  # NaN where the pass did not stop
        drift[keep] = system.drift
        stats["drift"] = drift
        _warn_drift(pb.record, drift)
        gth = z[2 * n:].copy() if pb.need_theta else np.zeros(pb.p)
        return z[n:2 * n].copy(), gth


class Interpolated(_Continuous):
    """``gradient="interpolated"``: ``[a, g_theta]`` backwards, ``y(t)`` read from
    the forward pass's dense output (no drift)."""

    name = "interpolated"
    keeps_dense = True

    def jacobian_plan(self, pb):
        """The stiff backward pass's Jacobian of ``[a, g]``: exactly
        ``[[-J^T, 0], [-(df/dtheta)^T, 0]]`` by ``n`` VJPs (the system is
        linear in ``a``)."""
        return _implicit.jacobian_plan(False, 0, pb.n)

    def system(self, pb, keep, W2, seminorm):
        d = pb.record.dense
        system = _kernels.interpolated_system(pb.vjp, pb.theta, pb.n, pb.p, W2,
                                              d.tableau.P, d.t_grid, d.h_grid, d.y_grid,
                                              d.K_grid, pb.need_theta)
        z0 = np.concatenate([W2[0], np.zeros(pb.p if pb.need_theta else 0)])
        return system, z0, pb.n if seminorm else z0.size

    def adjoint_offset(self, pb):
        return 0

    def finish(self, pb, system, z, keep, stats):
        n = pb.n
        return z[:n].copy(), z[n:].copy() if pb.need_theta else np.zeros(pb.p)


def _failure_message(pb, res, back, fault):
    """What went wrong in a failed :func:`backsolve`, worded as the loop's
    driver words it (:func:`nodekit.integrate.run`)."""
    from .integrate import FIXED_STEP_ADVICE, STATUS_MESSAGES, kernel_fault_message
    if res.status == _kernels.FAILED_KERNEL:
        # the system the kernel ran in, to call it again and recover its exception
        keep = backward_stops(pb.g)
        system = _kernels.adjoint_system(pb.record.fun.rhs_cfunc, pb.vjp, pb.theta, pb.n,
                                         pb.p, pb.record.ys[keep], pb.g[keep],
                                         back.quadrature)
        return kernel_fault_message(system, fault, res.nsteps, res.nfev)
    message = STATUS_MESSAGES[res.status].format(
        t=res.t_reached, h=res.h_last, nsteps=res.nsteps, nfev=res.nfev,
        naccept=res.naccept, nreject=res.nreject, max_steps=back.max_steps + res.stops)
    if res.status == _kernels.FAILED_NONFINITE and back.fixed_step > 0.0:
        message += FIXED_STEP_ADVICE
    return message


def _stiffness_note(res, method):
    """``""``, or when the stiffness test fired in the backward solve the note
    the loop's driver adds to its message (with a :class:`nodekit.StiffnessWarning`)."""
    if not res.t_stiff == res.t_stiff:
        return ""
    from .integrate import STIFFNESS_NOTE
    from ._warnings import StiffnessWarning
    note = STIFFNESS_NOTE.format(t=res.t_stiff, method=method)
    warnings.warn(note, StiffnessWarning, stacklevel=5)
    return " " + note


def _warn_drift(record, drift):
    """One :class:`AdjointDriftWarning` when the backsolve drift is too large."""
    warn_drift(record.adjoint_options, record.ts, drift, "nk.odeint(gradient='adjoint')")


def warn_drift(opts, ts, drift, who, stacklevel=3):
    """One :class:`AdjointDriftWarning` from ``who`` when the largest
    ``drift`` (per output time ``ts``) exceeds the backward tolerances
    ``opts`` times :data:`DRIFT_FACTOR`."""
    limit = DRIFT_FACTOR * max(opts["rtol"], opts["atol"])
    worst = np.fmax.reduce(drift)  # NaN (no stop there) ignored; nanmax costs 10 us more
    if not worst > limit:
        return
    j = int(np.nanargmax(drift))
    warnings.warn(AdjointDriftWarning(
        f"{who}: the backwards integration of y drifted from the "
        f"forward solution by {worst:.3g} (relative, at t={ts[j]:.6g}), more than "
        f"{DRIFT_FACTOR:g} x the backward tolerance ({limit:.3g}); the gradient is "
        "unreliable (typical of chaotic or strongly dissipative problems). Use "
        "gradient='interpolated' or gradient='discrete', which do not integrate y "
        "backwards; tightening the tolerances only delays the problem."), stacklevel=stacklevel)


#: One strategy object per gradient mode.
STRATEGIES = {s.name: s for s in (Backsolve(), Interpolated(), Discrete())}
GRADIENTS = tuple(STRATEGIES)


def strategy(gradient):
    """The strategy object of the mode named ``gradient`` (checked)."""
    try:
        return STRATEGIES[gradient]
    except (KeyError, TypeError):
        raise ValueError(f"`gradient` must be one of {', '.join(map(repr, GRADIENTS))}; "
                         f"got {gradient!r}.") from None


def backward(record, g, need_t, need_theta=True):
    """Gradients of ``sum(g * y(t))`` from a forward ``record``.

    Parameters
    ----------
    record : nodekit.primitive.ForwardRecord
    g : ndarray, shape (m, n)
        Cotangent of the flat outputs.
    need_t, need_theta : bool
        Whether the gradients with respect to ``t`` and ``theta`` are wanted
        (without ``theta``, the continuous modes skip its quadrature).

    Returns
    -------
    gy0 : ndarray, shape (n,)
    gt : ndarray, shape (m,) or None
    gtheta : ndarray, shape (p,)
    stats : dict
        ``nfev_backward`` (right-hand-side and VJP evaluations), ``nsteps_backward``,
        and for ``"adjoint"`` the backsolve ``drift`` at every output time.
    """
    g = np.ascontiguousarray(g, dtype=np.float64)
    stats = {}
    gy0, gth = record.strategy.gradients(Problem(record, g, need_theta), stats)
    gt = None
    if need_t:
        gt = np.empty(record.ts.size)
        time_gradients(g, _rhs_at_outputs(record), gy0, gt)
        stats["nfev_backward"] = stats.get("nfev_backward", 0) + record.ts.size
    return gy0, gt, gth, stats
