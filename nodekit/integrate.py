"""``nk.solve``: input validation, the two drivers, and :class:`Solution`."""

import inspect
import warnings

import numpy as np

from . import _checks, _implicit, _interrupt, _kernels
from .controllers import PIController
from .ode import ODE, events_cfunc
from .options import (DEFAULT_CONTROLLER, DEFAULTS as D, SOLVE, Options, explain_unknown,
                      remember)
from ._warnings import StiffnessWarning
from .tableaux import get_tableau
from .tableaux.esdirk import ESDIRK_METHODS, ESDIRKTableau

#: Messages for the status codes of :class:`Solution`.
STATUS_MESSAGES = {
    _kernels.SUCCESS: "The solver successfully reached the end of the integration interval.",
    _kernels.STOPPED_AT_EVENT: "A termination event occurred at t={t:.10g}.",
    _kernels.FAILED_NONFINITE: (
        "Non-finite derivative or solution at t={t:.6g} (last step size h={h:.3g}; "
        "{nsteps} steps, {nfev} evaluations). The right-hand side overflowed or hit "
        "a singularity: check it near this time and state; if the solution blows up "
        "in finite time, shorten the interval."),
    _kernels.FAILED_STEP_UNDERFLOW: (
        "Step size underflow at t={t:.6g}: the step size needed for rtol/atol fell "
        "below the smallest representable increment (last step size h={h:.3g}; "
        "{nsteps} steps, {naccept} accepted, {nreject} rejected). The problem may be "
        "stiff or singular here, or the tolerances too tight for float64: try looser "
        "rtol/atol, or a stiff method (method='rodas5' or 'kvaerno5'; from one of them, "
        "the other, with a `jac` kernel if you have one)."),
    _kernels.FAILED_MAX_STEPS: (
        "The maximum number of steps (max_steps={max_steps}) was reached at t={t:.6g} "
        "(last step size h={h:.3g}; {naccept} accepted, {nreject} rejected). Increase "
        "`max_steps`, loosen rtol/atol, or check whether the problem is stiff (many "
        "rejected steps with small step sizes)."),
    _interrupt.INTERRUPTED: (
        "Interrupted (Ctrl-C) at t={t:.6g} after {nsteps} steps and {nfev} "
        "evaluations."),
    _kernels.FAILED_KERNEL: (
        "A compiled kernel raised an exception near t={t:.6g} ({nsteps} steps, "
        "{nfev} evaluations); the solve stopped there. Solve this case alone with "
        "nk.solve to see the kernel and the exception."),
}

#: The message of a kernel fault when the kernel and its exception are known.
KERNEL_FAULT_MESSAGE = (
    "The {kernel} raised {error} at t={t:.6g} ({nsteps} steps, {nfev} evaluations); "
    "the solve stopped there. Fix the kernel, or call it on that time and state "
    "to reproduce the error.")

#: Added to a non-finite failure at fixed steps, where no error control
#: guards stability.
FIXED_STEP_ADVICE = (
    " At a fixed step size nothing controls stability: an explicit method with "
    "too large a `step_size` blows up even on a well-behaved problem. Try a "
    "smaller `step_size`, or an adaptive method (omit `step_size`).")

#: Added to the message (and warned once per call site) when the stiffness test fired.
STIFFNESS_NOTE = (
    "The problem looks stiff from t={t:.6g}: {method}'s step size was held there by its "
    "stability limit, not by accuracy (Hairer's stiffness test). A stiff method takes far "
    "fewer steps: try method='rodas5' or 'kvaerno5' (with a `jac` kernel if you have one).")


class Solution:
    """The result of :func:`solve`.

    Attributes
    ----------
    t : ndarray, shape (m,)
        The requested output times.
    y : ndarray, shape (m,) + y0.shape
        The solution at ``t``.  After a failure, rows past the time reached
        are NaN.
    status : int
        0 on success; -1 non-finite derivative, -2 step size underflow, -3
        ``max_steps`` exceeded, -4 a compiled kernel raised an exception.
    message : str
        What happened, and for failures what to try.
    success : bool
        ``status == 0``.
    nfev, nsteps, naccept, nreject : int
        Right-hand-side evaluations, attempted, accepted and rejected steps.
    t_reached, h_last : float
        Time reached and last step size attempted.
    method : str
        Name of the tableau used.
    dense : DenseSolution or None
        With ``dense=True``: the continuous solution (also callable as
        ``sol(t)``), holding every accepted step (``dense.t_grid``, ...).
    """

    #: With ``events``: per event, the times and states of its occurrences.
    t_events = None
    y_events = None

    def __init__(self, t, y, status, message, nfev, nsteps, naccept, nreject,
                 t_reached, h_last, method, dense=None):
        self.t = t
        self.y = y
        self.status = int(status)
        self.message = message
        self.success = self.status == 0
        self.nfev = int(nfev)
        self.nsteps = int(nsteps)
        self.naccept = int(naccept)
        self.nreject = int(nreject)
        self.t_reached = float(t_reached)
        self.h_last = float(h_last)
        self.method = method
        self.dense = dense

    def __call__(self, t):
        """Evaluate the dense solution (``dense=True``) at time(s) ``t``.

        Parameters
        ----------
        t : float or array_like, shape (k,)
            Times inside the integrated span.

        Returns
        -------
        ndarray, shape y0.shape or (k,) + y0.shape
        """
        if self.dense is None:
            raise ValueError("This solution has no dense output; call nk.solve(..., "
                             "dense=True) to evaluate it at arbitrary times.")
        return self.dense(t)

    def __repr__(self):
        return (f"Solution(method={self.method!r}, status={self.status}, "
                f"nfev={self.nfev}, nsteps={self.nsteps}, naccept={self.naccept}, "
                f"nreject={self.nreject}, t=[{self.t[0]:g} .. {self.t[-1]:g}] "
                f"({self.t.size} points), y.shape={self.y.shape})")


def python_rhs(fun, shape):
    """Adapt ``fun(t, y, theta) -> dy/dt`` to the kernel form ``rhs(t, y, theta, out)``.

    ``fun`` gets a read-only view of the solver's state (modifying it in place
    raises at once instead of corrupting the solve).  Checks every returned
    derivative: real, not ``None``, of the shape ``shape``.
    """
    size = int(np.prod(shape))

    def rhs(t, y, theta, out):
        view = y.reshape(shape)
        view.flags.writeable = False
        f = fun(t, view, theta)
        if f is None or np.iscomplexobj(f):
            what = "None (a missing `return`?)" if f is None else "complex values"
            raise TypeError(f"`fun` must return dy/dt, a real array of shape "
                            f"y0.shape={shape}; it returned {what} at t={t!r}.")
        f = np.asarray(f, dtype=np.float64)
        if f.shape != shape and not (f.size == size and f.ndim <= 1 and len(shape) <= 1):
            raise ValueError(f"`fun` must return an array of shape y0.shape={shape}; "
                             f"it returned shape {f.shape} at t={t!r}.")
        out[:] = f.ravel()
        return 0

    return rhs


def _check_fun_arity(fun):
    """A Python ``fun`` must accept ``(t, y, theta)``."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return  # builtins and some callables: no signature to check
    try:
        sig.bind(0.0, None, None)
    except TypeError:
        raise TypeError(
            f"`fun` must accept three arguments: nodekit calls fun(t, y, theta); "
            f"{getattr(fun, '__name__', 'fun')}{sig} does not. Add a third parameter "
            "(`theta`, unused when the system has no parameters).") from None


def integrate(fun, y0, t, theta=None, opts=D, *, system=None, n_err=None, jumps=False):
    """Validated inputs -> the kernel loop -> raw results.  Shared by
    :func:`solve` and the gradient code; ``opts`` is an
    :class:`~nodekit.options.Options` record (its forward-solve fields).
    ``opts.events`` (a list of :class:`nodekit.Event` with jitted functions,
    for an ``nk.ODE`` and an explicit method) are located inside the loop;
    ``info["event_hits"]`` holds their occurrences.

    Returns ``(ys, info, dense)`` where ``ys`` has shape ``(m, n)``.
    """
    events = opts.events
    key = None if events else _options_key(opts, system is None and not jumps)
    known = _VALID_OPTIONS.get(key) if key is not None else None
    if known is None:
        stiff = _implicit.is_stiff(opts.method) and system is None and not jumps
        tableau = None if stiff else get_tableau(opts.method)
    else:
        stiff, tableau = known
    compiled = isinstance(fun, ODE)
    if not compiled and not callable(fun):
        raise TypeError("`fun` must be a callable fun(t, y, theta) or an nk.ODE; got "
                        f"{type(fun).__name__}.")
    if not compiled and system is None:
        _check_fun_arity(fun)
    y0 = _checks.check_y0(y0)
    ts = _checks.check_t(t)
    theta = None if theta is None and not compiled else _checks.check_theta(theta, flat=compiled)
    shape = y0.shape
    if known is None:
        rtol_a, atol_a, controller = _check_options(opts, y0, ts, stiff, tableau)
        if key is not None:
            remember(_VALID_OPTIONS, key, (stiff, tableau))
    else:
        # equal option values passed every check above before; only the
        # checks that depend on this call's `t` and the state's size remain
        # (this call's own values are used: an equal controller is not the
        # same object)
        _check_resolved_steps(opts, ts)
        controller = DEFAULT_CONTROLLER if opts.controller is None else opts.controller
        rtol_a = atol_a = None  # plain scalars: see _forward_loop_options
    y0f = np.ascontiguousarray(y0.ravel())
    if compiled and system is None:
        fun.check_sizes(y0, theta)
        fun.check_first_call(float(ts[0]), y0f, theta, shape)
    if events and stiff:
        raise ValueError(f"events are located inside the loop only for explicit methods; "
                         f"got method={opts.method!r}.")
    if system is None and events:
        system = _kernels.event_system(fun.rhs_cfunc, theta,
                                       events_cfunc([ev.g for ev in events]),
                                       [ev.direction for ev in events],
                                       [ev.stop_after for ev in events], y0f.size,
                                       tableau.A.shape[0])
    if system is None:
        system = _kernels.OdeSystem(fun.rhs_cfunc if compiled else python_rhs(fun, shape),
                                    theta)
    if stiff:
        rtol_a, atol_a = _tolerances(opts, y0.size, (rtol_a, atol_a))
        return _implicit.run(fun, compiled, system, y0f, ts, theta, opts.method, rtol_a,
                             atol_a, controller, first_step=opts.first_step,
                             max_step=opts.max_step, max_steps=opts.max_steps,
                             dense=opts.dense, shape=shape)
    opt = _forward_loop_options(opts, key, controller, (rtol_a, atol_a), y0f.size,
                                y0f.size if n_err is None else n_err, jumps)
    return run_with(compiled, system, y0f, ts, tableau, opt, shape)


def _forward_loop_options(opts, key, controller, tols, n, n_err, jumps):
    """The loop's options record (:func:`loop_options`) of a forward solve
    with the checked ``opts``, remembered for the option ``key`` of
    :func:`_options_key` (or None) with the state size ``n``, ``n_err``,
    ``dense`` and ``jumps``: the loop only reads it.  ``tols``: the checked
    per-component ``(rtol, atol)``, or ``(None, None)`` for the plain scalars
    of a remembered key."""
    memo_key = None if key is None else (key, n, n_err, bool(opts.dense), jumps)
    opt = _LOOP_OPTIONS.get(memo_key) if memo_key is not None else None
    if opt is None:
        rtol, atol = _tolerances(opts, n, tols)
        opt = loop_options(rtol, atol, controller, n_err=n_err, first_step=opts.first_step,
                           max_step=opts.max_step, max_steps=opts.max_steps,
                           step_size=opts.step_size, dense=opts.dense, jumps=jumps)
        if memo_key is not None:
            remember(_LOOP_OPTIONS, memo_key, opt)
    return opt


def _tolerances(opts, n, tols):
    """The per-component ``(rtol, atol)``: ``tols`` as checked, or for
    ``(None, None)`` (the plain scalars of a remembered key) ``n`` copies of
    ``opts.rtol`` and ``opts.atol``."""
    if tols[0] is not None:
        return tols
    return _checks.tol_array(opts.rtol, n), _checks.tol_array(opts.atol, n)


def _check_options(opts, y0, ts, stiff, tableau):
    """Check the forward options of ``opts`` (the method is already looked up:
    ``stiff``, ``tableau``) for the validated ``y0`` and times ``ts``.

    Returns ``(rtol, atol, controller)``: the per-component tolerances and the
    controller (``None`` resolved to the default).
    """
    method, controller = opts.method, opts.controller
    first_step, max_step, max_steps = opts.first_step, opts.max_step, opts.max_steps
    step_size = opts.step_size
    rtol_a = _checks.check_tol(opts.rtol, "rtol", y0.shape)
    atol_a = _checks.check_tol(opts.atol, "atol", y0.shape, y0)
    _checks.check_positive(max_step, "max_step")
    _checks.check_resolved_step(max_step, "max_step", ts)
    _checks.check_positive(max_steps, "max_steps", integer=True)
    if first_step is not None:
        _checks.check_positive(first_step, "first_step")
    if step_size is not None:
        _checks.check_positive(step_size, "step_size")
        _checks.check_resolved_step(step_size, "step_size", ts)
        if stiff:
            raise ValueError(f"`step_size` is not supported by the adaptive stiff method "
                             f"{method!r}; leave it out (use `max_step` to bound steps).")
    elif not stiff and not tableau.is_adaptive:
        raise ValueError(f"`step_size` is required for the fixed-step method "
                         f"{tableau.name!r}; pass step_size=h, or choose an adaptive "
                         "method such as 'dopri5'.")
    if controller is None:
        controller = DEFAULT_CONTROLLER
    elif not isinstance(controller, PIController):
        raise TypeError(f"`controller` must be an nk.PIController; got {controller!r}.")
    return rtol_a, atol_a, controller


def _check_resolved_steps(opts, ts):
    """The checks of :func:`_check_options` that depend on the times ``ts``."""
    _checks.check_resolved_step(opts.max_step, "max_step", ts)
    if opts.step_size is not None:
        _checks.check_resolved_step(opts.step_size, "step_size", ts)


#: The exact types of the option values whose checks are remembered, by
#: field of :class:`~nodekit.options.Options` (``bool`` is not ``int``:
#: ``True == 1``, but ``max_steps=True`` is an error); the tolerances are
#: also plain (:func:`nodekit._checks.is_plain_tol`).
_KEY_TYPES = (("method", (str,)), ("rtol", (float,)), ("atol", (float,)),
              ("first_step", (type(None), float, int)), ("max_step", (float, int)),
              ("max_steps", (int,)), ("step_size", (type(None), float, int)),
              ("controller", (type(None), PIController)))
#: Option keys that passed every check of :func:`_check_options`:
#: ``(stiff, tableau)``.
_VALID_OPTIONS = {}
#: The loop's options record (:func:`loop_options`) of a remembered option
#: key, state size, ``n_err``, ``dense`` and ``jumps``: built once (the loop
#: only reads it).
_LOOP_OPTIONS = {}


def _options_key(opts, plain):
    """The key under which the checks of ``opts`` are remembered, or ``None``
    when a value is of a type not remembered (an array tolerance, a tableau,
    ...): ``plain`` is a forward solve of the ODE itself (no given system, no
    jumps), where a stiff method runs the stiff loop.

    Equal keys pass or fail the same checks: every value has one of the
    exact types of :data:`_KEY_TYPES`, where ``==`` means the same option
    (a NaN fails its check, so no key holding one is remembered).
    """
    for name, types in _KEY_TYPES:
        if type(getattr(opts, name)) not in types:
            return None
    if not (_checks.is_plain_tol(opts.rtol, "rtol") and _checks.is_plain_tol(opts.atol, "atol")):
        return None  # (atol=0 is replaced by the smallest float, and needs y0 checked)
    return (opts.method, opts.rtol, opts.atol, opts.first_step, opts.max_step,
            opts.max_steps, opts.step_size, opts.controller, plain)


def run(compiled, system, y0, ts, tableau, rtol, atol, controller, *,
        first_step=D.first_step, max_step=D.max_step, max_steps=D.max_steps,
        step_size=D.step_size, dense=D.dense, jumps=False, n_err=None, shape=None):
    """Run the loop on already-validated arrays (flat ``y0``, per-component
    ``rtol``/``atol``); returns ``(ys, info, dense)`` with ``ys`` of shape
    ``(m, n)``."""
    opt = loop_options(rtol, atol, controller, n_err=n_err, first_step=first_step,
                       max_step=max_step, max_steps=max_steps, step_size=step_size,
                       dense=dense, jumps=jumps)
    return run_with(compiled, system, y0, ts, tableau, opt, shape)


def run_with(compiled, system, y0, ts, tableau, opt, shape=None):
    """:func:`run` with the loop's options record ``opt`` already built
    (:func:`loop_options`)."""
    n = y0.size
    shape = (n,) if shape is None else shape
    out = np.empty((ts.size, n))
    out.fill(np.nan)  # (np.full costs a few microseconds more)
    fault = np.zeros(n + 2)
    max_steps, dense = opt.max_steps, opt.dense
    stats, record = run_loop(compiled, (system, y0, ts, loop_tableau(tableau), opt, out,
                                        fault))
    status, t_reached, h_last, nfev, nsteps, naccept, nreject, n_out, _, t_stiff = stats
    # (run_loop returns Python ints and floats)
    info = dict(status=status, t_reached=t_reached, h_last=h_last, nfev=nfev, nsteps=nsteps,
                naccept=naccept, nreject=nreject, n_out=n_out, max_steps=max_steps,
                method=tableau.name, shape=shape, t=ts,
                event_hits=_NO_HITS if record is None else record[4])
    if status == _kernels.FAILED_KERNEL:
        info["fault_state"] = fault[2:].copy()
        info["message"] = kernel_fault_message(system, fault, info["nsteps"], info["nfev"])
    elif status != 0:
        info["message"] = STATUS_MESSAGES[info["status"]].format(
            t=info["t_reached"], h=info["h_last"], **{k: info[k] for k in (
                "nsteps", "nfev", "naccept", "nreject", "max_steps")})
        if status == _kernels.FAILED_NONFINITE and opt.fixed_step > 0.0:
            info["message"] += FIXED_STEP_ADVICE
    else:
        info["message"] = STATUS_MESSAGES[0]
    if t_stiff == t_stiff:  # the stiffness test fired
        info["t_stiff"] = float(t_stiff)
        note = STIFFNESS_NOTE.format(t=t_stiff, method=tableau.name)
        info["message"] += " " + note
        # run <- integrate <- solve <- its explain_unknown wrapper <- the caller
        warnings.warn(note, StiffnessWarning, stacklevel=5)
    dense_data = None
    if dense:  # (the loop returns its record when dense)
        t_grid, h_grid, y_grid, K_grid, _ = record
        dense_data = DenseSolution(tableau, t_grid, h_grid, y_grid, K_grid, float(ts[0]),
                                   float(t_reached), shape)
    return out, info, dense_data


def _kernel_sources(args):
    """``args`` with every guarded compiled kernel (also inside a system tuple)
    replaced by the compiled kernel it wraps, which raises its exceptions."""
    def swap(a):
        if isinstance(a, _kernels.SYSTEMS):
            return type(a)(*map(swap, a))
        if isinstance(a, tuple):
            return tuple(swap(b) for b in a)
        src = getattr(a, "nodekit_source", None)
        return a if src is None else src[2]
    return tuple(swap(a) for a in args)


def _kernel_names(args):
    """``{fault code: 'rhs kernel name'}`` for the guarded kernels in ``args``."""
    from .ode import JAC_FAULT, RHS_FAULT, VJP_FAULT
    codes = {"rhs": RHS_FAULT, "vjp": VJP_FAULT, "jac": JAC_FAULT}
    names = {}
    for a in args:
        for b in (a if isinstance(a, tuple) else (a,)):
            src = getattr(b, "nodekit_source", None)
            if src is not None:
                names[codes[src[0]]] = f"`{src[0]}` kernel {src[1]!r}"
    return names


def _replay(fn, args):
    """Run the interpreted ``fn(*args)`` with the kernels that raise; return
    the exception it raises as text, or ``None``."""
    try:
        with np.errstate(all="ignore"):
            fn(*_kernel_sources(args))
    except Exception as exc:  # noqa: BLE001 - the kernel's own exception
        return f"{type(exc).__name__}: {exc}"
    return None


def kernel_fault_message(system, fault, nsteps, nfev, jac=None):
    """The message of a solve that stopped because a compiled kernel raised.

    ``fault = [code, t, state...]`` as the loop recorded it; the kernel is
    called again on that state (outside the guard) to recover its exception.
    ``jac = (guarded jac kernel, theta)`` when the loop also called a Jacobian.
    """
    from .ode import EVENT_FAULT, JAC_FAULT
    code, t = int(fault[0]), float(fault[1])
    state = np.ascontiguousarray(fault[2:])
    if code == EVENT_FAULT and isinstance(system, _kernels.EventSystem):
        kernel, error = "event function", None
        for g in system.g.nodekit_events:  # the jitted functions raise as they are
            error = _replay(lambda g, *a: g(*a), (g, t, state, system.theta))
            if error:
                kernel = f"event function {g.py_func.__name__!r}"
                break
    elif code == JAC_FAULT and jac is not None:
        kernel = _kernel_names(jac).get(code, "`jac` kernel")
        error = _replay(lambda k, *a: k(*a), (jac[0], t, state, jac[1],
                                               np.empty((state.size, state.size))))
    else:
        kernel = _kernel_names((system,)).get(code, "compiled kernel")
        error = _replay(_kernels.evaluate, (system, t, state, np.empty_like(state)))
    return KERNEL_FAULT_MESSAGE.format(
        kernel=kernel, error=error or "an exception (which did not recur when re-run)",
        t=t, nsteps=nsteps, nfev=nfev)


def replay_fault_message(fn_py, args, what):
    """The message for a compiled helper (``_kernels.reverse_steps`` or
    ``rhs_at_points``) that returned a fault: ``fn_py`` (its interpreted twin)
    is re-run on the same ``args`` to recover the kernel's exception.

    Parameters
    ----------
    fn_py : callable
        ``_kernels.reverse_steps_py`` or ``_kernels.rhs_at_points_py``.
    args : tuple
        The arguments the compiled helper was called with.
    what : str
        What was being computed, for the message (e.g. "the discrete backward pass").
    """
    names = _kernel_names(args)
    kernel = " or ".join(sorted(names.values())) or "compiled kernel"
    error = _replay(fn_py, args) or "an exception (which did not recur when re-run)"
    return f"The {kernel} raised {error} during {what}. Fix the kernel."


_LOOP_TABLEAUX = {}


def loop_tableau(tableau):
    """The :class:`nodekit._kernels.LoopTableau` of ``tableau``, built once."""
    hit = _LOOP_TABLEAUX.get(id(tableau))
    if hit is not None and hit[0] is tableau:
        return hit[1]
    rec = _kernels.LoopTableau(tableau.A, tableau.C, tableau.B, tableau.E, tableau.E2,
                               tableau.P, bool(tableau.has_e2), int(tableau.n_stages),
                               int(tableau.f1_index), bool(tableau.fsal),
                               int(tableau.error_order or tableau.order),
                               *_stiffness_test(tableau))
    _LOOP_TABLEAUX[id(tableau)] = (tableau, rec)
    return rec


def _stiffness_test(tableau):
    """``(stage, bound)`` of Hairer's stiffness test for ``tableau``: the last
    main stage at ``c = 1`` (whose input and derivative the test compares with
    the new state's) and the tableau's bound; ``(-1, 0.0)`` for none."""
    if tableau.stiffness_bound is None:
        return -1, 0.0
    n_main = tableau.n_stages - 1 if tableau.fsal else tableau.n_stages
    stage = max((s for s in range(1, n_main) if tableau.C[s] == 1.0), default=-1)
    return stage, float(tableau.stiffness_bound)


def loop_options(rtol, atol, controller, *, n_err=None, first_step=D.first_step,
                 max_step=D.max_step, max_steps=D.max_steps, step_size=D.step_size,
                 dense=D.dense, jumps=False):
    """The :class:`nodekit._kernels.LoopOptions` record of one run of the
    loop, every field converted to the type the compiled loop was built for
    (``rtol``/``atol``: validated per-component arrays; ``n_err`` defaults to
    every component)."""
    rtol = np.ascontiguousarray(rtol, dtype=np.float64)
    return _kernels.LoopOptions(
        rtol, np.ascontiguousarray(atol, dtype=np.float64),
        rtol.size if n_err is None else int(n_err), controller.array,
        0.0 if first_step is None else float(first_step), float(max_step),
        int(max_steps), 0.0 if step_size is None else float(step_size), bool(dense),
        bool(jumps))


#: ``(name, ndim)`` of the array arguments of the loop after the system.
_LOOP_ARRAYS = ((1, "y0", 1), (2, "ts", 1), (5, "out", 2), (6, "fault", 1))
_ENTRY = {}
_F64 = np.dtype(np.float64)


def system_layout(system):
    """What the compiled loop's signature says about the arrays of ``system``:
    ``(dtype, ndim, C-contiguous)`` of each array field."""
    return tuple((a.dtype, a.ndim, a.flags.c_contiguous) for a in system
                 if type(a) is np.ndarray)


def _is_array(a, ndim):
    """``a`` is a C-contiguous float64 array of ``ndim`` dimensions."""
    return (type(a) is np.ndarray and a.ndim == ndim
            and (a.dtype is _F64 or a.dtype == np.float64) and a.flags.c_contiguous)


def check_loop_args(args, layout=None):
    """The loop's arguments are of the types its compiled entry point was
    built for (the entry point unboxes without checking): float64
    C-contiguous arrays of the right dimensions, a system of one of the
    types in ``_kernels.SYSTEMS`` whose arrays have the ``layout`` the entry
    point was compiled for (see :func:`system_layout`), and the two records
    built by :func:`loop_tableau` and :func:`loop_options`.

    Raises
    ------
    TypeError
        Naming the argument (an internal error: the callers build them).
    """
    system = args[0]
    if type(system) not in _kernels.SYSTEMS:
        raise TypeError("loop argument `system` must be one of "
                        f"{', '.join(c.__name__ for c in _kernels.SYSTEMS)}; got "
                        f"{type(system).__name__}.")
    if layout is not None and system_layout(system) != layout:
        raise TypeError(f"the arrays of loop argument `system` ({type(system).__name__}) "
                        f"are {system_layout(system)}; the compiled loop was built for "
                        f"{layout} (dtype, ndim, C-contiguous).")
    for i, name, ndim in _LOOP_ARRAYS:
        if not _is_array(args[i], ndim):
            raise TypeError(f"loop argument `{name}` must be a C-contiguous {ndim}-D "
                            f"float64 array; got {_checks._describe(args[i])}.")
    if type(args[3]) is not _kernels.LoopTableau or type(args[4]) is not _kernels.LoopOptions:
        raise TypeError("loop arguments `tab` and `opt` must be built by loop_tableau() "
                        "and loop_options().")


def run_loop(compiled, args):
    """Run the integration loop on ``args = (system, y0, ts, tab, opt, out,
    fault)``: compiled (through the compiled overload's entry point, which
    skips Numba's per-call type inference of the arguments: about 80 us for
    the tuple of first-class functions; :func:`check_loop_args` checks what
    the entry point would not) or interpreted.

    Returns ``(stats, record)`` as :func:`nodekit._kernels.integrate_entry`
    does: the scalar fields of a :class:`nodekit._kernels.LoopResult` (as
    Python ``int`` and ``float``), and its arrays or ``None`` when the run
    recorded nothing."""
    if not compiled:
        return _split_result(_kernels.integrate_py(*args))
    # one compiled loop per type of system
    kind = type(args[0])
    hit = _ENTRY.get(kind)
    check_loop_args(args, None if hit is None else hit[1])
    if hit is None:
        import numba
        sig = tuple(numba.typeof(a) for a in args)
        _kernels.integrate_entry.compile(sig)
        hit = _ENTRY[kind] = (_kernels.integrate_entry.overloads[sig].entry_point,
                              system_layout(args[0]))
    _interrupt.arm()  # not `with armed()`: the context manager costs 0.3 us more
    try:
        return hit[0](*args)
    finally:
        _interrupt.disarm()


def _split_result(res):
    """``(stats, record)`` of a :class:`nodekit._kernels.LoopResult`, as
    :func:`nodekit._kernels.integrate_entry` returns them (the interpreted
    loop's NumPy scalars as Python ``int`` and ``float``)."""
    return (tuple(v.item() if isinstance(v, np.generic) else v
                  for v in (getattr(res, name) for name in _kernels.STATS_FIELDS)),
            tuple(getattr(res, name) for name in _kernels.RECORD_FIELDS))


#: The event hits of a run that recorded nothing.
_NO_HITS = np.empty(0)
_NO_HITS.flags.writeable = False


class DenseSolution:
    """A continuous solution: every accepted step with its stage derivatives.

    Evaluates ``y(t)`` anywhere in the integrated span with the method's
    interpolant; also the record the interpolated and discrete gradients
    read.
    """

    def __init__(self, tableau, t_grid, h_grid, y_grid, K_grid, t0, t_reached, shape):
        self.tableau = tableau
        self.t_grid, self.h_grid, self.y_grid, self.K_grid = t_grid, h_grid, y_grid, K_grid
        self.t0, self.t_reached, self.shape = t0, t_reached, shape
        self.direction = 1.0 if t_reached >= t0 else -1.0

    def __call__(self, t):
        tq = _checks.as_float_array(t, "t")
        scalar = tq.ndim == 0
        tq = np.ascontiguousarray(np.atleast_1d(tq).ravel())
        lo, hi = sorted((self.t0, self.t_reached))
        if not np.all(np.isfinite(tq)) or np.any((tq < lo) | (tq > hi)):
            raise ValueError(f"`t` must lie in the integrated span [{lo!r}, {hi!r}]; "
                             f"got values from {tq.min()!r} to {tq.max()!r}.")
        out = np.empty((tq.size, self.y_grid.shape[1]))
        if self.t_grid.size:
            _kernels.dense_eval(tq, self.tableau.P, self.t_grid, self.h_grid, self.y_grid,
                                self.K_grid, self.t_grid.size, self.direction, out)
        else:
            out[:] = np.nan
        out = out.reshape((tq.size,) + self.shape)
        return out[0] if scalar else out


def _resolver(fun, theta, shape, method, opts):
    """For a method whose dense output is less accurate than its steps (the
    ESDIRK methods' Hermite cubic), ``resolve(t0, y0, t1)``: ``y(t1)`` (flat)
    solved from ``(t0, y0)`` with ``opts`` (None if that solve fails), by
    which events are located on the solution itself
    (:func:`nodekit.events.apply`); else None."""
    if not (method in ESDIRK_METHODS or isinstance(method, ESDIRKTableau)):
        return None

    def resolve(t0, y0, t1):
        ys, info, _ = integrate(fun, np.reshape(y0, shape), np.array([t0, t1]), theta, opts)
        return ys[-1] if info["status"] == 0 else None  # None: keep the dense output's

    return resolve


@explain_unknown(SOLVE)
def solve(fun, y0, t, theta=None, *, method=D.method, rtol=D.rtol, atol=D.atol,
          first_step=D.first_step, max_step=D.max_step, max_steps=D.max_steps,
          step_size=D.step_size, dense=D.dense, controller=D.controller, events=D.events):
    """Solve an initial value problem ``dy/dt = fun(t, y, theta)``, ``y(t[0]) = y0``.

    Explicit Runge-Kutta methods, adaptive or fixed-step, in one compiled loop.
    Output times are reached by the method's dense output, not by shortening
    steps, so asking for more outputs does not change the steps taken.

    Parameters
    ----------
    fun : callable or nk.ODE
        Either a Python function ``fun(t, y, theta) -> dy/dt`` (array of the
        shape of ``y0``; write it with ``autograd.numpy`` to differentiate it
        later), or an :class:`nk.ODE` of compiled kernels, in which case the
        entire solve runs in nopython mode.
    y0 : array_like, any shape
        Initial state.  A batch of states (``(B, d)``, say) is solved jointly
        with one step size for the whole array.
    t : array_like, shape (m,)
        Output times, strictly increasing or strictly decreasing, ``m >= 2``.
        ``t[0]`` is the initial time.
    theta : array_like, optional
        Parameters passed to ``fun`` (a flat float vector for an ``nk.ODE``).
    method : str or ButcherTableau, default 'dopri5'
        One of ``nk.METHODS``: fixed-step 'euler', 'midpoint', 'heun',
        'ralston', 'rk4', 'rk38'; adaptive 'heun_euler', 'bosh3', 'rkf45',
        'cash_karp', 'dopri5', 'tsit5', 'dop853'.
    rtol, atol : float or array_like, default 1e-6, 1e-9
        Relative and absolute tolerances: scalars, or arrays broadcastable to
        ``y0.shape`` for per-component tolerances.
    first_step : float, optional
        Initial step size; by default chosen by Hairer's algorithm.
    max_step : float, default inf
        Largest step size allowed.
    max_steps : int, default 100000
        Largest number of attempted steps before giving up (status -3).
    step_size : float, optional
        Take fixed steps of this size (required for fixed-step methods; with
        an adaptive method it disables error control).  The last step is
        shortened to end exactly at ``t[-1]``.
    dense : bool, default False
        Keep the continuous solution: ``sol(tq)`` evaluates it anywhere in the
        span.  For 'dop853' this costs three extra evaluations per step.
    controller : nk.PIController, optional
        Step-size controller; the default reproduces SciPy's ``solve_ivp``.
    events : callable, nk.Event or list of them, optional
        Event functions ``g(t, y, theta)`` whose sign changes are located on
        the dense output (``sol.t_events``, ``sol.y_events``); a terminal
        event stops the solve there (status 1).  See ``docs/events.md``.

    Returns
    -------
    Solution
        With ``t``, ``y`` (shape ``(m,) + y0.shape``), ``status``,
        ``message``, ``success``, ``nfev``, ``nsteps``, ``naccept``,
        ``nreject``.  A failed solve is reported in ``status``/``message``
        (rows of ``y`` after the failure are NaN); it does not raise.

    Raises
    ------
    ValueError, TypeError
        For invalid input: non-finite ``y0``/``theta``/``t``, ``t`` not
        strictly monotone or shorter than 2, non-positive tolerances, unknown
        method or option, a fixed-step method without ``step_size``, a
        derivative of the wrong shape.

    See Also
    --------
    nodekit.odeint : the differentiable version.

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> sol = nk.solve(lambda t, y, k: -k * y, [1.0, 2.0], np.linspace(0, 1, 5),
    ...                theta=0.5, rtol=1e-10)
    >>> np.allclose(sol.y[-1], np.exp(-0.5) * np.array([1.0, 2.0]))
    True
    """
    keep_dense = dense
    looped = False
    if events is not None:
        from . import events as _events
        events = _events.as_events(events)
        looped = _events.in_loop(fun, events, _implicit.is_stiff(method))
        if not looped:
            dense = True  # events are located on the dense output
    out, info, dense = integrate(fun, y0, t, theta, Options(
        method=method, rtol=rtol, atol=atol, first_step=first_step, max_step=max_step,
        max_steps=max_steps, step_size=step_size, controller=controller, dense=dense,
        events=events if looped else None))
    ts = info["t"]
    y = out.reshape((ts.size,) + info["shape"])
    sol = Solution(ts, y, info["status"], info["message"], info["nfev"], info["nsteps"],
                   info["naccept"], info["nreject"], info["t_reached"], info["h_last"],
                   info["method"], dense)
    sol.njev, sol.nlu = info.get("njev", 0), info.get("nlu", 0)  # stiff methods
    if looped:
        _events.apply_hits(sol, events, info["event_hits"], out.shape[1])
    elif events:
        compiled = isinstance(fun, ODE)
        th = None if theta is None and not compiled else np.asarray(theta, dtype=float)
        _events.apply(sol, events, th, (y.shape[1:] if not compiled
                                        else (int(np.prod(y.shape[1:])),)),
                      _resolver(fun, theta, info["shape"], method, Options(
                          method=method, rtol=rtol, atol=atol, max_step=max_step,
                          max_steps=max_steps, controller=controller)))
        if not keep_dense:
            sol.dense = None
    return sol
