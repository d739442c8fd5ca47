"""Validation of continuous normalizing flows (slower than the tests;
``python -m nodekit.validation.cnf``).

* The compiled augmented kernels ``[f, -tr(df/dz)]`` and their VJPs (second
  derivatives of the network) against autograd's higher-order derivatives of
  the same model written in autograd-NumPy, and against central differences,
  for both trace modes and several architectures (every layer and
  activation of ``nk.nn``, the planar hypernetwork).
* Linear dynamics ``f = A z``: the flow is ``expm((t0 - t1) A)`` and the
  log-determinant ``-(t1 - t0) tr A``, both against SymPy's exact matrix
  exponential.
* Hutchinson's estimator: the mean of many estimates of the log density
  converges to the exact value (a z-test whose false-alarm rate is stated),
  and its variance, per noise distribution, against the exact trace.
* The gradient of a Hutchinson log-likelihood with the noise held fixed,
  against central differences, in every gradient mode.
"""
import math
import sys

import autograd
import autograd.numpy as anp
import numpy as np
from autograd import elementwise_grad

from nodekit.nn.trace import cnf_ode

#: z-score of the Hutchinson mean test; two-sided false-alarm rate 2 * (1 - Phi(5)) = 5.7e-7.
Z_ALARM = 5.0


def reference_augmented(dynamics, trace, d):
    """``[f, -tr(df/dz)]`` in autograd-NumPy (trace by autograd), differentiable again."""
    def aug(t, y, th):
        n = y.shape[0]
        z = y[:, :d]
        p = th[:dynamics.n_params]
        f = dynamics.apply(t, z, p)
        if trace == "exact":
            tr = 0.0
            for i in range(d):
                tr = tr + elementwise_grad(lambda zz, i=i: dynamics.apply(t, zz, p)[:, i])(z)[:, i]
        else:
            e = anp.reshape(th[dynamics.n_params:], (n, d))
            tr = anp.sum(elementwise_grad(lambda zz: anp.sum(dynamics.apply(t, zz, p) * e))(z)
                         * e, axis=1)
        return anp.concatenate([f, -anp.reshape(tr, (n, 1))], axis=1)
    return aug


def check_kernels(dynamics, trace, theta, n=4, seed=0):
    rng = np.random.default_rng(seed)
    d = dynamics.dim
    ode = cnf_ode(dynamics, trace)
    if trace == "hutchinson":
        theta = np.concatenate([theta, rng.choice([-1.0, 1.0], size=n * d)])
    y = rng.normal(size=(n, d + 1))
    t = 0.37
    aug = reference_augmented(dynamics, trace, d)
    out = np.empty(y.size)
    ode.rhs(t, y.ravel(), theta, out)
    np.testing.assert_allclose(out, aug(t, y, theta).ravel(), rtol=1e-12, atol=1e-12)
    # VJP against autograd's second derivatives
    a = rng.normal(size=y.shape)
    out_y, out_th = np.empty(y.size), np.empty(theta.size)
    a_t = ode.vjp(t, y.ravel(), theta, a.ravel(), out_y, out_th)
    inner = lambda t, y, th: anp.sum(aug(t, y, th) * a)
    np.testing.assert_allclose(out_y, autograd.grad(inner, 1)(t, y, theta).ravel(),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out_th, autograd.grad(inner, 2)(t, y, theta),
                               rtol=1e-11, atol=1e-12)
    assert abs(a_t - autograd.grad(inner, 0)(t, y, theta)) < 1e-11
    # and against central differences of the compiled rhs, in random directions
    def rhs(tt, yy, th):
        o = np.empty(yy.size)
        ode.rhs(tt, np.ascontiguousarray(yy), th, o)
        return o @ a.ravel()
    h = 1e-6
    vy, vth = rng.normal(size=y.size), rng.normal(size=theta.size)
    fd_y = (rhs(t, y.ravel() + h * vy, theta) - rhs(t, y.ravel() - h * vy, theta)) / (2 * h)
    fd_th = (rhs(t, y.ravel(), theta + h * vth) - rhs(t, y.ravel(), theta - h * vth)) / (2 * h)
    fd_t = (rhs(t + h, y.ravel(), theta) - rhs(t - h, y.ravel(), theta)) / (2 * h)
    assert abs(fd_y - out_y @ vy) < 1e-6 * (1 + abs(fd_y))
    assert abs(fd_th - out_th @ vth) < 1e-6 * (1 + abs(fd_th))
    assert abs(fd_t - a_t) < 1e-6 * (1 + abs(fd_t))


def _architectures():
    from nodekit.nn import MLP, Dense, Power, Sequential, TimeDense
    from nodekit.nn.hyper import PlanarHyper
    every = Sequential(Power(3), TimeDense(2, 4), "elu", "tanh", Dense(4, 4), "relu",
                       "softplus", "sin", "sigmoid", Dense(4, 2))
    return [(PlanarHyper(2, width=6, hidden=5), None),
            (PlanarHyper(3, width=4, hidden=3), None),
            (every, 0.6),
            (MLP(3, [8, 8], "softplus", time=True), 0.5)]


def kernel_checks():
    """Every architecture x trace mode: kernels against autograd and differences."""
    from nodekit.nn.hyper import PlanarHyper
    rows = []
    for dyn, std in _architectures():
        theta = dyn.init(1) if isinstance(dyn, PlanarHyper) else dyn.init(1, scheme="normal",
                                                                            std=std)
        for trace in ("exact", "hutchinson"):
            check_kernels(dyn, trace, theta)
            rows.append(f"{dyn!r:<70} {trace:<10} ok")
    return rows


def linear_flow_exact():
    """``f = A z`` with rational ``A``: flow and log-determinant against SymPy."""
    import sympy as sp

    from nodekit.models import CNF
    from nodekit.nn import Dense, Sequential
    A = sp.Matrix([[sp.Rational(3, 10), sp.Rational(-11, 10)], [sp.Rational(4, 5),
                                                               sp.Rational(-2, 5)]])
    t0, t1 = sp.Rational(1, 5), sp.Rational(9, 10)
    flow = np.array((A * (t0 - t1)).exp().evalf(30), dtype=float)
    logdet = float(-(t1 - t0) * A.trace())
    model = Sequential(Dense(2, 2))
    An = np.array(A, dtype=float)
    cnf = CNF(2, dynamics=model, t0=float(t0), t1=float(t1), rtol=1e-12, atol=1e-12)
    x = np.random.default_rng(0).normal(size=(8, 2))
    z, ld = cnf.transform(model.pack({"0.W": An.T, "0.b": np.zeros(2)}), x)
    err_z = float(np.abs(z - x @ flow.T).max())
    err_l = float(np.abs(ld - logdet).max())
    assert err_z < 1e-10 and err_l < 1e-12, (err_z, err_l)
    return f"linear flow: max |z - expm| = {err_z:.1e}, max |logdet + (t1-t0) tr A| = {err_l:.1e}"


def hutchinson_statistics(N=20000, seed=0):
    """The Hutchinson log density: unbiased (z-test), and its spread per noise.

    One solve per noise distribution with the same point repeated ``N``
    times gives ``N`` independent estimates of ``log p(x)``.  The test fails
    when the mean is more than :data:`Z_ALARM` standard errors from the exact
    value: a false alarm has probability 5.7e-7 (normal approximation of the
    mean of N i.i.d. draws).

    Returns
    -------
    list of str
    """
    from nodekit.models import CNF
    rows = []
    exact_cnf = CNF(2, width=16, hidden=8, t1=1.0, rtol=1e-9, atol=1e-9)
    theta = exact_cnf.init(3) * 1.5
    for x0 in ([0.4, -0.3], [1.5, 0.8]):
        x = np.tile([x0], (N, 1))
        exact = float(exact_cnf.log_prob(theta, x[:1])[0])
        for noise in ("rademacher", "gaussian"):
            h = CNF(2, dynamics=exact_cnf.dynamics, t1=1.0, trace="hutchinson", noise=noise,
                    rtol=1e-9, atol=1e-9)
            est = h.log_prob(theta, x, seed=seed)
            se = est.std(ddof=1) / math.sqrt(N)
            z = (est.mean() - exact) / se
            assert abs(z) < Z_ALARM, (x0, noise, z)
            rows.append(f"x={x0}: {noise:<10} mean {est.mean():+.5f} exact {exact:+.5f} "
                        f"(z = {z:+.2f}), std of one estimate {est.std(ddof=1):.4f}")
    return rows


def hutchinson_gradients():
    """Gradient of the Hutchinson NLL with fixed noise against central differences."""
    from nodekit.models import CNF
    rows = []
    for gradient in ("adjoint", "interpolated", "discrete"):
        cnf = CNF(2, width=6, hidden=5, t1=1.0, trace="hutchinson", gradient=gradient,
                  rtol=1e-11, atol=1e-11)
        theta = cnf.init(3) * 1.5
        x = np.random.default_rng(1).normal(size=(5, 2))

        def loss(th, cnf=cnf, x=x):
            return cnf.nll(th, x, seed=7)   # the same noise at every call

        v = np.random.default_rng(2).normal(size=theta.size)
        h = 1e-5
        fd = (loss(theta + h * v) - loss(theta - h * v)) / (2 * h)
        err = abs(autograd.grad(loss)(theta) @ v - fd)
        assert err < 1e-6 * (1 + abs(fd)), (gradient, err)
        rows.append(f"hutchinson NLL gradient, {gradient:<12}: |grad.v - FD| = {err:.1e}")
    return rows


def main():
    """Run every CNF validation; print a report; return 0 if all pass."""
    sections = [("compiled kernels vs autograd and central differences", kernel_checks),
                ("linear dynamics vs SymPy", lambda: [linear_flow_exact()]),
                ("Hutchinson estimator", hutchinson_statistics),
                ("Hutchinson gradients", hutchinson_gradients)]
    for title, fn in sections:
        print(f"== {title}")
        for row in fn():
            print("  " + row)
    print("all CNF validations passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
