"""Learn the cubic spiral of torchdiffeq's ``ode_demo`` with a neural ODE.

Truth: ``dy/dt = (y**3) @ A``, ``A = [[-0.1, 2.0], [-2.0, -0.1]]``, ``y0 = [2, 0]``,
1000 points on [0, 25].  Model: ``Linear(2, 50) - tanh - Linear(50, 2)`` on
``y**3`` (252 parameters, weights N(0, 0.1), zero biases), dopri5 at rtol 1e-7,
atol 1e-9.  Each iteration: 20 random start points on the true trajectory,
each followed for 10 consecutive time points (one joint (20, 2) state on the
grid ``t[:10]``), L1 loss, adjoint gradient, one RMSprop step (lr 1e-3).

Run: ``python -m nodekit.examples.spiral [--iters N] [--out DIR] [--seed S]``
(or ``nodekit demo spiral``).  Writes four PNGs to ``--out``.
"""
import argparse
import os
import sys
import time

import numpy as np

import autograd
import autograd.numpy as anp

import nodekit as nk
from nodekit.nn import Dense, Power, Sequential
from nodekit.train import RMSprop, fit, save

TRUE_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
TRUE_Y0 = np.array([2.0, 0.0])
T = np.linspace(0.0, 25.0, 1000)
BATCH_SIZE, BATCH_TIME = 20, 10
RTOL, ATOL = 1e-7, 1e-9


def true_trajectory():
    """The true spiral at ``T``, shape (1000, 2) (nk.solve, rtol 1e-10)."""
    sol = nk.solve(lambda t, y, theta: (y ** 3) @ TRUE_A, TRUE_Y0, T, method="dopri5",
                   rtol=1e-10, atol=1e-12)
    if not sol.success:  # pragma: no cover
        raise RuntimeError(sol.message)
    return sol.y


def make_model():
    """``MLP(y**3)``: Power(3) - Dense(2, 50) - tanh - Dense(50, 2)."""
    return Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))


def get_batch(rng, true_y):
    """20 start points and the 10 true points following each, as in ``ode_demo``.

    Returns ``batch_y0`` (20, 2), ``batch_t`` (10,) and ``batch_y`` (10, 20, 2).
    """
    s = rng.choice(np.arange(T.size - BATCH_TIME), BATCH_SIZE, replace=False)
    batch_y0 = true_y[s]
    batch_t = T[:BATCH_TIME]
    batch_y = np.stack([true_y[s + i] for i in range(BATCH_TIME)], axis=0)
    return batch_y0, batch_t, batch_y


def make_loss(model, stats):
    """L1 loss of one batch, differentiable by autograd through ``nk.odeint``."""
    ode = model.ode

    def loss(theta, batch_y0, batch_t, batch_y):
        pred = nk.odeint(ode, batch_y0, batch_t, theta, method="dopri5", rtol=RTOL,
                         atol=ATOL, gradient="adjoint", stats=stats)
        return anp.mean(anp.abs(pred - batch_y))

    return loss


def _plots(out, true_y, pred_y, model, theta, losses):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    fig, ax = plt.subplots(figsize=(8, 4))
    for k, c in enumerate(("C0", "C1")):
        ax.plot(T, true_y[:, k], c, lw=2, alpha=0.5, label=f"true y{k}")
        ax.plot(T, pred_y[:, k], c + "--", lw=1, label=f"learned y{k}")
    ax.set(xlabel="t", ylabel="y", title="Trajectories")
    ax.legend(loc="upper right", fontsize=8)
    paths["trajectories"] = os.path.join(out, "trajectories.png")
    fig.savefig(paths["trajectories"], dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(true_y[:, 0], true_y[:, 1], "g-", lw=2, alpha=0.6, label="true")
    ax.plot(pred_y[:, 0], pred_y[:, 1], "b--", lw=1, label="learned")
    ax.set(xlabel="y0", ylabel="y1", title="Phase portrait", xlim=(-2.2, 2.2),
           ylim=(-2.2, 2.2), aspect="equal")
    ax.legend(loc="upper right", fontsize=8)
    paths["phase"] = os.path.join(out, "phase.png")
    fig.savefig(paths["phase"], dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    g = np.linspace(-2, 2, 21)
    Y = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    F = model.rhs(0.0, Y, theta)
    F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    ax.quiver(Y[:, 0], Y[:, 1], F[:, 0], F[:, 1], color="k", alpha=0.7)
    ax.plot(true_y[:, 0], true_y[:, 1], "g-", lw=1, alpha=0.5)
    ax.set(xlabel="y0", ylabel="y1", title="Learned vector field (directions)",
           aspect="equal")
    paths["vector_field"] = os.path.join(out, "vector_field.png")
    fig.savefig(paths["vector_field"], dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    it = np.arange(1, len(losses) + 1)
    ax.semilogy(it, losses, color="C0", lw=0.5, alpha=0.35, label="per batch")
    k = max(1, min(50, len(losses) // 10))  # running mean over k batches
    if len(losses) >= k:
        ax.semilogy(it[k - 1:], np.convolve(losses, np.ones(k) / k, mode="valid"), color="C0",
                    lw=1.8, label=f"running mean of {k}")
    ax.set(xlabel="iteration", ylabel="L1 loss of the batch (log scale)",
           title="Training loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    paths["loss"] = os.path.join(out, "loss.png")
    fig.savefig(paths["loss"], dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths


def main(iters=2000, out="out/spiral", seed=0, progress=True):
    """Train the spiral model; write figures and parameters to ``out``.

    Returns
    -------
    dict
        ``mae`` (mean absolute error of the learned model over the full
        1000-point trajectory, solved from ``y0``), ``mae_initial`` (same,
        before training), ``seconds_per_iter``, ``iters``, ``final_loss``,
        ``success``, ``message``, ``nfev_forward``/``nfev_backward`` (means
        per iteration), ``figures`` (paths) and ``params`` (path of the
        ``.npz``).
    """
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    true_y = true_trajectory()
    model = make_model()
    theta0 = model.init(seed, scheme="normal", std=0.1)
    stats = {}
    loss = make_loss(model, stats)

    def mae_of(theta):
        sol = nk.solve(model.ode, TRUE_Y0[None, :], T, theta, method="dopri5", rtol=RTOL,
                       atol=ATOL)
        return float(np.mean(np.abs(sol.y[:, 0] - true_y))), sol.y[:, 0]

    mae0, _ = mae_of(theta0)
    # compile (or load from Numba's cache) the forward and backward loops outside the timing
    autograd.value_and_grad(loss)(theta0, *get_batch(np.random.default_rng(seed + 1), true_y))
    # a first run compiles here (nodekit says so on stderr); later runs load from disk
    print(f"kernels ready in {time.perf_counter() - start:.1f} s", flush=True)
    res = fit(loss, theta0, optimizer=RMSprop(lr=1e-3), iters=iters,
              batches=lambda i: get_batch(rng, true_y), progress=progress, stats=stats,
              value_and_grad=False)
    mae, pred_y = mae_of(res.theta)
    figures = _plots(out, true_y, pred_y, model, res.theta, res.loss)
    params = os.path.join(out, "spiral_params.npz")
    save(params, res.theta, model, loss=res.loss)
    result = dict(mae=mae, mae_initial=mae0, seconds_per_iter=res.seconds_per_iter,
                  iters=res.iterations, final_loss=float(res.loss[-1]) if res.iterations
                  else float("nan"), success=res.success, message=res.message,
                  nfev_forward=float(np.mean(res.nfev_forward)) if res.iterations else 0.0,
                  nfev_backward=float(np.mean(res.nfev_backward)) if res.iterations else 0.0,
                  figures=figures, params=params)
    return result


def cli(argv=None):
    """Command line: train, print the error and speed, say where the plots went."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=2000, help="training iterations (2000)")
    p.add_argument("--out", default="out/spiral", help="output folder (out/spiral)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    r = main(iters=args.iters, out=args.out, seed=args.seed, progress=not args.no_progress)
    print(f"{r['message']}")
    print(f"spiral: {r['iters']} iterations, final batch loss {r['final_loss']:.4g}")
    print(f"mean absolute error over the 1000-point trajectory: {r['mae']:.4g} "
          f"(untrained {r['mae_initial']:.4g})")
    print(f"{1e3 * r['seconds_per_iter']:.3f} ms per iteration (NFE per iteration: "
          f"{r['nfev_forward']:.0f} forward, {r['nfev_backward']:.0f} backward); "
          f"total {time.perf_counter() - t0:.1f} s")
    print("figures: " + ", ".join(r["figures"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
