"""``nk.odeint``: an ODE solve as an autograd primitive.

The only module that touches ``autograd.extend``.  One backward solve serves
every requested argument (``defvjp_argnums``), and only the gradients asked
for are formed.
"""
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from . import _checks
from .adjoint import GRADIENTS, backward, strategy
from ._checkpoint import DEFAULT_CHECKPOINTS
from .check import check_vjp_first_call
from ._errors import SolveError
from .ode import ODE
from .controllers import PIController
from .options import (DEFAULT_CONTROLLER, DEFAULTS as D, ODEINT, Options, explain_unknown,
                      remember)
from .tableaux import get_tableau
from ._implicit import is_stiff, stiff_tableau
from .tableaux.esdirk import ESDIRKTableau

#: The options of :func:`odeint` (read by the models that pass them on).
_ODEINT_OPTIONS = ODEINT


class ForwardRecord:
    """What the backward pass needs from a forward solve."""

    def __init__(self, fun, ts, ys, theta, shape, strategy, dense, adjoint_options, stats,
                 naccept):
        self.fun = fun
        self.compiled = isinstance(fun, ODE)
        self.ts = ts
        self.ys = ys
        self.theta = theta
        self.theta_flat = np.ascontiguousarray(np.ravel(theta), dtype=np.float64) \
            if theta is not None else np.empty(0)
        self.shape = shape
        self.strategy = strategy
        self.dense = dense
        self.adjoint_options = adjoint_options
        self.stats = stats
        #: the mean accepted forward step: the backward solve's first step
        self.mean_step = abs(ts[-1] - ts[0]) / max(naccept, 1)


class _RecordSlot:
    """Where one traced call of :func:`_odeint` leaves its :class:`ForwardRecord`.

    It travels in the primitive's own arguments, so the VJP finds the record
    of its call without any global table, and the record lives exactly as
    long as autograd's graph node (which holds the arguments).  Untraced
    calls get no slot and record nothing.
    """

    __slots__ = ("record",)

    def __init__(self):
        self.record = None


class _Config(NamedTuple):
    """What a call of :func:`_odeint` passes besides the differentiable arguments."""

    fun: object
    opts: Options         #: the forward options (``checkpoints`` resolved)
    strategy: object      #: the gradient mode (see :mod:`nodekit.adjoint`)
    adjoint: dict         #: the backward solve's options
    theta_none: bool      #: the user passed no ``theta``
    stats: dict
    slot: object          #: a :class:`_RecordSlot` when traced, else None


@primitive
def _odeint(y0, t, theta, config):
    strategy, slot, stats = config.strategy, config.slot, config.stats
    theta_user = None if config.theta_none else theta
    out, info, dense = strategy.forward(config.fun, y0, t, theta_user, config.opts,
                                        slot is not None)
    if info["status"] != 0:
        raise SolveError(f"nk.odeint: the forward solve failed: {info['message']}")
    stats.update(nfev_forward=info["nfev"], nsteps_forward=info["nsteps"],
                 naccept_forward=info["naccept"], nreject_forward=info["nreject"])
    if slot is not None:
        slot.record = ForwardRecord(config.fun, info["t"], out, theta_user, info["shape"],
                                    strategy, dense, config.adjoint, stats, info["naccept"])
    return out.reshape((info["t"].size,) + info["shape"])


def _odeint_vjp(argnums, ans, args, kwargs):
    if isbox(ans):
        raise NotImplementedError(
            "Second-order derivatives (autograd.hessian, grad of grad) through nk.odeint "
            "are not supported: its backward pass is not itself differentiable. Use "
            "finite differences of first-order gradients, or differentiate once.")
    y0, t, theta, config = args
    record = config.slot.record

    def vjp(g):
        if record.compiled and record.fun.vjp is not None:
            check_vjp_first_call(record.fun, record.ts[0], record.ys[0], record.theta_flat)
        g = np.reshape(g, (record.ts.size, -1))
        gy0, gt, gth, stats = backward(record, g, need_t=1 in argnums,
                                       need_theta=2 in argnums)
        record.stats.update(stats)
        grads = {0: gy0.reshape(np.shape(y0)),
                 1: None if gt is None else gt.reshape(np.shape(t)),
                 2: gth.reshape(np.shape(theta))}
        return tuple(grads[i] for i in argnums)

    return vjp


defvjp_argnums(_odeint, _odeint_vjp)


@explain_unknown(ODEINT)
def odeint(fun, y0, t, theta=None, *, method=D.method, rtol=D.rtol, atol=D.atol,
           first_step=D.first_step, max_step=D.max_step, max_steps=D.max_steps,
           step_size=D.step_size, controller=D.controller, gradient=D.gradient,
           adjoint_method=D.adjoint_method, adjoint_rtol=D.adjoint_rtol,
           adjoint_atol=D.adjoint_atol, seminorm=D.seminorm, checkpoints=D.checkpoints,
           stats=D.stats):
    """Solve an ODE and return ``y(t)``, differentiably.

    ``autograd.grad``, ``value_and_grad`` and ``jacobian`` work through it
    with respect to ``y0``, every entry of ``t`` (including ``t[0]``) and
    ``theta``, for Python and compiled right-hand sides alike, inside any
    autograd-NumPy computation.

    Parameters
    ----------
    fun : callable or nk.ODE
        ``fun(t, y, theta) -> dy/dt`` written with ``autograd.numpy``, or an
        :class:`nk.ODE` with a ``vjp`` kernel (then the backward pass runs in
        nopython mode with no autograd tape).
    y0 : array_like
        Initial state, any shape.
    t : array_like, shape (m,)
        Output times, strictly monotone, ``t[0]`` the initial time.
    theta : array_like, optional
        Parameters (flat for an ``nk.ODE``).
    method, rtol, atol, max_steps, max_step, first_step, step_size, controller
        As in :func:`nodekit.solve`.
    gradient : {'adjoint', 'interpolated', 'discrete'}, default 'adjoint'
        How the backward pass is computed; see :mod:`nodekit.adjoint`.
        ``'adjoint'``: memory independent of the number of steps, but ``y``
        is integrated backwards, which drifts on dissipative or chaotic
        problems: ``stats['drift']`` reports it, and a drift above 1000 times
        the backward tolerance emits :class:`nodekit.AdjointDriftWarning`.
        ``'interpolated'``: reads ``y`` from the forward dense output (memory
        grows with the steps).
        ``'discrete'``: the exact gradient of the discrete forward computation
        with respect to ``y0`` and ``theta``.  Gradients with respect to ``t``
        are the continuous-time ones in every mode (``dL/dt_j = dL/dy_j .
        f(t_j, y_j)``), which differ from those of the discrete computation by
        the method's error.
    adjoint_method, adjoint_rtol, adjoint_atol : optional
        Method and tolerances of the backward solve (default: the forward's).
    checkpoints : int, optional
        ``'discrete'`` only: bound the memory of a long solve.  The forward
        pass records steps in segments (1024 attempted steps, doubling when
        more than ``checkpoints`` segments would be needed), keeps only the
        state where each segment starts, and the backward pass recomputes
        each segment once from it: memory O(checkpoints + one segment), at
        most one extra forward pass, the same gradient to round-off.  Solves
        shorter than one segment are not recomputed.  Default: at most 1000
        checkpoints; ``0`` records every step.
    seminorm : bool, default False
        Leave the parameter-gradient quadrature out of the backward error
        norm (Kidger, Chen and Lyons 2021): fewer backward steps, with the
        error of ``y`` and ``a`` still controlled.
    stats : dict, optional
        Filled with ``nfev_forward``, ``nsteps_forward``, and after a backward
        pass ``nfev_backward``, ``nsteps_backward`` (and ``drift``, the
        relative distance between the backwards-integrated and the stored
        ``y`` at every output time, for ``'adjoint'``).

    Returns
    -------
    ndarray, shape (m,) + y0.shape

    Raises
    ------
    SolveError
        If the forward solve fails (never a gradient of garbage).
    nodekit.adjoint.GradientError
        If the backward solve fails.
    TypeError
        Differentiating an ``nk.ODE`` that has no ``vjp`` kernel.
    NotImplementedError
        Second-order derivatives (``autograd.hessian``, grad of grad).

    Warns
    -----
    nodekit.AdjointDriftWarning
        ``gradient='adjoint'`` whose backsolve drifted (gradient unreliable).
    nodekit.UntracedFunctionWarning
        A Python ``fun`` whose output autograd cannot trace (plain NumPy).

    References
    ----------
    .. [1] R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural
       Ordinary Differential Equations", NeurIPS 2018.
    .. [2] P. Kidger, R. T. Q. Chen, T. Lyons, "'Hey, that's not an ODE':
       Faster ODE Adjoints via Seminorms", ICML 2021.

    Examples
    --------
    >>> import autograd, autograd.numpy as anp, nodekit as nk
    >>> loss = lambda k: anp.sum(nk.odeint(lambda t, y, k: -k * y, [1.0], [0., 1.], k,
    ...                                    rtol=1e-10, atol=1e-12)[-1])
    >>> bool(abs(autograd.grad(loss)(0.5) + anp.exp(-0.5)) < 1e-7)
    True
    """
    gradient = strategy(gradient)
    if controller is None:
        controller = DEFAULT_CONTROLLER
    adj = backward_options(gradient, method, rtol, atol, adjoint_method, adjoint_rtol,
                           adjoint_atol, seminorm, max_steps, max_step, step_size, controller)
    opts = Options(method=method, rtol=rtol, atol=atol, first_step=first_step,
                   max_step=max_step, max_steps=max_steps, step_size=step_size,
                   controller=controller, checkpoints=_checkpoints(checkpoints))
    if stats is None:
        stats = {}
    elif not isinstance(stats, dict):
        raise TypeError(f"`stats` must be a dict to fill; got {type(stats).__name__}.")
    theta_none = theta is None
    if theta_none:
        theta = np.empty(0)
    # record the forward pass only when a gradient can be asked for
    slot = _RecordSlot() if any(isbox(a) for a in (y0, t, theta)) else None
    if slot is not None and is_stiff(method):
        _check_stiff_gradient(method, gradient)
    return _odeint(y0, t, theta, _Config(fun, opts, gradient, adj, theta_none, stats, slot))


#: Exact types of the arguments of :func:`backward_options` whose results are
#: remembered (after the strategy; ``bool`` is not ``int`` here).
_BACKWARD_KEY_TYPES = ((str,), (float,), (float,), (type(None), str), (type(None), float),
                       (type(None), float), (bool,), (int,), (float, int),
                       (type(None), float, int), (PIController,))
#: Results of :func:`backward_options` by arguments of those types.
_BACKWARD_OPTIONS = {}


def backward_options(gradient, method, rtol, atol, adjoint_method, adjoint_rtol,
                     adjoint_atol, seminorm, max_steps, max_step, step_size, controller):
    """The options of the backward solve of ``gradient`` (a strategy of
    :mod:`nodekit.adjoint`), checked, from :func:`odeint`'s arguments
    (``controller`` already resolved): a read-only mapping of the tableau (and ``stiff``:
    whether it is a stiff one), scalar tolerances (the tightest forward ones
    by default), ``seminorm``, ``max_steps``, ``max_step``, ``controller``
    and the fixed ``step_size`` (or None).

    Remembered for arguments of the plain types of
    :data:`_BACKWARD_KEY_TYPES` (a pure function of them: every training
    iteration passes the same options).
    """
    args = (method, rtol, atol, adjoint_method, adjoint_rtol, adjoint_atol, seminorm,
            max_steps, max_step, step_size, controller)
    key = (gradient,) + args if all(
        type(a) in types for a, types in zip(args, _BACKWARD_KEY_TYPES)) else None
    adj = _BACKWARD_OPTIONS.get(key) if key is not None else None
    if adj is None:
        adj = MappingProxyType(_backward_options(gradient, *args))
        if key is not None:
            remember(_BACKWARD_OPTIONS, key, adj)
    return adj


def _backward_options(gradient, method, rtol, atol, adjoint_method, adjoint_rtol,
                      adjoint_atol, seminorm, max_steps, max_step, step_size, controller):
    """:func:`backward_options`, computed."""
    backward_method = adjoint_method or _backward_method(method)
    stiff = is_stiff(backward_method)
    adjoint_tableau = stiff_tableau(backward_method) if stiff else get_tableau(backward_method)
    adj_step = None
    if stiff:
        pass  # adaptive; a `step_size` is refused by the forward solve
    elif not adjoint_tableau.is_adaptive:
        if step_size is None and adjoint_method is not None:
            raise ValueError(
                f"`step_size` is required for the fixed-step adjoint_method "
                f"{adjoint_tableau.name!r} (the backward solve takes steps of `step_size`); "
                "pass step_size=h, or choose an adaptive adjoint_method such as 'dopri5'.")
        # a fixed-step forward `method` without `step_size`: the forward solve's
        # validation says that the method needs one
        adj_step = step_size
    elif step_size is not None and adjoint_method is None:
        adj_step = step_size  # a fixed-step forward pass gets a fixed-step backward pass
    adj = dict(
        tableau=adjoint_tableau, stiff=stiff,
        rtol=_scalar_tol(adjoint_rtol, rtol, "adjoint_rtol"),
        atol=gradient.backward_atol(_scalar_tol(adjoint_atol, atol, "adjoint_atol")),
        seminorm=bool(seminorm),
        max_steps=_checks.check_positive(max_steps, "max_steps", integer=True),
        max_step=max_step, controller=controller, step_size=adj_step)
    return adj


#: Stiff methods whose continuous backward pass runs another method by default:
#: Rodas5's error estimate (its last stage) is identically zero on components
#: that depend on time alone, such as the adjoint's parameter quadrature, so
#: that quadrature would go unchecked; Rodas4's estimate controls it.
BACKWARD_METHOD = {"rodas5": "rodas4"}


def _backward_method(method):
    """The default ``adjoint_method`` for the forward ``method``."""
    if isinstance(method, str):
        return BACKWARD_METHOD.get(method.strip().lower(), method)
    return BACKWARD_METHOD.get(getattr(method, "name", None), method)


def _check_stiff_gradient(method, gradient):
    """A gradient through the stiff ``method`` is asked for: available are
    ``gradient='interpolated'``, and ``'discrete'`` for the ESDIRK methods
    (see the stiff-problems page)."""
    tab = stiff_tableau(method)
    if gradient.name == "interpolated" or (gradient.name == "discrete"
                                           and isinstance(tab, ESDIRKTableau)):
        return
    why = ("its backward pass would integrate y backwards in time, where the stiff, "
           "quickly decaying modes grow just as quickly, so no step size can follow them"
           if gradient.name == "adjoint" else
           "the exact derivative of Rosenbrock stages needs second derivatives of f "
           "(they contain J(y)), which is not implemented")
    also = " or 'discrete'" if isinstance(tab, ESDIRKTableau) else \
        " (or an ESDIRK method, 'kvaerno5' or 'trbdf2', with gradient='discrete')"
    raise ValueError(
        f"gradient={gradient.name!r} is not available through the stiff method "
        f"{tab.name!r}: {why}. Use gradient='interpolated'{also} (y read from the forward "
        "solution, the adjoint integrated backwards by a stiff method too).")


def _checkpoints(k):
    """``checkpoints``: None (the default bound), 0 (record every step) or K >= 2."""
    if k is None:
        return DEFAULT_CHECKPOINTS
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0 or k == 1:
        raise ValueError("`checkpoints` must be None (at most "
                         f"{DEFAULT_CHECKPOINTS} stored states), 0 (record every step) or "
                         f"an integer >= 2; got checkpoints={k!r}.")
    return int(k)


def _scalar_tol(tol, forward, name):
    """The backward tolerance: given, or the tightest forward one."""
    if tol is None:
        return forward if type(forward) is float else float(np.min(forward))
    return float(_checks.check_positive(tol, name))


__all__ = ["odeint", "SolveError", "GRADIENTS"]
