"""Stiff problems: nodekit's stiff methods (``rodas5``, ``rodas4``,
``ros3p``, ``kvaerno5``, ``trbdf2``) against SciPy's Radau, BDF and LSODA
(Numba-jitted right-hand side and Jacobian, the fastest way to call SciPy)
and, when importable, diffrax's Kvaerno5 (jitted), all in this run.

Problems (the stiff settings of issue 11):

* Robertson's kinetics to t = 1e5, rtol 1e-6, atol 1e-10;
* Van der Pol, mu = 1000, on [0, 3000], y0 = (2, 0), rtol 1e-6, atol 1e-8.

Every row gives the median wall time of one solve, the accepted steps, the
evaluations, and the error at the final time against a tight reference (SciPy's Radau at rtol
1e-12 / 1e-11, stored in ``validation/stiff_kernels.py``): the maximum over
components of ``|y - y_ref| / (atol + |y_ref|)``.

A second table times one gradient of ``L = sum(y(t1)^2)`` with respect to
``y0`` and every parameter on the same problems and tolerances: nodekit's
``gradient='interpolated'`` through ``rodas5`` (backward pass ``rodas4``) and
``kvaerno5``, and ``gradient='discrete'`` through ``kvaerno5``, with the
``nk.symbolic`` kernels (right-hand side, VJP and Jacobian), against
``jax.grad`` of diffrax's Kvaerno5 with its default adjoint
(``RecursiveCheckpointAdjoint``, reverse mode through the solver).  The
gradient's first component is printed beside each time, to read agreement.

Run: ``python -m nodekit.benchmarks.stiff`` (a minute or two; it prints the
CPU model first).  diffrax usually lives in another
environment: ``python -m benchmarks.stiff --diffrax`` there prints only its
rows (that mode imports neither Numba nor nodekit).
"""
import importlib.util
import sys

import numpy as np

from ._timing import median_time, table

#: nodekit's rows, all with the compiled kernels and the analytic Jacobian.
NODEKIT_METHODS = ("rodas5", "rodas4", "ros3p", "kvaerno5", "trbdf2")

ROB_THETA = (0.04, 3e7, 1e4)
PROBLEMS = {  # name: (y0, t1, rtol, atol)
    "Robertson": (np.array([1.0, 0.0, 0.0]), 1e5, 1e-6, 1e-10),
    "Van der Pol mu=1000": (np.array([2.0, 0.0]), 3000.0, 1e-6, 1e-8),
}
# y(t1) of the references (validation/stiff_kernels.py: ROBERTSON_REF, VDP_REF)
REFERENCES = {
    "Robertson": np.array([1.7865921142100099e-02, 7.2747514684365942e-08,
                           9.8213400611038337e-01]),
    "Van der Pol mu=1000": np.array([-1.5106069367438517e+00, 1.1783800007314910e-03]),
}


def _error(name, y, atol):
    ref = REFERENCES[name]
    return float(np.max(np.abs(np.asarray(y) - ref) / (atol + np.abs(ref))))


def _nodekit_odes():
    import nodekit as nk
    from nodekit.validation.kernels import van_der_pol_rhs
    from nodekit.validation.stiff_kernels import (robertson_jac, robertson_rhs,
                                          van_der_pol_jac)

    def with_jac(rhs, jac):
        try:
            return nk.ODE(rhs, jac=jac)
        except TypeError:        # an nk.ODE without the `jac` argument
            ode = nk.ODE(rhs)
            ode.jac = jac
            return ode

    return {"Robertson": (with_jac(robertson_rhs, robertson_jac), np.array(ROB_THETA)),
            "Van der Pol mu=1000": (with_jac(van_der_pol_rhs, van_der_pol_jac),
                                    np.array([1000.0]))}


def _scipy_functions():
    import numba as nb

    @nb.njit(cache=True)
    def rob(t, y):
        k1, k2, k3 = 0.04, 3e7, 1e4
        return np.array([-k1 * y[0] + k3 * y[1] * y[2],
                         k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2, k2 * y[1] ** 2])

    @nb.njit(cache=True)
    def rob_jac(t, y):
        k1, k2, k3 = 0.04, 3e7, 1e4
        return np.array([[-k1, k3 * y[2], k3 * y[1]],
                         [k1, -k3 * y[2] - 2 * k2 * y[1], -k3 * y[1]],
                         [0.0, 2 * k2 * y[1], 0.0]])

    @nb.njit(cache=True)
    def vdp(t, y):
        return np.array([y[1], 1000.0 * (1 - y[0] ** 2) * y[1] - y[0]])

    @nb.njit(cache=True)
    def vdp_jac(t, y):
        return np.array([[0.0, 1.0], [-2000.0 * y[0] * y[1] - 1.0, 1000.0 * (1 - y[0] ** 2)]])

    return {"Robertson": (rob, rob_jac), "Van der Pol mu=1000": (vdp, vdp_jac)}


def diffrax_rows():
    """Rows of diffrax Kvaerno5 (jitted), or [] when jax/diffrax are missing."""
    if not (importlib.util.find_spec("jax") and importlib.util.find_spec("diffrax")):
        return []
    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def rob(t, y, args):
        k1, k2, k3 = ROB_THETA
        return jnp.stack([-k1 * y[0] + k3 * y[1] * y[2],
                          k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2, k2 * y[1] ** 2])

    def vdp(t, y, args):
        return jnp.stack([y[1], 1000.0 * (1 - y[0] ** 2) * y[1] - y[0]])

    rows = []
    for name, f in (("Robertson", rob), ("Van der Pol mu=1000", vdp)):
        y0, t1, rtol, atol = PROBLEMS[name]
        solve = jax.jit(lambda y, f=f, t1=t1, rtol=rtol, atol=atol: diffrax.diffeqsolve(
            diffrax.ODETerm(f), diffrax.Kvaerno5(), 0.0, t1, None, y,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=200000))
        sol = solve(jnp.asarray(y0))
        tm = median_time(lambda: solve(jnp.asarray(y0)).ys.block_until_ready(),
                         repeat=5, min_time=0.5)
        rows.append([name, "diffrax Kvaerno5 (jitted)", f"{tm * 1e3:.2f}",
                     str(int(sol.stats["num_steps"])), "-",
                     f"{_error(name, np.asarray(sol.ys)[-1], atol):.1e}"])
    return rows


GRAD_HEADERS = ["problem", "gradient of sum(y(t1)^2)", "ms / gradient", "dL/dy0[0]"]


def _symbolic_odes():
    """Robertson and Van der Pol from nk.symbolic: rhs, VJP and Jacobian kernels."""
    from nodekit.symbolic import ODESystem
    rob = ODESystem.from_strings(
        {"a": "-k1*a + k3*b*c", "b": "k1*a - k3*b*c - k2*b**2", "c": "k2*b**2"},
        params=["k1", "k2", "k3"], name="robertson_bench")
    vdp = ODESystem.from_strings({"x": "v", "v": "mu*(1 - x**2)*v - x"}, params=["mu"],
                                 name="van_der_pol_bench")
    return {"Robertson": (rob.compile(), np.array(ROB_THETA)),
            "Van der Pol mu=1000": (vdp.compile(), np.array([1000.0]))}


def gradient_rows():
    """nodekit's stiff gradients (compiled symbolic kernels), one row per method."""
    import autograd
    import autograd.numpy as anp
    import nodekit as nk

    rows = []
    for name, (ode, theta) in _symbolic_odes().items():
        y0, t1, rtol, atol = PROBLEMS[name]
        for method, mode in (("rodas5", "interpolated"), ("kvaerno5", "interpolated"),
                             ("kvaerno5", "discrete")):
            def loss(y, th, method=method, mode=mode):
                return anp.sum(nk.odeint(ode, y, [0.0, t1], th, method=method,
                                         gradient=mode, rtol=rtol, atol=atol,
                                         max_steps=1_000_000)[-1] ** 2)
            grad = autograd.grad(loss, (0, 1))
            g = grad(y0, theta)
            tm = median_time(lambda: grad(y0, theta), repeat=5, min_time=0.3)
            rows.append([name, f"nodekit {method} {mode}", f"{tm * 1e3:.2f}",
                         f"{g[0][0]:.6e}"])
    return rows


def diffrax_gradient_rows():
    """jax.grad through diffrax Kvaerno5 (default adjoint), or [] without diffrax."""
    if not (importlib.util.find_spec("jax") and importlib.util.find_spec("diffrax")):
        return []
    import diffrax
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def rob(t, y, k):
        return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
                          k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                          k[1] * y[1] ** 2])

    def vdp(t, y, mu):
        return jnp.stack([y[1], mu[0] * (1 - y[0] ** 2) * y[1] - y[0]])

    rows = []
    for name, f, theta in (("Robertson", rob, ROB_THETA), ("Van der Pol mu=1000", vdp,
                                                          (1000.0,))):
        y0, t1, rtol, atol = PROBLEMS[name]

        def loss(y, th, f=f, t1=t1, rtol=rtol, atol=atol):
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(f), diffrax.Kvaerno5(), 0.0, t1, None, y, args=th,
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                max_steps=200000)
            return jnp.sum(sol.ys[-1] ** 2)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        y, th = jnp.asarray(y0), jnp.asarray(theta)
        g = grad(y, th)
        tm = median_time(lambda: jax.block_until_ready(grad(y, th)), repeat=5, min_time=0.5)
        rows.append([name, "diffrax Kvaerno5 jax.grad (jitted)", f"{tm * 1e3:.2f}",
                     f"{float(g[0][0]):.6e}"])
    return rows


def run():
    import nodekit as nk
    from scipy.integrate import solve_ivp

    odes = _nodekit_odes()
    scipy_fns = _scipy_functions()
    rows = []
    for name, (y0, t1, rtol, atol) in PROBLEMS.items():
        ode, theta = odes[name]

        for method in NODEKIT_METHODS:
            def nk_solve(method=method):
                return nk.solve(ode, y0, [0.0, t1], theta, method=method, rtol=rtol,
                                atol=atol, max_steps=1_000_000)

            sol = nk_solve()
            tm = median_time(nk_solve, repeat=5, min_time=0.3)
            rows.append([name, f"nodekit {method} (compiled, analytic J)",
                         f"{tm * 1e3:.2f}", str(sol.naccept), str(sol.nfev),
                         f"{_error(name, sol.y[-1], atol):.1e}"])
        f, jac = scipy_fns[name]
        for method in ("Radau", "BDF", "LSODA"):
            def sp_solve(method=method):
                return solve_ivp(f, (0.0, t1), y0, method=method, jac=jac, rtol=rtol,
                                 atol=atol)
            r = sp_solve()
            tm = median_time(sp_solve, repeat=5, min_time=0.5)
            rows.append([name, f"SciPy {method} (Numba f, J)", f"{tm * 1e3:.2f}",
                         str(r.t.size - 1), str(r.nfev),
                         f"{_error(name, r.y[:, -1], atol):.1e}"])
    return rows


HEADERS = ["problem", "solver", "ms / solve", "steps", "nfev", "error at t1 / (atol + |y|)"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--diffrax" in argv:
        rows = diffrax_rows()
        print(table(rows, HEADERS) if rows else "jax and diffrax are not importable here.")
        if rows:
            print()
            print(table(diffrax_gradient_rows(), GRAD_HEADERS))
        return
    from .ensemble import cpu_model
    print(f"CPU: {cpu_model()}\n")
    rows = run() + diffrax_rows()
    print(table(rows, HEADERS))
    print()
    print(table(gradient_rows() + diffrax_gradient_rows(), GRAD_HEADERS))
    if not importlib.util.find_spec("diffrax"):
        print("\n(diffrax not importable here: run `python -m benchmarks.stiff --diffrax` "
              "in an environment that has it for its rows.)")


if __name__ == "__main__":
    main()
