"""Fit a bouncing ball to observed bounce times: differentiable events.

A ball of radius 0.2 falls under gravity (g = 9.8) from height 10; at every
impact with the floor its velocity flips and shrinks by the restitution
coefficient ``e``.  The target: the first five bounce times of a ball with
``x0 = 10, v0 = 0, e = 0.8``.  We start from a wrong guess (``x0 = 8, v0 = 1,
e = 0.6``) and fit all three with L-BFGS on the squared error of the bounce
times, with exact gradients.  Each flight is ``nk.odeint_event`` (a terminal floor event);
the bounce ``v -> -e v`` is written in autograd-NumPy between flights, so
``autograd.grad`` differentiates the whole hybrid trajectory: each event
time by the implicit function theorem, each flight by the adjoint.

Run: ``python -m nodekit.examples.bouncing_ball [--iters N] [--out DIR]``.
Writes ``bouncing_ball.png`` (trajectories and bounce times, before and after
fitting) and prints the fitted parameters.
"""
import argparse
import os
import sys

import autograd
import autograd.numpy as anp
import numpy as np

import nodekit as nk

RADIUS, GRAVITY = 0.2, 9.8
TRUE = np.array([10.0, 0.0, 0.8])   # x0, v0, e
START = np.array([8.0, 1.0, 0.6])
N_BOUNCES = 5
OPTIONS = {"rtol": 1e-10, "atol": 1e-12}


def fall(t, y, g):
    """Free flight: position and velocity."""
    return anp.array([y[1], -g[0]])


FLOOR = nk.Event(lambda t, y, g: y[0] - RADIUS, direction=-1, name="floor")


def flights(params, n=N_BOUNCES):
    """Bounce times and the state just after each bounce (differentiable)."""
    x0, v0, e = params[0], params[1], params[2]
    t, y = 0.0, anp.array([x0, v0])
    times, states = [], []
    for _ in range(n):
        t, y = nk.odeint_event(fall, y, t, anp.array([GRAVITY]), FLOOR, t_max=t + 100.0,
                               **OPTIONS)
        y = anp.array([y[0], -e * y[1]])   # the bounce
        times.append(t)
        states.append(y)
    return anp.stack(times), states


def loss(params, target):
    return anp.sum((flights(params)[0] - target) ** 2)


def fit(iters=40):
    """BFGS with exact gradients on the bounce-time loss; returns the fitted
    parameters, the loss history and the target times."""
    from scipy.optimize import minimize
    target = flights(TRUE)[0]
    value_and_grad = autograd.value_and_grad(loss)
    history = []

    def fun(p):
        value, g = value_and_grad(p, target)
        history.append(value)
        return value, g
    res = minimize(fun, START, jac=True, method="L-BFGS-B", options={"maxiter": iters},
                   bounds=[(1.0, 20.0), (-5.0, 5.0), (0.05, 0.99)])
    return res.x, np.array(history), target


def trajectory(params):
    """The piecewise trajectory for plotting: (t, height) between bounces."""
    times, states = flights(params)
    t0, y = 0.0, np.array(params[:2], dtype=float)
    ts, xs = [], []
    for t1, y_after in zip(times, states):
        grid = np.linspace(t0, t1, 60)
        ts.append(grid)
        xs.append(nk.solve(fall, y, grid, [GRAVITY], **OPTIONS).y[:, 0])
        t0, y = t1, np.asarray(y_after)
    return np.concatenate(ts), np.concatenate(xs)


def plot(fitted, history, target, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=(2.2, 1))
    for params, label, style in ((TRUE, "target", "k-"), (START, "initial guess", "C1--"),
                                 (fitted, "fitted", "C0:")):
        ax.plot(*trajectory(params), style, label=label, lw=1.5)
    for tb in target:
        ax.axvline(tb, color="0.8", lw=0.8, zorder=0)
    ax.set(xlabel="t", ylabel="height of the centre", title="Bouncing ball: trajectories "
           "(grey lines: target bounce times)")
    ax.legend(loc="upper right")
    bx.semilogy(history)
    bx.set(xlabel="loss evaluation", ylabel="sum of squared bounce-time errors",
           title="Fit (L-BFGS, exact gradients)")
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "bouncing_ball.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=40, help="optimiser iterations (40)")
    p.add_argument("--out", default="out/bouncing_ball", help="output folder")
    args = p.parse_args(argv)
    fitted, history, target = fit(args.iters)
    print("target bounce times:", np.round(target, 4))
    print(f"fitted x0={fitted[0]:.4f} v0={fitted[1]:.4f} e={fitted[2]:.4f} "
          f"(true {TRUE[0]:g}, {TRUE[1]:g}, {TRUE[2]:g}); loss {history[0]:.3g} -> "
          f"{history[-1]:.3g}")
    print("wrote", plot(fitted, history, target, args.out))


if __name__ == "__main__":
    sys.exit(main())
