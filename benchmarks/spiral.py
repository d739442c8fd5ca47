"""Spiral training iteration: seconds per step of torchdiffeq's ``ode_demo``
setting, nodekit against diffrax and torchdiffeq (when importable) in this run.

One iteration = forward solve of a (20, 2) state on 10 time points (dopri5,
rtol 1e-7, atol 1e-9) of the MLP ``Linear(2, 50) - tanh - Linear(50, 2)`` on
``y**3``, L1 loss, gradient with respect to the 252 parameters, one optimiser
step.  Every method runs the same 12 batches drawn from the true spiral from
the same initial weights, updating its parameters, and starts again from the
initial weights after the 12th: all timings are "early in training", as in
the peers' reference measurement (the NFE grows as training goes on).

Run: ``python -m nodekit.benchmarks.spiral [--quick]``.
"""
import argparse
import importlib.util
import itertools
import sys

import numpy as np

from ._timing import median_time, table

TRUE_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
T = np.linspace(0.0, 25.0, 1000)
RTOL, ATOL = 1e-7, 1e-9
N_BATCHES = 12

#: nodekit's gradient mode that computes what each peer computes.
COUNTERPART = {"diffrax RecursiveCheckpointAdjoint (jitted step)": "discrete",
               "diffrax BacksolveAdjoint (jitted step)": "adjoint",
               "torchdiffeq backprop through the solver": "discrete",
               "torchdiffeq odeint_adjoint": "adjoint"}

#: The peers' published reference numbers (ms per iteration, a similar 2-core machine).
PUBLISHED_MS = {"diffrax RecursiveCheckpointAdjoint (jitted step)": 1.9,
                "diffrax BacksolveAdjoint (jitted step)": 4.1,
                "torchdiffeq backprop through the solver": 16.6,
                "torchdiffeq odeint_adjoint": 175.0}


def data(seed=0):
    """True trajectory, ``N_BATCHES`` batches and the initial MLP weights (numpy)."""
    import nodekit as nk
    true_y = nk.solve(lambda t, y, th: (y ** 3) @ TRUE_A, [2.0, 0.0], T, rtol=1e-10,
                      atol=1e-12).y
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(N_BATCHES):
        s = rng.choice(np.arange(T.size - 10), 20, replace=False)
        batches.append((true_y[s], T[:10], np.stack([true_y[s + i] for i in range(10)])))
    w1, w2 = rng.normal(0, 0.1, (2, 50)), rng.normal(0, 0.1, (50, 2))
    return batches, (w1, np.zeros(50), w2, np.zeros(2))


def nodekit_step(batches, weights, gradient="adjoint"):
    """A step function (one training iteration per call) and its stats dict."""
    import autograd
    import autograd.numpy as anp

    import nodekit as nk
    from nodekit.nn import Dense, Power, Sequential
    from nodekit.train import RMSprop

    model = Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))
    w1, b1, w2, b2 = weights
    theta = [model.pack({"1.W": w1, "1.b": b1, "3.W": w2, "3.b": b2})]
    stats = {}
    ode = model.ode

    def loss(th, y0, t, y):
        pred = nk.odeint(ode, y0, t, th, rtol=RTOL, atol=ATOL, gradient=gradient, stats=stats)
        return anp.mean(anp.abs(pred - y))

    vg = autograd.value_and_grad(loss)
    opt = RMSprop(lr=1e-3)
    theta0 = theta[0].copy()
    count = itertools.count()

    def step():
        k = next(count) % N_BATCHES
        if k == 0:
            theta[0] = theta0
            opt.reset()
        _, g = vg(theta[0], *batches[k])
        theta[0] = opt.step(theta[0], g)

    return step, stats


def diffrax_steps(batches, weights):  # pragma: no cover - needs jax
    import diffrax
    import jax
    import jax.numpy as jnp
    import optax
    jax.config.update("jax_enable_x64", True)

    def f(t, y, p):
        w1, b1, w2, b2 = p
        return jnp.tanh((y ** 3) @ w1 + b1) @ w2 + b2

    term = diffrax.ODETerm(f)
    out = {}
    for name, adj in (("RecursiveCheckpointAdjoint", diffrax.RecursiveCheckpointAdjoint()),
                      ("BacksolveAdjoint", diffrax.BacksolveAdjoint())):
        opt = optax.rmsprop(1e-3)

        def loss(p, y0, t, y, adj=adj):
            sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t[0], t[-1], None, y0, args=p,
                                      saveat=diffrax.SaveAt(ts=t), adjoint=adj,
                                      stepsize_controller=diffrax.PIDController(rtol=RTOL,
                                                                                atol=ATOL),
                                      max_steps=100000)
            return jnp.mean(jnp.abs(sol.ys - y))

        @jax.jit
        def jstep(p, st, y0, t, y, loss=loss, opt=opt):
            val, g = jax.value_and_grad(loss)(p, y0, t, y)
            u, st = opt.update(g, st, p)
            return optax.apply_updates(p, u), st, val

        p0 = tuple(jnp.asarray(w) for w in weights)
        state = {"p": p0, "st": opt.init(p0)}
        jb = [tuple(jnp.asarray(a) for a in b) for b in batches]
        count = itertools.count()

        def step(state=state, jstep=jstep, count=count, p0=p0, opt=opt, jb=jb):
            k = next(count) % N_BATCHES
            if k == 0:
                state["p"], state["st"] = p0, opt.init(p0)
            state["p"], state["st"], val = jstep(state["p"], state["st"], *jb[k])
            jax.block_until_ready(val)

        out[f"diffrax {name} (jitted step)"] = step
    return out


def torchdiffeq_steps(batches, weights):  # pragma: no cover - needs torch
    import torch
    from torchdiffeq import odeint, odeint_adjoint
    torch.set_default_dtype(torch.float64)
    out = {}
    for name, solver in (("odeint_adjoint", odeint_adjoint),
                         ("backprop through the solver", odeint)):
        params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]

        class F(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.p = torch.nn.ParameterList(params)

            def forward(self, t, y):
                w1, b1, w2, b2 = self.p
                return torch.tanh((y ** 3) @ w1 + b1) @ w2 + b2

        func = F()
        opt = torch.optim.RMSprop(func.parameters(), lr=1e-3)
        tb = [tuple(torch.tensor(a) for a in b) for b in batches]
        count = itertools.count()
        init = [p.detach().clone() for p in params]

        def step(func=func, opt=opt, count=count, solver=solver, init=init, params=params):
            k = next(count) % N_BATCHES
            if k == 0:
                with torch.no_grad():
                    for p, p0 in zip(params, init):
                        p.copy_(p0)
                opt.state.clear()
            y0, t, y = tb[k]
            opt.zero_grad()
            pred = solver(func, y0, t, rtol=RTOL, atol=ATOL, method="dopri5")
            loss = (pred - y).abs().mean()
            loss.backward()
            opt.step()

        key = "torchdiffeq odeint_adjoint" if solver is odeint_adjoint else \
            "torchdiffeq backprop through the solver"
        out[key] = step
    return out


def run(quick=False):
    batches, weights = data()
    repeat = 30 if quick else 200
    rows = []
    results = {}
    for gradient in ("adjoint", "interpolated", "discrete"):
        step, stats = nodekit_step(batches, weights, gradient)
        sec = median_time(step, repeat=repeat, warmup=3)
        name = f"nodekit nk.nn + nk.odeint, gradient={gradient!r}"
        results[name] = sec
        rows.append([name, f"{1e3 * sec:.3f}", "-",
                     f"{stats.get('nfev_forward', 0)} + {stats.get('nfev_backward', 0)}"])
    ours = results["nodekit nk.nn + nk.odeint, gradient='adjoint'"]
    peers = {}
    if importlib.util.find_spec("diffrax") and importlib.util.find_spec("optax"):
        peers.update(diffrax_steps(batches, weights))
    if importlib.util.find_spec("torchdiffeq") and importlib.util.find_spec("torch"):
        peers.update(torchdiffeq_steps(batches, weights))
    for name in PUBLISHED_MS:
        mode = COUNTERPART[name]
        mine = results[f"nodekit nk.nn + nk.odeint, gradient={mode!r}"]
        if name in peers:
            slow = "adjoint" in name and "torch" in name
            sec = median_time(peers[name], repeat=5 if slow else repeat, warmup=2)
            label = name + " (this run)"
        else:
            sec = 1e-3 * PUBLISHED_MS[name]
            label = name + " (published, not importable here)"
        results[label] = sec
        rows.append([label, f"{1e3 * sec:.3f}", f"{sec / ours:.1f}x",
                     f"{sec / mine:.2f}x ({mode})", "-"])
    for row in rows[:3]:
        row.insert(3, "-")
    from .ensemble import cpu_model
    print(f"CPU: {cpu_model()}")
    print("Spiral training iteration (torchdiffeq ode_demo setting: state (20, 2), "
          "MLP 2-50-2 tanh on y**3, 10 time points, dopri5 rtol 1e-7 atol 1e-9, L1 loss, "
          "one optimiser step); median of warm iterations.  Target: each diffrax row at "
          "least 2x its nodekit counterpart.\n")
    print(table(rows, ["method", "ms / iteration", "peer / nodekit adjoint",
                       "peer / nodekit counterpart", "NFE fwd + bwd (last)"]))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = p.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
