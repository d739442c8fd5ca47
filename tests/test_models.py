"""nodekit.models: the Table 1 classifiers' gradients, a training step, the examples."""
import os

import autograd
import numpy as np
import pytest

from nodekit import models
from nodekit.models import (
    MLPClassifier,
    ODENet,
    ResNet,
    RKNet,
    build,
    cross_entropy,
    mlp_hidden_for,
)
from nodekit.nn import Chain, Sequential
from nodekit.train import SGD

N_IN, WIDTH, N_OUT, BATCH = 5, 3, 4, 6


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (BATCH, N_IN)), rng.integers(0, N_OUT, BATCH)


def _tiny(name):
    if name == "mlp":
        return MLPClassifier(N_IN, 4, N_OUT)
    if name == "resnet":
        return ResNet(N_IN, WIDTH, N_OUT, n_blocks=6)
    if name == "odenet":
        return ODENet(N_IN, WIDTH, N_OUT, rtol=1e-10, atol=1e-10)
    if name == "odenet_python":
        return ODENet(N_IN, WIDTH, N_OUT, rtol=1e-10, atol=1e-10, compiled=False)
    if name == "rknet":
        return RKNet(N_IN, WIDTH, N_OUT, rtol=1e-10, atol=1e-10)
    return RKNet(N_IN, WIDTH, N_OUT, method="rk4", step_size=0.25)   # rknet_rk4


NAMES = ["mlp", "resnet", "odenet", "odenet_python", "rknet", "rknet_rk4"]


def test_parameter_counts():
    w = 64
    block = 2 * (w * w + w)
    assert ResNet(64, w, 10).n_params == (64 * w + w) + 6 * block + (w * 10 + 10)
    ode = ODENet(64, w, 10)
    assert ode.n_params == (64 * w + w) + 2 * ((w + 1) * w + w) + (w * 10 + 10)
    assert RKNet(64, w, 10).n_params == ode.n_params
    h = mlp_hidden_for(ode.n_params)
    assert abs(MLPClassifier(64, h, 10).n_params - ode.n_params) <= 74
    assert build("mlp", width=w).n_params == MLPClassifier(64, h, 10).n_params
    assert build("ODE-Net", width=w).options["gradient"] == "adjoint"
    assert build("rk_net", width=w).options["gradient"] == "discrete"
    with pytest.raises(ValueError, match="Unknown model"):
        build("transformer")
    with pytest.raises(ValueError, match="flat vector"):
        MLPClassifier(3, 2, 2).logits(np.zeros(3), np.zeros((1, 3)))


def test_classifiers_are_built_from_nn_parts():
    x, _ = _batch()
    model = ResNet(N_IN, WIDTH, N_OUT, n_blocks=2)
    assert list(model.parts) == ["in", "block0", "block1", "out"]
    assert all(isinstance(p, Chain) for p in model.parts.values())
    assert sum(p.n_params for p in model.parts.values()) == model.n_params
    theta = model.init(seed=1)
    # the logits from the named blocks, written out in NumPy
    blk = {name: theta[off:off + int(np.prod(shape))].reshape(shape)
           for name, off, shape in model.blocks}
    h = x @ blk["in.0.W"] + blk["in.0.b"]
    for k in range(2):
        h = h + np.tanh(h @ blk[f"block{k}.0.W"] + blk[f"block{k}.0.b"]) @ \
            blk[f"block{k}.2.W"] + blk[f"block{k}.2.b"]
    np.testing.assert_allclose(model.logits(theta, x), h @ blk["out.0.W"] + blk["out.0.b"],
                               rtol=1e-13)
    ode = ODENet(N_IN, WIDTH, N_OUT)
    assert isinstance(ode.parts["ode"], Sequential) and ode.parts["ode"] is ode.dynamics
    # the dynamics' parameters come from their own generator (seed + 1)
    np.testing.assert_array_equal(ode.init(4)[ode.part_slice("ode")],
                                  ode.dynamics.init(seed=5, scheme="torch"))


def test_mlp_classifier_renamed_with_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="MLPClassifier"):
        alias = models.MLP
    assert alias is MLPClassifier and build("mlp").name == "MLP"
    with pytest.raises(AttributeError):
        _ = models.NoSuchModel


def test_one_theta_length_check_for_every_model():
    x, _ = _batch()
    for model in (MLPClassifier(N_IN, 4, N_OUT), ResNet(N_IN, WIDTH, N_OUT), _tiny("odenet")):
        n = model.n_params
        with pytest.raises(ValueError, match=rf"`theta` must be a flat vector of length {n} "
                                             rf"\(the parameters of .*got shape \({n - 5},\) "
                                             rf"\({n - 5} parameters, 5 too few\)"):
            model.logits(np.zeros(n - 5), x)


def test_cross_entropy_matches_direct_formula():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(5, 3)) * 30, rng.integers(0, 3, 5)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.isclose(cross_entropy(z, y), -np.mean(np.log(p[np.arange(5), y])))


@pytest.mark.parametrize("name", NAMES)
def test_loss_gradient_matches_finite_differences(name):
    model = _tiny(name)
    theta = model.init(seed=3)
    x, y = _batch()
    loss = lambda th: model.loss(th, x, y)
    g = autograd.grad(loss)(theta)
    assert g.shape == theta.shape and np.all(np.isfinite(g))
    rng = np.random.default_rng(1)
    eps = 1e-5
    for _ in range(3):   # directional derivatives along random directions
        v = rng.normal(size=theta.size)
        fd = (loss(theta + eps * v) - loss(theta - eps * v)) / (2 * eps)
        assert np.isclose(g @ v, fd, rtol=1e-5, atol=1e-8), (name, g @ v, fd)
    # and a few coordinates, one in every parameter block
    for _, off, shape in model.blocks:
        e = np.zeros(theta.size)
        e[off] = 1.0
        fd = (loss(theta + eps * e) - loss(theta - eps * e)) / (2 * eps)
        assert np.isclose(g[off], fd, rtol=1e-5, atol=1e-8), (name, off, g[off], fd)


def test_compiled_and_python_ode_blocks_agree():
    a, b = _tiny("odenet"), _tiny("odenet_python")
    theta = a.init(seed=2)
    x, y = _batch(1)
    assert np.allclose(a.logits(theta, x), b.logits(theta, x), rtol=1e-9, atol=1e-12)
    ga = autograd.grad(lambda th: a.loss(th, x, y))(theta)
    gb = autograd.grad(lambda th: b.loss(th, x, y))(theta)
    assert np.allclose(ga, gb, rtol=1e-7, atol=1e-10)
    # the ODE block records its evaluations
    assert a.stats["nfev_forward"] > 0 and a.stats["nfev_backward"] > 0


@pytest.mark.parametrize("name", ["mlp", "resnet", "odenet", "rknet"])
def test_one_training_step_decreases_the_loss(name):
    model = build(name, n_in=N_IN, n_out=N_OUT, width=WIDTH) if name != "mlp" else \
        MLPClassifier(N_IN, 4, N_OUT)
    theta = model.init(seed=0)
    x, y = _batch(2)
    vg = autograd.value_and_grad(lambda th: model.loss(th, x, y))
    before, g = vg(theta)
    theta1 = SGD(lr=0.05).step(theta, g)
    after = model.loss(theta1, x, y)
    assert after < before


def test_predict_and_error_shapes():
    model = _tiny("odenet")
    theta = model.init(0)
    x, y = _batch()
    pred = model.predict(theta, x, batch_size=4)
    assert pred.shape == (BATCH,) and set(pred.tolist()) <= set(range(N_OUT))
    assert 0.0 <= model.error(theta, x, y) <= 1.0


@pytest.mark.slow  # trains the four digits models and runs Figure 3
def test_examples_run_on_tiny_settings(tmp_path):
    from nodekit.examples import digits, figure3
    out = str(tmp_path / "digits")
    res = digits.main(iters=3, out=out, epochs=1, progress=False, memory=False)
    assert set(res["results"]) == {"mlp", "resnet", "odenet", "rknet"}
    assert "| ODE-Net |" in res["table"] and os.path.exists(os.path.join(out, "odenet.npz"))
    fig = figure3.main(out=str(tmp_path / "fig3"), src=out, batch=16, tols=(1e-2, 1e-5),
                       progress=False, plots=False)
    nf = [r["nfe_forward"] for r in fig["rows"]]
    assert nf[1] >= nf[0] and fig["rows"][1]["error_h"] <= fig["rows"][0]["error_h"]
