"""Events: roots of ``g(t, y, theta)`` located on a solve's dense output, and
differentiable event times (:func:`odeint_event`).

An event is located the way SciPy's ``solve_ivp`` locates one: the signs of
``g`` at the ends of every accepted step are compared, and where they differ
(in the event's ``direction``) the root is found with Brent's method on the
step's own interpolant, to near machine precision in ``t``.  No extra steps
and no extra right-hand-side evaluations are made.  An even number of
crossings inside one step is invisible (as in SciPy): bound the step with
``max_step`` when events can be that close.

The gradient of an event time follows from the implicit function theorem at
the event, ``g(t*, y(t*; p), p) = 0``::

    dt*/dp = -(dg/dp + dg/dy . dy/dp) / (dg/dt + dg/dy . f(t*, y*))

where ``dg/dy . dy/dp`` is one vector-Jacobian product through the solve up
to ``t*`` (the adjoint of :func:`nodekit.odeint`); the root finder's
iterations are never differentiated.
"""
import math
from typing import NamedTuple

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp_argnums, primitive
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import getval
from numba.core.registry import CPUDispatcher

from . import _checks, _event_scan
from .options import FORWARD

#: Status of a solve that stopped at a terminal event.
TERMINATED = 1
#: ``|dg/dt + dg/dy . f|`` below this fraction of ``|dg/dt| + |dg/dy| |f|``
#: counts as grazing: the event time is not differentiated there.
GRAZING = 1e-8


class Event:
    """An event function ``g(t, y, theta) -> float`` with SciPy's attributes.

    Parameters
    ----------
    g : callable
        ``g(t, y, theta)``, a Python function (written with
        ``autograd.numpy`` to differentiate event times) or a Numba-jitted
        function; ``y`` has the shape of ``y0`` (flat for an ``nk.ODE``).
    terminal : bool or int, default False
        Stop the solve at the first occurrence (True) or at the given number
        of occurrences (an int).
    direction : {-1, 0, 1}, default 0
        Count only crossings where ``g`` goes from positive to negative (-1),
        from negative to positive (+1), or both (0), in the direction of
        integration.
    name : str, optional
        Shown in messages; defaults to the function's name.

    Notes
    -----
    A plain function with ``terminal`` and ``direction`` attributes (as
    SciPy reads them) works everywhere an ``Event`` does.
    """

    def __init__(self, g, terminal=False, direction=0, name=None):
        if not callable(g):
            raise TypeError(f"an event must be callable g(t, y, theta); got {g!r}.")
        if isinstance(terminal, bool) or terminal is None:
            stop = 1 if terminal else 0
        elif isinstance(terminal, (int, np.integer)) and terminal >= 1:
            stop = int(terminal)
        else:
            raise ValueError(f"`terminal` of event {name or g!r} must be a bool or a "
                             f"positive int; got {terminal!r}.")
        if direction not in (-1, 0, 1):
            raise ValueError(f"`direction` of event {name or g!r} must be -1, 0 or 1; got "
                             f"{direction!r}.")
        self.g = g
        self.stop_after = stop
        self.direction = int(direction)
        py = getattr(g, "py_func", g)
        self.name = name or getattr(py, "__name__", "event")

    @classmethod
    def from_any(cls, e):
        """An :class:`Event`, or one built from a function's attributes."""
        if isinstance(e, Event):
            return e
        return cls(e, getattr(e, "terminal", False), getattr(e, "direction", 0))

    def __call__(self, t, y, theta):
        return float(self.g(t, y, theta))

    @property
    def jitted(self):
        """Whether ``g`` is Numba-jitted (then a compiled solve locates it
        inside the loop)."""
        return isinstance(self.g, CPUDispatcher)

    def __repr__(self):
        return (f"nk.Event({self.name}, terminal={self.stop_after or False}, "
                f"direction={self.direction})")


def as_events(events):
    """``events`` (one or a list) as a list of :class:`Event`."""
    if events is None:
        return []
    if callable(events):
        events = [events]
    try:
        return [Event.from_any(e) for e in events]
    except TypeError:
        raise TypeError("`events` must be an event function, an nk.Event, or a list of "
                        f"them; got {events!r}.") from None


class Found(NamedTuple):
    """Located events: one array per event, and where a terminal one stopped."""

    t_events: list
    y_events: list
    t_stop: float   # NaN when no terminal event fired
    which: int      # index of the terminal event, or -1


def in_loop(fun, events, stiff):
    """Whether the loop itself locates ``events``: a compiled ``nk.ODE``, an
    explicit method and jitted event functions.  Otherwise they are found
    after the solve on its dense output (:func:`apply`)."""
    from .ode import ODE
    return isinstance(fun, ODE) and not stiff and all(ev.jitted for ev in events)


def apply_hits(sol, events, hits, n):
    """Add the occurrences the loop recorded (rows ``[k, t, y...]`` of
    ``hits``) to a :class:`nodekit.Solution` as ``t_events``/``y_events``; a
    loop stopped by a terminal event (``status = 1``) has its rows after the
    event set to NaN and a message naming the event."""
    rows = np.asarray(hits, dtype=float).reshape(-1, 2 + n)
    which = rows[:, 0].astype(int)
    sol.t_events = [rows[which == k, 1].copy() for k in range(len(events))]
    sol.y_events = [rows[which == k, 2:].reshape((-1,) + sol.y.shape[1:])
                    for k in range(len(events))]
    if sol.status == TERMINATED:
        t_stop = sol.t_reached
        fired = [k for k, ev in enumerate(events)
                 if ev.stop_after and sol.t_events[k].size >= ev.stop_after
                 and sol.t_events[k][ev.stop_after - 1] == t_stop]
        if not fired:  # the loop and this bookkeeping disagree: never return it as success
            raise RuntimeError(f"internal error: the solve stopped at t={t_stop!r} but no "
                               "terminal event occurred there; please report this.")
        _terminate(sol, events[fired[0]], t_stop)
    return sol


def _terminate(sol, event, t_stop):
    direction = 1.0 if sol.t[-1] >= sol.t[0] else -1.0
    sol.y[direction * (sol.t - t_stop) > 0.0] = np.nan
    sol.status, sol.success, sol.t_reached = TERMINATED, True, float(t_stop)
    if sol.dense is not None:
        # the span ends at the event, as for events located inside the loop
        # (the record's last step runs past it: sol(t) there would answer)
        sol.dense.t_reached = float(t_stop)
    sol.message = (f"A termination event occurred: {event.name} at t={t_stop:.10g}; rows "
                   "of y after it are NaN.")


def locate(events, dense, theta, shape, resolve=None):
    """Find every event's crossings on a dense solution, in integration order.

    ``dense`` is the :class:`nodekit.integrate.DenseSolution` of the solve;
    ``theta`` is what the right-hand side received.  Each event is scanned by
    :func:`nodekit._event_scan.scan` (interpreted: the compiled path is the
    loop's own, see :func:`in_loop`).  Roots at the initial time are not reported (a solve
    restarted at an event must not stop at once), as in SciPy.  A terminal
    event ends the list at its ``stop_after``-th crossing: crossings of any
    event after that time are dropped.
    """
    if not dense.t_grid.size:
        return _found([[] for _ in events], dense, math.nan, -1)
    hits, stops = [], []
    for ev in events:
        times, stopped = _scan_one(ev, dense, theta, shape)
        if resolve is not None:
            times = np.array([_refine(ev, dense, tau, resolve, theta, shape)
                              for tau in times], dtype=float)
        hits.append(times)
        stops.append(times[-1] if stopped else math.nan)
    which, t_stop = -1, math.nan
    for i, ts in enumerate(stops):   # the earliest terminal stop, in integration order
        if not math.isnan(ts) and (which < 0 or dense.direction * (ts - t_stop) < 0.0):
            which, t_stop = i, ts
    if which >= 0:
        hits = [h[dense.direction * (h - t_stop) <= 0.0] for h in hits]
    return _found(hits, dense, t_stop, which, resolve)


def _step_of(dense, tau):
    """The index of the recorded step whose span holds ``tau``."""
    k = int(np.searchsorted(dense.direction * dense.t_grid, dense.direction * tau,
                            side="right")) - 1
    return min(max(k, 0), dense.t_grid.size - 1)


def _state_at(dense, tau, resolve, k=None):
    """``y(tau)`` re-solved from the start of the recorded step ``k`` (by
    default the one holding ``tau``) with ``resolve``, in ``dense.shape``;
    the dense output's value where that solve fails."""
    k = _step_of(dense, tau) if k is None else k
    t_k, y_k = float(dense.t_grid[k]), dense.y_grid[k]
    y = y_k if tau == t_k else resolve(t_k, y_k, tau)
    return dense(tau) if y is None else np.reshape(y, dense.shape)  # (a failed re-solve)


def _refine(ev, dense, tau, resolve, theta, shape):
    """The root ``tau`` of ``ev`` found on the dense output, located again on
    the solution itself: Brent's method on ``g(s, y(s))`` over the step that
    holds it, with ``y(s)`` re-solved from the step's start by ``resolve``
    (at the solve's tolerances).  For methods whose dense output is less
    accurate than their steps (the ESDIRK methods' Hermite cubic: event
    times were off by about 100 times rtol on Robertson).  Where the step's
    ends do not bracket one sign change (two crossings in one step, a zero
    at an end), ``tau`` is kept."""
    from scipy.optimize import brentq
    k = _step_of(dense, tau)
    t_k = float(dense.t_grid[k])
    t_end = float(dense.t_grid[k] + dense.h_grid[k])
    if tau == t_k or tau == t_end:
        return tau

    def phi(s):
        return float(ev(s, np.reshape(_state_at(dense, s, resolve, k), shape), theta))

    g_start, g_end = phi(t_k), phi(t_end)
    if not g_start * g_end < 0.0:
        return tau
    return float(brentq(phi, min(t_k, t_end), max(t_k, t_end),
                        xtol=4.0 * np.finfo(float).eps * max(abs(t_k), abs(t_end), 1e-300)))


def _scan_one(ev, dense, theta, shape):
    """``(times, stopped)`` of one event over the steps of ``dense``."""
    out = np.empty(dense.t_grid.size)

    def g(t, y, th):
        return ev(t, np.reshape(y, shape), th)
    count, stopped = _event_scan.scan(g, theta, dense.tableau.P, dense.t_grid, dense.h_grid,
                                      dense.y_grid, dense.K_grid, float(dense.t_reached),
                                      ev.direction, ev.stop_after, out)
    return out[:count].copy(), bool(stopped)


def _found(hits, dense, t_stop, which, resolve=None):
    ts = [np.array(h, dtype=float) for h in hits]
    if resolve is None:
        ys = [dense(t) if t.size else np.empty((0,) + dense.shape) for t in ts]
    else:
        ys = [np.array([_state_at(dense, tau, resolve) for tau in t]).reshape(
            (t.size,) + dense.shape) for t in ts]
    return Found(ts, ys, t_stop, which)


def apply(sol, events, theta, shape, resolve=None):
    """Add ``t_events``/``y_events`` to a :class:`nodekit.Solution`; a terminal
    event ends it (``status = 1``, rows after the event NaN).  ``resolve(t0,
    y0, t1)``, when given, is ``y(t1)`` solved from ``(t0, y0)`` at the
    solve's options (None if that solve fails): each root is then located on
    the solution itself, not on the dense output (see :func:`_refine`)."""
    found = locate(events, sol.dense, theta, shape, resolve)
    sol.t_events, sol.y_events = found.t_events, found.y_events
    if found.which >= 0:
        _terminate(sol, events[found.which], found.t_stop)
    return sol


# ---------------------------------------------------------------------------
# Differentiable event times
# ---------------------------------------------------------------------------
class NoEventError(RuntimeError):
    """:func:`odeint_event` found no event before ``t_max``."""


#: The options of :func:`odeint_event` that the event search passes to
#: ``nk.solve``: those of the forward solve.
_SEARCH_OPTIONS = FORWARD


def _search(fun, y0, t0, theta, event, t_max, options):
    from .integrate import solve
    opts = {k: v for k, v in options.items() if k in _SEARCH_OPTIONS}
    sol = solve(fun, y0, [t0, t_max], theta, events=Event(event.g, True, event.direction,
                                                           event.name), **opts)
    if sol.status != TERMINATED:
        if not sol.success:
            raise NoEventError(f"nk.odeint_event: the solve failed before an event: "
                               f"{sol.message}")
        raise NoEventError(f"nk.odeint_event: event {event.name} has no root between "
                           f"t0={t0!r} and t_max={t_max!r}; raise `t_max` or check the "
                           "event function's sign at t0.")
    return sol.t_reached


class _Config(NamedTuple):
    fun: object
    event: Event
    t_max: float
    options: dict
    no_theta: bool


@primitive
def _event_time(y0, t0, theta, config):
    return _search(config.fun, y0, t0, None if config.no_theta else theta, config.event,
                   config.t_max, config.options)


def _event_time_vjp(argnums, t_star, args, kwargs):
    from .primitive import odeint
    y0, t0, theta, config = args
    fun, event = config.fun, config.event
    th = None if config.no_theta else theta

    def y_end(y0_, t0_, th_):
        return odeint(fun, y0_, anp.stack([t0_, t_star]),
                      None if config.no_theta else th_, **config.options)[-1]

    vjp_y, y_star = autograd.make_vjp(y_end, argnum=(0, 1, 2))(y0, t0, theta)
    if th is None:
        dg_dt, dg_dy = autograd.grad(lambda t, y: event.g(t, y, None), (0, 1))(
            t_star, y_star)
        dg_dth = 0.0
    else:
        dg_dt, dg_dy, dg_dth = autograd.grad(event.g, (0, 1, 2))(t_star, y_star, th)
    f_star = _rhs(fun, t_star, y_star, th)
    dg_dy = np.asarray(dg_dy, dtype=float)
    denom = float(dg_dt) + float(np.sum(dg_dy * f_star))
    scale = abs(float(dg_dt)) + float(np.linalg.norm(dg_dy) * np.linalg.norm(f_star))
    if not abs(denom) > GRAZING * scale:
        from .adjoint import GradientError
        raise GradientError(
            f"nk.odeint_event: the trajectory grazes the event {event.name} at "
            f"t={t_star:.10g}: dg/dt + dg/dy . f = {denom:.3g} against a scale of "
            f"{scale:.3g}, so the event time is not differentiable there (its derivative "
            "would be huge and meaningless). Move the event surface or the initial "
            "state away from tangency.")
    gy0, gt0, gth = vjp_y(np.asarray(dg_dy, dtype=float))
    grads = {0: gy0, 1: gt0, 2: np.asarray(gth) + np.asarray(dg_dth)}

    def vjp(g):
        c = -g / denom
        return tuple(c * np.asarray(grads[i]) for i in argnums)

    return vjp


defvjp_argnums(_event_time, _event_time_vjp)


def _rhs(fun, t, y, theta):
    from .ode import ODE
    if isinstance(fun, ODE):
        out = np.empty(np.size(y))
        fun.rhs(t, np.ascontiguousarray(np.ravel(y), dtype=float),
                np.ascontiguousarray(theta, dtype=float), out)
        return out.reshape(np.shape(y))
    return np.asarray(fun(t, y, theta), dtype=float)


def odeint_event(fun, y0, t0, theta=None, event=None, *, t_max, **options):
    """Integrate from ``t0`` until the first root of ``event``; differentiably.

    Returns ``(t_event, y_event)``.  ``autograd.grad`` works through both
    with respect to ``y0``, ``t0`` and ``theta``: the event time by the
    implicit function theorem at the event combined with one adjoint solve
    (no differentiation through the root finder), the state through
    :func:`nodekit.odeint`.  Hybrid systems compose in autograd: solve to an
    event, apply a jump written with ``autograd.numpy``, solve again.

    Parameters
    ----------
    fun, y0, theta
        As for :func:`nodekit.odeint`.
    t0 : float
        Initial time.
    event : callable or nk.Event
        ``g(t, y, theta) -> float`` written with ``autograd.numpy`` (its
        derivatives enter the gradient); its ``direction`` is honoured.  A
        root at ``t0`` itself is not an event.
    t_max : float
        End of the search; no root before it raises :class:`NoEventError`.
    **options
        Options of :func:`nodekit.odeint` (method, tolerances, gradient).

    Returns
    -------
    t_event : float
    y_event : ndarray, shape y0.shape

    Raises
    ------
    NoEventError
        No event between ``t0`` and ``t_max``.
    nodekit.GradientError
        Differentiating at a (nearly) grazing event, where
        ``dg/dt + dg/dy . f`` vanishes.

    Examples
    --------
    >>> import autograd, nodekit as nk
    >>> fall = lambda t, y, g: anp.array([y[1], -g[0]])
    >>> ground = nk.Event(lambda t, y, g: y[0], direction=-1)
    >>> t_hit = lambda h: nk.odeint_event(fall, anp.array([h, 0.0]), 0.0, [9.8], ground,
    ...                                   t_max=10.0, rtol=1e-10, atol=1e-12)[0]
    >>> bool(abs(t_hit(5.0) - (2 * 5.0 / 9.8) ** 0.5) < 1e-8)
    True
    >>> bool(abs(autograd.grad(t_hit)(5.0) - 1 / (2 * 9.8 * 5.0) ** 0.5) < 1e-6)
    True
    """
    from .primitive import odeint
    if event is None:
        raise TypeError("nk.odeint_event needs an `event` function g(t, y, theta).")
    event = Event.from_any(event)
    t_max = _checks.as_float_array(getval(t_max), "t_max")  # a bound, not differentiated
    if t_max.ndim or not np.isfinite(t_max):
        raise ValueError(f"`t_max` must be a finite time; got {t_max!r}.")
    no_theta = theta is None
    if not isinstance(y0, ArrayBox):
        y0 = anp.asarray(y0, dtype=float)
    if isinstance(t0, (int, float, np.number)):
        t0 = float(t0)
    config = _Config(fun, event, float(t_max), options, no_theta)
    t_ev = _event_time(y0, t0, np.empty(0) if no_theta else theta, config)
    y_ev = odeint(fun, y0, anp.stack([t0, t_ev]), theta, **options)[-1]
    return t_ev, y_ev
