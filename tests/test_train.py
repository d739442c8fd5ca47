"""nodekit.train: optimisers on a quadratic, the fit loop, save/load."""
import autograd.numpy as anp
import numpy as np
import pytest

import nodekit as nk
from nodekit.nn import Dense, Power, Sequential
from nodekit.train import SGD, Adam, RMSprop, fit, load, save

# f(x) = 1/2 (x - c)^T H (x - c): minimum at c
H = np.diag([1.0, 4.0, 0.5])
C = np.array([1.0, -2.0, 3.0])


def quad(x):
    return 0.5 * (x - C) @ H @ (x - C), H @ (x - C)


@pytest.mark.parametrize("opt, iters", [
    (SGD(lr=0.1), 400), (SGD(lr=0.05, momentum=0.9), 400),
    (SGD(lr=0.05, momentum=0.9, nesterov=True), 400),
    (RMSprop(lr=0.01), 1500), (Adam(lr=0.05), 1500)], ids=repr)
def test_optimisers_minimise_a_quadratic(opt, iters):
    x = np.zeros(3)
    for _ in range(iters):
        x = opt.step(x, quad(x)[1])
    np.testing.assert_allclose(x, C, atol=2e-2)


def test_update_rules():
    g = np.array([0.5, -2.0])
    # Adam's first step is lr * sign(g) (bias-corrected moments)
    np.testing.assert_allclose(Adam(lr=0.1).step(np.zeros(2), g), -0.1 * np.sign(g), rtol=1e-6)
    # RMSprop: s = (1 - alpha) g^2
    r = RMSprop(lr=0.1, alpha=0.9, eps=0.0).step(np.zeros(2), g)
    np.testing.assert_allclose(r, -0.1 * g / np.sqrt(0.1 * g * g))
    # SGD momentum: v1 = g, v2 = m g + g
    o = SGD(lr=1.0, momentum=0.5)
    x = o.step(np.zeros(2), g)
    np.testing.assert_allclose(o.step(x, g), -g - 1.5 * g)
    # theta is never modified in place
    x0 = np.ones(2)
    Adam().step(x0, g)
    assert np.all(x0 == 1.0)


def test_optimiser_errors():
    with pytest.raises(ValueError, match="`lr` must be a positive"):
        Adam(lr=-1.0)
    with pytest.raises(ValueError, match=r"`momentum` must be in \[0, 1\)"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="`grad` must have the shape of `theta`"):
        Adam().step(np.zeros(3), np.zeros(2))


def test_fit_loss_and_grad_batches_history_callback():
    seen = []

    def loss_and_grad(x, shift):
        val, g = quad(x - shift)
        return val, g

    res = fit(loss_and_grad, np.zeros(3), optimizer=Adam(lr=0.05), iters=50,
              batches=[0.0, 0.0], progress=False, value_and_grad=True,
              callback=lambda i, th, loss, info: seen.append(i))
    assert res.success and res.iterations == 50 and res.loss.shape == (50,)
    assert res.loss[-1] < res.loss[0] and seen == list(range(50))
    res = fit(loss_and_grad, np.zeros(3), optimizer=Adam(), iters=50, batches=lambda i: 0.0,
              progress=False, callback=lambda i, th, loss, info: i == 9, value_and_grad=True)
    assert res.iterations == 10 and "callback" in res.message


def test_fit_autograd_loss_with_progress_bar():
    res = fit(lambda x: anp.sum((x - 2.0) ** 2), np.zeros(2), optimizer=SGD(lr=0.1),
              iters=100, progress=True)
    np.testing.assert_allclose(res.theta, 2.0, atol=1e-6)


def test_fit_stops_on_nonfinite_loss_keeping_last_good_parameters():
    steps = []

    def loss_and_grad(x):
        if x[0] > 0.35:
            return np.nan, np.zeros(1)
        return -x[0], np.array([-1.0])

    res = fit(loss_and_grad, np.zeros(1), optimizer=SGD(lr=0.1), iters=100, progress=False,
              callback=lambda i, th, loss, info: steps.append(th.copy()), value_and_grad=True)
    assert not res.success and "iteration 4" in res.message
    assert res.iterations == 4
    np.testing.assert_allclose(res.theta, [0.3])       # the last finite loss, not 0.4
    assert "loss nan" in res.message
    res = fit(lambda x: (0.0, np.array([np.inf])), np.zeros(1), optimizer=SGD(), iters=3,
              progress=False, value_and_grad=True)
    assert not res.success and "non-finite gradient" in res.message
    np.testing.assert_array_equal(res.theta, [0.0])
    assert "Returning the initial parameters (the first evaluation failed" in res.message
    assert "Returning the last parameters with a finite" in fit(
        loss_and_grad, np.zeros(1), optimizer=SGD(lr=0.1), iters=100, progress=False,
        value_and_grad=True).message


def test_fit_records_nfe_from_stats():
    model = Sequential(Power(3), Dense(2, 6), "tanh", Dense(6, 2))
    theta = model.init(0, scheme="normal", std=0.1)
    y0 = np.array([[2.0, 0.0], [1.0, 1.0]])
    target = np.zeros((3, 2, 2))
    t = np.linspace(0, 0.2, 3)
    stats = {}
    loss = lambda th: anp.mean(anp.abs(nk.odeint(model.ode, y0, t, th, stats=stats) - target))
    res = fit(loss, theta, optimizer=RMSprop(lr=1e-3), iters=5, stats=stats, progress=False)
    assert res.success and np.all(res.nfev_forward > 0) and np.all(res.nfev_backward > 0)
    assert res.loss[-1] < res.loss[0]


def test_fit_errors():
    with pytest.raises(ValueError, match="`theta0` must be a flat"):
        fit(quad, np.zeros((2, 2)), optimizer=Adam(), iters=1, progress=False)
    with pytest.raises(ValueError, match="`iters` must be a non-negative integer"):
        fit(quad, np.zeros(3), optimizer=Adam(), iters=-1, progress=False)
    with pytest.raises(TypeError, match="`optimizer` must have a step"):
        fit(quad, np.zeros(3), optimizer="adam", iters=1, progress=False)


def test_save_load_roundtrip(tmp_path):
    model = Sequential(Power(3), Dense(2, 5), "elu", Dense(5, 2))
    theta = model.init(3)
    path = tmp_path / "m.npz"
    save(path, theta, model, loss=np.arange(4.0))
    th2, model2, extra = load(path)
    np.testing.assert_array_equal(th2, theta)
    assert model2 == model
    np.testing.assert_array_equal(extra["loss"], np.arange(4.0))
    y = np.ones((3, 2))
    np.testing.assert_array_equal(model2.rhs(0.0, y, th2), model.rhs(0.0, y, theta))
    save(tmp_path / "bare.npz", theta)
    assert load(tmp_path / "bare.npz")[1] is None
    with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 27"):
        save(path, theta[:-1], model)


def test_fit_learning_rate_schedule_is_applied_each_step():
    seen = []

    class Recording(SGD):
        def step(self, theta, grad):
            seen.append(self.lr)
            return super().step(theta, grad)

    res = fit(lambda th: (float(th @ th), 2 * th), np.ones(3), optimizer=Recording(lr=0.1),
              iters=4, schedule=lambda i: 0.1 / (1 + i), progress=False, value_and_grad=True)
    assert res.success
    np.testing.assert_allclose(seen, [0.1, 0.05, 0.1 / 3, 0.025])
    with pytest.raises(ValueError, match="`lr` must be a positive"):
        fit(lambda th: (float(th @ th), 2 * th), np.ones(3), optimizer=SGD(lr=0.1), iters=2,
            schedule=lambda i: -1.0, progress=False, value_and_grad=True)
    with pytest.raises(TypeError, match="`schedule`"):
        fit(lambda th: (float(th @ th), 2 * th), np.ones(3), optimizer=SGD(lr=0.1), iters=2,
            schedule=0.1, progress=False)
