"""Continuous normalizing flows on 2-D data (the paper's section 4, Figures 4-6).

Maximum likelihood: a planar CNF (torchdiffeq's CNF example: width 64,
hypernetwork hidden width 32, 15904 parameters; dopri5 at rtol = atol = 1e-5;
data at t = 10, base at t = 0; Adam, lr 1e-3; 512 fresh samples per
iteration) is trained on two circles, two moons or eight Gaussians, beside
the paper's baseline, a planar normalizing flow with K = 64 layers trained the
same way.  Test NLL is measured on 5000 held-out points with the exact trace.

Density matching (``--matching``): the reverse KL to Rezende and Mohamed's
potentials U1-U4, for a CNF and for planar flows with K = 1, 2, 8, 32
(the paper's Figure 4).

Run: ``python -m nodekit.examples.cnf [--data two-circles|two-moons|eight-gaussians]
[--iters N] [--trace exact|hutchinson] [--out DIR] [--seed S] [--matching]``
(or ``nodekit demo cnf ...``).  Writes PNGs and ``metrics.json`` to ``--out``.
"""
import argparse
import json
import math
import os
import time
from functools import partial

import numpy as np

from nodekit.datasets import toy2d
from nodekit.models import CNF, Normal, PlanarFlow
from nodekit.train import Adam, fit

DATASETS = ("two-circles", "two-moons", "eight-gaussians")

#: Per data set: std of the base N(0, std^2 I) and the plotting box.
SETTINGS = {
    "two-circles": {"std": math.sqrt(0.1), "box": (-1.5, 1.5, -1.5, 1.5)},
    "two-moons": {"std": math.sqrt(0.1), "box": (-1.5, 2.5, -1.25, 1.75)},
    "eight-gaussians": {"std": 1.0, "box": (-4.5, 4.5, -4.5, 4.5)},
}
T1 = 10.0
BATCH = 512
N_TEST = 5000
WIDTH, HIDDEN = 64, 32


def make_cnf(data, trace="exact", seed=0, width=WIDTH, hidden=HIDDEN):
    """The CNF of the example for data set ``data``.

    Gradients by ``gradient="interpolated"``: over ``t`` in [0, 10] the flow
    contracts strongly, so the plain adjoint's backwards integration of the
    state drifts past :class:`nodekit.AdjointDriftWarning`'s threshold (about
    1% at rtol 1e-5), while the interpolated adjoint reads the state from the
    forward pass and was also the fastest mode in ``benchmarks.cnf``.
    """
    base = Normal(0.0, SETTINGS[data]["std"], dim=2)
    return CNF(2, base=base, t0=0.0, t1=T1, trace=trace, width=width, hidden=hidden,
               noise_seed=seed, method="dopri5", rtol=1e-5, atol=1e-5,
               gradient="interpolated")


def train_cnf(cnf, data, iters, seed, progress, lr=1e-3):
    """Maximum likelihood with fresh batches; returns the ``FitResult``."""
    stats = {}
    rng = np.random.default_rng(seed)

    def loss(theta, x):
        return cnf.nll(theta, x, stats=stats)

    return fit(loss, cnf.init(seed), optimizer=Adam(lr=lr), iters=iters,
               batches=lambda i: toy2d.sample(data, BATCH, rng), progress=progress,
               stats=stats, value_and_grad=False)


def train_planar(flow, data, iters, seed, progress, lr=1e-2):
    """The planar-flow baseline: the CNF's batches and optimiser, at its own
    learning rate.  At the CNF's 1e-3 the planar flow, which starts far from
    the data (NLL about 1300 on two circles), is still at NLL 96 after 300
    iterations; at 1e-2 it reaches 1.57, so 1e-2 is the fair baseline."""
    rng = np.random.default_rng(seed)
    return fit(flow.nll, flow.init(seed), optimizer=Adam(lr=lr), iters=iters,
               batches=lambda i: toy2d.sample(data, BATCH, rng), progress=progress,
               value_and_grad=False)


def grid(box, n=100):
    """A regular grid over ``box``: axes and the (n*n, 2) points."""
    gx, gy = np.linspace(box[0], box[1], n), np.linspace(box[2], box[3], n)
    X, Y = np.meshgrid(gx, gy)
    return gx, gy, np.column_stack([X.ravel(), Y.ravel()])


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _panel(ax, title, box):
    ax.set_title(title, fontsize=10)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_density(path, data, cnf, theta, flow, theta_nf, metrics):
    """Data | CNF density | CNF samples | planar NF density."""
    plt = _plt()
    box = SETTINGS[data]["box"]
    gx, gy, pts = grid(box)
    p_cnf = np.exp(cnf.log_prob(theta, pts, trace="exact")).reshape(gx.size, gy.size)
    p_nf = np.exp(flow.log_prob(theta_nf, pts)).reshape(gx.size, gy.size)
    x = toy2d.sample(data, 20000, seed=12345)
    s = cnf.sample(theta, 20000, seed=1)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    rng = [[box[0], box[1]], [box[2], box[3]]]
    axes[0].hist2d(*x.T, bins=120, range=rng, cmap="viridis")
    _panel(axes[0], f"data ({data})", box)
    axes[1].pcolormesh(gx, gy, p_cnf, cmap="viridis", shading="auto")
    _panel(axes[1], f"CNF density (test NLL {metrics['cnf']['test_nll']:.3f})", box)
    axes[2].hist2d(*s.T, bins=120, range=rng, cmap="viridis")
    _panel(axes[2], "CNF samples", box)
    axes[3].pcolormesh(gx, gy, p_nf, cmap="viridis", shading="auto")
    _panel(axes[3], f"planar NF K={flow.K} (test NLL {metrics['planar']['test_nll']:.3f})",
           box)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_flow(path, data, cnf, theta, n_times=6):
    """The paper's Figure 6: samples and density moving from the base (t0) to the data (t1)."""
    plt = _plt()
    box = SETTINGS[data]["box"]
    times = np.linspace(cnf.t0, cnf.t1, n_times)
    z0 = cnf.base.sample(4000, np.random.default_rng(2))
    zs, _ = cnf.integrate(theta, z0, times, trace="exact")
    gx, gy, pts = grid(box, 70)
    fig, axes = plt.subplots(2, n_times, figsize=(2.4 * n_times, 5.0))
    for j, t in enumerate(times):
        axes[0, j].scatter(*np.asarray(zs[j]).T, s=1, alpha=0.4, color="C0")
        _panel(axes[0, j], f"samples, t = {t:.1f}", box)
        if j == 0:
            logp = cnf.base.log_prob(pts)
        else:   # p_t(z) = p_base(z(t0)) exp(l(t0)), flowing z back from t to t0
            zb, lb = cnf.integrate(theta, pts, [t, cnf.t0], trace="exact")
            logp = cnf.base.log_prob(zb[-1]) - lb[-1]
        axes[1, j].pcolormesh(gx, gy, np.exp(logp).reshape(gx.size, gy.size),
                              cmap="viridis", shading="auto")
        _panel(axes[1, j], f"density, t = {t:.1f}", box)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_training(path, res_cnf, res_nf, entropy=None):
    """Training loss of both models and the CNF's NFE per iteration."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    a1.plot(res_cnf.loss, label="CNF", lw=1)
    a1.plot(res_nf.loss, label="planar NF", lw=1)
    if entropy is not None:
        a1.axhline(entropy, color="k", ls="--", lw=1, label="true entropy")
    a1.set_xlabel("iteration")
    a1.set_ylabel("NLL of the batch (nats)")
    a1.legend()
    a2.plot(res_cnf.nfev_forward, label="NFE forward", lw=1)
    a2.plot(res_cnf.nfev_backward, label="NFE backward", lw=1)
    a2.set_xlabel("iteration")
    a2.set_ylabel("function evaluations")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def maximum_likelihood(data, iters, trace, out, seed, progress, planar_K=WIDTH):
    """Train the CNF and the planar NF on ``data``; write plots; return the metrics."""
    cnf = make_cnf(data, trace, seed)
    flow = PlanarFlow(2, planar_K, base=cnf.base)
    x_test = toy2d.sample(data, N_TEST, seed=10 ** 6 + seed)
    # compile (or load from cache) outside the timing
    cnf.nll(cnf.init(seed), x_test[:8])
    print(f"CNF ({cnf.n_params} parameters, trace={trace}) on {data}, {iters} iterations")
    res = train_cnf(cnf, data, iters, seed, progress)
    print(f"planar NF (K={planar_K}, {flow.n_params} parameters)")
    res_nf = train_planar(flow, data, iters, seed, progress)
    tail = max(1, iters // 10)
    metrics = {
        "data": data, "iters": iters, "trace": trace, "seed": seed,
        "cnf": {"n_params": cnf.n_params, "success": res.success, "message": res.message,
                "train_nll": float(np.mean(res.loss[-tail:])),
                "test_nll": float(cnf.nll(res.theta, x_test, trace="exact")),
                "nfe_forward": float(np.mean(res.nfev_forward[-tail:])),
                "nfe_backward": float(np.mean(res.nfev_backward[-tail:])),
                "seconds_per_iter": res.seconds_per_iter},
        "planar": {"K": planar_K, "n_params": flow.n_params, "success": res_nf.success,
                   "train_nll": float(np.mean(res_nf.loss[-tail:])),
                   "test_nll": float(flow.nll(res_nf.theta, x_test)),
                   "seconds_per_iter": res_nf.seconds_per_iter},
    }
    entropy = None
    if data == "eight-gaussians":
        entropy, se = toy2d.eight_gaussians_entropy(200000, seed=seed)
        metrics["true_entropy"] = entropy
        metrics["true_entropy_se"] = se
    stem = os.path.join(out, f"cnf_{data}")
    figures = [stem + "_density.png", stem + "_flow.png", stem + "_training.png"]
    plot_density(figures[0], data, cnf, res.theta, flow, res_nf.theta, metrics)
    plot_flow(figures[1], data, cnf, res.theta)
    plot_training(figures[2], res, res_nf, entropy)
    np.savez(stem + "_params.npz", cnf=res.theta, planar=res_nf.theta)
    metrics["figures"] = figures
    return metrics


# ---------------------------------------------------------------------------- Figure 4


def _kl(theta, seed, model, log_target, n):
    return model.kl_to(theta, log_target, n, int(seed))


def density_matching(iters, out, seed, progress, Ks=(1, 2, 8, 32), width=32, n=256):
    """Reverse KL to U1-U4 for a CNF (``width`` units) and planar flows with ``Ks`` layers."""
    base = Normal(0.0, 1.0, dim=2)
    cnf = CNF(2, base=base, t0=0.0, t1=1.0, width=width, hidden=HIDDEN, rtol=1e-5,
              atol=1e-5)
    names = sorted(toy2d.POTENTIALS)
    results, thetas = {}, {}
    for name in names:
        log_target = toy2d.log_target(name)
        log_z = toy2d.log_normaliser(name)
        seeds = np.random.default_rng(seed).integers(2 ** 31, size=iters)
        print(f"density matching {name}: CNF (M={width})")
        res = fit(partial(_kl, model=cnf, log_target=log_target, n=n), cnf.init(seed),
                  optimizer=Adam(lr=1e-2), iters=iters,
                  batches=list(seeds), progress=progress, value_and_grad=False)
        # KL(q || p) = E_q[log q - log target] + log Z, on 4000 fresh samples
        kl = {"CNF": float(cnf.kl_to(res.theta, log_target, 4000, 99)) + log_z}
        thetas[(name, "CNF")] = (cnf, res.theta)
        for K in Ks:
            flow = PlanarFlow(2, K, base=base)
            r = fit(partial(_kl, model=flow, log_target=log_target, n=n), flow.init(seed),
                    optimizer=Adam(lr=1e-2), iters=iters, batches=list(seeds),
                    progress=False, value_and_grad=False)
            kl[f"NF K={K}"] = float(flow.kl_to(r.theta, log_target, 4000, 99)) + log_z
            thetas[(name, f"NF K={K}")] = (flow, r.theta)
        results[name] = kl
        print("  KL:", ", ".join(f"{k} {v:.3f}" for k, v in kl.items()))
    path = os.path.join(out, "cnf_density_matching.png")
    _plot_matching(path, names, thetas, results, Ks)
    return {"iters": iters, "width": width, "kl": results, "figure": path}


def _plot_matching(path, names, thetas, results, Ks):
    plt = _plt()
    cols = ["target", "CNF"] + [f"NF K={K}" for K in Ks]
    box = (-4, 4, -4, 4)
    gx, gy, pts = grid(box, 90)
    fig, axes = plt.subplots(len(names), len(cols), figsize=(2.2 * len(cols), 2.3 * len(names)))
    for i, name in enumerate(names):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            if col == "target":
                p = np.exp(-toy2d.POTENTIALS[name](pts))
                ax.pcolormesh(gx, gy, p.reshape(gx.size, gy.size), cmap="viridis",
                              shading="auto")
                _panel(ax, f"{name}: exp(-U)", box)
                continue
            model, theta = thetas[(name, col)]
            s = model.sample(theta, 20000, seed=3)
            ax.hist2d(*np.asarray(s).T, bins=90, range=[[-4, 4], [-4, 4]], cmap="viridis")
            _panel(ax, f"{col}\nKL {results[name][col]:.2f}", box)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------- entry point


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="nodekit demo cnf", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=DATASETS, default="two-circles")
    p.add_argument("--iters", type=int, default=200, help="training iterations (default 200)")
    p.add_argument("--trace", choices=("exact", "hutchinson"), default="exact")
    p.add_argument("--out", default="out/cnf", help="output folder (default out/cnf)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--matching", action="store_true",
                   help="also run density matching to U1-U4 (Figure 4)")
    p.add_argument("--matching-iters", type=int, default=300)
    args = p.parse_args(argv)
    if args.iters < 1:
        p.error(f"--iters must be a positive integer; got {args.iters}.")
    return args


def run(data="two-circles", iters=200, trace="exact", out="out/cnf", seed=0,
        progress=True, matching=False, matching_iters=300):
    """Run the experiments; write figures and ``metrics.json``; return the metrics dict."""
    os.makedirs(out, exist_ok=True)
    t_start = time.perf_counter()
    metrics = maximum_likelihood(data, iters, trace, out, seed, progress)
    if matching:
        metrics["density_matching"] = density_matching(matching_iters, out, seed, progress)
    metrics["seconds"] = time.perf_counter() - t_start
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    c, nf = metrics["cnf"], metrics["planar"]
    print(f"{data}: CNF test NLL {c['test_nll']:.4f} (train {c['train_nll']:.4f}, "
          f"{1000 * c['seconds_per_iter']:.0f} ms/iter, NFE {c['nfe_forward']:.0f}/"
          f"{c['nfe_backward']:.0f}); planar NF K={nf['K']} test NLL {nf['test_nll']:.4f}")
    if "true_entropy" in metrics:
        print(f"true entropy of the mixture: {metrics['true_entropy']:.4f}")
    print(f"wrote {out}/metrics.json and {len(metrics['figures'])} figures")
    return metrics


def main(argv=None):
    """Command-line entry point (``nodekit demo cnf``); returns 0 on success."""
    a = parse_args(argv)
    m = run(a.data, a.iters, a.trace, a.out, a.seed, not a.no_progress, a.matching,
            a.matching_iters)
    return 0 if m["cnf"]["success"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
