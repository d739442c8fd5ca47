"""Continuous normalizing flows: compiled trace kernels, the flow's API, its correctness."""
import math
import os

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad
from scipy.linalg import expm

import nodekit as nk
from nodekit.models import CNF, Normal
from nodekit.nn import Dense, Power, Sequential, TimeDense
from nodekit.nn.hyper import PlanarHyper
from nodekit.nn.trace import cnf_ode, derivatives
from nodekit.validation.cnf import check_kernels

TIGHT = {"rtol": 1e-11, "atol": 1e-11}

# One Sequential with every activation and both affine layers (compiled once).
EVERY_LAYER = Sequential(Power(3), TimeDense(2, 4), "elu", "tanh", Dense(4, 4), "relu",
                         "softplus", "sin", "sigmoid", Dense(4, 2))


def test_planar_kernels_match_autograd_and_differences():
    # the Hutchinson kernels (and more architectures) are checked the same way
    # in validation/cnf.py, to keep compilation out of the fast tests
    dyn = PlanarHyper(2)    # torchdiffeq's width 64, hidden 32 (the example's kernels)
    check_kernels(dyn, "exact", dyn.init(0))


def test_every_layer_and_activation_matches_autograd_and_differences():
    theta = EVERY_LAYER.init(1, scheme="normal", std=0.6)
    check_kernels(EVERY_LAYER, "exact", theta, n=5)


def test_second_derivatives_of_every_activation():
    """phi' and phi'' of each elementwise map against autograd (and their own kernels' math)."""
    from nodekit.nn import ELU, Power, ReLU, Sigmoid, Sin, Softplus, Tanh
    xs = np.array([-2.3, -0.7, -0.1, 0.2, 0.9, 2.6])
    for layer in (Tanh(), Sigmoid(), Softplus(), ReLU(), ELU(0.7), Sin(), Power(3), Power(2.5)):
        x_ok = np.abs(xs) if isinstance(layer, Power) else xs
        d1, d2 = derivatives(layer)
        phi = layer.np_apply
        ref1, ref2 = elementwise_grad(phi), elementwise_grad(elementwise_grad(phi))
        for x in x_ok:
            fx = float(phi(np.array(x)))
            env = {"x": x, "fx": fx, "math": math, "_tanh": np.tanh}
            assert abs(eval(d1, env) - ref1(np.array(x))) < 1e-12, layer
            assert abs(eval(d2, env) - ref2(np.array(x))) < 1e-12, layer


# ---------------------------------------------------------------------------- flow


@pytest.fixture(scope="module")
def small():
    cnf = CNF(2, t0=0.0, t1=1.0, **TIGHT)   # the default planar hypernetwork
    theta = cnf.init(3) * 1.5
    return cnf, theta


def test_linear_dynamics_logdet_and_flow_are_exact():
    A = np.array([[0.3, -1.1], [0.8, -0.4]])
    model = Sequential(Dense(2, 2))
    cnf = CNF(2, dynamics=model, t0=0.2, t1=0.9, **TIGHT)
    theta = model.pack({"0.W": A.T, "0.b": np.zeros(2)})   # f(z) = A z
    x = np.random.default_rng(0).normal(size=(5, 2))
    z, logdet = cnf.transform(theta, x)
    np.testing.assert_allclose(logdet, -(0.9 - 0.2) * np.trace(A), rtol=0, atol=1e-10)
    np.testing.assert_allclose(z, x @ expm(-(0.9 - 0.2) * A).T, rtol=0, atol=1e-10)
    base = Normal(0.0, 1.0, dim=2)
    np.testing.assert_allclose(cnf.log_prob(theta, x), base.log_prob(z) + logdet, atol=1e-14)


def test_logdet_equals_log_det_of_the_flow_jacobian(small):
    cnf, theta = small
    x = np.array([[0.3, -0.2], [1.1, 0.4], [-0.8, 0.9]])
    _, logdet = cnf.transform(theta, x)
    jac = autograd.jacobian(lambda xx: cnf.transform(theta, xx)[0])(x)   # (3, 2, 3, 2)
    for i in range(3):
        sign, ref = np.linalg.slogdet(jac[i, :, i, :])
        assert sign > 0 and abs(logdet[i] - ref) < 1e-8


def test_sample_inverts_transform(small):
    cnf, theta = small
    x = cnf.sample(theta, 20, seed=4)
    z0 = cnf.base.sample(20, np.random.default_rng(4))
    z, _ = cnf.transform(theta, x)
    np.testing.assert_allclose(z, z0, rtol=0, atol=1e-6)
    xs, logp = cnf.sample_with_log_prob(theta, 20, seed=4)
    np.testing.assert_allclose(xs, x, atol=1e-12)
    np.testing.assert_allclose(logp, cnf.log_prob(theta, x), rtol=0, atol=1e-6)


def test_density_integrates_to_one(small):
    cnf, theta = small
    loose = CNF(2, dynamics=cnf.dynamics, t1=1.0, rtol=1e-8, atol=1e-8)
    g = np.linspace(-7.0, 7.0, 141)
    X, Y = np.meshgrid(g, g)
    pts = np.column_stack([X.ravel(), Y.ravel()])
    p = np.exp(loose.log_prob(theta, pts)).reshape(X.shape)
    mass = np.trapezoid(np.trapezoid(p, g, axis=1), g)
    assert abs(mass - 1.0) < 1e-3


@pytest.mark.parametrize("gradient", ["adjoint", "interpolated", "discrete"])
def test_nll_gradient_every_mode_against_central_differences(gradient):
    cnf = CNF(2, t1=1.0, gradient=gradient, **TIGHT)
    theta = cnf.init(2) * 1.5
    x = np.random.default_rng(1).normal(size=(6, 2))
    grad = autograd.grad(cnf.nll)(theta, x)
    v = np.random.default_rng(2).normal(size=theta.size)
    h = 1e-5
    fd = (cnf.nll(theta + h * v, x) - cnf.nll(theta - h * v, x)) / (2 * h)
    assert abs(grad @ v - fd) < 1e-6 * (1 + abs(fd))
    gx = autograd.grad(cnf.nll, 1)(theta, x)
    vx = np.random.default_rng(3).normal(size=x.shape)
    fdx = (cnf.nll(theta, x + h * vx) - cnf.nll(theta, x - h * vx)) / (2 * h)
    assert abs(np.sum(gx * vx) - fdx) < 1e-6 * (1 + abs(fdx))


def test_kl_to_is_zero_for_the_flow_itself(small):
    cnf, theta = small
    log_q = lambda x: cnf.log_prob(theta, x)
    assert abs(cnf.kl_to(theta, log_q, 10, seed=0)) < 1e-6
    g = autograd.grad(lambda th: cnf.kl_to(th, lambda x: -0.5 * anp.sum(x ** 2, axis=1), 10,
                                           seed=0))(theta)
    assert g.shape == theta.shape and np.all(np.isfinite(g))


def test_f_matches_the_compiled_kernel(small):
    cnf, theta = small
    z = np.random.default_rng(0).normal(size=(7, 2))
    out = np.empty(21)
    cnf.ode().rhs(0.3, np.column_stack([z, np.zeros(7)]).ravel(), theta, out)
    np.testing.assert_allclose(cnf.f(0.3, z, theta), out.reshape(7, 3)[:, :2], atol=1e-14)


def test_default_is_torchdiffeqs_planar_hypernetwork():
    cnf = CNF(2)
    assert cnf.n_params == 15904 and isinstance(cnf.dynamics, PlanarHyper)
    assert cnf.solver_options["rtol"] == 1e-5 and cnf.trace == "exact"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="trace"):
        CNF(2, trace="approx")
    with pytest.raises(ValueError, match="dim"):
        CNF(0)
    with pytest.raises(ValueError, match="width 2"):
        CNF(3, dynamics=Sequential(Dense(2, 2)))
    with pytest.raises(TypeError, match="dynamics"):
        CNF(2, dynamics=lambda t, z, th: z)
    with pytest.raises(TypeError, match="rtoll"):
        CNF(2, rtoll=1e-3)
    with pytest.raises(ValueError, match="noise"):
        CNF(2, noise="uniform")
    with pytest.raises(ValueError, match="t0"):
        CNF(2, t0=1.0, t1=1.0)
    cnf = CNF(2)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        cnf.log_prob(cnf.init(0), np.zeros(2))
    with pytest.raises(ValueError, match="theta"):
        cnf.log_prob(np.zeros(3), np.zeros((1, 2)))
    with pytest.raises(TypeError, match="second derivative"):
        cnf_ode(Sequential(Dense(2, 2), nk.nn.Elementwise(), dim=2))


def test_normal():
    base = Normal([1.0, -1.0], [0.5, 2.0])
    x = base.sample(200000, seed=0)
    np.testing.assert_allclose(x.mean(0), [1.0, -1.0], atol=0.02)
    assert abs(-base.log_prob(x).mean() - base.entropy()) < 0.01
    with pytest.raises(ValueError, match="std"):
        Normal(0.0, -1.0)


# ---------------------------------------------------------------------------- planar NF, data


def test_planar_flow_inverse_density_and_gradients():
    from nodekit.models import PlanarFlow
    flow = PlanarFlow(2, K=5)
    theta = flow.init(0, std=1.0)
    x, logq = flow.sample_with_log_prob(theta, 50, seed=1)
    np.testing.assert_allclose(flow.log_prob(theta, x), logq, atol=1e-10)
    z, logdet = flow.transform(theta, x)
    np.testing.assert_allclose(z, flow.base.sample(50, np.random.default_rng(1)), atol=1e-10)
    # log|det| against the Jacobian of the explicit forward map
    z0 = z[:3]
    jac = autograd.jacobian(lambda zz: flow.forward(theta, zz)[0])(z0)
    for i in range(3):
        assert abs(np.linalg.slogdet(jac[i, :, i, :])[1] + logdet[i]) < 1e-9
    # the invertibility constraint holds for any parameters
    for w, u, _ in flow.layers(10 * theta):
        assert w @ u >= -1 - 1e-9
    # density integrates to one
    g = np.linspace(-8, 8, 161)
    X, Y = np.meshgrid(g, g)
    p = np.exp(flow.log_prob(theta, np.column_stack([X.ravel(), Y.ravel()]))).reshape(X.shape)
    assert abs(np.trapezoid(np.trapezoid(p, g, axis=1), g) - 1) < 1e-3
    # implicit gradients of log_prob (through the inverse) against central differences
    v = np.random.default_rng(2).normal(size=theta.size)
    h = 1e-6
    fd = (flow.nll(theta + h * v, x) - flow.nll(theta - h * v, x)) / (2 * h)
    assert abs(autograd.grad(flow.nll)(theta, x) @ v - fd) < 1e-6 * (1 + abs(fd))
    fdk = (flow.kl_to(theta + h * v, U1_neg, 30, 0) - flow.kl_to(theta - h * v, U1_neg, 30, 0))
    gk = autograd.grad(lambda th: flow.kl_to(th, U1_neg, 30, 0))(theta)
    assert abs(gk @ v - fdk / (2 * h)) < 1e-6 * (1 + abs(fdk / (2 * h)))


def U1_neg(z):
    from nodekit.datasets import U1
    return -U1(z)


def test_toy_data_and_exact_mixture_density():
    from nodekit.datasets import toy2d
    for name in ("two-circles", "two-moons", "eight-gaussians"):
        x = toy2d.sample(name, 100, seed=3)
        assert x.shape == (100, 2) and np.array_equal(x, toy2d.sample(name, 100, seed=3))
    x = toy2d.eight_gaussians(20000, seed=0)
    r = np.hypot(*x.T)
    assert abs(np.median(r) - 4 / math.sqrt(2)) < 0.05
    g = np.linspace(-6, 6, 241)
    X, Y = np.meshgrid(g, g)
    p = np.exp(toy2d.eight_gaussians_log_prob(np.column_stack([X.ravel(), Y.ravel()])))
    assert abs(np.trapezoid(np.trapezoid(p.reshape(X.shape), g, axis=1), g) - 1) < 1e-6
    # mixture of well-separated components: entropy = log 8 + Gaussian entropy, nearly
    h, se = toy2d.eight_gaussians_entropy(50000, seed=1)
    gauss = 1 + math.log(2 * math.pi * toy2d.EIGHT_STD ** 2)
    assert abs(h - (math.log(8) + gauss)) < 5 * se + 1e-3
    for name in toy2d.POTENTIALS:
        assert np.isfinite(toy2d.log_normaliser(name, n=201))
    with pytest.raises(ValueError, match="two-moons"):
        toy2d.sample("spirals", 10)


def test_example_runs_on_tiny_settings(tmp_path):
    import json

    from nodekit.examples import cnf as example
    assert example.main(["--iters", "2", "--out", str(tmp_path), "--no-progress",
                         "--data", "eight-gaussians"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert np.isfinite(m["cnf"]["test_nll"]) and m["cnf"]["nfe_forward"] > 0
    assert "true_entropy" in m and all(os.path.exists(f) for f in m["figures"])
