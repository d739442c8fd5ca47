"""Figure 3 of Chen et al. (2018) on the ODE-Net trained by ``examples/digits.py``.

Loads ``odenet.npz`` from ``--from`` (default ``out/digits``; written by
``examples/digits.py``), or trains a short ODE-Net if it is missing, then on a
batch of test images sweeps the solver tolerance and records

* NFE of the forward solve against the tolerance (``fig3_nfe_vs_tol.png``);
* numerical error of ``h(1)`` (max abs difference from a rtol = atol = 1e-10 solve)
  and of the logits against NFE-F (``fig3a_error_vs_nfe.png``);
* wall time of a forward pass against NFE-F (``fig3b_time_vs_nfe.png``);
* NFE of the adjoint (backward) solve against NFE-F (``fig3c_nfeb_vs_nfef.png``);
* NFE-F and NFE-B over training (``fig3d_nfe_training.png``, from the history
  saved by ``digits.py``);

plus ``figure3.png`` (all panels), ``figure3.md`` and ``figure3.json``.

Run: ``python -m nodekit.examples.figure3 [--from DIR] [--out DIR] [--batch N]``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import autograd

from nodekit._tables import table
from nodekit.datasets import load_digits
from nodekit.models import ODENet
from nodekit.train import load

TOLS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8)
REFERENCE_TOL = 1e-10


def _load_or_train(src, seed, iters, progress):
    path = os.path.join(src, "odenet.npz") if src else None
    if path and os.path.exists(path):
        theta, _, extra = load(path)
        width = int(extra["width"])
        model = ODENet(64, width, 10, rtol=float(extra["rtol"]), atol=float(extra["atol"]))
        return model, theta, extra["nfe_forward"], extra["nfe_backward"], path
    from . import digits
    if progress:
        print(f"{path or '(no --from)'} not found: training a short ODE-Net ({iters} steps)")
    data = load_digits(seed=seed)
    r = digits.train("odenet", data, iters=iters, seed=seed, progress=progress)
    model = digits.make_model("odenet")
    return model, r["theta"], r["nfe_forward"], r["nfe_backward"], "trained here"


def sweep(model, theta, x, labels, tols=TOLS, repeats=5):
    """Forward/backward statistics of the ODE block at every tolerance."""
    ref_h = np.asarray(model.features(theta, x, rtol=REFERENCE_TOL, atol=REFERENCE_TOL,
                                      stats={}))
    ref_logits = np.asarray(model.logits(theta, x, rtol=REFERENCE_TOL, atol=REFERENCE_TOL,
                                         stats={}))
    rows = []
    for tol in tols:
        st = {}
        times = []
        for _ in range(repeats):
            st = {}
            t0 = time.perf_counter()
            logits = np.asarray(model.logits(theta, x, rtol=tol, atol=tol, stats=st))
            times.append(time.perf_counter() - t0)
        h = np.asarray(model.features(theta, x, rtol=tol, atol=tol, stats={}))
        sb = {}

        def loss(th):
            from nodekit.models import cross_entropy
            return cross_entropy(model.logits(th, x, rtol=tol, atol=tol, stats=sb), labels)

        autograd.grad(loss)(theta)
        rows.append(dict(tol=tol, nfe_forward=int(st["nfev_forward"]),
                         nfe_backward=int(sb["nfev_backward"]),
                         error_h=float(np.max(np.abs(h - ref_h))),
                         error_logits=float(np.max(np.abs(logits - ref_logits))),
                         seconds=float(np.min(times)),
                         agreement=float(np.mean(np.argmax(logits, 1) ==
                                                 np.argmax(ref_logits, 1)))))
    return rows


def _plots(out, rows, nfe_f_hist, nfe_b_hist, steps_per_epoch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    tol = np.array([r["tol"] for r in rows])
    nf = np.array([r["nfe_forward"] for r in rows])
    nb = np.array([r["nfe_backward"] for r in rows])
    err = np.array([r["error_h"] for r in rows])
    err_l = np.array([r["error_logits"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])

    def panel_tol(ax):
        ax.loglog(tol, nf, "o-")
        ax.set_xlabel("rtol = atol")
        ax.set_ylabel("NFE forward")
        ax.invert_xaxis()
        ax.set_title("NFE-F vs tolerance")

    def panel_a(ax):
        ax.loglog(nf, np.maximum(err, 1e-17), "o-", label="h(1)")
        ax.loglog(nf, np.maximum(err_l, 1e-17), "s--", label="logits")
        ax.set_xlabel("NFE forward")
        ax.set_ylabel("max abs error vs tight solve")
        ax.legend()
        ax.set_title("(a) error vs NFE-F")
        # label a few minor ticks only (all of them overlap on a short log range)
        ax.xaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if round(v) in (20, 50, 200, 500) else ""))

    def panel_b(ax):
        ax.plot(nf, 1e3 * sec, "o-")
        ax.set_xlabel("NFE forward")
        ax.set_ylabel("forward pass (ms)")
        ax.set_title("(b) time vs NFE-F")

    def panel_c(ax):
        ax.plot(nf, nb, "o-", label="adjoint")
        lim = max(nf.max(), nb.max())
        ax.plot([0, lim], [0, lim], "k:", label="NFE-B = NFE-F")
        ax.plot([0, lim], [0, lim / 2], "k--", lw=0.8, label="NFE-B = NFE-F / 2")
        ax.set_xlabel("NFE forward")
        ax.set_ylabel("NFE backward")
        ax.legend()
        ax.set_title("(c) NFE-B vs NFE-F")

    def panel_d(ax):
        it = np.arange(len(nfe_f_hist)) / steps_per_epoch
        k = max(1, steps_per_epoch)
        smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(it, nfe_f_hist, color="C0", alpha=0.25, lw=0.5)
        ax.plot(it, nfe_b_hist, color="C1", alpha=0.25, lw=0.5)
        if len(nfe_f_hist) >= k:
            ax.plot(it[k - 1:], smooth(nfe_f_hist), color="C0", label="NFE-F (epoch mean)")
            ax.plot(it[k - 1:], smooth(nfe_b_hist), color="C1", label="NFE-B (epoch mean)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NFE per step")
        ax.legend()
        ax.set_title("(d) NFE over training")

    panels = {"fig3_nfe_vs_tol.png": panel_tol, "fig3a_error_vs_nfe.png": panel_a,
              "fig3b_time_vs_nfe.png": panel_b, "fig3c_nfeb_vs_nfef.png": panel_c,
              "fig3d_nfe_training.png": panel_d}
    files = []
    for name, draw in panels.items():
        fig, ax = plt.subplots(figsize=(4.5, 3.6))
        draw(ax)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=120)
        plt.close(fig)
        files.append(name)
    # all panels on a 2 x 3 grid (the sixth cell stays empty)
    fig, axes = plt.subplots(2, 3, figsize=(13.5, 8))
    for ax, draw in zip(axes.flat, panels.values()):
        draw(ax)
    axes.flat[-1].set_visible(False)
    fig.suptitle("Figure 3 on the digits ODE-Net")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "figure3.png"), dpi=100)
    plt.close(fig)
    return files + ["figure3.png"]


def main(out="out/figure3", src="out/digits", seed=0, batch=256, iters=200, tols=TOLS,
         progress=True, plots=True):
    """Measure and plot Figure 3; returns a dict with the sweep rows.

    Parameters
    ----------
    out : str
        Folder of the PNGs and tables.
    src : str or None
        Folder of ``digits.py``'s output (its ``odenet.npz``).
    seed : int
    batch : int
        Test images in the sweep.
    iters : int
        Training steps if no saved ODE-Net is found.
    tols : sequence of float
    progress, plots : bool
    """
    os.makedirs(out, exist_ok=True)
    model, theta, nfe_f_hist, nfe_b_hist, origin = _load_or_train(src, seed, iters, progress)
    data = load_digits(seed=seed)
    x, y = data.x_test[:batch], data.y_test[:batch]
    rows = sweep(model, theta, x, y, tols)
    steps_per_epoch = -(-len(data.y_train) // 64)
    header = ["rtol = atol", "NFE-F", "NFE-B", "NFE-B / NFE-F", "max error h(1)",
              "max error logits", "same class as tight solve", "forward ms"]
    cells = [[f"{r['tol']:g}", r["nfe_forward"], r["nfe_backward"],
              f"{r['nfe_backward'] / r['nfe_forward']:.2f}", f"{r['error_h']:.2e}",
              f"{r['error_logits']:.2e}", f"{100 * r['agreement']:.1f}%",
              f"{1e3 * r['seconds']:.2f}"] for r in rows]
    nf = np.asarray(nfe_f_hist, dtype=float)
    nb = np.asarray(nfe_b_hist, dtype=float)
    k = steps_per_epoch
    train_line = ""
    if nf.size >= 2 * k:
        train_line = (f"NFE over training (mean per step): first epoch NFE-F {nf[:k].mean():.1f} /"
                      f" NFE-B {nb[:k].mean():.1f}; last epoch NFE-F {nf[-k:].mean():.1f} / "
                      f"NFE-B {nb[-k:].mean():.1f}.")
    text = (f"## Figure 3 on the digits ODE-Net\n\nModel: {model.describe()} ({origin}); "
            f"{len(y)} test images; reference: rtol = atol = {REFERENCE_TOL:g}; forward time: "
            f"best of 5.\n\n" + table(cells, header, "rrrrrrrr") + "\n\n" + train_line + "\n")
    with open(os.path.join(out, "figure3.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "figure3.json"), "w") as fh:
        json.dump(dict(rows=rows, nfe_forward_training=nf.tolist(),
                       nfe_backward_training=nb.tolist(), model=model.describe()), fh)
    files = _plots(out, rows, nf, nb, steps_per_epoch) if plots else []
    if progress:
        print(text)
        print("wrote", ", ".join(os.path.join(out, f) for f in files))
    return dict(rows=rows, text=text, files=files)


def cli(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="src", default="out/digits")
    p.add_argument("--out", default="out/figure3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=200)
    a = p.parse_args(argv)
    main(out=a.out, src=a.src, seed=a.seed, batch=a.batch, iters=a.iters)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
