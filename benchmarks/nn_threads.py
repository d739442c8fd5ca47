"""Threads for batched ``nk.nn`` kernels: the digits ODE-Net trained with
``NUMBA_NUM_THREADS=1`` and ``=2``.

Setting: the ODE-Net of ``examples/digits.py`` (width 64: an ODE block of
8448 parameters, whose kernels split batches of at least two chunks of rows
over Numba's threads), adaptive dopri5 at rtol = atol = 1e-4, adjoint
gradients, Adam (lr 3e-3), batches of 1024 training images, seed 0.  Each
thread count runs in its own process (Numba fixes the pool size at start):
one warm-up epoch, then ``--epochs`` timed epochs.  The rows are cut into the
same chunks whatever the thread count, so the trained parameters must agree
to round-off (the script prints the largest difference).

NumPy's BLAS (the model's input and output layers) keeps a thread pool of
its own, whose threads spin for a while after each call: with Numba's
threads on the same cores the two pools compete, and on the 2-core
development machine 2 Numba threads made an epoch twice as *slow*.  Both
processes therefore run with one BLAS thread (``--blas-threads``, default 1;
``0`` leaves BLAS at its default to show the effect).

Run: ``python -m benchmarks.nn_threads [--epochs N] [--blas-threads K]``.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from nodekit.datasets import load_digits, minibatches
from nodekit.models import build
from nodekit.train import Adam, fit

model = build("odenet", width=64, rtol=1e-4, atol=1e-4)
data = load_digits(0)
rng = np.random.default_rng(1)
theta, opt = model.init(0), Adam(lr=3e-3)
times, nfe = [], []
for epoch in range({epochs} + 1):
    batches = [(data.x_train[i], data.y_train[i])
               for i in minibatches(len(data.y_train), 1024, rng)]
    res = fit(model.loss, theta, optimizer=opt, iters=len(batches), batches=batches,
              stats=model.stats, progress=False)
    theta = res.theta
    if epoch:   # the first epoch compiles or loads the kernels
        times.append(res.seconds)
        nfe.append(float(np.mean(res.nfev_forward + res.nfev_backward)))
print(json.dumps({{"seconds": times, "nfe": nfe, "theta": theta.tolist()}}))
'''


def run(threads, epochs, blas_threads=1):
    """Seconds per epoch, NFE and the trained theta in a process with
    ``threads`` Numba threads and ``blas_threads`` BLAS threads (0: BLAS's
    default)."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    if blas_threads:
        env.update(OPENBLAS_NUM_THREADS=str(blas_threads), MKL_NUM_THREADS=str(blas_threads))
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, epochs=epochs)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(epochs=3, blas_threads=1):
    """Run both thread counts; returns the figures and prints a table."""
    import numpy as np

    from .ensemble import cpu_model
    res = {n: run(n, epochs, blas_threads) for n in (1, 2)}
    med = {n: float(np.median(r["seconds"])) for n, r in res.items()}
    diff = float(np.max(np.abs(np.subtract(res[1]["theta"], res[2]["theta"]))))
    blas = f"{blas_threads} BLAS thread(s)" if blas_threads else "BLAS threads by default"
    print(f"digits ODE-Net, width 64, batch 1024, {epochs} timed epochs, {blas} "
          f"(median seconds per epoch; NFE per step forward + backward); CPU: {cpu_model()}")
    print("| threads | s / epoch | NFE / step |")
    print("|---|---|---|")
    for n in (1, 2):
        print(f"| {n} | {med[n]:.3f} | {np.mean(res[n]['nfe']):.1f} |")
    print(f"speed-up 2 vs 1 threads: {med[1] / med[2]:.2f}x; "
          f"max |theta(1) - theta(2)| = {diff:.3g}")
    return {"seconds": med, "speedup": med[1] / med[2], "theta_diff": diff}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads in both processes (0: BLAS's default)")
    args = p.parse_args()
    main(args.epochs, args.blas_threads)
