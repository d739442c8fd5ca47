"""Bounded-memory discrete gradients: the forward pass in checkpointed segments,
and the reverse sweep that recomputes each segment once.

The forward pass runs the integration loop in segments of a bounded number of
attempted steps, each with its step record (``dense=True``).  Only the state
where each segment starts is kept (a :class:`Checkpoint`); the record of the
last segment is kept for the reverse sweep, every other one is dropped.  The
reverse sweep replays the segments last to first from their checkpoints (the
same loop, the same inputs, so bit for bit the same steps) and runs the
discrete reverse sweep over each replayed record.

This is the two-level scheme (checkpoints, then one recomputation of every
step) rather than Griewank and Walther's binomial "revolve" schedule: it
recomputes each step exactly once (the gradient costs at most one more forward
pass), which the 2x time target needs, while memory is the checkpoints (a
state each) plus one segment's record.  When more than ``max_checkpoints``
segments would be needed, neighbouring segments merge in pairs and the
segment length doubles, so the checkpoint count stays bounded too.

To resume a segment exactly where the previous one stopped, the loop is
started again with ``first_step`` equal to the step size the uninterrupted
loop would have proposed next.  The loop does not return that proposal, so
:func:`next_proposal` re-derives it from the segment's record with the loop's
own compiled pieces (``error_norm``, ``accept_factor``).  With the default
integral controller this reproduces the uninterrupted step sequence, and the
gradient equals the un-checkpointed one to round-off; a PI controller
(``pcoeff != 0``) also remembers the previous error, which a restart resets,
so there the steps after each checkpoint differ at the tolerance level (the
gradient is still the exact one of the computation performed).

References
----------
.. [1] A. Griewank, A. Walther, "Algorithm 799: revolve: an implementation of
   checkpointing for the reverse or adjoint mode of computational
   differentiation", ACM TOMS 26(1), 2000.
"""
from typing import NamedTuple

import numpy as np

from . import _checks, _jitflags, _kernels
from .controllers import accept_factor, error_norm
from .integrate import STATUS_MESSAGES, integrate, python_rhs, run
from .ode import ODE
from .tableaux import get_tableau

#: Attempted steps of a segment before any merging: a solve shorter than this
#: is one segment, reversed from its own record without recomputation.
SEGMENT_STEPS = 1024
#: Default bound on the number of checkpoints (``checkpoints=None``).
DEFAULT_CHECKPOINTS = 1000


class Checkpoint(NamedTuple):
    """Where a segment starts: time, state, first step size, attempted steps."""

    t: float
    y: np.ndarray
    first_step: float
    attempts: int


class Tape(NamedTuple):
    """What the reverse sweep needs: the checkpoints, the last segment's record,
    and how to run the loop again."""

    checkpoints: list
    last: object           # DenseSolution of the last segment
    replay: object         # callable(checkpoint) -> DenseSolution
    t_end: float


@_jitflags.jit
def next_proposal(t_grid, h_grid, y_grid, K_grid, count, h_abs, t_end, B, E, E2, has_e2,
                  rtol, atol, n_err, ctrl, exponent, max_step, y_end):
    """The step size the loop would attempt after the recorded steps.

    Walks the record of a segment that started with ``first_step = h_abs`` the
    way the loop's controller did: each accepted step was retried after a
    rejection exactly when its size differs from the clipped proposal.  Writes
    the state after the last step into ``y_end``.
    """
    direction = 1.0 if t_end >= t_grid[0] else -1.0
    for k in range(count):
        t = t_grid[k]
        h = h_grid[k]
        t_new, _ = _kernels.adaptive_step(t, h_abs, t_end, direction, max_step)
        after_reject = (t_new - t) != h
        if k + 1 < count:
            ynew = y_grid[k + 1]  # the loop stored the state it reached
        else:
            _kernels.combine(y_grid[k], h, B, K_grid[k], y_end)
            ynew = y_end
        err = error_norm(h, E, E2, has_e2, K_grid[k], y_grid[k], ynew, rtol, atol, n_err)
        h_abs = abs(h) * accept_factor(err, 1.0, exponent, ctrl, after_reject)
    return h_abs


def solve(fun, y0, t, theta, opts):
    """The forward solve of ``gradient="discrete"`` with at most
    ``opts.checkpoints`` checkpoints (``opts``: an
    :class:`~nodekit.options.Options` record).

    The first segment is an ordinary :func:`nodekit.integrate.integrate` call
    (which validates the input); a solve that ends within it is returned with
    its full record, exactly as without checkpoints.  A longer one is solved
    again in checkpointed segments (:func:`forward`).

    Returns ``(ys, info, record)``, ``record`` a ``DenseSolution`` or a
    :class:`Tape`.
    """
    budget = min(SEGMENT_STEPS, opts.max_steps)
    out, info, dense = integrate(fun, y0, t, theta, opts._replace(max_steps=budget,
                                                                  dense=True))
    if info["status"] != _kernels.FAILED_MAX_STEPS or budget == opts.max_steps:
        return out, info, dense
    compiled = isinstance(fun, ODE)
    shape = info["shape"]
    theta = None if theta is None and not compiled else _checks.check_theta(theta, flat=compiled)
    system = _kernels.OdeSystem(fun.rhs_cfunc if compiled else python_rhs(fun, shape), theta)
    y0f = np.ascontiguousarray(np.ravel(np.asarray(y0, dtype=np.float64)))
    return forward(compiled, system, y0f, info["t"], get_tableau(opts.method),
                   _checks.check_tol(opts.rtol, "rtol", shape),
                   _checks.check_tol(opts.atol, "atol", shape), opts.controller,
                   first_step=opts.first_step, max_step=opts.max_step,
                   max_steps=opts.max_steps, step_size=opts.step_size,
                   max_checkpoints=opts.checkpoints, shape=shape, start=(out, info, dense))


def forward(compiled, system, y0, ts, tableau, rtol, atol, controller, *, first_step,
            max_step, max_steps, step_size, max_checkpoints, shape, start=None):
    """The forward solve in checkpointed segments (validated, flat input);
    ``start``: the first segment's ``run`` result, when already computed.

    Returns ``(out, info, tape)`` as :func:`nodekit.integrate.run` returns
    ``(ys, info, dense)``; ``info`` sums the counts over the segments.
    """
    m, n = ts.size, y0.size
    direction = 1.0 if ts[-1] >= ts[0] else -1.0
    adaptive = step_size is None
    exponent = -1.0 / ((tableau.error_order or tableau.order) + 1.0)

    def segment(t, y, first, budget, record=True):
        ts_seg = np.concatenate([[t], ts[direction * (ts - t) > 0.0]])
        return ts_seg, run(compiled, system, y, ts_seg, tableau, rtol, atol, controller,
                           first_step=first, max_step=max_step, max_steps=budget,
                           step_size=step_size, dense=record, shape=shape)

    out = np.full((m, n), np.nan)
    out[0] = y0
    checkpoints = []
    totals = {"nfev": 0, "nsteps": 0, "naccept": 0, "nreject": 0}
    t, y, first, length = float(ts[0]), y0.copy(), first_step, SEGMENT_STEPS
    while True:
        budget = min(length, max_steps - totals["nsteps"])
        if start is None:
            ts_seg, (o, info, dense) = segment(t, y, first, budget)
        else:  # the first segment, from the caller
            ts_seg, (o, info, dense), start = ts, start, None
        for key in totals:
            totals[key] += info[key]
        row = m - ts_seg.size + 1  # the global row of ts_seg[1]
        out[row:row + info["n_out"] - 1] = o[1:info["n_out"]]
        if len(checkpoints) >= max_checkpoints:
            checkpoints = _merge_pairs(checkpoints)
            length *= 2
        checkpoints.append(Checkpoint(t, y, first, info["nsteps"]))
        if info["status"] != _kernels.FAILED_MAX_STEPS or totals["nsteps"] >= max_steps:
            break
        y_next = np.empty(n)
        if adaptive:
            if first is None:
                # the loop chose the first step itself: ask it (one attempted step)
                _, (_, probe, _) = segment(t, y, None, 1, record=False)
                first = abs(probe["h_last"])
                totals["nfev"] += probe["nfev"]
            first = next_proposal(dense.t_grid, dense.h_grid, dense.y_grid, dense.K_grid,
                                  dense.t_grid.size, first, float(ts[-1]), tableau.B,
                                  tableau.E, tableau.E2, tableau.has_e2, rtol, atol, n,
                                  controller.array, exponent, float(max_step), y_next)
        else:
            _kernels.combine(dense.y_grid[-1], dense.h_grid[-1], tableau.B,
                             dense.K_grid[-1], y_next)
        t, y = info["t_reached"], y_next
    info = dict(info, **totals, max_steps=max_steps, t=ts)
    if info["status"] == _kernels.FAILED_MAX_STEPS:  # the count is the whole solve's
        info["message"] = STATUS_MESSAGES[info["status"]].format(
            t=info["t_reached"], h=info["h_last"], **{k: info[k] for k in (
                "nsteps", "nfev", "naccept", "nreject", "max_steps")})

    def replay(cp):
        return segment(cp.t, cp.y, cp.first_step, cp.attempts)[1][2]

    return out, info, Tape(checkpoints, dense, replay, float(ts[-1]))


def _merge_pairs(checkpoints):
    """Halve the checkpoints: each pair of segments becomes one (replaying the
    first from its checkpoint runs straight through the second)."""
    merged = []
    for i in range(0, len(checkpoints), 2):
        a = checkpoints[i]
        attempts = a.attempts + (checkpoints[i + 1].attempts if i + 1 < len(checkpoints) else 0)
        merged.append(a._replace(attempts=attempts))
    return merged


def reverse(tape, reverse_steps, vjp, theta, ts, g, tableau, p):
    """``(dL/dy0, dL/dtheta, nvjp, nsteps)``: the discrete reverse sweep over the
    segments, last to first, each replayed from its checkpoint."""
    n = g.shape[1]
    direction = 1.0 if ts[-1] >= ts[0] else -1.0
    cps = tape.checkpoints
    ybar = np.zeros(n)
    thbar = np.zeros(p)
    nvjp = nsteps = 0
    ends = [cp.t for cp in cps[1:]] + [tape.t_end]
    for s in range(len(cps) - 1, -1, -1):
        dense = tape.last if s == len(cps) - 1 else tape.replay(cps[s])
        t0, t1 = cps[s].t, ends[s]
        inside = np.flatnonzero((direction * (ts - t0) > 0.0) & (direction * (ts - t1) <= 0.0))
        # the cotangent arriving at the segment's end enters as one more output there
        ts_seg = np.concatenate([[t0], ts[inside]])
        g_seg = np.concatenate([g[:1] if s == 0 else np.zeros((1, n)), g[inside]])
        if inside.size and ts[inside[-1]] == t1:
            g_seg[-1] += ybar
        else:
            ts_seg = np.append(ts_seg, t1)
            g_seg = np.vstack([g_seg, ybar])
        ybar = np.empty(n)
        th = np.empty(p)
        count = dense.t_grid.size
        nvjp += reverse_steps(vjp, theta, ts_seg, np.ascontiguousarray(g_seg), tableau.A,
                              tableau.C, tableau.B, tableau.P, dense.t_grid, dense.h_grid,
                              dense.y_grid, dense.K_grid, count, ybar, th)
        thbar += th
        nsteps += count
    return ybar, thbar, int(nvjp), nsteps
