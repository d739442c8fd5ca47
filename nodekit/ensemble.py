"""``nk.solve_ensemble``: many independent solves of one ODE, on every core
or on a Dask cluster.

Every trajectory is an ordinary single solve: the same compiled loop
(:func:`nodekit._kernels.integrate`) with the same arguments that
:func:`nodekit.solve` would pass it, so each trajectory takes exactly the
steps it would take alone (its own step sizes, no lockstep, no masking) and
the results equal single solves bit for bit.

For a compiled :class:`nodekit.ODE` a chunk of trajectories runs in one
nopython call (:func:`_run_chunk`) that releases the GIL, so chunks run in
parallel in a thread pool.  With a ``dask.distributed`` client, chunks are
tasks on the cluster's workers, each running the same local path.
"""
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NamedTuple

import autograd.numpy as anp
import numba as nb
import numpy as np
from autograd import make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.numpy.numpy_boxes import ArrayBox

from . import _checks, _interrupt, _jitflags, _kernels
from ._errors import SolveError
from ._interrupt import INTERRUPTED
from .adjoint import backsolve, backsolve_options, time_gradients
from ._warnings import StiffnessWarning
from .integrate import (STATUS_MESSAGES, STIFFNESS_NOTE, integrate, loop_options,
                        loop_tableau)
from .ode import ODE
from .options import DEFAULT_CONTROLLER, DEFAULTS as D, Options
from .primitive import odeint
from .tableaux import get_tableau

#: Columns of the integer statistics kept per trajectory.
_STATS = ("status", "nfev", "nsteps", "naccept", "nreject")


@_jitflags.jit
def _run_chunk(rhs, y0s, thetas, ts, lo, hi, tab, opts, out, istats, fstats):
    """Solve trajectories ``lo .. hi-1``; a leading axis of length 1 in
    ``y0s``, ``thetas`` or ``ts`` is shared by every trajectory."""
    for i in range(lo, hi):
        y0 = y0s[i if y0s.shape[0] > 1 else 0]
        theta = thetas[i if thetas.shape[0] > 1 else 0]
        t = ts[i if ts.shape[0] > 1 else 0]
        res = _kernels.integrate(_kernels.OdeSystem(rhs, theta), y0, t, tab, opts, out[i],
                                 np.empty(y0.size + 2))
        istats[i, 0] = res.status
        if res.status == INTERRUPTED:
            break  # Ctrl-C: leave the rest of the chunk unsolved
        istats[i, 1] = res.nfev
        istats[i, 2] = res.nsteps
        istats[i, 3] = res.naccept
        istats[i, 4] = res.nreject
        fstats[i, 0] = res.t_reached
        fstats[i, 1] = res.h_last
        fstats[i, 2] = res.t_stiff


class EnsembleSolution(NamedTuple):
    """The result of :func:`solve_ensemble`.

    Attributes
    ----------
    t : ndarray, shape (m,) or (N, m)
        The output times (shared, or one row per trajectory).
    y : ndarray, shape (N, m) + y0.shape
        ``y[i]`` is trajectory ``i`` at its output times; after a failure the
        rows past the time reached are NaN, as in :func:`nodekit.solve`.
    status : ndarray of int, shape (N,)
        Per-trajectory status codes (0 success; negative: see
        :class:`nodekit.Solution`).
    messages : list of str
        Per-trajectory messages.
    nfev, nsteps, naccept, nreject : ndarray of int, shape (N,)
        Per-trajectory counts.
    t_reached, h_last : ndarray, shape (N,)
        Time reached and last step size attempted, per trajectory.
    success : bool
        True when every trajectory succeeded.
    message : str
        A summary: all succeeded, or how many failed and the first failure.
    """

    t: np.ndarray
    y: np.ndarray
    status: np.ndarray
    messages: list
    nfev: np.ndarray
    nsteps: np.ndarray
    naccept: np.ndarray
    nreject: np.ndarray
    t_reached: np.ndarray
    h_last: np.ndarray
    success: bool
    message: str

    def __repr__(self):
        n = self.status.size
        return (f"EnsembleSolution(N={n}, failed={int(np.sum(self.status != 0))}, "
                f"y.shape={self.y.shape}, mean nsteps={self.nsteps.mean():.1f})")


class _Problem(NamedTuple):
    """Validated ensemble inputs: stacks with a leading axis of 1 or N."""

    y0s: np.ndarray      # (1 or N, n)
    thetas: np.ndarray   # (1 or N, p)
    ts: np.ndarray       # (1 or N, m)
    shape: tuple         # the shape of one trajectory's state
    n_traj: int


def _stack(x, name, what):
    a = _checks.as_float_array(x, name)
    if a.ndim < 1 or a.shape[0] < 1:
        raise ValueError(f"`{name}` must have a leading axis of trajectories ({what}); "
                         f"got shape {a.shape}.")
    _checks.check_finite(a, name)
    return a


def _problem(fun, y0s, t, thetas):
    y0s = _stack(y0s, "y0s", "shape (N,) + y0.shape, or (1,) + y0.shape to share one")
    shape = y0s.shape[1:]
    if thetas is None:
        thetas = np.empty((1, 0))
    else:
        thetas = _checks.as_float_array(thetas, "thetas")
        if thetas.ndim == 1:
            thetas = thetas[None, :]  # one parameter vector shared by all
        elif thetas.ndim != 2:
            raise ValueError("`thetas` must have shape (N, p) (one parameter vector per "
                             "trajectory), (1, p) or (p,) to share one; got shape "
                             f"{thetas.shape}.")
        _checks.check_finite(thetas, "thetas")
    ts = _checks.as_float_array(t, "t")
    if ts.ndim == 1:
        ts = _checks.check_t(ts)[None, :]
    elif ts.ndim == 2:
        ts = np.stack([_checks.check_t(row) for row in ts])
    else:
        raise ValueError("`t` must have shape (m,) (shared output times) or (N, m) (one "
                         f"row per trajectory); got shape {ts.shape}.")
    sizes = {name: a.shape[0] for name, a in
             (("y0s", y0s), ("thetas", thetas), ("t", ts)) if a.shape[0] != 1}
    if len(set(sizes.values())) > 1:
        raise ValueError("The numbers of trajectories disagree: "
                         + ", ".join(f"`{k}` has {v}" for k, v in sizes.items())
                         + "; give each either N rows or one row to share.")
    n_traj = next(iter(sizes.values()), 1)
    flat = np.ascontiguousarray(y0s.reshape(y0s.shape[0], -1))
    return _Problem(flat, np.ascontiguousarray(thetas), np.ascontiguousarray(ts),
                    tuple(shape), n_traj)


def _chunks(n, chunk_size, workers):
    if chunk_size is None:
        # several chunks per worker balance trajectories of unequal cost
        chunk_size = max(1, math.ceil(n / (8 * workers)))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size!r}.")
    return [(lo, min(n, lo + chunk_size)) for lo in range(0, n, chunk_size)]


def _loop_arrays(tableau, prob, options):
    """The tableau and option records of :func:`_run_chunk` (as :func:`nodekit.solve`
    passes them to the loop)."""
    n = prob.y0s.shape[1]
    rtol = _checks.check_tol(options["rtol"], "rtol", prob.shape)
    atol = _checks.check_tol(options["atol"], "atol", prob.shape)
    opts = loop_options(rtol, atol, options.get("controller") or DEFAULT_CONTROLLER, n_err=n,
                        first_step=options["first_step"], max_step=options["max_step"],
                        max_steps=options["max_steps"], step_size=options["step_size"])
    return loop_tableau(tableau), opts


def _solve_chunk_compiled(fun, prob, tableau, options, lo, hi, out, istats, fstats):
    tab, opts = _loop_arrays(tableau, prob, options)
    _run_chunk(fun.rhs_cfunc, prob.y0s, prob.thetas, prob.ts, lo, hi, tab, opts,
               out, istats, fstats)


def _solve_chunk_python(fun, prob, tableau, options, lo, hi, out, istats, fstats):
    for i in range(lo, hi):
        y0, theta, t = (a[i if a.shape[0] > 1 else 0]
                        for a in (prob.y0s, prob.thetas, prob.ts))
        ys, info, _ = integrate(fun, y0.reshape(prob.shape), t,
                                theta if theta.size else None, Options(**options))
        out[i] = ys
        istats[i] = [info[k] for k in _STATS]
        fstats[i] = info["t_reached"], info["h_last"], info.get("t_stiff", np.nan)


def _slice(prob, lo, hi):
    """Trajectories ``lo .. hi-1`` of ``prob`` (shared rows stay shared)."""
    return _Problem(*(a[lo:hi] if a.shape[0] > 1 else a
                      for a in (prob.y0s, prob.thetas, prob.ts)), prob.shape, hi - lo)


def _run_local(fun, prob, tableau, options, lo, hi, workers, progress):
    """Trajectories ``lo .. hi-1`` on this machine: arrays ``(y, istats, fstats)``."""
    n = hi - lo
    m, size = prob.ts.shape[1], prob.y0s.shape[1]
    out = np.full((n, m, size), np.nan)
    istats = np.zeros((n, len(_STATS)), dtype=np.int64)
    fstats = np.zeros((n, 3))  # t_reached, h_last, t_stiff (NaN: the stiffness test did not fire)
    sub = _slice(prob, lo, hi)
    compiled = isinstance(fun, ODE)
    job = _solve_chunk_compiled if compiled else _solve_chunk_python
    if not compiled:
        workers = 1  # a Python right-hand side holds the GIL: threads do not help
    chunks = _chunks(n, options.get("chunk_size"), workers)
    opts = {k: v for k, v in options.items() if k != "chunk_size"}
    bar = _progress(progress, len(chunks))
    with _interrupt.armed(compiled):
        if workers == 1:
            for a, b in chunks:
                job(fun, sub, tableau, opts, a, b, out, istats, fstats)
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(job, fun, sub, tableau, opts, a, b, out, istats,
                                       fstats) for a, b in chunks]
                for f in as_completed(futures):
                    f.result()
                    bar.update(1)
    bar.close()
    return out, istats, fstats


def _run_dask(client, fun, prob, tableau, options, workers, progress):
    """Chunks as tasks on a Dask cluster, each running :func:`_run_local`."""
    chunks = _chunks(prob.n_traj, options.get("chunk_size"),
                     max(1, len(client.scheduler_info().get("workers", {}))))
    local = dict(options, chunk_size=None)
    # each task gets only its own rows; the ODE travels by reference to its
    # kernels' module, and the worker compiles or loads them from its cache
    futures = [client.submit(_run_local, fun, _slice(prob, lo, hi), tableau, local, 0,
                             hi - lo, workers or 1, False, pure=False) for lo, hi in chunks]
    bar = _progress(progress, len(futures))
    from dask.distributed import as_completed as dask_completed
    for _ in dask_completed(futures):
        bar.update(1)
    bar.close()
    parts = client.gather(futures)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


class _NoBar:
    def update(self, k):
        pass

    def close(self):
        pass


def _progress(progress, total):
    if not progress:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional extra
        raise ImportError("progress=True needs tqdm: pip install tqdm (or nodekit[examples])") \
            from None
    return tqdm(total=total, desc="ensemble", unit="chunk")


def _messages(istats, fstats, max_steps, method):
    """Each trajectory's message, as :func:`nodekit.solve` words it (with the
    stiffness note where Hairer's test fired)."""
    msgs = []
    for (status, nfev, nsteps, naccept, nreject), (t, h, t_stiff) in zip(istats, fstats):
        msg = STATUS_MESSAGES[int(status)].format(
            t=t, h=h, nfev=nfev, nsteps=nsteps, naccept=naccept, nreject=nreject,
            max_steps=max_steps)
        if t_stiff == t_stiff:
            msg += " " + STIFFNESS_NOTE.format(t=t_stiff, method=method)
        msgs.append(msg)
    return msgs


def _warn_stiff(fstats, method):
    """One :class:`nodekit.StiffnessWarning` for the trajectories whose
    stiffness test fired (as :func:`nodekit.solve` warns for one)."""
    stiff = np.flatnonzero(fstats[:, 2] == fstats[:, 2])
    if stiff.size:
        shown = ", ".join(map(str, stiff[:10])) + (", ..." if stiff.size > 10 else "")
        first = int(stiff[0])
        warnings.warn(f"stiff trajectories: {shown} ({stiff.size} of {len(fstats)}); "
                      f"trajectory {first}: "
                      + STIFFNESS_NOTE.format(t=fstats[first, 2], method=method),
                      StiffnessWarning, stacklevel=3)


def _summary(status, messages):
    failed = np.flatnonzero(status != 0)
    if failed.size == 0:
        return f"All {status.size} trajectories reached the end of the integration interval."
    first = int(failed[0])
    return (f"{failed.size} of {status.size} trajectories failed; the first, trajectory "
            f"{first}: {messages[first]}")


def solve_ensemble(fun, y0s, t, thetas=None, *, method=D.method, rtol=D.rtol, atol=D.atol,
                   first_step=D.first_step, max_step=D.max_step, max_steps=D.max_steps,
                   step_size=D.step_size, workers=None, client=None, chunk_size=None,
                   progress=False):
    """Solve one ODE for many initial states and parameter vectors.

    Each trajectory is an independent adaptive solve with its own step
    sequence: exactly the steps :func:`nodekit.solve` would take for it
    alone, so the results equal single solves to the last bit.  A failed
    trajectory does not stop the others.

    Parameters
    ----------
    fun : nk.ODE or callable
        The right-hand side.  An :class:`nodekit.ODE` runs compiled and in
        parallel; a Python ``fun(t, y, theta)`` runs one trajectory after the
        other (it holds Python's GIL).
    y0s : array_like, shape (N,) + y0.shape
        One initial state per trajectory; a leading axis of length 1 shares
        one state among all trajectories.
    t : array_like, shape (m,) or (N, m)
        Output times shared by all trajectories, or one row per trajectory
        (each strictly monotone, its first entry the initial time).
    thetas : array_like, shape (N, p), (1, p) or (p,), optional
        One parameter vector per trajectory, or one shared by all.
    method, rtol, atol, first_step, max_step, max_steps, step_size
        As for :func:`nodekit.solve`, shared by every trajectory.
    workers : int, optional
        Threads on this machine (default: the number of cores Numba uses,
        ``NUMBA_NUM_THREADS``).  With ``client``, threads per Dask task.
    client : dask.distributed.Client, optional
        Run chunks of trajectories as tasks on this Dask cluster (each task
        runs the local parallel path); results come back in order.
    chunk_size : int, optional
        Trajectories per task (default: about eight chunks per worker).
    progress : bool, default False
        Show a tqdm bar over chunks.

    Returns
    -------
    EnsembleSolution
        ``y`` of shape ``(N, m) + y0.shape`` and per-trajectory ``status``,
        ``messages``, ``nfev``, ``nsteps``, ``naccept``, ``nreject``;
        ``success`` is True only if every trajectory succeeded, and
        ``message`` summarises the failures.

    Notes
    -----
    A batched state inside :func:`nodekit.solve` shares one step size and
    one error norm among its rows: one hard member slows and loosens the
    whole batch.  Here every trajectory has its own error control.

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> ens = nk.solve_ensemble(lambda t, y, k: -k * y, [[1.0], [2.0]], [0.0, 1.0],
    ...                         [[0.5], [1.0]], rtol=1e-10)
    >>> ens.y.shape, ens.success
    ((2, 2, 1), True)
    >>> bool(np.allclose(ens.y[:, -1, 0], [np.exp(-0.5), 2 * np.exp(-1.0)]))
    True
    """
    if not isinstance(fun, ODE) and not callable(fun):
        raise TypeError("`fun` must be an nk.ODE or a callable fun(t, y, theta); got "
                        f"{type(fun).__name__}.")
    prob = _problem(fun, y0s, t, thetas)
    tableau = get_tableau(method)
    options = dict(method=method, rtol=rtol, atol=atol, first_step=first_step,
                   max_step=max_step, max_steps=max_steps, step_size=step_size,
                   chunk_size=chunk_size)
    # one single solve validates every option exactly as nk.solve does and
    # compiles what the chunks need (its stiffness is reported with the rest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StiffnessWarning)
        integrate(fun, prob.y0s[0].reshape(prob.shape), prob.ts[0],
                  prob.thetas[0] if prob.thetas.shape[1] else None,
                  Options(**{k: v for k, v in options.items() if k != "chunk_size"}))
    if workers is None:
        workers = nb.config.NUMBA_NUM_THREADS or os.cpu_count() or 1
    elif isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"`workers` must be a positive integer; got {workers!r}.")
    if client is None:
        y, istats, fstats = _run_local(fun, prob, tableau, options, 0, prob.n_traj,
                                       int(workers), progress)
    else:
        y, istats, fstats = _run_dask(client, fun, prob, tableau, options, workers, progress)
    messages = _messages(istats, fstats, max_steps, tableau.name)
    if client is not None or isinstance(fun, ODE):
        # (a Python fun solved here warns for each stiff trajectory, as nk.solve)
        _warn_stiff(fstats, tableau.name)
    status = istats[:, 0].copy()
    ts = prob.ts[0] if prob.ts.shape[0] == 1 else prob.ts
    return EnsembleSolution(
        ts, y.reshape((prob.n_traj, prob.ts.shape[1]) + prob.shape), status, messages,
        istats[:, 1].copy(), istats[:, 2].copy(), istats[:, 3].copy(), istats[:, 4].copy(),
        fstats[:, 0].copy(), fstats[:, 1].copy(), bool(np.all(status == 0)),
        _summary(status, messages))


# ---------------------------------------------------------------------------
# Gradients: one autograd primitive over the ensemble, whose VJP runs the
# trajectories' backward passes in parallel.
# ---------------------------------------------------------------------------
@_jitflags.jit
def _adjoint_chunk(rhs, vjp, thetas, ts, ys, G, mean_steps, back, lo, hi, gy0, gth, gt,
                   stats, drift):
    """Backward passes (:func:`nodekit.adjoint.backsolve`) of trajectories
    ``lo .. hi-1`` (rows of length 1 in ``thetas``/``ts`` are shared); with
    ``gt`` of ``m`` columns also the time gradients (``gt`` of 0 columns:
    not asked for).  ``stats[i]`` receives ``(status, nfev)``, ``drift[i]``
    the worst backsolve drift and the output time where it occurred."""
    n = ys.shape[2]
    for i in range(lo, hi):
        theta = thetas[i if thetas.shape[0] > 1 else 0]
        t = ts[i if ts.shape[0] > 1 else 0]
        fault = np.zeros(2 * n + theta.size + 2)
        at = np.empty(t.size)
        res = backsolve(rhs, vjp, theta, t, ys[i], G[i], mean_steps[i], back, gy0[i],
                        gth[i], at, fault)
        stats[i, 0] = res.status
        stats[i, 1] = res.nfev
        drift[i, 0] = 0.0
        drift[i, 1] = t[0]
        for j in range(t.size):
            if at[j] > drift[i, 0]:  # NaN (no stop there) is never larger
                drift[i, 0] = at[j]
                drift[i, 1] = t[j]
        if res.status != 0:
            continue
        if gt.shape[1]:
            F = np.empty_like(ys[i])
            if _kernels.rhs_at_points(rhs, t, ys[i], theta, F):
                stats[i, 0] = _kernels.FAILED_KERNEL
            time_gradients(G[i], F, gy0[i], gt[i])


class _Config(NamedTuple):
    """What a call of :func:`_odeint_ensemble` passes besides the differentiable
    arguments; ``state`` receives the forward pass (a dict)."""

    fun: object
    options: dict
    workers: int
    state: dict


def _compiled_adjoint(fun, options):
    """The ensemble gradient runs compiled: an :class:`nodekit.ODE` with a
    ``vjp`` kernel, ``gradient="adjoint"`` (the default), an explicit method
    and no ``stats`` to fill per trajectory."""
    from ._implicit import is_stiff
    return (isinstance(fun, ODE) and fun.vjp is not None
            and options.get("gradient", "adjoint") == "adjoint"
            and not is_stiff(options.get("method", D.method))
            and options.get("stats") is None)


@primitive
def _odeint_ensemble(y0s, t, thetas, config):
    """Solve every trajectory under autograd: compiled and in parallel (see
    :func:`_compiled_adjoint`), else with :func:`nodekit.odeint` one after the
    other, keeping each trajectory's VJP."""
    if _compiled_adjoint(config.fun, config.options):
        return _forward_compiled(y0s, t, thetas, config)
    fun, options, state = config.fun, config.options, config.state
    vjps = state["vjps"] = []
    user_stats = options.get("stats")
    per = state["stats"] = [{} for _ in range(y0s.shape[0])] if user_stats is not None \
        else None
    ys = []
    for i in range(y0s.shape[0]):
        ti = t[i if len(t) > 1 else 0] if t.ndim == 2 else t
        opts = options if per is None else dict(options, stats=per[i])
        vjp, y = make_vjp(lambda y0, tt, th: odeint(fun, y0, tt, th, **opts),
                          argnum=(0, 1, 2))(y0s[i], ti, thetas[i])
        vjps.append(vjp)
        ys.append(y)
    if per is not None:
        _gather_stats(user_stats, per)
    return np.stack(ys)


def _gather_stats(stats, per):
    """Fill the caller's ``stats`` from the trajectories' own dicts ``per``:
    under each key of :func:`nodekit.odeint`'s stats, one entry per
    trajectory (an integer array for the counts, a list for ``drift``)."""
    for key in dict.fromkeys(k for d in per for k in d):
        values = [d.get(key) for d in per]
        stats[key] = (np.array(values, dtype=np.int64)
                      if all(isinstance(v, (int, np.integer)) for v in values) else values)


def _reraise(fun, options, y0s, t, thetas, i, backward):
    """Run trajectory ``i`` alone through :func:`nodekit.odeint` (and its
    gradient) to raise the error it raises, prefixed with its index."""
    ti = t[i if len(t) > 1 else 0] if t.ndim == 2 else t
    try:
        vjp, y = make_vjp(lambda y0, tt, th: odeint(fun, y0, tt, th, **options),
                          argnum=(0, 1, 2))(y0s[i], ti, thetas[i])
        if backward is not None:
            vjp(backward)
    except Exception as exc:  # noqa: BLE001 - re-raised with the trajectory named
        raise type(exc)(f"trajectory {i}: {exc}") from exc
    raise RuntimeError(f"trajectory {i} failed in the ensemble but not alone")  # pragma: no cover


def _forward_compiled(y0s, t, thetas, config):
    fun, options = config.fun, config.options
    # one untraced nk.odeint call validates every option exactly as it does (a
    # failed solve is left to the chunks, after which _reraise names the trajectory)
    try:
        odeint(fun, y0s[0], t[0] if t.ndim == 2 else t, thetas[0], **options)
    except SolveError:
        pass
    prob = _problem(fun, y0s, t, thetas)
    fwd = {k: options.get(k, getattr(D, k)) for k in
           ("method", "rtol", "atol", "first_step", "max_step", "max_steps", "step_size",
            "controller")}
    out, istats, fstats = _run_local(fun, prob, get_tableau(fwd["method"]), fwd, 0,
                                     prob.n_traj, config.workers, False)
    failed = np.flatnonzero(istats[:, 0] != 0)
    if failed.size:
        _reraise(fun, options, y0s, t, thetas, int(failed[0]), None)
    spans = np.abs(prob.ts[:, -1] - prob.ts[:, 0])
    config.state.update(prob=prob, ys=out, mean_steps=np.ascontiguousarray(
        spans / np.maximum(istats[:, 3], 1), dtype=np.float64))
    return out.reshape((prob.n_traj, prob.ts.shape[1]) + prob.shape)


def _backward_record(fun, options, prob):
    """The backward options (a dict, see :func:`nodekit.primitive.backward_options`)
    of the ensemble's options, and their :class:`nodekit.adjoint.BacksolveOptions`."""
    from .adjoint import strategy
    from .primitive import backward_options
    controller = options.get("controller") or DEFAULT_CONTROLLER
    adj = backward_options(strategy("adjoint"), options.get("method", D.method),
                           _checks.check_tol(options.get("rtol", D.rtol), "rtol", prob.shape),
                           _checks.check_tol(options.get("atol", D.atol), "atol", prob.shape),
                           options.get("adjoint_method"), options.get("adjoint_rtol"),
                           options.get("adjoint_atol"), options.get("seminorm", False),
                           options.get("max_steps", D.max_steps),
                           options.get("max_step", D.max_step),
                           options.get("step_size"), controller)
    return adj, backsolve_options(adj, prob.y0s.shape[1], prob.thetas.shape[1])


def _backward_compiled(g, argnums, args):
    y0s, t, thetas, config = args
    fun, options, workers, state = config
    prob, ys = state["prob"], state["ys"]
    N, m, n = ys.shape
    G = np.ascontiguousarray(np.reshape(g, (N, m, n)), dtype=np.float64)
    adj, back = _backward_record(fun, options, prob)
    gy0 = np.empty((N, n))
    gth = np.empty((N, prob.thetas.shape[1]))
    gt = np.zeros((N, m if 1 in argnums else 0))
    stats = np.zeros((N, 2), dtype=np.int64)
    drift = np.zeros((N, 2))

    def job(lo, hi):
        _adjoint_chunk(fun.rhs_cfunc, fun.vjp_cfunc, prob.thetas, prob.ts, ys, G,
                       state["mean_steps"], back, lo, hi, gy0, gth, gt, stats, drift)

    with _interrupt.armed(True):
        chunks = _chunks(N, None, workers)
        if workers == 1:
            for lo, hi in chunks:
                job(lo, hi)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for f in [pool.submit(job, lo, hi) for lo, hi in chunks]:
                    f.result()
    failed = np.flatnonzero(stats[:, 0] != 0)
    if failed.size:
        i = int(failed[0])
        _reraise(fun, options, y0s, t, thetas, i, np.reshape(g, (N, m) + prob.shape)[i])
    worst = int(np.argmax(drift[:, 0]))
    from .adjoint import warn_drift
    warn_drift(adj, drift[worst, 1:], drift[worst, :1],
               f"nk.odeint_ensemble(gradient='adjoint'), trajectory {worst}", stacklevel=4)
    grads = {0: gy0.reshape(np.shape(y0s)), 1: _time_gradient(gt, t), 2: gth}
    return tuple(grads[i] for i in argnums)


def _time_gradient(gt, t):
    """The per-trajectory time gradients ``gt`` (N, m) in the shape of ``t``:
    summed over the trajectories that share a row."""
    if t.ndim == 1:
        return gt.sum(axis=0)
    return gt.sum(axis=0, keepdims=True) if t.shape[0] == 1 else gt


def _odeint_ensemble_vjp(argnums, ans, args, kwargs):
    config = args[3]
    if "prob" in config.state:
        return lambda g: _backward_compiled(g, argnums, args)
    t, workers, vjps = args[1], config.workers, config.state["vjps"]

    def vjp(g):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda i: vjps[i](g[i]), range(len(vjps))))
        if config.state["stats"] is not None:
            _gather_stats(config.options["stats"], config.state["stats"])
        grads = {0: np.stack([p[0] for p in parts]),
                 1: _time_gradient(np.stack([p[1] for p in parts]), t),
                 2: np.stack([p[2] for p in parts])}
        return tuple(grads[i] for i in argnums)

    return vjp


defvjp_argnums(_odeint_ensemble, _odeint_ensemble_vjp)


def odeint_ensemble(fun, y0s, t, thetas=None, *, workers=None, **options):
    """Solve many trajectories of one ODE differentiably: :func:`nodekit.odeint`
    over an ensemble.

    Returns ``y`` of shape ``(N, m) + y0.shape``.  ``autograd.grad`` works
    through it with respect to ``y0s``, ``t`` and ``thetas``; the backward
    passes of the trajectories run in parallel in a thread pool (a compiled
    :class:`nodekit.ODE` releases the GIL in its loops), and each equals the
    gradient :func:`nodekit.odeint` gives for that trajectory alone.

    Parameters
    ----------
    fun, y0s, t, thetas
        As for :func:`solve_ensemble` (rows of length 1 are shared; their
        gradients are summed over the trajectories).
    workers : int, optional
        Threads for the backward passes (default: ``NUMBA_NUM_THREADS``).
    **options
        Any option of :func:`nodekit.odeint` (``method``, ``rtol``, ``atol``,
        ``gradient``, ...), shared by every trajectory.  A ``stats`` dict
        receives, under each key :func:`nodekit.odeint` fills, one entry per
        trajectory: an integer array of shape ``(N,)`` for the counts
        (``nfev_forward``, ``nfev_backward``, ...) and a list of ``N`` arrays
        for ``drift``.

    Examples
    --------
    >>> import autograd, autograd.numpy as anp, numpy as np, nodekit as nk
    >>> loss = lambda th: anp.sum(nk.odeint_ensemble(
    ...     lambda t, y, k: -k * y, np.ones((3, 1)), [0.0, 1.0], th, rtol=1e-10)[:, -1])
    >>> g = autograd.grad(loss)(np.array([[0.5], [1.0], [2.0]]))
    >>> bool(np.allclose(g[:, 0], -np.exp(-np.array([0.5, 1.0, 2.0])), rtol=1e-6))
    True
    """
    y0s = anp.asarray(y0s, dtype=float) if not isinstance(y0s, ArrayBox) else y0s
    t = anp.asarray(t, dtype=float) if not isinstance(t, ArrayBox) else t
    if thetas is None:
        thetas = np.empty((1, 0))
    elif not isinstance(thetas, ArrayBox):
        thetas = anp.asarray(thetas, dtype=float)
    if anp.ndim(thetas) == 1:
        thetas = anp.reshape(thetas, (1, -1))
    if anp.ndim(y0s) < 1 or anp.ndim(thetas) != 2 or anp.ndim(t) not in (1, 2):
        raise ValueError("`y0s` must have shape (N,) + y0.shape, `thetas` (N, p) or (p,), "
                         f"`t` (m,) or (N, m); got shapes {anp.shape(y0s)}, "
                         f"{anp.shape(thetas)}, {anp.shape(t)}.")
    rows = {len(a) for a in (y0s, thetas) if len(a) != 1}
    if anp.ndim(t) == 2 and len(t) != 1:
        rows.add(len(t))
    if len(rows) > 1:
        raise ValueError("The numbers of trajectories disagree: `y0s` has "
                         f"{len(y0s)}, `thetas` {len(thetas)}, `t` "
                         f"{len(t) if anp.ndim(t) == 2 else 'shared'} rows.")
    n_traj = rows.pop() if rows else 1
    y0s, thetas = (a if len(a) == n_traj else anp.repeat(a, n_traj, axis=0)
                   for a in (y0s, thetas))
    if workers is None:
        workers = nb.config.NUMBA_NUM_THREADS or os.cpu_count() or 1
    return _odeint_ensemble(y0s, t, thetas, _Config(fun, options, int(workers), {}))
