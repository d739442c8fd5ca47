"""Ensembles: N Lotka-Volterra trajectories with random parameters and initial
states, nodekit's :func:`nk.solve_ensemble` against a Python loop of
``nk.solve``, diffrax's ``jax.vmap`` of one jitted solve (lockstep) when
importable, and a Dask ``LocalCluster`` when ``dask.distributed`` is.

Setting: theta = (a, b, c, d) uniform in [1, 2] x [0.5, 1.5] x [2, 4] x
[0.5, 1.5], y0 uniform in [0.5, 2]^2 (seed 0), 200 outputs on [0, 20],
Dormand-Prince 5(4), rtol 1e-8, atol 1e-10.  Gradients: the sum of squares of
every output, with respect to every y0 and theta.

Run: ``python -m nodekit.benchmarks.ensemble [--quick]`` (also part of ``nodekit bench``).
"""
import importlib.util
import os
import platform
import sys
import time

import numpy as np

from ._timing import median_time, table

T = np.linspace(0.0, 20.0, 200)
RTOL, ATOL = 1e-8, 1e-10


def problem(n, seed=0):
    """Random parameters and initial states (the setting above)."""
    rng = np.random.default_rng(seed)
    thetas = np.column_stack([rng.uniform(1.0, 2.0, n), rng.uniform(0.5, 1.5, n),
                              rng.uniform(2.0, 4.0, n), rng.uniform(0.5, 1.5, n)])
    return rng.uniform(0.5, 2.0, (n, 2)), thetas


def cpu_model():
    """The CPU model, for every table."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _lv():
    from nodekit.validation.kernels import lotka_volterra_rhs, lotka_volterra_vjp

    import nodekit as nk
    return nk.ODE(lotka_volterra_rhs, lotka_volterra_vjp, name="lv")


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_rows(n, quick):
    import nodekit as nk
    lv = _lv()
    y0s, thetas = problem(n)
    rep = 1 if quick else 3
    solve = lambda w: nk.solve_ensemble(lv, y0s, T, thetas, rtol=RTOL, atol=ATOL,
                                        workers=w)
    ens = solve(1)
    rows = {}
    for w in (1, 2):
        rows[f"nodekit solve_ensemble, {w} thread{'s' * (w > 1)}"] = \
            median_time(lambda w=w: solve(w), repeat=rep, warmup=0, min_time=0)
    k = min(n, 300)
    rows[f"nodekit loop of nk.solve (first {k}, scaled)"] = n / k * median_time(
        lambda: [nk.solve(lv, y0s[i], T, thetas[i], rtol=RTOL, atol=ATOL) for i in range(k)],
        repeat=rep, warmup=1, min_time=0)
    if _importable("jax") and _importable("diffrax"):
        fn, args = _diffrax_vmap(y0s, thetas)
        ys = np.asarray(fn(*args).block_until_ready())
        np.testing.assert_allclose(ys, ens.y, rtol=1e-5, atol=1e-7)
        rows["diffrax vmap (lockstep), jitted"] = median_time(
            lambda: fn(*args).block_until_ready(), repeat=rep, warmup=1, min_time=0)
    return rows, ens


def dask_rows(n, quick, chunk_sizes):
    if not _importable("dask.distributed"):
        return {}
    from dask.distributed import Client, LocalCluster

    import nodekit as nk
    lv = _lv()
    y0s, thetas = problem(n)
    rows = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for c in chunk_sizes:
            run = lambda c=c: nk.solve_ensemble(lv, y0s, T, thetas, rtol=RTOL, atol=ATOL,
                                                client=client, chunk_size=c, workers=1)
            run()  # workers load their kernels
            rows[f"Dask LocalCluster, 2 worker processes, chunk_size={c}"] = median_time(
                run, repeat=1 if quick else 3, warmup=0, min_time=0)
    return rows


def gradient_rows(n, quick):
    import autograd
    import autograd.numpy as anp

    import nodekit as nk
    lv = _lv()
    y0s, thetas = problem(n)
    rows = {}
    for w in (1, 2):
        g = autograd.grad(lambda y0s, th, w=w: anp.sum(nk.odeint_ensemble(
            lv, y0s, T, th, rtol=RTOL, atol=ATOL, workers=w) ** 2), (0, 1))
        g(y0s[:2], thetas[:2])
        rows[f"nodekit odeint_ensemble adjoint, {w} thread{'s' * (w > 1)}"] = median_time(
            lambda g=g: g(y0s, thetas), repeat=1, warmup=0, min_time=0)
    if _importable("jax") and _importable("diffrax"):
        import jax
        fn, args = _diffrax_vmap(y0s, thetas, gradient=True)
        jax.block_until_ready(fn(*args))
        rows["diffrax vmap of BacksolveAdjoint, jitted"] = median_time(
            lambda: jax.block_until_ready(fn(*args)), repeat=1, warmup=0, min_time=0)
    return rows


def _diffrax_vmap(y0s, thetas, gradient=False):
    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def f(t, y, th):
        return jnp.stack([th[0] * y[0] - th[1] * y[0] * y[1],
                          -th[2] * y[1] + th[3] * y[0] * y[1]])

    term = diffrax.ODETerm(f)
    adjoint = diffrax.BacksolveAdjoint() if gradient else diffrax.RecursiveCheckpointAdjoint()

    def one(y0, th):
        return diffrax.diffeqsolve(
            term, diffrax.Dopri5(), T[0], T[-1], None, y0, args=th,
            saveat=diffrax.SaveAt(ts=jnp.asarray(T)), adjoint=adjoint, max_steps=100000,
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL)).ys

    if gradient:
        loss = lambda y0s, ths: jnp.sum(jax.vmap(one)(y0s, ths) ** 2)
        fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    else:
        fn = jax.jit(jax.vmap(one))
    return fn, (jnp.asarray(y0s), jnp.asarray(thetas))


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _print(title, rows, per, ref):
    base = rows[ref]
    out = [(name, f"{1e3 * s:.1f}", f"{1e6 * s / per:.1f}", f"{s / base:.2f}x")
           for name, s in rows.items()]
    print(title)
    print(table(out, ["solver", "ms total", "us / trajectory", f"time / ({ref})"]))
    print()


def run(quick=False):
    n = 1000 if quick else 10000
    n_grad = 100 if quick else 1000
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; NumPy {np.__version__}\n")
    rows, ens = forward_rows(n, quick)
    rows.update(dask_rows(n, quick, (n // 8, n // 2) if quick else (n // 32, n // 8, n // 2)))
    _print(f"Ensemble forward: {n} Lotka-Volterra trajectories, 200 outputs on [0, 20], "
           f"dopri5 rtol {RTOL:g} atol {ATOL:g} (mean {ens.nsteps.mean():.0f} steps, "
           f"min {ens.nsteps.min()}, max {ens.nsteps.max()})", rows, n,
           "nodekit solve_ensemble, 2 threads")
    grows = gradient_rows(n_grad, quick)
    _print(f"Ensemble gradient of sum(y**2) over {n_grad} trajectories (w.r.t. every y0 "
           "and theta)", grows, n_grad, "nodekit odeint_ensemble adjoint, 2 threads")


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
