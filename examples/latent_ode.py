"""Latent ODE against an RNN on irregularly observed spirals (the paper's Table 2, Figure 8).

Data (torchdiffeq's latent-ODE construction, ``nodekit.datasets.spirals``):
1000 noisy 2-D spirals (noise std 0.3), half clockwise, each a window of 100
consecutive points of a 1000-point grid on [0, 6 pi]; every spiral keeps
``k`` of its 100 points at random (k = 30, 50, 100: irregular, different per
spiral).  Both models are scored by the RMSE of their predictions on the 100
noiseless grid points that follow each window (extrapolation, never seen in
training).

Models: the latent ODE (``nk.models.LatentODE``: reverse-time RNN encoder with
25 units, 4-D latent state, dynamics 4-20-20-4 ELU compiled by ``nk.nn``,
decoder 4-20-2) and the RNN baseline (``nk.models.RNNBaseline``: 25 units,
fed time gaps, predicting the next point; extrapolates by feeding back its
predictions).  Same optimiser (Adam, lr 0.01 as torchdiffeq's example), same
iterations, same minibatches of spirals.

Run: ``python -m nodekit.examples.latent_ode [--obs 30,50,100] [--iters N] [--out DIR]
[--seed S] [--quick] [--no-progress]`` (or ``nodekit demo latent ...``).
Writes ``metrics.json`` and PNGs to ``--out`` (default ``out/latent``).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from nodekit.datasets import spirals, subsample
from nodekit.models import LatentODE, RNNBaseline
from nodekit.train import Adam, fit

#: The paper's Table 2 (RMSE on held-out points).
PAPER = {"30": {"rnn": 0.3937, "latent_ode": 0.1642},
         "50": {"rnn": 0.3202, "latent_ode": 0.1502},
         "100": {"rnn": 0.1813, "latent_ode": 0.1346}}

#: Settings of the default run and of ``--quick``.
SETTINGS = {
    "default": {"n_spirals": 1000, "iters": 300, "batch": 100},
    "quick": {"n_spirals": 100, "iters": 25, "batch": 50},
}
LR = 0.01
#: Solver of the latent ODE during training.  ``gradient='discrete'``
#: back-propagates through the solver's steps, as torchdiffeq's example does
#: by default (its ``--adjoint False``); the model's own default is the adjoint.
SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-6, "gradient": "discrete"}
T0 = 0.0


def minibatch(irr, idx):
    """Sequences ``idx`` of a batch, on the union of their own times."""
    mask = irr.mask[idx]
    cols = mask.any(axis=0)
    return irr.t[cols], irr.x[idx][:, cols], mask[:, cols]


def batch_source(irr, batch, seed):
    """``batches(i)``: a random minibatch of spirals per iteration (all if batch >= n)."""
    n = irr.x.shape[0]
    rng = np.random.default_rng(seed)
    if batch >= n:
        full = minibatch(irr, np.arange(n))
        return lambda i: full
    return lambda i: minibatch(irr, rng.choice(n, size=batch, replace=False))


def train_latent(irr, iters, batch, seed, progress):
    model = LatentODE(obs_dim=2, latent_dim=4, hidden=20, rnn_hidden=25, encoder="rnn",
                      noise_std=0.3, **SOLVER)
    stats = {}
    noise = np.random.default_rng(seed + 1)

    def loss(theta, t, x, mask):
        return -model.elbo(theta, t, x, mask, seed=noise, t0=T0, stats=stats)

    res = fit(loss, model.init(seed), optimizer=Adam(lr=LR), iters=iters,
              batches=batch_source(irr, batch, seed), progress=progress, stats=stats,
              value_and_grad=False)
    return model, res


def train_rnn(irr, iters, batch, seed, progress):
    model = RNNBaseline(obs_dim=2, rnn_hidden=25, noise_std=0.3)

    def loss(theta, t, x, mask):
        return -model.log_likelihood(theta, t, x, mask, t0=T0)

    res = fit(loss, model.init(seed), optimizer=Adam(lr=LR), iters=iters,
              batches=batch_source(irr, batch, seed), progress=progress,
              value_and_grad=False)
    return model, res


def predict_held(model, theta, irr, chunk=250):
    """Predictions at the held-out times for every spiral, in chunks: (n, H, 2)."""
    out = []
    for s in range(0, irr.x.shape[0], chunk):
        t, x, mask = minibatch(irr, np.arange(s, min(s + chunk, irr.x.shape[0])))
        if isinstance(model, LatentODE):
            out.append(model.predict(theta, t, x, mask, irr.t_held, mean=True, t0=T0)[0])
        else:
            out.append(model.predict(theta, t, x, mask, irr.t_held, t0=T0))
    return np.concatenate(out)


def rmse(pred, truth):
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_reconstructions(path, data, irr, k, latent, th_l, rnn, th_r, show=(0, 1, 2, 3)):
    """Figure 8: observations, truth, latent-ODE reconstruction and extrapolation, RNN."""
    plt = _plt()
    show = list(show)
    t, x, mask = minibatch(irr, np.array(show))
    t_fine = np.linspace(T0, irr.t_held[-1], 400)
    xl = latent.predict(th_l, t, x, mask, t_fine, mean=True, t0=T0)[0]
    xr = rnn.predict(th_r, t, x, mask, irr.t_held, t0=T0)
    split = np.searchsorted(t_fine, data.t[-1])
    fig, axes = plt.subplots(1, len(show), figsize=(4 * len(show), 4))
    for ax, b in zip(np.atleast_1d(axes), range(len(show))):
        s = show[b]
        path_all = np.concatenate([data.x_true[s], data.x_held[s]])
        ax.plot(*path_all.T, color="0.75", lw=3, label="truth")
        ax.scatter(*x[b, mask[b]].T, s=8, color="k", zorder=3, label=f"{k} observations")
        ax.plot(*xl[b, :split].T, color="tab:blue", label="latent ODE (reconstruction)")
        ax.plot(*xl[b, split:].T, color="tab:blue", ls="--", label="latent ODE (extrapolation)")
        ax.plot(*xr[b].T, color="tab:red", ls="--", label="RNN (extrapolation)")
        ax.set_title(f"spiral {s} ({'clockwise' if data.clockwise[s] else 'counter-clockwise'})",
                     fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{k} irregular observations per spiral")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_latents(path, data, irr, latent, th_l, n=16):
    """Latent trajectories (posterior means) of ``n`` spirals: the first two
    principal directions over time, coloured by the spiral's direction."""
    plt = _plt()
    idx = np.arange(min(n, irr.x.shape[0]))
    t, x, mask = minibatch(irr, idx)
    t_fine = np.linspace(T0, irr.t_held[-1], 200)
    _, z = latent.predict(th_l, t, x, mask, t_fine, mean=True, t0=T0, return_latent=True)
    z = z[0]                                               # (n, P, latent)
    flat = z.reshape(-1, z.shape[-1])
    centre = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - centre, full_matrices=False)
    proj = (z - centre) @ vt[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for b in idx:
        c = "tab:red" if data.clockwise[b] else "tab:blue"
        axes[0].plot(*proj[b].T, color=c, lw=1)
        axes[0].scatter(*proj[b, 0], color=c, s=10)
        for j in range(z.shape[-1]):
            axes[1].plot(t_fine, z[b, :, j], color=f"C{j}", lw=0.7, alpha=0.6)
    axes[0].set_title("latent trajectories, first two principal directions\n"
                      "(red: clockwise spirals, blue: counter-clockwise; dots: t = 0)",
                      fontsize=9)
    axes[1].axvline(data.t[-1], color="k", lw=0.8, ls=":")
    axes[1].set_title("latent coordinates against time (dotted: end of the window)",
                      fontsize=9)
    axes[1].set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_one(data, k, iters, batch, seed, progress, out):
    """Train both models on ``k`` observations per spiral; score and plot."""
    irr = subsample(data, k, seed=seed + k)
    print(f"k = {k}: latent ODE")
    latent, res_l = train_latent(irr, iters, batch, seed, progress)
    print(f"k = {k}: RNN baseline")
    rnn, res_r = train_rnn(irr, iters, batch, seed, progress)
    for name, res in (("latent ODE", res_l), ("RNN", res_r)):
        if not res.success:
            print(f"  warning: {name}: {res.message}")
    r_l = rmse(predict_held(latent, res_l.theta, irr), irr.x_held)
    r_r = rmse(predict_held(rnn, res_r.theta, irr), irr.x_held)
    fig = os.path.join(out, f"reconstructions_{k}.png")
    plot_reconstructions(fig, data, irr, k, latent, res_l.theta, rnn, res_r.theta)
    figs = [fig]
    return {"latent_ode": r_l, "rnn": r_r, "success": bool(res_l.success and res_r.success),
            "seconds_per_iter": {"latent_ode": res_l.seconds_per_iter,
                                 "rnn": res_r.seconds_per_iter},
            "final_loss": {"latent_ode": float(res_l.loss[-1]) if res_l.loss.size else None,
                           "rnn": float(res_r.loss[-1]) if res_r.loss.size else None},
            "nfev_forward_mean": float(np.mean(res_l.nfev_forward)) if res_l.iterations
            else None}, figs, (latent, res_l.theta, irr)


def table(metrics):
    """Table 2's layout: RMSE per observation count, ours beside the paper's."""
    ks = list(metrics["rmse"])
    lines = ["RMSE on held-out points (extrapolation), this run [paper]",
             f"{'# observations':<16}" + "".join(f"{k:>20}" for k in ks)]
    for key, name in (("rnn", "RNN"), ("latent_ode", "Latent ODE")):
        row = f"{name:<16}"
        for k in ks:
            paper = PAPER.get(k, {}).get(key)
            ref = f" [{paper:.4f}]" if paper is not None else ""
            row += f"{metrics['rmse'][k][key]:>11.4f}{ref:>9}"
        lines.append(row)
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(prog="nodekit demo latent",
                                description=__doc__.split("\n")[0])
    p.add_argument("--obs", default="30,50,100",
                   help="observations per spiral, comma-separated (default 30,50,100)")
    p.add_argument("--iters", type=int, default=None,
                   help=f"training iterations per model (default {SETTINGS['default']['iters']}"
                        f", --quick {SETTINGS['quick']['iters']})")
    p.add_argument("--batch", type=int, default=None,
                   help="spirals per iteration (default 100, --quick 50)")
    p.add_argument("--out", default=os.path.join("out", "latent"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="100 spirals, 25 iterations: a check that runs in about a minute")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


def parse_obs(text):
    try:
        ks = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        ks = []
    if not ks or any(k < 1 or k > 100 for k in ks):
        raise SystemExit(f"--obs must be comma-separated integers in 1..100 (observations "
                         f"kept of each 100-point window); got {text!r}.")
    return ks


def run(args):
    """Run the experiment; write figures and ``metrics.json``; return the metrics."""
    cfg = dict(SETTINGS["quick" if args.quick else "default"])
    if args.iters is not None:
        cfg["iters"] = args.iters
    if args.batch is not None:
        cfg["batch"] = args.batch
    ks = parse_obs(args.obs)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    data = spirals(n_spirals=cfg["n_spirals"], n_total=1000, n_obs=100, noise_std=0.3,
                   seed=args.seed)
    metrics = {"rmse": {}, "paper": PAPER, "settings": {**cfg, "lr": LR, "seed": args.seed,
                                                       "solver": SOLVER, "noise_std": 0.3},
               "details": {}, "figures": []}
    last = None
    for k in ks:
        res, figs, last = run_one(data, k, cfg["iters"], cfg["batch"], args.seed,
                                  not args.no_progress, args.out)
        metrics["rmse"][str(k)] = {"latent_ode": res["latent_ode"], "rnn": res["rnn"]}
        metrics["details"][str(k)] = res
        metrics["figures"] += figs
    fig = os.path.join(args.out, "latent_trajectories.png")
    plot_latents(fig, data, last[2], last[0], last[1])
    metrics["figures"].append(fig)
    metrics["seconds"] = time.perf_counter() - start
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    print(table(metrics))
    print(f"{metrics['seconds']:.0f} s; wrote {args.out}/metrics.json and "
          f"{len(metrics['figures'])} figures")
    return metrics


def main(argv=None):
    """Entry point of ``nodekit demo latent`` (``argv`` without the program name).

    Returns 0, or 1 if a training run stopped early (non-finite loss or a
    failed solve; the message is printed).
    """
    metrics = run(parser().parse_args(argv))
    return 0 if all(d["success"] for d in metrics["details"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
