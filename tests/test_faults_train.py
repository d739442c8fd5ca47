"""Faults of nodekit.train: every bad input or event gets a clear message, and
nothing learned is lost.  One test per finding of the fault review."""
import json
import math
import zipfile

import autograd.numpy as anp
import numpy as np
import pytest

from nodekit.nn import Dense, Sequential
from nodekit.train import SGD, Adam, RMSprop, fit, load, save

C = np.array([1.0, -2.0, 3.0])


def sq_loss(x):
    """An autograd loss with minimum at C."""
    return anp.sum((x - C) ** 2)


def sq_pair(x):
    """The same loss returning (loss, grad)."""
    return float(np.sum((x - C) ** 2)), 2 * (x - C)


# ----------------------------------------------------------------------------
# fit: value and gradient are explicit


def test_a_loss_returning_a_pair_is_never_taken_for_loss_and_grad():
    # (loss, aux): before, fit took `aux` for the gradient and trained on it silently
    def loss_and_aux(x):
        return anp.sum((x - C) ** 2), np.ones(3)

    with pytest.raises(TypeError, match=r"`fun` returned a tuple of length 2; fit expects a "
                                         r"scalar loss, or \(loss, grad\) with "
                                         r"value_and_grad=True"):
        fit(loss_and_aux, np.zeros(3), optimizer=SGD(lr=0.1), iters=3, progress=False)
    # the same pair with the flag is a value and a gradient
    res = fit(sq_pair, np.zeros(3), optimizer=SGD(lr=0.1), iters=200, progress=False,
              value_and_grad=True)
    np.testing.assert_allclose(res.theta, C, atol=1e-8)


def test_value_and_grad_true_needs_a_pair():
    with pytest.raises(TypeError, match=r"`fun` must return a pair \(loss, grad\) with "
                                        r"value_and_grad=True; it returned float 0.0"):
        fit(lambda x: float(np.sum(x)), np.zeros(3), optimizer=SGD(), iters=1,
            progress=False, value_and_grad=True)
    with pytest.raises(ValueError, match=r"gradient returned by `fun` must have the shape of "
                                         r"`theta`, \(3,\); got \(2,\)"):
        fit(lambda x: (0.0, np.zeros(2)), np.zeros(3), optimizer=SGD(), iters=1,
            progress=False, value_and_grad=True)


@pytest.mark.parametrize("vg", [False, True], ids=["autograd", "value_and_grad"])
def test_array_valued_loss(vg):
    fun = (lambda x: ((x - C) ** 2, 2 * (x - C))) if vg else (lambda x: (x - C) ** 2)
    with pytest.raises(TypeError, match=r"a loss of shape \(3,\); fit expects a scalar. "
                                        r"Reduce it"):
        fit(fun, np.zeros(3), optimizer=SGD(), iters=1, progress=False, value_and_grad=vg)


@pytest.mark.parametrize("vg", [False, True], ids=["autograd", "value_and_grad"])
def test_three_tuple_loss(vg):
    def fun(x):
        return sq_loss(x), 2 * (x - C), "extra"

    match = (r"must return a pair \(loss, grad\) .* returned a tuple of length 3" if vg else
             r"`fun` returned a tuple of length 3; fit expects a scalar loss")
    with pytest.raises(TypeError, match=match):
        fit(fun, np.zeros(3), optimizer=SGD(), iters=1, progress=False, value_and_grad=vg)


def test_exhausted_batch_iterator_stops_keeping_what_was_learned():
    shifts = iter([0.0] * 4)
    res = fit(lambda x, s: sq_loss(x - s), np.zeros(3), optimizer=SGD(lr=0.1), iters=10,
              batches=shifts, progress=False)
    assert not res.success and res.iterations == 4
    assert "`batches` ran out after 4 batches (iters=10)" in res.message
    np.testing.assert_allclose(res.theta, C * (1 - 0.8 ** 4))   # four SGD steps
    with pytest.raises(TypeError, match="`batches` must be None, a callable"):
        fit(sq_loss, np.zeros(3), optimizer=SGD(), iters=1, batches=3.0, progress=False)


def test_ctrl_c_returns_the_parameters_learned_so_far():
    calls = []

    def loss(x):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return sq_loss(x)

    res = fit(loss, np.zeros(3), optimizer=SGD(lr=0.1), iters=100, progress=True)
    assert res.interrupted and not res.success and res.iterations == 5
    assert "Interrupted (KeyboardInterrupt) during iteration 5" in res.message
    np.testing.assert_allclose(res.theta, C * (1 - 0.8 ** 5))   # after the five steps
    done = fit(sq_loss, np.zeros(3), optimizer=SGD(lr=0.1), iters=2, progress=False)
    assert done.success and not done.interrupted


def test_reusing_an_optimiser_on_other_parameters():
    opt = Adam(lr=0.1)
    fit(sq_loss, np.zeros(3), optimizer=opt, iters=2, progress=False)
    with pytest.raises(ValueError, match=r"`theta` has shape \(2,\) but this Adam holds state "
                                         r".* shape \(3,\) .*optimizer.reset\(\)"):
        fit(lambda x: anp.sum(x ** 2), np.ones(2), optimizer=opt, iters=2, progress=False)
    opt.reset()
    res = fit(lambda x: anp.sum(x ** 2), np.ones(2), optimizer=opt, iters=2, progress=False)
    assert res.success
    # plain SGD keeps no state that depends on the size
    sgd = SGD(lr=0.1)
    sgd.step(np.zeros(3), np.ones(3))
    assert sgd.step(np.zeros(2), np.ones(2)).shape == (2,)


# ----------------------------------------------------------------------------
# optimisers: every argument validated


@pytest.mark.parametrize("make, match", [
    (lambda: RMSprop(eps=-1), r"`eps` must be a finite number >= 0 .*got eps=-1"),
    (lambda: Adam(eps=float("nan")), r"`eps` must be a finite number >= 0"),
    (lambda: Adam(eps="1e-8"), r"`eps` must be a finite number"),
    (lambda: Adam(lr=-1e-3), r"`lr` must be a positive finite number; got lr=-0.001"),
    (lambda: SGD(lr=0), r"`lr` must be a positive"),
    (lambda: RMSprop(lr=math.inf), r"`lr` must be a positive finite"),
    (lambda: Adam(lr=True), r"`lr` must be a positive finite number; got lr=True"),
    (lambda: Adam(beta1=1.0), r"`beta1` must be in \[0, 1\); got beta1=1.0"),
    (lambda: Adam(beta2=-0.1), r"`beta2` must be in \[0, 1\)"),
    (lambda: RMSprop(alpha=1.5), r"`alpha` must be in \[0, 1\)"),
    (lambda: SGD(momentum=-0.5), r"`momentum` must be in \[0, 1\)"),
    (lambda: SGD(momentum=False), r"`momentum` must be in \[0, 1\)"),
    (lambda: SGD(lr=0.1, nesterov=True), r"`nesterov=True` needs a momentum in \(0, 1\)"),
], ids=["rms-eps", "adam-eps-nan", "adam-eps-str", "adam-lr", "sgd-lr0", "rms-lr-inf",
        "lr-bool", "beta1", "beta2", "alpha", "momentum", "momentum-bool", "nesterov"])
def test_optimiser_arguments_validated(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_nesterov_must_be_a_bool():
    with pytest.raises(TypeError, match="`nesterov` must be True or False"):
        SGD(momentum=0.9, nesterov="yes")


# ----------------------------------------------------------------------------
# save and load


MODEL = Sequential(Dense(2, 3), "tanh", Dense(3, 2))


def _saved(tmp_path):
    theta = MODEL.init(0)
    return save(tmp_path / "m.npz", theta, MODEL), theta


def test_load_an_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.npz' is empty; it is not a file written by "
                                         r"nk.train.save"):
        load(path)


def test_load_a_truncated_file(tmp_path):
    path, _ = _saved(tmp_path)
    with open(path, "rb") as fh:
        data = fh.read()
    for cut in (len(data) // 2, 40):
        with open(path, "wb") as fh:
            fh.write(data[:cut])
        with pytest.raises(ValueError, match=r"m.npz' is truncated or corrupt"):
            load(path)


def test_load_random_bytes_does_not_suggest_allow_pickle(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match=r"noise.npz' is not a file written by nk.train.save: "
                                         r"it is neither an .npz archive nor a .npy array. "
                                         r"\(Do not load untrusted files with "
                                         r"allow_pickle=True.\)"):
        load(path)
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"one.npy' holds a single array"):
        load(npy)


def test_load_invalid_json_spec(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, theta=MODEL.init(0), model_spec=np.array('{"type": "Sequential", '))
    with pytest.raises(ValueError, match=r"model description \(`model_spec`\) in .*bad.npz' "
                                         r"is not valid JSON"):
        load(path)
    spec = dict(MODEL.spec(), layers=[{"kind": "dense", "n_in": 2}])
    np.savez(path, theta=MODEL.init(0), model_spec=np.array(json.dumps(spec)))
    with pytest.raises(ValueError, match=r"bad.npz' is invalid: `spec\['layers'\]\[0\]` does "
                                         r"not describe a valid Dense layer"):
        load(path)


def test_save_without_extension_loads_with_the_same_path(tmp_path):
    theta = MODEL.init(1)
    written = save(tmp_path / "noext", theta, MODEL)
    assert written == str(tmp_path / "noext.npz")
    for path in (tmp_path / "noext", written):
        th, model, _ = load(path)
        np.testing.assert_array_equal(th, theta)
        assert model == MODEL
    with pytest.raises(FileNotFoundError, match=r"no file .*missing' \(nor .*missing.npz'\)"):
        load(tmp_path / "missing")


def test_load_rejects_a_theta_that_does_not_fit_its_model(tmp_path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, theta=MODEL.init(0)[:-2], model_spec=np.array(json.dumps(MODEL.spec())))
    with pytest.raises(ValueError, match=r"mismatch.npz' is inconsistent: its `theta` has 15 "
                                         r"entries but its model Sequential\(.*\) has 17"):
        load(path)
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"has no `theta` array \(it holds \['weights'\]\)"):
        load(path)
    with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 17"):
        save(path, np.zeros(5), MODEL)


def test_truncated_zip_member_is_reported(tmp_path):
    # a valid zip whose member is cut: the archive opens, the array does not
    path = tmp_path / "member.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("theta.npy", b"\x93NUMPY\x01\x00")
    with pytest.raises(ValueError, match=r"member.npz' is truncated or corrupt"):
        load(path)


# ----------------------------------------------------------------------------
# nn models: sizes checked on entry of nk.solve and nk.odeint


@pytest.mark.parametrize("entry", ["solve", "odeint"])
def test_nn_ode_checks_theta_and_state_sizes(entry):
    import nodekit as nk
    model = Sequential(Dense(2, 3), "tanh", Dense(3, 2))
    theta, y0, t = model.init(0), np.ones((4, 2)), [0.0, 1.0]
    run = getattr(nk, entry)
    with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 17 \(the "
                                         r"parameters of Sequential\(.*\)\); got shape \(5,\) "
                                         r"\(5 parameters, 12 too few\)"):
        run(model.ode, y0, t, theta[:5])
    with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 17"):
        run(model.ode, y0, t)
    with pytest.raises(ValueError, match=r"`y0` must have last axis of width 2 \(the state "
                                         r"width of Sequential\(.*\)\); got shape \(4, 3\)"):
        run(model.ode, np.ones((4, 3)), t, theta)
