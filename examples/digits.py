"""Table 1 of Chen et al. (2018) on scikit-learn's 8x8 digits.

Four classifiers of 64 pixels into 10 classes (``nodekit.models``):

* MLP: 64 - hidden - 10, tanh (hidden width chosen for about the ODE-Net's
  parameter count);
* ResNet: Dense(64, w), six residual blocks ``h + f_k(h)``, ``f_k = Dense(w, w)
  - tanh - Dense(w, w)`` (separate parameters), Dense(w, 10);
* ODE-Net: the same input and output layers around one ODE block ``dh/dt =
  f(t, h)``, ``f = TimeDense(w, w) - tanh - TimeDense(w, w)``, on [0, 1], adaptive
  dopri5, adjoint gradient (compiled ``nk.nn`` dynamics);
* RK-Net: the ODE-Net trained with ``gradient="discrete"`` (backpropagation
  through the same adaptive dopri5 steps).

All are trained by Adam on minibatches of softmax cross-entropy, with fixed
seeds.  The table reports the test error, the parameter count, the peak memory
of one training step (growth of the peak resident set size in a fresh process,
on a batch of ``--mem-batch`` images), seconds per epoch and the mean NFE of
the forward and backward passes.  A second table shows the memory of one
step of the ODE-Net and the RK-Net as the tolerance (and so the NFE) varies.

Run: ``python -m nodekit.examples.digits [--epochs N] [--out DIR] [--seed S]``.  Writes
``table.md``, ``results.json`` and ``thetas.npz`` (plus ``odenet.npz``, the
ODE-Net for ``examples/figure3.py``) to ``--out``.
"""
import argparse
import json
import os
import subprocess
import sys

import autograd.numpy as anp
import numpy as np

from nodekit._tables import table as format_table
from nodekit.benchmarks._timing import child_env
from nodekit.datasets import load_digits, minibatches, shift_images
from nodekit.models import build
from nodekit.train import Adam, fit, save

#: Settings of the default run.
WIDTH = 64
BATCH_SIZE = 64
LR = 3e-3
LR_FINAL = 3e-4        # lr decays geometrically from LR to LR_FINAL over the run
EPOCHS = 60
RTOL = ATOL = 1e-4     # ODE-Net and RK-Net solves (dopri5, adaptive)
AUGMENT = 0           # training images shifted by up to this many pixels (0: off)
WEIGHT_DECAY = 1e-4   # L2 penalty wd * |theta|^2 added to the training loss
MEM_BATCH = 1024       # batch of the memory measurement
MEM_TOLS = (1e-2, 1e-4, 1e-6, 1e-8)
MODEL_NAMES = ("mlp", "resnet", "odenet", "rknet")
LABELS = {"mlp": "MLP", "resnet": "ResNet", "odenet": "ODE-Net", "rknet": "RK-Net"}


def make_model(name, rtol=RTOL, atol=ATOL, width=WIDTH):
    """One of the four models with this run's settings."""
    if name in ("odenet", "rknet"):
        return build(name, width=width, rtol=rtol, atol=atol)
    return build(name, width=width)


def train(name, data, *, epochs=EPOCHS, iters=None, seed=0, batch_size=BATCH_SIZE, lr=LR,
          lr_final=LR_FINAL, augment=AUGMENT, weight_decay=WEIGHT_DECAY, progress=True,
          model=None):
    """Train one model; returns a dict of results (theta, errors, timings, NFE history)."""
    model = model or make_model(name)
    theta = model.init(seed)
    rng = np.random.default_rng(seed + 1000)
    n = len(data.y_train)
    per_epoch = -(-n // batch_size)
    total = iters if iters is not None else epochs * per_epoch
    n_epochs = -(-total // per_epoch)
    decay = (lr_final / lr) ** (1.0 / max(total - 1, 1))
    opt = Adam(lr=lr)
    losses, nfe_f, nfe_b, epoch_seconds, test_curve = [], [], [], [], []
    done = 0
    message = "ok"

    def loss(th, x, y):
        out = model.loss(th, x, y)
        return out + weight_decay * anp.sum(th * th) if weight_decay else out

    for epoch in range(n_epochs):
        x = shift_images(data.x_train, rng, data.image_shape, augment) if augment \
            else data.x_train
        batches = [(x[i], data.y_train[i])
                   for i in minibatches(n, batch_size, rng)][:total - done]

        res = fit(loss, theta, optimizer=opt, iters=len(batches), batches=batches,
                  stats=model.stats, progress=False, value_and_grad=False,
                  schedule=lambda i, _start=done: lr * decay ** (_start + i))
        theta = res.theta
        done += res.iterations
        losses += list(res.loss)
        nfe_f += list(res.nfev_forward)
        nfe_b += list(res.nfev_backward)
        epoch_seconds.append(res.seconds)
        test_curve.append(model.error(theta, data.x_test, data.y_test))
        if progress:
            print(f"  {LABELS[name]:8s} epoch {epoch + 1:3d}/{n_epochs}: loss "
                  f"{np.mean(res.loss):.4f}, test error {100 * test_curve[-1]:.2f}%, "
                  f"{res.seconds:.2f} s" + (f", NFE {np.mean(res.nfev_forward):.1f} + "
                                            f"{np.mean(res.nfev_backward):.1f}"
                                            if model.has_ode else ""), flush=True)
        if not res.success:
            message = res.message
            break
    # full epochs only for the timing (the last one may be cut short by `iters`)
    full = [s for s, k in zip(epoch_seconds, range(n_epochs))
            if (k + 1) * per_epoch <= done] or epoch_seconds
    return dict(name=name, label=LABELS[name], model=model.describe(), theta=theta,
                n_params=model.n_params, test_error=model.error(theta, data.x_test, data.y_test),
                train_error=model.error(theta, data.x_train, data.y_train),
                loss=np.array(losses), nfe_forward=np.array(nfe_f), nfe_backward=np.array(nfe_b),
                seconds_per_epoch=float(np.mean(full)), seconds=float(np.sum(epoch_seconds)),
                test_error_curve=np.array(test_curve), iterations=done, message=message)


_MEM_CHILD = r'''
import json, resource, sys, gc
import numpy as np, autograd
from nodekit.examples.digits import make_model
from nodekit.datasets import load_digits
name, bs, tol, seed, thetas = sys.argv[1:6]
bs, tol, seed = int(bs), float(tol), int(seed)
m = make_model(name, rtol=tol, atol=tol)
th = m.init(seed)
if thetas != "-":
    with np.load(thetas) as f:
        if name in f.files:
            th = f[name]
d = load_digits(seed)
x = np.concatenate([d.x_train] * (1 + bs // len(d.x_train)))[:bs]
y = np.concatenate([d.y_train] * (1 + bs // len(d.y_train)))[:bs]
vg = autograd.value_and_grad(m.loss)
vg(th, x[:8], y[:8])            # warm-up: kernels loaded, autograd traced once
gc.collect()

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])   # kB
    return None

try:  # reset the peak RSS (Linux >= 4.0), so that the peak is this step's
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before, how = status("VmRSS"), "VmHWM"
except OSError:
    before, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
m.stats.clear()
vg(th, x, y)
after = status("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(growth_mb=max(after - before, 0) / 1024, how=how,
                      nfe_forward=int(m.stats.get("nfev_forward", 0)),
                      nfe_backward=int(m.stats.get("nfev_backward", 0)))))
'''


def step_memory(name, batch_size=MEM_BATCH, tol=RTOL, seed=0, thetas=None):
    """Peak-RSS growth (MB) of one training step of ``name``, in a fresh process.

    Returns a dict with ``growth_mb``, ``nfe_forward``, ``nfe_backward`` and
    ``how`` ('VmHWM' after resetting the peak, or 'ru_maxrss').
    """
    res = subprocess.run([sys.executable, "-c", _MEM_CHILD, name, str(batch_size), repr(tol),
                          str(seed), thetas or "-"], capture_output=True, text=True,
                         env=child_env())
    if res.returncode != 0:
        raise RuntimeError(f"memory measurement of {name} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(iters=None, out="out/digits", seed=0, epochs=EPOCHS, progress=True,
         models=MODEL_NAMES, memory=True, mem_batch=MEM_BATCH, mem_tols=MEM_TOLS):
    """Train the four models, measure them, write ``table.md`` and friends to ``out``.

    Parameters
    ----------
    iters : int, optional
        Steps per model (overrides ``epochs``; for quick runs).
    out : str
    seed : int
    epochs : int
    progress : bool
    models : sequence of str
    memory : bool
        Measure the memory of one step of each model (fresh processes).
    mem_batch : int
    mem_tols : sequence of float
        Tolerances of the memory-versus-NFE sweep (empty: skip it).

    Returns
    -------
    dict
        ``results`` (per model), ``table`` (Markdown), ``memory_sweep`` rows.
    """
    os.makedirs(out, exist_ok=True)
    data = load_digits(seed=seed)
    if progress:
        print(f"{data}; batch {BATCH_SIZE}, Adam lr {LR:g} -> {LR_FINAL:g}, "
              f"weight decay {WEIGHT_DECAY:g}, "
              f"{'%d iterations' % iters if iters else '%d epochs' % epochs}", flush=True)
    results = {}
    for name in models:
        results[name] = train(name, data, epochs=epochs, iters=iters, seed=seed,
                              progress=progress)
    thetas_path = os.path.join(out, "thetas.npz")
    np.savez(thetas_path, **{k: r["theta"] for k, r in results.items()})
    if "odenet" in results:
        r = results["odenet"]
        m = make_model("odenet")
        # the whole classifier's theta (input layer, ODE block, output layer); the
        # dynamics' description alone would not match it, so no `model=`
        save(os.path.join(out, "odenet.npz"), r["theta"],
             dynamics_spec=np.array(json.dumps(m.dynamics.spec())),
             nfe_forward=r["nfe_forward"], nfe_backward=r["nfe_backward"], loss=r["loss"],
             width=np.array(WIDTH), rtol=np.array(RTOL), atol=np.array(ATOL),
             seed=np.array(seed))
    mem = {}
    if memory:
        if progress:
            print(f"measuring the peak memory of one training step of each model (batch "
                  f"{mem_batch}, a fresh process per model, each loading its kernels "
                  "first; --no-memory skips this)", flush=True)
        for name in results:
            mem[name] = step_memory(name, mem_batch, RTOL, seed, thetas_path)
            if progress:
                print(f"  {LABELS[name]:8s} {mem[name]['growth_mb']:.1f} MB", flush=True)
    rows = []
    for name, r in results.items():
        ode = name in ("odenet", "rknet")
        nfe = (f"{np.mean(r['nfe_forward']):.1f}", f"{np.mean(r['nfe_backward']):.1f}") \
            if ode else (("6 blocks", "6 blocks") if name == "resnet" else ("-", "-"))
        mcell = f"{mem[name]['growth_mb']:.1f}" if name in mem else "-"
        rows.append((r["label"], f"{100 * r['test_error']:.2f}", f"{r['n_params']:,}", mcell,
                     f"{r['seconds_per_epoch']:.2f}", nfe[0], nfe[1]))
    header = ["model", "test error (%)", "params", f"step memory (MB, batch {mem_batch})",
              "s / epoch", "NFE-F", "NFE-B"]
    table = format_table(rows, header)
    sweep, sweep_rows = [], []
    ode_names = [name for name in ("odenet", "rknet") if name in results]
    if memory and mem_tols and ode_names:
        if progress:
            print(f"memory of one step against the tolerance ({', '.join(map(str, mem_tols))}"
                  f"; {len(mem_tols) * len(ode_names)} fresh processes)", flush=True)
        for tol in mem_tols:
            row = [f"{tol:g}"]
            for name in ode_names:
                m = step_memory(name, mem_batch, tol, seed, thetas_path)
                sweep.append(dict(model=name, tol=tol, **m))
                row += [str(m["nfe_forward"]), str(m["nfe_backward"]), f"{m['growth_mb']:.1f}"]
            sweep_rows.append(row)
        sweep_table = format_table(
            sweep_rows, ["rtol = atol"] + [c for name in ode_names
                                           for c in (f"{LABELS[name]} NFE-F", "NFE-B", "MB")])
    else:
        sweep_table = ""
    settings = (f"Digits: {len(data.y_train)} train / {len(data.y_test)} test images "
                f"(8x8, seed {seed}); width {WIDTH}; Adam, lr {LR:g} decaying to {LR_FINAL:g}, "
                f"batch {BATCH_SIZE}, weight decay {WEIGHT_DECAY:g}, "
                f"{('%d iterations' % iters) if iters else ('%d epochs' % epochs)}; ODE block: "
                f"dopri5 rtol = atol = {RTOL:g} on [0, 1]; RK-Net: gradient='discrete' through "
                f"the same adaptive dopri5 steps.  Memory: growth of the peak RSS during one "
                f"training step (forward + gradient) on {mem_batch} images, in a fresh process "
                f"after a warm-up step.  NFE: mean per training step (ResNet: 6 block "
                f"evaluations each way).")
    text = "## Table 1 on 8x8 digits\n\n" + settings + "\n\n" + table + "\n"
    if sweep_table:
        text += ("\n### Memory of one training step vs NFE (trained parameters, batch "
                 f"{mem_batch})\n\n" + sweep_table + "\n")
    with open(os.path.join(out, "table.md"), "w") as fh:
        fh.write(text)
    if progress:
        print(text)
    summary = {k: {kk: (vv.tolist() if isinstance(vv, np.ndarray) else vv)
                   for kk, vv in r.items() if kk != "theta"} for k, r in results.items()}
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(dict(results=summary, memory=mem, memory_sweep=sweep, settings=settings),
                  fh, indent=1)
    return dict(results=results, table=text, memory=mem, memory_sweep=sweep)


def cli(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--iters", type=int, default=None, help="steps per model (overrides --epochs)")
    p.add_argument("--out", default="out/digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="print only the final table")
    a = p.parse_args(argv)
    main(iters=a.iters, out=a.out, seed=a.seed, epochs=a.epochs, progress=not a.quiet,
         memory=not a.no_memory)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
