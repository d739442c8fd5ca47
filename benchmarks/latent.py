"""Latent-ODE training iteration: seconds per full-batch step of torchdiffeq's
latent-ODE example setting, nodekit against torchdiffeq (optional peer) in this run.

One iteration = the negative ELBO of 1000 spirals with 100 consecutive
observations each (noise 0.3): reverse-time RNN encoder (25 units), one
reparameterised sample, latent solve of the (1000, 4) state through the 100
times (dynamics 4-20-20-4 ELU, dopri5, rtol 1e-7, atol 1e-9: torchdiffeq's
``odeint`` defaults, as the example uses), decoder 4-20-2, analytic KL; its
gradient; one Adam step (lr 0.01).  Everything in float64.

The peer runs in a separate Python with torch and torchdiffeq
(``--peer-python``, default ``$NODEKIT_PEER_PYTHON``); it is skipped when
that interpreter is not given or cannot import them.  Both sides are timed
single-threaded: the peer with ``OMP_NUM_THREADS=1`` and
``torch.set_num_threads(1)``, nodekit with its BLAS limited to one thread
(``threadpoolctl``, when installed; the batched ``nk.nn`` kernels and the
encoder call BLAS) and serial ``nk.nn`` kernels (the latent dynamics have
604 parameters).

Run: ``python -m nodekit.benchmarks.latent [--quick] [--peer-python PATH] [--peer-adjoint]``.
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ._timing import median_time, table

RTOL, ATOL = 1e-7, 1e-9
NOISE = 0.3


def data(n_spirals=1000, seed=0):
    """Spirals with all 100 observations: times (100,), values (n, 100, 2)."""
    from nodekit.datasets import spirals
    d = spirals(n_spirals=n_spirals, n_total=1000, n_obs=100, noise_std=NOISE, seed=seed)
    return d.t, d.x


def nodekit_step(t, x, gradient):
    """One training iteration per call, and the solver's stats."""
    import autograd

    from nodekit.models import LatentODE
    from nodekit.train import Adam

    model = LatentODE(noise_std=NOISE, method="dopri5", rtol=RTOL, atol=ATOL,
                      gradient=gradient)
    mask = np.ones(x.shape[:2], dtype=bool)
    stats = {}
    rng = np.random.default_rng(0)
    vg = autograd.value_and_grad(
        lambda th: -model.elbo(th, t, x, mask, seed=rng, stats=stats))
    state = {"theta": model.init(0)}
    opt = Adam(lr=0.01)

    def step():
        _, g = vg(state["theta"])
        state["theta"] = opt.step(state["theta"], g)

    return step, stats


def peer_times(python, t, x, repeat, adjoint=False):
    """torchdiffeq's per-iteration seconds from a subprocess, or None and why."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_latent_torchdiffeq.py")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spirals.npz")
        np.savez(path, t=t, x=x, rtol=RTOL, atol=ATOL, noise_std=NOISE)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        try:
            cmd = [python, script, path, "--repeat", str(repeat)] + (["--adjoint"] if adjoint
                                                                     else [])
            res = subprocess.run(cmd, check=False,
                                 capture_output=True, text=True, env=env, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"peer not run ({exc})"
    if res.returncode != 0:
        return None, "peer failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(res.stdout.strip().splitlines()[-1]), ""


def one_blas_thread():
    """A function making a context that limits the BLAS libraries to one thread
    (``threadpoolctl``), or no-op contexts and a note when it is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext, "threadpoolctl not installed: BLAS threads not limited"
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls, loaded to be limited)
    return lambda: threadpool_limits(limits=1), ""


def run(quick=False, peer_python=None, peer_adjoint=False):
    t, x = data()
    repeat = 2 if quick else 5
    rows, results = [], {}
    limit, blas_note = one_blas_thread()
    for gradient in ("discrete", "adjoint"):
        step, stats = nodekit_step(t, x, gradient)
        with limit():
            sec = median_time(step, repeat=repeat, warmup=1, min_time=0.0)
        name = f"nodekit LatentODE, gradient={gradient!r}"
        results[name] = sec
        rows.append([name, f"{sec:.3f}", "-",
                     f"{stats.get('nfev_forward', 0)} + {stats.get('nfev_backward', 0)}"])
    ours = results["nodekit LatentODE, gradient='discrete'"]
    note = "peer not run (no --peer-python)"
    if peer_python:
        peers, note = peer_times(peer_python, t, x, repeat, peer_adjoint)
        for name, r in (peers or {}).items():
            results[name] = r["seconds"]
            rows.append([name + " (this run)", f"{r['seconds']:.3f}",
                         f"{r['seconds'] / ours:.2f}x", f"{r['nfe']} (fwd + bwd)"])
    print("Latent-ODE training iteration (torchdiffeq latent_ode example setting: 1000 "
          "spirals x 100 observations, full batch, dopri5 rtol 1e-7 atol 1e-9, float64, one "
          "thread); median of warm iterations.\n")
    print(table(rows, ["method", "s / iteration", "peer / nodekit discrete",
                       "NFE fwd + bwd (last)"]))
    for text in (note, blas_note):
        if text:
            print(f"\n{text}")
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--peer-python", default=os.environ.get("NODEKIT_PEER_PYTHON"),
                   help="a Python with torch and torchdiffeq (default $NODEKIT_PEER_PYTHON)")
    p.add_argument("--peer-adjoint", action="store_true",
                   help="also time torchdiffeq's odeint_adjoint (slow: minutes per iteration)")
    args = p.parse_args(argv)
    run(quick=args.quick, peer_python=args.peer_python, peer_adjoint=args.peer_adjoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
