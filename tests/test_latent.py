"""Latent ODE, RNN baseline, Poisson-process likelihood and the spirals data."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from nodekit.datasets import spirals, subsample, union_batch
from nodekit.datasets.spirals import spiral_paths
from nodekit.models import LatentODE, PoissonProcess, RNNBaseline
from nodekit.models.latent import (
    check_batch,
    encoder_inputs,
    gaussian_log_likelihood,
    gru_cell,
    kl_to_standard_normal,
    run_cells,
    run_final,
    sample_poisson_process,
    time_gaps,
)

TIGHT = {"method": "dopri5", "rtol": 1e-11, "atol": 1e-12}


def tiny_batch():
    """Three sequences with their own irregular times, on the union of times."""
    rng = np.random.default_rng(3)
    times = [[0.0, 0.25, 0.75], [0.5, 1.0], [0.25, 0.5, 1.25, 1.5]]
    values = [rng.standard_normal((len(t), 2)) for t in times]
    return union_batch(times, values)


def central_difference_check(f, theta, rng, n_dirs=3, h=1e-5, rtol=1e-5):
    g = autograd.grad(f)(theta)
    for _ in range(n_dirs):
        v = rng.standard_normal(theta.size)
        fd = (f(theta + h * v) - f(theta - h * v)) / (2 * h)
        assert np.isclose(g @ v, fd, rtol=rtol, atol=1e-8), (g @ v, fd)


@pytest.mark.parametrize("gradient", ["adjoint", "interpolated", "discrete"])
def test_elbo_gradient_matches_central_differences(gradient):
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3, gradient=gradient,
                      **TIGHT)
    t, x, mask = tiny_batch()
    theta = model.init(1)
    eps = np.random.default_rng(0).standard_normal((3, 2))

    def f(th):
        return model.elbo(th, t, x, mask, eps=eps, t0=-0.5)

    central_difference_check(f, theta, np.random.default_rng(5))


def test_elbo_gradient_gru_encoder():
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3, encoder="gru",
                      **TIGHT)
    t, x, mask = tiny_batch()
    eps = np.random.default_rng(0).standard_normal((3, 2))
    central_difference_check(lambda th: model.elbo(th, t, x, mask, eps=eps), model.init(2),
                             np.random.default_rng(6))


@pytest.mark.parametrize("encoder", ["rnn", "gru"])
def test_masked_union_batch_equals_per_sequence_solves(encoder):
    # fixed-step RK4 on a grid holding every observation time: the joint
    # solve and the solo solves take the same steps, so only round-off differs
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=4, encoder=encoder,
                      method="rk4", step_size=0.125)
    rng = np.random.default_rng(4)
    times = [[0.25, 0.5, 1.0], [0.125, 1.25], [0.5, 0.625, 0.75, 1.5]]
    values = [rng.standard_normal((len(tb), 2)) for tb in times]
    t, x, mask = union_batch(times, values)
    theta = model.init(0)
    eps = rng.standard_normal((3, 2))
    joint = model.elbo(theta, t, x, mask, eps=eps, t0=0.0, reduction="none")
    for b, (tb, xb) in enumerate(zip(times, values)):
        solo = model.elbo(theta, tb, xb[None], np.ones((1, len(tb)), bool), eps=eps[b:b + 1],
                          t0=0.0, reduction="none")
        assert abs(solo[0] - joint[b]) <= 1e-10 * max(1.0, abs(joint[b]))
    assert np.isclose(model.elbo(theta, t, x, mask, eps=eps, t0=0.0), np.mean(joint),
                      rtol=1e-14)


def test_elbo_pieces_by_hand():
    # a model whose latent dynamics are zero: z(t) = z0, so the ELBO is the
    # Gaussian likelihood of dec(z0) at every observed point minus the KL
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3, noise_std=0.5)
    theta = model.init(0)
    theta[model.parts.slices["dyn"]] = 0.0
    t, x, mask = tiny_batch()
    eps = np.random.default_rng(1).standard_normal((3, 2))
    mu, logvar = model.encode(theta, t, x, mask)
    z0 = mu + np.exp(0.5 * logvar) * eps
    xhat = model.decode(theta, z0)
    expect = []
    for b in range(3):
        r = (x[b, mask[b]] - xhat[b]) / 0.5
        logp = np.sum(-0.5 * r ** 2 - np.log(0.5) - 0.5 * np.log(2 * np.pi))
        kl = 0.5 * np.sum(mu[b] ** 2 + np.exp(logvar[b]) - logvar[b] - 1)
        expect.append(logp - kl)
    got = model.elbo(theta, t, x, mask, eps=eps, reduction="none")
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_kl_closed_form_against_monte_carlo():
    mu, logvar = np.array([[0.3, -1.0]]), np.array([[0.2, -0.7]])
    rng = np.random.default_rng(0)
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((400000, 2))
    logq = np.sum(-0.5 * (z - mu) ** 2 / np.exp(logvar) - 0.5 * logvar, axis=1)
    logp = np.sum(-0.5 * z ** 2, axis=1)
    assert abs(np.mean(logq - logp) - kl_to_standard_normal(mu, logvar)[0]) < 5e-3


def test_encoder_runs_backwards_over_own_observations():
    t, x, mask = tiny_batch()
    batch = check_batch(t, x, mask, 2, t0=-0.5)
    gaps = time_gaps(batch)
    # sequence 1 is observed at 0.5 and 1.0: gaps 1.0 (from t0) and 0.5
    np.testing.assert_allclose(gaps[1][mask[1]], [1.0, 0.5])
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3)
    theta = model.init(0)
    # the posterior of sequence 0 does not depend on values it does not observe
    x2 = x.copy()
    x2[0, ~mask[0]] = 7.0
    np.testing.assert_array_equal(model.encode(theta, t, x, mask)[0],
                                  model.encode(theta, t, x2, mask)[0])
    # reversing the order changes the posterior (the RNN is not symmetric)
    x3 = x.copy()
    x3[0, mask[0]] = x[0, mask[0]][::-1]
    assert not np.allclose(model.encode(theta, t, x, mask)[0][0],
                           model.encode(theta, t, x3, mask)[0][0])


def test_gru_cell_formula():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    p = {k: rng.standard_normal((3, 2)) for k in ("Wrx", "Wux", "Wnx")}
    p.update({k: rng.standard_normal((2, 2)) for k in ("Wrh", "Wuh", "Wnh")})
    p.update({k: rng.standard_normal(2) for k in ("br", "bu", "bn")})
    sig = lambda a: 1 / (1 + np.exp(-a))
    r = sig(x @ p["Wrx"] + h @ p["Wrh"] + p["br"])
    u = sig(x @ p["Wux"] + h @ p["Wuh"] + p["bu"])
    n = np.tanh(x @ p["Wnx"] + (r * h) @ p["Wnh"] + p["bn"])
    np.testing.assert_allclose(gru_cell(p, x, h), (1 - u) * n + u * h, rtol=1e-13)


def test_predict_and_sample_prior_shapes():
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3)
    theta = model.init(0)
    t, x, mask = tiny_batch()
    t_pred = np.linspace(0.0, 2.0, 7)
    xs, zs = model.predict(theta, t, x, mask, t_pred, n_samples=4, seed=1, return_latent=True)
    assert xs.shape == (4, 3, 7, 2) and zs.shape == (4, 3, 7, 2)
    mean = model.predict(theta, t, x, mask, t_pred, n_samples=2, mean=True)
    np.testing.assert_array_equal(mean[0], mean[1])
    # predictions at the observation times decode the ELBO's trajectory
    eps = np.zeros((3, 2))
    mu, _ = model.encode(theta, t, x, mask)
    z = model.latent_trajectory(theta, mu, t)
    np.testing.assert_allclose(model.predict(theta, t, x, mask, t, mean=True)[0],
                               np.transpose(model.decode(theta, z), (1, 0, 2)), rtol=1e-12)
    assert np.isfinite(model.elbo(theta, t, x, mask, eps=eps))
    prior = model.sample_prior(theta, t_pred, 5, seed=0)
    assert prior.shape == (5, 7, 2)
    back = model.predict(theta, t, x, mask, [0.0, -0.5, -1.0], mean=True)
    assert back.shape == (1, 3, 3, 2)


def test_rnn_baseline_masked_batch_and_gradient():
    model = RNNBaseline(obs_dim=2, rnn_hidden=4)
    theta = model.init(0)
    times = [[0.0, 0.25, 0.75], [0.5, 1.0]]
    rng = np.random.default_rng(2)
    values = [rng.standard_normal((len(tb), 2)) for tb in times]
    t, x, mask = union_batch(times, values)
    joint = model.log_likelihood(theta, t, x, mask, t0=0.0, reduction="none")
    pred = model.predict(theta, t, x, mask, [1.5, 2.0], t0=0.0)
    for b in range(2):
        one = np.ones((1, len(times[b])), bool)
        solo = model.log_likelihood(theta, times[b], values[b][None], one, t0=0.0,
                                    reduction="none")
        assert abs(solo[0] - joint[b]) < 1e-12
        np.testing.assert_allclose(
            model.predict(theta, times[b], values[b][None], one, [1.5, 2.0], t0=0.0)[0],
            pred[b], rtol=1e-12)
    central_difference_check(lambda th: model.log_likelihood(th, t, x, mask), theta,
                             np.random.default_rng(0), rtol=1e-6)


# ---------------------------------------------------------------------- Poisson


def test_poisson_constant_intensity_closed_form():
    # lambda = exp(c) constant: log L = n c - exp(c) T
    proc = PoissonProcess(lambda t, z, th: 0.0 * z, lambda z, th: anp.exp(th[0]) + 0.0 * z[:, 0],
                          latent_dim=1, **TIGHT)
    events = [0.3, 0.9, 1.7]
    mask = np.array([[True, False, True], [True, True, True]])
    c = np.array([0.4])
    ll = proc.log_likelihood(c, np.zeros((2, 1)), events, mask, t_end=2.5)
    np.testing.assert_allclose(ll, [2 * 0.4 - np.exp(0.4) * 2.5, 3 * 0.4 - np.exp(0.4) * 2.5],
                               rtol=1e-10)
    g = autograd.grad(lambda th: anp.sum(proc.log_likelihood(th, np.zeros((2, 1)), events,
                                                            mask, t_end=2.5)))(c)
    np.testing.assert_allclose(g, [5 - 2 * np.exp(0.4) * 2.5], rtol=1e-8)


@pytest.mark.parametrize("gradient", ["adjoint", "discrete"])
def test_poisson_linear_intensity_closed_form(gradient):
    # z' = a, lambda = z: z(t) = z0 + a t, log L = sum log(z0 + a t_i) - z0 T - a T^2 / 2
    proc = PoissonProcess(lambda t, z, th: th[0] + 0.0 * z, lambda z, th: z[:, 0], latent_dim=1,
                          gradient=gradient, **TIGHT)
    events = np.array([0.2, 0.5, 1.1, 1.4])
    mask = np.ones((1, 4), bool)
    T = 2.0

    def exact(a, z0):
        return np.sum(np.log(z0 + a * events)) - z0 * T - a * T ** 2 / 2

    a, z0 = 0.7, 1.3
    ll = proc.log_likelihood(np.array([a]), np.array([[z0]]), events, mask, t_end=T)
    assert abs(ll[0] - exact(a, z0)) < 1e-10
    ga, gz = autograd.grad(lambda th, z: proc.log_likelihood(th, z, events, mask, t_end=T)[0],
                           argnum=(0, 1))(np.array([a]), np.array([[z0]]))
    np.testing.assert_allclose(ga, [np.sum(events / (z0 + a * events)) - T ** 2 / 2], rtol=1e-7)
    np.testing.assert_allclose(gz, [[np.sum(1 / (z0 + a * events)) - T]], rtol=1e-7)


def test_poisson_thinning_counts():
    lam = lambda t: 2.0 + np.sin(t)
    n = [sample_poisson_process(lam, 3.0, 10.0, seed=s).size for s in range(300)]
    mean = 20.0 + (1 - np.cos(10.0))         # integral of the intensity on [0, 10]
    assert abs(np.mean(n) - mean) < 4 * np.sqrt(mean / 300)


# ---------------------------------------------------------------------- data


def test_spirals_construction():
    d = spirals(n_spirals=50, n_total=1000, n_obs=100, noise_std=0.3, seed=0)
    assert d.x.shape == (50, 100, 2) and d.x_held.shape == (50, 100, 2)
    grid, paths = spiral_paths(1000)
    np.testing.assert_allclose(d.t, grid[:100])
    np.testing.assert_allclose(d.t_held, grid[100:200])
    # counter-clockwise: radius 0.3 s around (5, 0) at angle s = t
    r = np.hypot(paths[0, :, 0] - 5.0, paths[0, :, 1])
    np.testing.assert_allclose(r, 0.3 * grid, atol=1e-12)
    # clockwise: radius 15 / s around (-5, 0), s = 6 pi + 1 - t
    r = np.hypot(paths[1, :, 0] + 5.0, paths[1, :, 1])
    np.testing.assert_allclose(r, 15.0 / (6 * np.pi + 1 - grid), rtol=1e-12)
    for b in range(50):
        path = paths[int(d.clockwise[b])]
        np.testing.assert_array_equal(d.x_true[b], path[d.start[b]:d.start[b] + 100])
        np.testing.assert_array_equal(d.x_held[b], path[d.start[b] + 100:d.start[b] + 200])
    assert np.all(d.start >= 100) and np.all(d.start <= 800)
    assert 0.27 < np.std(d.x - d.x_true) < 0.33
    assert 0 < d.clockwise.sum() < 50


def test_subsample_and_union_batch():
    d = spirals(n_spirals=20, seed=1)
    irr = subsample(d, 30, seed=2)
    assert np.all(irr.mask.sum(axis=1) == 30)
    for b in range(20):
        cols = np.searchsorted(d.t, irr.t[irr.mask[b]])
        np.testing.assert_array_equal(irr.x[b, irr.mask[b]], d.x[b, cols])
    t, x, mask = union_batch([[0.0, 1.0], [0.5]], [[[1, 2], [3, 4]], [[5, 6]]])
    np.testing.assert_array_equal(t, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(mask, [[True, False, True], [False, True, False]])
    assert x[1, 1, 1] == 6 and x[0, 2, 0] == 3


def test_bad_input_messages():
    model = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3)
    theta = model.init(0)
    t, x, mask = tiny_batch()
    with pytest.raises(ValueError, match="`mask` must have shape"):
        model.elbo(theta, t, x, mask[:, :2])
    empty = mask.copy()
    empty[1] = False
    with pytest.raises(ValueError, match="at least one observation"):
        model.elbo(theta, t, x, empty)
    with pytest.raises(ValueError, match="`t_obs` must be"):
        model.elbo(theta, t[::-1], x, mask)
    with pytest.raises(ValueError, match="`theta` must be a flat vector"):
        model.elbo(theta[:-1], t, x, mask)
    with pytest.raises(ValueError, match="Unknown `encoder`"):
        LatentODE(encoder="lstm")
    with pytest.raises(ValueError, match="`t0` must be"):
        model.elbo(theta, t, x, mask, t0=1.0)
    with pytest.raises(ValueError, match="`t_pred`"):
        model.predict(theta, t, x, mask, [1.0, 0.5])
    with pytest.raises(ValueError, match="`k` must be at most"):
        subsample(spirals(n_spirals=2), 101)


def test_example_table_and_options():
    from nodekit.examples import latent_ode
    metrics = {"rmse": {"30": {"latent_ode": 0.2, "rnn": 0.4},
                        "100": {"latent_ode": 0.15, "rnn": 0.2}}}
    text = latent_ode.table(metrics)
    assert "0.2000" in text and "[0.3937]" in text and "[0.1346]" in text
    assert latent_ode.parse_obs("30, 50,100") == [30, 50, 100]
    with pytest.raises(SystemExit, match="--obs"):
        latent_ode.parse_obs("30,101")
    irr = subsample(spirals(n_spirals=6, seed=0), 10, seed=0)
    t, x, mask = latent_ode.minibatch(irr, np.array([1, 4]))
    assert np.all(mask.any(axis=0)) and np.all(mask.sum(axis=1) == 10)
    assert x.shape == (2, t.size, 2)


@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_elman_sequence_against_autograd_and_differences(reverse):
    rng = np.random.default_rng(7)
    B, T, k, H = 4, 6, 3, 5
    X = rng.standard_normal((B, T, k))
    mask = rng.random((B, T)) < 0.6
    mask[:, 2] = True
    p = {"Wx": rng.standard_normal((k, H)), "Wh": 0.5 * rng.standard_normal((H, H)),
         "b": rng.standard_normal(H)}
    G, g_last = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))

    def f(Wx, Wh, b, compiled):
        hs, h = run_cells("rnn", {"Wx": Wx, "Wh": Wh, "b": b}, X, mask, reverse, compiled)
        return anp.sum(hs * G) + anp.sum(h * g_last)

    args = (p["Wx"], p["Wh"], p["b"])
    assert abs(f(*args, True) - f(*args, False)) < 1e-12
    g_c = autograd.grad(f, (0, 1, 2))(*args, True)
    g_a = autograd.grad(f, (0, 1, 2))(*args, False)
    for a, c in zip(g_a, g_c):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13)
    for i in range(3):
        v = rng.standard_normal(args[i].shape)
        plus = list(args)
        minus = list(args)
        plus[i], minus[i] = args[i] + 1e-6 * v, args[i] - 1e-6 * v
        fd = (f(*plus, True) - f(*minus, True)) / 2e-6
        assert np.isclose(np.sum(g_c[i] * v), fd, rtol=1e-6)
    # the final states alone (the encoder's primitive): same values and gradients
    final = lambda Wx, Wh, b, compiled: anp.sum(
        run_final("rnn", {"Wx": Wx, "Wh": Wh, "b": b}, X, mask, reverse, compiled) * g_last)
    assert abs(final(*args, True) - final(*args, False)) < 1e-12
    g_c = autograd.grad(final, (0, 1, 2))(*args, True)
    for a, c in zip(autograd.grad(final, (0, 1, 2))(*args, False), g_c):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13)


def test_decoder_log_likelihood_against_autograd_and_differences():
    from nodekit.nn import Chain, Dense, Tanh
    from nodekit.nn.decoder import decoder_log_likelihood
    rng = np.random.default_rng(3)
    net = Chain(Dense(3, 6), "relu", Dense(6, 2))
    T, B = 5, 4
    theta = net.init(rng) + 0.1 * rng.standard_normal(net.n_params)
    Z, X = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 2))
    mask = (rng.random((T, B)) < 0.7).astype(float)
    g = rng.standard_normal(B)

    def fused(th, z):
        return anp.sum(g * decoder_log_likelihood(net, th, z, X, mask, 0.4))

    def composed(th, z):
        mean = anp.transpose(net.apply(0.0, z, th), (1, 0, 2))
        return anp.sum(g * gaussian_log_likelihood(np.transpose(X, (1, 0, 2)), mean, 0.4,
                                                   mask.T))

    assert abs(fused(theta, Z) - composed(theta, Z)) < 1e-12
    for got, want in zip(autograd.grad(fused, (0, 1))(theta, Z),
                         autograd.grad(composed, (0, 1))(theta, Z)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    g_th, g_z = autograd.grad(fused, (0, 1))(theta, Z)
    v_th, v_z = rng.standard_normal(theta.shape), rng.standard_normal(Z.shape)
    fd = (fused(theta + 1e-6 * v_th, Z + 1e-6 * v_z)
          - fused(theta - 1e-6 * v_th, Z - 1e-6 * v_z)) / 2e-6
    assert np.isclose(np.sum(g_th * v_th) + np.sum(g_z * v_z), fd, rtol=1e-6)
    with pytest.raises(TypeError, match="Dense and ReLU layers"):
        decoder_log_likelihood(Chain(Dense(3, 2), Tanh()), np.zeros(8), Z, X, mask, 0.4)


def test_compiled_and_autograd_cells_give_the_same_models():
    t, x, mask = tiny_batch()
    eps = np.random.default_rng(0).standard_normal((3, 2))
    a = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3, **TIGHT)
    b = LatentODE(obs_dim=2, latent_dim=2, hidden=3, rnn_hidden=3, compiled_cells=False,
                  **TIGHT)
    theta = a.init(0)
    assert abs(a.elbo(theta, t, x, mask, eps=eps) - b.elbo(theta, t, x, mask, eps=eps)) < 1e-12
    ra, rb = RNNBaseline(rnn_hidden=4), RNNBaseline(rnn_hidden=4, compiled_cells=False)
    th = ra.init(0)
    assert abs(ra.log_likelihood(th, t, x, mask) - rb.log_likelihood(th, t, x, mask)) < 1e-12
    np.testing.assert_allclose(ra.predict(th, t, x, mask, [2.0, 3.0]),
                               rb.predict(th, t, x, mask, [2.0, 3.0]), rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_elman_with_fully_observed_times(reverse):
    """Times where every row updates take the kernels' flat path (the states
    read in place); mixed with partial times, first and last, with and
    without cotangents of every state: the same as the autograd-NumPy cell."""
    rng = np.random.default_rng(11)
    B, T, k, H = 5, 8, 3, 4
    X = rng.standard_normal((B, T, k))
    mask = rng.random((B, T)) < 0.5
    mask[:, [0, 1, 2, 5, 7]] = True          # runs of full times, partial ones between
    mask[0, 3] = mask[1, 4] = mask[2, 6] = True
    args = (rng.standard_normal((k, H)), 0.5 * rng.standard_normal((H, H)),
            rng.standard_normal(H))
    G, g_last = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))

    def every(Wx, Wh, b, compiled):
        hs, h = run_cells("rnn", {"Wx": Wx, "Wh": Wh, "b": b}, X, mask, reverse, compiled)
        return anp.sum(hs * G) + anp.sum(h * g_last)

    def final(Wx, Wh, b, compiled):
        h = run_final("rnn", {"Wx": Wx, "Wh": Wh, "b": b}, X, mask, reverse, compiled)
        return anp.sum(h * g_last)

    for f in (every, final):
        assert abs(f(*args, True) - f(*args, False)) < 1e-12
        for a, c in zip(autograd.grad(f, (0, 1, 2))(*args, False),
                        autograd.grad(f, (0, 1, 2))(*args, True)):
            np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13)


def test_encoder_inputs_are_observations_and_gaps():
    t, x, mask = tiny_batch()
    batch = check_batch(t, x, mask, 2, t0=-0.5)
    np.testing.assert_array_equal(
        encoder_inputs(batch), np.concatenate([batch.x, time_gaps(batch)[:, :, None]], axis=2))
