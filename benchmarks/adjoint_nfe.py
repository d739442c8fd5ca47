"""Evaluations of the backward pass against the forward (the paper's Figure 3c).

For each gradient mode: NFE-F and NFE-B (one right-hand side plus one VJP
count as one evaluation) and the relative error of the gradient against a
reference (the discrete gradient of a solve at rtol 1e-13), on

* Lotka-Volterra (``benchmarks.lotka_volterra``: dopri5, rtol 1e-8,
  atol 1e-10, 200 outputs on [0, 20]) with the loss ``sum(y(t_i)**2)`` over
  every output, and over the last output only (no stops in the backward
  pass: the paper's setting);
* the spiral training problem (``benchmarks.spiral``: an ``nk.nn`` MLP, 10
  outputs, rtol 1e-7), mean over its 12 batches at the initial weights.

Run: ``python -m nodekit.benchmarks.adjoint_nfe`` (or ``nodekit bench``).  Exact
counts, no timings.
"""
import numpy as np

from ._timing import table

#: (label, gradient, extra options of nk.odeint)
MODES = (("adjoint", "adjoint", {}),
         ("adjoint + seminorm", "adjoint", {"seminorm": True}),
         ("interpolated", "interpolated", {}),
         ("discrete", "discrete", {}))


def _relerr(g, ref):
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def lv_rows():
    """``(setting, mode, NFE-F, NFE-B, relative gradient error)`` on Lotka-Volterra."""
    import autograd
    import autograd.numpy as anp

    import nodekit as nk

    from . import _lv_hand
    from .lotka_volterra import ATOL, RTOL, T, THETA, Y0

    def grad(gradient, last, rtol=RTOL, atol=ATOL, **kw):
        st = {}

        def loss(y0, th):
            y = nk.odeint(_lv_hand.LV, y0, T, th, rtol=rtol, atol=atol, gradient=gradient,
                          stats=st, **kw)
            return anp.sum(y[-1] ** 2) if last else anp.sum(y ** 2)

        return np.concatenate(autograd.grad(loss, (0, 1))(Y0, THETA)), st

    rows = []
    for last in (False, True):
        ref, _ = grad("discrete", last, rtol=1e-13, atol=1e-15)
        setting = "LV, loss on y(20)" if last else "LV, loss on 200 outputs"
        for label, gradient, kw in MODES:
            g, st = grad(gradient, last, **kw)
            rows.append((setting, label, st["nfev_forward"], st["nfev_backward"],
                         _relerr(g, ref)))
    return rows


def spiral_rows():
    """The same rows on the spiral problem (means over the batches, worst error)."""
    import autograd
    import autograd.numpy as anp

    import nodekit as nk
    from nodekit.nn import Dense, Power, Sequential

    from .spiral import ATOL, RTOL, data

    batches, (w1, b1, w2, b2) = data()
    model = Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))
    theta = model.pack({"1.W": w1, "1.b": b1, "3.W": w2, "3.b": b2})

    def grad(batch, gradient, rtol=RTOL, atol=ATOL, **kw):
        st = {}
        y0, t, y = batch
        loss = lambda th: anp.mean(anp.abs(nk.odeint(
            model.ode, y0, t, th, rtol=rtol, atol=atol, gradient=gradient, stats=st,
            **kw) - y))
        return autograd.grad(loss)(theta), st

    refs = [grad(b, "discrete", 1e-12, 1e-14)[0] for b in batches]
    rows = []
    for label, gradient, kw in MODES:
        nf, nb, err = [], [], 0.0
        for b, ref in zip(batches, refs):
            g, st = grad(b, gradient, **kw)
            nf.append(st["nfev_forward"])
            nb.append(st["nfev_backward"])
            err = max(err, _relerr(g, ref))
        rows.append(("spiral, 10 outputs", label, float(np.mean(nf)), float(np.mean(nb)),
                     err))
    return rows


def run(quick=False):
    """Print the table (``quick`` is accepted for ``nodekit bench``; the
    counts are exact, so there is nothing to shorten)."""
    rows = lv_rows() + spiral_rows()
    out = [(s, m, f"{f:.0f}", f"{b:.0f}", f"{b / f:.2f}", f"{e:.1e}")
           for s, m, f, b, e in rows]
    print("Backward against forward evaluations (Figure 3c); gradient error relative "
          "to a discrete gradient at rtol 1e-13 (LV) / 1e-12 (spiral)")
    print(table(out, ["setting", "mode", "NFE-F", "NFE-B", "NFE-B / NFE-F",
                      "gradient rel. error"]))


if __name__ == "__main__":
    run()
