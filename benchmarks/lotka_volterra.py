"""Lotka-Volterra forward solve: nodekit against SciPy, a hand-written Numba
loop, and (when importable) diffrax and torchdiffeq, all in this run.

The peers' reference setting: dx = a x - b x y, dy = -c y + d x y with
(a, b, c, d) = (1.5, 1, 3, 1), y0 = (1, 1), 200 outputs on [0, 20],
Dormand-Prince 5(4), rtol 1e-8, atol 1e-10.

Run: ``python -m nodekit.benchmarks.lotka_volterra`` (or ``nodekit bench``).
"""
import importlib.util
import sys

import numpy as np

from ._timing import fresh_process_time, median_time, table

THETA = np.array([1.5, 1.0, 3.0, 1.0])
Y0 = np.array([1.0, 1.0])
T = np.linspace(0.0, 20.0, 200)
RTOL, ATOL = 1e-8, 1e-10

def _kernel_module():
    """The hand-written LV kernels (a real module, so Numba caches them)."""
    from . import _lv_hand
    return _lv_hand


def lv_py(t, y, th):
    return np.array([th[0] * y[0] - th[1] * y[0] * y[1],
                     -th[2] * y[1] + th[3] * y[0] * y[1]])


def run(quick=False):
    import nodekit as nk
    from ._handwritten import dp5_arrays, dp5_lv

    kernels = _kernel_module()
    rows = []
    rep = 5 if quick else 50
    sol = nk.solve(kernels.LV, Y0, T, THETA, rtol=RTOL, atol=ATOL)
    t_nk = median_time(lambda: nk.solve(kernels.LV, Y0, T, THETA, rtol=RTOL, atol=ATOL),
                       repeat=rep)
    yT = sol.y[-1]
    rows.append(("nodekit nk.solve, compiled nk.ODE", t_nk, sol.nfev, yT))

    ref, nfev = dp5_arrays(Y0, T, THETA, RTOL, ATOL, 1e-3)
    t_hand = median_time(lambda: dp5_arrays(Y0, T, THETA, RTOL, ATOL, 1e-3), repeat=rep)
    rows.append(("hand-written Numba DP5 loop, RHS inlined, state arrays", t_hand, nfev,
                 ref[-1]))
    ref, nfev = dp5_lv(Y0, T, THETA, RTOL, ATOL, 1e-3)
    t_scalar = median_time(lambda: dp5_lv(Y0, T, THETA, RTOL, ATOL, 1e-3), repeat=rep)
    rows.append(("hand-written Numba DP5 loop, RHS inlined, 2 scalars", t_scalar, nfev,
                 ref[-1]))

    sol_py = nk.solve(lv_py, Y0, T, THETA, rtol=RTOL, atol=ATOL)
    t_py = median_time(lambda: nk.solve(lv_py, Y0, T, THETA, rtol=RTOL, atol=ATOL),
                       repeat=3 if quick else 10)
    rows.append(("nodekit nk.solve, Python RHS", t_py, sol_py.nfev, sol_py.y[-1]))

    from scipy.integrate import solve_ivp
    f = lambda t, y: lv_py(t, y, THETA)
    for m in ("RK45", "DOP853"):
        r = solve_ivp(f, (T[0], T[-1]), Y0, method=m, t_eval=T, rtol=RTOL, atol=ATOL)
        tm = median_time(lambda: solve_ivp(f, (T[0], T[-1]), Y0, method=m, t_eval=T,
                                           rtol=RTOL, atol=ATOL), repeat=3 if quick else 10)
        rows.append((f"SciPy solve_ivp {m}, Python RHS", tm, r.nfev, r.y[:, -1]))

    rows += _peer_rows(quick)

    out = [(name, f"{1e3 * s:.4f}", str(n), f"{s / t_nk:.2f}x",
            np.array2string(np.asarray(y), precision=8)) for name, s, n, y in rows]
    from .ensemble import cpu_model
    print(f"CPU: {cpu_model()}")
    print("Lotka-Volterra, 200 outputs on [0, 20], dopri5, rtol 1e-8, atol 1e-10")
    print(table(out, ["solver", "ms / solve", "nfev", "time / nodekit compiled", "y(20)"]))
    t_entry = median_time(lambda: nk.solve(kernels.LV, Y0, T[:2] * 1e-9, THETA, rtol=RTOL,
                                           atol=ATOL), repeat=rep)
    print(f"\nnodekit: {sol.nsteps} steps ({sol.naccept} accepted), nfev {sol.nfev}; "
          f"per-step cost compiled {1e9 * (t_nk - t_entry) / sol.nsteps:.0f} ns "
          f"(hand-written loop {1e9 * t_hand / sol.nsteps:.0f} ns), "
          f"Python RHS {1e6 * t_py / sol.nsteps:.1f} us; fixed cost of a call "
          f"(validation, entry) {1e6 * t_entry:.0f} us")
    print(f"compiled vs hand-written loop over state arrays: {t_nk / t_hand:.2f}x "
          f"(target <= 1.5x); vs the scalar loop: {t_nk / t_scalar:.2f}x")

    code = ("import numpy as np; "
            "import nodekit as nk; from nodekit.benchmarks import _lv_hand as k; "
            "nk.solve(k.LV, np.ones(2), np.linspace(0, 20, 200), "
            "np.array([1.5, 1.0, 3.0, 1.0]), rtol=1e-8, atol=1e-10)")
    fresh_process_time(code, repeat=1)  # make sure every cache is written
    best, med = fresh_process_time(code, repeat=3)
    imp_best, _ = fresh_process_time("import nodekit", repeat=3)
    py_best, _ = fresh_process_time("pass", repeat=3)
    print(f"fresh process, import nodekit + cached kernels + first solve: "
          f"{best:.2f} s (median {med:.2f} s; target < 1.5 s); "
          f"`import nodekit` alone {imp_best:.2f} s; bare interpreter {py_best:.2f} s")


def run_gradient(quick=False):
    """Gradient of sum(y(t_i)^2) w.r.t. y0 and (a, b, c, d), every mode."""
    import autograd
    import autograd.numpy as anp

    import nodekit as nk

    kernels = _kernel_module()
    t_fwd = median_time(lambda: nk.solve(kernels.LV, Y0, T, THETA, rtol=RTOL, atol=ATOL),
                        repeat=5 if quick else 50)
    rows = []
    for fun, label, rep in ((kernels.LV, "compiled", 5 if quick else 30),
                            (lv_py_ag, "Python RHS", 1)):
        for mode in ("adjoint", "interpolated", "discrete"):
            for seminorm in ((False, True) if mode != "discrete" else (False,)):
                st = {}
                loss = lambda y0, th: anp.sum(nk.odeint(
                    fun, y0, T, th, rtol=RTOL, atol=ATOL, gradient=mode,
                    seminorm=seminorm, stats=st) ** 2)
                g = autograd.grad(loss, (0, 1))
                gy0, gth = g(Y0, THETA)
                s = median_time(lambda: g(Y0, THETA), repeat=rep, warmup=1,
                                min_time=0 if rep == 1 else 0.2)
                name = f"nodekit {mode}{' + seminorm' if seminorm else ''}, {label}"
                rows.append((name, s, st["nfev_forward"], st["nfev_backward"],
                             np.concatenate([gy0, gth])))
            if label == "Python RHS" and quick:
                break
    rows += _peer_gradient_rows(quick)
    print("\nGradient of sum(y(t_i)^2) w.r.t. y0 and (a, b, c, d); reference "
          "(-2071.43, -515.83 | 136.07, -2199.51, 2050.36, -7218.82)")
    base = rows[0][1]
    out = [(name, f"{1e3 * s:.3f}", str(nf), str(nb), f"{s / base:.2f}x",
            f"{s / t_fwd:.1f}x", np.array2string(np.asarray(g), precision=2))
           for name, s, nf, nb, g in rows]
    print(table(out, ["method", "ms / gradient", "NFE-F", "NFE-B", "time / nodekit adjoint",
                      "time / nodekit forward", "gradient"]))


def lv_py_ag(t, y, th):
    import autograd.numpy as anp
    return anp.array([th[0] * y[0] - th[1] * y[0] * y[1],
                      -th[2] * y[1] + th[3] * y[0] * y[1]])


def _diffrax_solver():
    """``solve(y0, theta, adjoint) -> ys`` with diffrax's Dopri5 in this setting."""
    import jax
    import jax.numpy as jnp
    import diffrax
    jax.config.update("jax_enable_x64", True)

    def f(t, y, th):
        return jnp.stack([th[0] * y[0] - th[1] * y[0] * y[1],
                          -th[2] * y[1] + th[3] * y[0] * y[1]])
    term = diffrax.ODETerm(f)

    def solve(y0, th, adjoint=diffrax.RecursiveCheckpointAdjoint()):
        return diffrax.diffeqsolve(
            term, diffrax.Dopri5(), T[0], T[-1], None, y0, args=th,
            saveat=diffrax.SaveAt(ts=jnp.asarray(T)),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            max_steps=100000, adjoint=adjoint).ys
    return solve


def _peer_gradient_rows(quick):
    rows = []
    if importable("jax") and importable("diffrax"):
        import jax
        import jax.numpy as jnp
        import diffrax
        solve = _diffrax_solver()
        for name, adj in (("BacksolveAdjoint", diffrax.BacksolveAdjoint()),
                          ("RecursiveCheckpointAdjoint", diffrax.RecursiveCheckpointAdjoint())):
            def loss(y0, th, adj=adj):
                return jnp.sum(solve(y0, th, adj) ** 2)
            g = jax.jit(jax.grad(loss, argnums=(0, 1)))
            y0, th = jnp.asarray(Y0), jnp.asarray(THETA)
            gv = g(y0, th)
            s = median_time(lambda: jax.block_until_ready(g(y0, th)), repeat=5 if quick else 20)
            rows.append((f"diffrax {name}, jitted", s, -1, -1,
                         np.concatenate([np.asarray(gv[0]), np.asarray(gv[1])])))
    if importable("torch") and importable("torchdiffeq"):
        import torch
        from torchdiffeq import odeint_adjoint

        torch.set_default_dtype(torch.float64)

        class F(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.th = torch.nn.Parameter(torch.tensor(THETA))

            def forward(self, t, y):
                th = self.th
                return torch.stack([th[0] * y[0] - th[1] * y[0] * y[1],
                                    -th[2] * y[1] + th[3] * y[0] * y[1]])
        f = F()
        tt = torch.tensor(T)

        def grad():
            f.zero_grad()
            y0 = torch.tensor(Y0, requires_grad=True)
            ys = odeint_adjoint(f, y0, tt, rtol=RTOL, atol=ATOL, method="dopri5")
            (ys ** 2).sum().backward()
            return np.concatenate([y0.grad.numpy(), f.th.grad.numpy()])
        gv = grad()
        s = median_time(grad, repeat=1, warmup=0, min_time=0)
        rows.append(("torchdiffeq odeint_adjoint", s, -1, -1, gv))
    return rows


def _peer_rows(quick):
    rows = []
    if importable("jax") and importable("diffrax"):
        import jax
        import jax.numpy as jnp
        fwd = jax.jit(_diffrax_solver())
        y0, th = jnp.asarray(Y0), jnp.asarray(THETA)
        ys = fwd(y0, th)
        s = median_time(lambda: fwd(y0, th).block_until_ready(), repeat=5 if quick else 20)
        rows.append(("diffrax Dopri5, jitted", s, -1, np.asarray(ys[-1])))
    if importable("torch") and importable("torchdiffeq"):
        import torch
        from torchdiffeq import odeint
        torch.set_default_dtype(torch.float64)
        th = torch.tensor(THETA)

        def f(t, y):
            return torch.stack([th[0] * y[0] - th[1] * y[0] * y[1],
                                -th[2] * y[1] + th[3] * y[0] * y[1]])
        tt, y0 = torch.tensor(T), torch.tensor(Y0)
        with torch.no_grad():
            ys = odeint(f, y0, tt, rtol=RTOL, atol=ATOL, method="dopri5")
            s = median_time(lambda: odeint(f, y0, tt, rtol=RTOL, atol=ATOL, method="dopri5"),
                            repeat=1 if quick else 3, warmup=1, min_time=0)
        rows.append(("torchdiffeq dopri5", s, -1, ys[-1].numpy()))
    return rows


def importable(name):
    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
    run_gradient(quick="--quick" in sys.argv)
