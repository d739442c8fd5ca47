"""CNF training iteration in torchdiffeq's CNF-example setting: nodekit against
torchdiffeq measured in the same run.

Setting: 512 samples of two circles per iteration, planar CNF of width 64 with
a hypernetwork of hidden width 32 (15904 parameters), exact trace, dopri5 at
rtol = atol = 1e-5, data at t = 10, base N(0, 0.1 I) at t = 0, Adam (lr 1e-3).
One iteration = forward solve, gradient, Adam step.  Every method runs the
same ``N_BATCHES`` batches from the same initial weights (restarting from them
after the last batch), so all timings are early in training, when the NFE is
still small.

torchdiffeq runs in a separate interpreter that has torch (``--peer-python``,
default ``$NODEKIT_PEER_PYTHON``); it is skipped if none is given or found.

Run: ``python -m nodekit.benchmarks.cnf [--quick] [--peer-python PATH]``.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from ._timing import table

N_BATCHES = 10
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_cnf_torchdiffeq.py")


def batches(seed=0, n=N_BATCHES):
    from nodekit.datasets import toy2d
    rng = np.random.default_rng(seed)
    return np.stack([toy2d.sample("two-circles", 512, rng) for _ in range(n)])


def time_nodekit(xs, gradient="adjoint", trace="exact", repeat=2, seminorm=False):
    """Median seconds per iteration and mean NFE (forward, backward) of nodekit."""
    import autograd

    from nodekit.models import CNF, Normal
    from nodekit.train import Adam
    cnf = CNF(2, base=Normal(0.0, math.sqrt(0.1)), t0=0.0, t1=10.0, trace=trace,
              gradient=gradient, seminorm=seminorm, rtol=1e-5, atol=1e-5)
    theta0 = cnf.init(0)
    stats = {}
    vg = autograd.value_and_grad(lambda th, x: cnf.nll(th, x, stats=stats))
    times, nf, nb = [], [], []
    for rep in range(repeat + 1):
        theta, opt = theta0.copy(), Adam(lr=1e-3)
        for x in xs:
            t0 = time.perf_counter()
            _, g = vg(theta, x)
            theta = opt.step(theta, g)
            if rep:   # the first pass compiles and warms up
                times.append(time.perf_counter() - t0)
                nf.append(stats["nfev_forward"])
                nb.append(stats["nfev_backward"])
    return statistics.median(times), float(np.mean(nf)), float(np.mean(nb))


def time_torchdiffeq(xs, python, repeat=2):
    """torchdiffeq's numbers from ``python`` (a dict), or None if it cannot run."""
    if not python:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batches.npz")
        np.savez(path, x=xs)
        try:
            out = subprocess.run([python, PEER_SCRIPT, path, "--repeat", str(repeat)],
                                 check=True, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"torchdiffeq peer skipped: {exc}")
            return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches and repeats")
    ap.add_argument("--peer-python", default=os.environ.get("NODEKIT_PEER_PYTHON"),
                    help="interpreter with torch and torchdiffeq")
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else 2
    xs = batches(n=4 if args.quick else N_BATCHES)
    rows, results = [], {}
    for label, kw in (("nodekit adjoint", {"gradient": "adjoint"}),
                      ("nodekit adjoint + seminorm", {"gradient": "adjoint", "seminorm": True}),
                      ("nodekit interpolated", {"gradient": "interpolated"}),
                      ("nodekit discrete", {"gradient": "discrete"}),
                      ("nodekit adjoint, Hutchinson", {"gradient": "adjoint",
                                                       "trace": "hutchinson"})):
        s, nf, nb = time_nodekit(xs, repeat=repeat, **kw)
        results[label] = (1000 * s, nf, nb)
        print(f"{label}: {1000 * s:.1f} ms/iter, NFE {nf:.0f}/{nb:.0f}", flush=True)
    peer = time_torchdiffeq(xs, args.peer_python, repeat)
    if peer is not None:
        results["torchdiffeq backprop through the solver"] = (
            peer["backprop"]["ms"], peer["backprop"]["nfe_forward"], float("nan"))
        results["torchdiffeq odeint_adjoint"] = (
            peer["adjoint"]["ms"], peer["adjoint"]["nfe_forward"],
            peer["adjoint"]["nfe_backward"])
        print(f"torchdiffeq (torch {peer['torch']}, {peer['threads']} threads, {peer['dtype']})")
    ref = results["nodekit adjoint"][0]
    for label, (ms, nf, nb) in results.items():
        rows.append([label, f"{ms:.1f}", f"{nf:.0f}", "-" if math.isnan(nb) else f"{nb:.0f}",
                     f"{ms / ref:.2f}x"])
    print()
    print(table(rows, ["method", "ms / iteration", "NFE forward", "NFE backward",
                       "time / nodekit adjoint"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
