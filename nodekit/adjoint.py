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
import numpy as np
from autograd import make_vjp

from . import _kernels
from .integrate import python_rhs, run

GRADIENTS = ("adjoint", "interpolated", "discrete")


class GradientError(RuntimeError):
    """A backward (adjoint) solve failed."""


def python_vjp(fun, shape, theta):
    """``vjp(t, y, theta, a, out_y, out_theta)`` for a Python ``fun``, by autograd.

    One trace of ``fun`` per call gives ``a^T df/dy`` and ``a^T df/dtheta``
    together.  ``y`` and ``theta`` arrive flat; ``fun`` sees them in their
    user shapes (``theta`` may be ``None``).
    """
    n = int(np.prod(shape))
    theta_shape = None if theta is None else np.shape(theta)

    def f_flat(z, t):
        y = z[:n].reshape(shape)
        th = None if theta_shape is None else z[n:].reshape(theta_shape)
        return fun(t, y, th)

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
        _kernels.rhs_at_points(record.fun.rhs_cfunc, record.ts, record.ys, record.theta_flat, F)
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
    n = g.shape[1]
    p = record.theta_flat.size
    vjp = _vjp_kernel(record)
    # compiled kernels take the flat vector, Python functions the user's theta
    theta = record.theta_flat if record.compiled else record.theta
    stats = {}
    if record.gradient == "discrete":
        gy0 = np.empty(n)
        gth = np.empty(p)
        dense = record.dense
        reverse = _kernels.reverse_steps if record.compiled else _kernels.reverse_steps_py
        nvjp = reverse(vjp, theta, record.ts, g, dense.tableau.A,
                       dense.tableau.C, dense.tableau.B, dense.tableau.P, dense.t_grid,
                       dense.h_grid, dense.y_grid, dense.K_grid, dense.t_grid.size, gy0, gth)
        stats.update(nfev_backward=int(nvjp), nsteps_backward=int(dense.t_grid.size))
    else:
        gy0, gth = _continuous_backward(record, g, vjp, theta, n, p, need_theta, stats)

    gt = None
    if need_t:
        F = _rhs_at_outputs(record)
        gt = np.einsum("ji,ji->j", g, F)
        gt[0] = -(gy0 - g[0]) @ F[0]
        stats["nfev_backward"] = stats.get("nfev_backward", 0) + record.ts.size
    return gy0, gt, gth, stats


def _continuous_backward(record, g, vjp, theta, n, p, need_theta, stats):
    """The ``"adjoint"`` and ``"interpolated"`` modes: one backward solve.

    It stops only at the output times the loss reads (nonzero cotangent) and
    starts from the last of them: outputs nobody differentiates cost nothing.
    """
    m = record.ts.size
    read = np.flatnonzero(np.any(g != 0.0, axis=1))
    if read.size == 0 or read[-1] == 0:
        stats.update(nfev_backward=0, nsteps_backward=0, naccept_backward=0,
                     nreject_backward=0)
        if record.gradient == "adjoint":
            stats["drift"] = np.full(m, np.nan)
        return g[0].copy(), np.zeros(p)
    keep = np.union1d(read, [0])[::-1]  # backward order, ending at t0
    ts_b = np.ascontiguousarray(record.ts[keep])
    W2 = np.ascontiguousarray(g[keep])
    opts = record.adjoint_options
    if record.gradient == "adjoint":
        W1 = np.ascontiguousarray(record.ys[keep])
        rhs = record.fun.rhs_cfunc if record.compiled else python_rhs(record.fun, record.shape)
        system = _kernels.adjoint_system(rhs, vjp, theta, n, p, W1, W2, need_theta)
        z0 = np.concatenate([W1[0], W2[0], np.zeros(p if need_theta else 0)])
        n_err = 2 * n if opts["seminorm"] else z0.size
    else:
        d = record.dense
        system = _kernels.interpolated_system(vjp, theta, n, p, W2, d.tableau.P,
                                              d.t_grid, d.h_grid, d.y_grid, d.K_grid,
                                              need_theta)
        z0 = np.concatenate([W2[0], np.zeros(p if need_theta else 0)])
        n_err = n if opts["seminorm"] else z0.size
    out, info, _ = run(
        record.compiled, system, z0, ts_b, opts["tableau"], np.full(z0.size, opts["rtol"]),
        np.full(z0.size, opts["atol"]), opts["controller"], max_steps=opts["max_steps"],
        max_step=opts["max_step"], step_size=opts["step_size"], n_err=n_err, jumps=True)
    if info["status"] != 0:
        raise GradientError(
            f"The backward ({record.gradient}) solve failed: {info['message']} "
            "Try a tighter forward tolerance, gradient='interpolated' (no backwards "
            "integration of y), seminorm=True, or a larger `max_steps`.")
    z = out[-1]
    stats.update(nfev_backward=info["nfev"], nsteps_backward=info["nsteps"],
                 naccept_backward=info["naccept"], nreject_backward=info["nreject"])
    if record.gradient == "adjoint":
        drift = np.full(m, np.nan)  # per output time, NaN where the pass did not stop
        drift[keep] = system[4]
        stats["drift"] = drift
        gth = z[2 * n:].copy()
        return z[n:2 * n].copy(), gth if need_theta else np.zeros(p)
    return z[:n].copy(), z[n:].copy() if need_theta else np.zeros(p)


def check_gradient(gradient):
    if gradient not in GRADIENTS:
        raise ValueError(f"`gradient` must be one of {', '.join(map(repr, GRADIENTS))}; "
                         f"got {gradient!r}.")
    return gradient


