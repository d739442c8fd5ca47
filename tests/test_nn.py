"""nk.nn: compiled kernels against the autograd forward, finite differences and autograd VJPs."""
import os
import subprocess
import sys

import autograd
import numpy as np
import pytest

import nodekit as nk
from nodekit.nn import (
    ACTIVATIONS,
    ELU,
    MLP,
    Chain,
    Dense,
    Power,
    ReLU,
    Sequential,
    Sigmoid,
    Sin,
    Softplus,
    Tanh,
    TimeDense,
    codegen,
)

ACTS = [Tanh(), Softplus(), ReLU(), ELU(), ELU(alpha=0.5), Sigmoid(), Sin()]


def _random(model, seed, batch=4, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = model.init(rng, scheme="glorot")
    theta += 0.1 * rng.normal(size=theta.size)       # non-zero biases
    y = scale * rng.normal(size=(batch, model.dim))
    a = rng.normal(size=(batch, model.dim))
    return 0.37, y, theta, a


def _check_model(model, seed=0, scale=1.0, rtol_fd=1e-6, batch=4):
    t, y, theta, a = _random(model, seed, batch=batch, scale=scale)
    # rhs kernel == autograd-NumPy forward
    np.testing.assert_allclose(model.rhs(t, y, theta), model.apply(t, y, theta),
                               rtol=1e-13, atol=1e-14)
    ay, ath, at = model.vjp(t, y, theta, a)
    # vjp kernel == autograd through apply
    inner = lambda t, y, th: np.sum(a * model.apply(t, y, th))
    gt, gy, gth = autograd.grad(inner, (0, 1, 2))(t, y, theta)
    np.testing.assert_allclose(ay, gy, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ath, gth, rtol=1e-12, atol=1e-13)
    assert at == pytest.approx(gt, rel=1e-12, abs=1e-13)
    # ... and == central differences of the rhs kernel in random directions
    rng = np.random.default_rng(seed + 1)
    h = 1e-6
    dy, dth = rng.normal(size=y.shape), rng.normal(size=theta.shape)
    f = lambda t, y, th: np.sum(a * model.rhs(t, y, th))
    fd_y = (f(t, y + h * dy, theta) - f(t, y - h * dy, theta)) / (2 * h)
    fd_th = (f(t, y, theta + h * dth) - f(t, y, theta - h * dth)) / (2 * h)
    fd_t = (f(t + h, y, theta) - f(t - h, y, theta)) / (2 * h)
    assert np.sum(ay * dy) == pytest.approx(fd_y, rel=rtol_fd, abs=1e-8)
    assert np.sum(ath * dth) == pytest.approx(fd_th, rel=rtol_fd, abs=1e-8)
    assert at == pytest.approx(fd_t, rel=rtol_fd, abs=1e-8)


@pytest.mark.parametrize("act", ACTS, ids=repr)
def test_activation_vjps(act):
    # wide TimeDense (loop path), the activation, narrow Dense (register path)
    _check_model(Sequential(TimeDense(3, 6), act, Dense(6, 3)))


@pytest.mark.parametrize("layers", [
    (Power(3), Dense(2, 5), Tanh(), Dense(5, 2)),               # the spiral model
    (Power(2), TimeDense(2, 3), Sin(), TimeDense(3, 2)),        # narrow TimeDense
    (Dense(2, 7), Softplus(), Dense(7, 6), Tanh(), Dense(6, 2)),
], ids=["spiral", "time", "deep"])
def test_model_vjps(layers):
    _check_model(Sequential(*layers))


def test_noninteger_power():
    model = Sequential(Power(2.5), Dense(2, 5), Tanh(), Dense(5, 2))
    t, y, theta, a = _random(model, 3)
    y = np.abs(y) + 0.1
    np.testing.assert_allclose(model.rhs(t, y, theta), model.apply(t, y, theta), rtol=1e-13)
    gy = autograd.grad(lambda y: np.sum(a * model.apply(t, y, theta)))(y)
    np.testing.assert_allclose(model.vjp(t, y, theta, a)[0], gy, rtol=1e-12)


def test_fast_tanh_within_few_ulp():
    model = Sequential(Tanh(), dim=1)
    x = np.concatenate([np.linspace(-30, 30, 20001), np.geomspace(1e-300, 1, 500),
                        -np.geomspace(1e-300, 1, 500), [0.625, -0.625, np.nextafter(0.625, 0)]])
    got = model.rhs(0.0, x[:, None], np.empty(0))[:, 0]
    ref = np.tanh(x)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)
    assert rel.max() < 4 * np.finfo(float).eps
    nan = model.rhs(0.0, np.array([[np.nan], [np.inf], [-np.inf]]), np.empty(0))[:, 0]
    assert np.isnan(nan[0]) and nan[1] == 1.0 and nan[2] == -1.0


def test_fast_expm1_within_few_ulp():
    # ELU's negative branch: expm1 from arithmetic (vectorised), x <= 0 only
    model = Sequential(ELU(), dim=1)
    x = np.concatenate([-np.linspace(0, 60, 20001), -np.geomspace(1e-300, 1, 500),
                        [-np.log(2) / 2, np.nextafter(-np.log(2) / 2, 0), -40.0, -745.0]])
    got = model.rhs(0.0, x[:, None], np.empty(0))[:, 0]
    ref = np.expm1(x)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)
    assert rel.max() < 4 * np.finfo(float).eps
    special = model.rhs(0.0, np.array([[np.nan], [-np.inf], [np.inf]]), np.empty(0))[:, 0]
    assert np.isnan(special[0]) and special[1] == -1.0 and special[2] == np.inf


def test_batched_kernels_match_row_loops_autograd_and_differences():
    # a hidden-to-hidden layer of 16: batches of BATCH_MIN_ROWS rows or more run
    # as matrix products; every kind of layer placement (input map, time
    # column, elementwise last layer) against the row loops and autograd
    model = Sequential(Power(3), TimeDense(3, 16), "elu", Dense(16, 16), "tanh", Dense(16, 3),
                       "sigmoid")
    assert codegen.is_batched(model) and "_vjp_batch" in model.source
    assert not codegen.is_batched(Sequential(Dense(2, 50), "tanh", Dense(50, 2)))
    rows = codegen.BATCH_MIN_ROWS + 9
    _check_model(model, seed=4, batch=rows, scale=0.7)
    _check_model(model, seed=5, batch=3, scale=0.7)          # the row loops
    t, y, theta, a = _random(model, 6, batch=rows)
    k, y, a = model.kernels, y.ravel(), a.ravel()
    outs = {}
    for path in ("rows", "batch"):
        f, gy, gth = np.empty_like(y), np.empty_like(y), np.zeros(model.n_params)
        getattr(k, f"_rhs_{path}")(t, y, theta, f, 0, rows)
        gt = getattr(k, f"_vjp_{path}")(t, y, theta, a, gy, gth, 0, rows)
        outs[path] = (f, gy, gth, gt)
    for x_rows, x_batch in zip(outs["rows"], outs["batch"]):
        np.testing.assert_allclose(x_batch, x_rows, rtol=1e-13, atol=1e-14)
    # a sub-range of rows leaves the others alone
    f = np.zeros_like(y)
    k._rhs_batch(t, y, theta, f, 2, rows)
    np.testing.assert_array_equal(f[:2 * model.dim], 0.0)
    np.testing.assert_allclose(f[2 * model.dim:], outs["rows"][0][2 * model.dim:], rtol=1e-13)


def test_single_and_batched_state():
    model = Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))
    assert model.n_params == 252
    t, y, theta, a = _random(model, 0, batch=20)
    full = model.rhs(t, y, theta)
    for k in range(3):
        np.testing.assert_allclose(model.rhs(t, y[k], theta), full[k], rtol=1e-14)
    np.testing.assert_allclose(model.apply(t, y[2], theta), full[2], rtol=1e-13)
    # the VJP's theta part sums the rows
    parts = sum(model.vjp(t, y[k], theta, a[k])[1] for k in range(20))
    np.testing.assert_allclose(model.vjp(t, y, theta, a)[1], parts, rtol=1e-12, atol=1e-14)


def test_odeint_gradient_matches_python_path():
    model = Sequential(TimeDense(2, 8), "tanh", Dense(8, 2))
    theta = model.init(1, scheme="torch")
    y0 = np.random.default_rng(0).normal(size=(5, 2))
    t = np.linspace(0.0, 0.5, 4)
    opts = {"rtol": 1e-10, "atol": 1e-12}
    loss_c = lambda y0, th: np.sum(model.odeint(y0, t, th, **opts) ** 2)
    loss_p = lambda y0, th: np.sum(nk.odeint(model.apply, y0, t, th, **opts) ** 2)
    gc = autograd.grad(loss_c, (0, 1))(y0, theta)
    gp = autograd.grad(loss_p, (0, 1))(y0, theta)
    for a, b in zip(gc, gp):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_row_loops_compile_once_for_every_caller():
    # the compiled entries, the interpreted first call and the chunks all pass
    # int64 row bounds: no second compile for a literal 0
    model = Sequential(Power(3), Dense(2, 7), "tanh", Dense(7, 2))
    theta = model.init(3)
    y0 = np.random.default_rng(1).normal(size=(6, 2))
    autograd.grad(lambda th: np.sum(model.odeint(y0, [0.0, 0.2], th) ** 2))(theta)
    names = model.ode.rhs.py_func.__globals__
    for name in ("_rhs_rows", "_vjp_rows"):
        sigs = names[name].signatures
        assert len(sigs) == 1 and "Literal" not in str(sigs), (name, sigs)


def test_unpack_pack_and_views():
    model = Sequential(Power(3), Dense(2, 4), "tanh", TimeDense(4, 2))
    assert model.param_names == ["1.W", "1.b", "3.W", "3.b"]
    theta = model.init(0)
    p = model.unpack(theta)
    assert p["1.W"].shape == (2, 4) and p["3.W"].shape == (5, 2) and p["3.b"].shape == (2,)
    p["1.b"][:] = 7.0                      # a view: writes through
    assert np.all(theta[8:12] == 7.0)
    np.testing.assert_array_equal(model.pack(p), theta)
    with pytest.raises(ValueError, match="missing"):
        model.pack({"1.W": p["1.W"]})


def test_init_schemes():
    model = Sequential(Dense(40, 60), "tanh", Dense(60, 40))
    th = model.init(0, scheme="normal", std=0.1)
    p = model.unpack(th)
    assert np.all(p["0.b"] == 0) and np.all(p["2.b"] == 0)
    assert abs(p["0.W"].std() - 0.1) < 0.01
    p = model.unpack(model.init(0, scheme="glorot"))
    assert np.abs(p["0.W"]).max() <= np.sqrt(6 / 100) and np.all(p["0.b"] == 0)
    p = model.unpack(model.init(0, scheme="torch"))
    assert np.abs(p["2.W"]).max() <= 1 / np.sqrt(60) and np.abs(p["2.b"]).max() > 0
    np.testing.assert_array_equal(model.init(5), model.init(5))
    with pytest.raises(ValueError, match="valid schemes"):
        model.init(0, scheme="xavier")


def test_spec_roundtrip_and_mlp():
    model = MLP(2, [16, 16], "elu", input_map=Power(3), time=True)
    again = Sequential.from_spec(model.spec())
    assert again == model and repr(again) == repr(model)
    assert codegen.architecture_key(again) == codegen.architecture_key(model)


def test_errors_name_argument_expectation_and_value():
    with pytest.raises(ValueError, match=r"mismatched sizes: layer 2 \(Dense\(40, 2\)\) "
                                         r"expects 40 inputs but layer 1 \(Tanh\(\)\) outputs 50"):
        Sequential(Dense(2, 50), "tanh", Dense(40, 2))
    with pytest.raises(ValueError, match=r"Unknown activation 'tanhh'.*'relu'.*'tanh'"):
        Sequential(Dense(2, 5), "tanhh", Dense(5, 2))
    with pytest.raises(ValueError, match="outputs width 3"):
        Sequential(Dense(2, 3))
    with pytest.raises(ValueError, match="`dim`"):
        Sequential(Tanh())
    with pytest.raises(ValueError, match="`n_out` of Dense must be a positive integer"):
        Dense(2, 0)
    with pytest.raises(TypeError, match="pass an instance"):
        Sequential(Dense(2, 2), Tanh)
    model = Sequential(Dense(2, 5), "tanh", Dense(5, 2))
    theta = model.init(0)
    with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 27 .*got "
                                         r"shape \(26,\)"):
        model.rhs(0.0, np.ones(2), theta[:-1])
    with pytest.raises(ValueError, match=r"`theta`.*length 27"):
        model.apply(0.0, np.ones(2), theta[:-1])
    with pytest.raises(ValueError, match=r"`y` must have last axis of width 2 .*got shape "
                                         r"\(4, 3\)"):
        model.rhs(0.0, np.ones((4, 3)), theta)
    with pytest.raises(ValueError, match=r"`y0` must have last axis of width 2"):
        model.odeint(np.ones((4, 3)), [0.0, 1.0], theta)
    with pytest.raises(ValueError, match=r"`a` must have the shape of `y`"):
        model.vjp(0.0, np.ones((4, 2)), theta, np.ones((3, 2)))


def test_generated_module_cached_in_nodekit_cache(tmp_path):
    code = (
        "import numpy as np\n"
        "from nodekit.nn import Sequential, Dense, codegen\n"
        "m = Sequential(Dense(3, 3))\n"
        "th = m.init(0)\n"
        "print(m.rhs(0.0, np.ones(3), th).sum())\n"
        "print(m.kernels.__file__)\n")
    env = dict(os.environ, NODEKIT_CACHE=str(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = [subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True).stdout.split() for _ in range(2)]
    assert out[0] == out[1]
    path = out[0][1]
    assert path.startswith(str(tmp_path / "nn"))
    with open(path) as fh:
        assert "do not edit" in fh.read()
    # Numba's cache index of this module exists after the first process:
    # beside the module, or under NUMBA_CACHE_DIR when the user sets it
    where = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(path),
                                                              "__pycache__")
    stem = os.path.splitext(os.path.basename(path))[0]
    cached = [f for _, _, files in os.walk(where) for f in files]
    assert any(f.startswith(stem + ".") and f.endswith(".nbi") for f in cached)


def test_activation_registry():
    assert sorted(ACTIVATIONS) == ["elu", "relu", "sigmoid", "sin", "softplus", "tanh"]


def test_chain_any_widths_same_layers_as_sequential():
    head = Chain(Dense(4, 3), "tanh", TimeDense(3, 2))
    assert head.widths == [4, 3, 3, 2] and head.n_out == 2 and head.n_params == 25
    theta = head.init(seed=0)
    x = np.random.default_rng(0).normal(size=(5, 4))
    p = head.unpack(theta)
    want = np.tanh(x @ p["0.W"] + p["0.b"]) @ p["2.W"][:3] + 0.5 * p["2.W"][3] + p["2.b"]
    np.testing.assert_allclose(head.apply(0.5, x, theta), want, rtol=1e-14)
    assert head.apply(0.5, x[None], theta).shape == (1, 5, 2)
    assert Chain.from_spec(head.spec()) == head and head != Sequential(Dense(4, 4))
    with pytest.raises(ValueError, match="`y` must have last axis of width 4 .*input width"):
        head.apply(0.0, np.ones((2, 3)), theta)
    # a square chain compiles the same layers as ODE dynamics
    dyn = Sequential(*head.layers[:2], Dense(3, 4))
    assert Chain(*dyn.layers).n_params == dyn.n_params


def test_one_theta_length_message():
    model = Sequential(Dense(2, 5), "tanh", Dense(5, 2))
    theta = model.init(0)
    calls = [lambda th: model.apply(0.0, np.ones(2), th), model.check_theta, model.unpack,
             lambda th: model.odeint(np.ones(2), [0.0, 1.0], th)]
    for call in calls:
        with pytest.raises(ValueError, match=r"`theta` must be a flat vector of length 27 \(the "
                                             r"parameters of Sequential\(Dense\(2, 5\), Tanh\(\), "
                                             r"Dense\(5, 2\)\)\); got shape \(5,\) \(5 "
                                             r"parameters, 22 too few\)"):
            call(theta[:5])


@pytest.mark.parametrize("spec, match", [
    ([1, 2], r"`spec` must describe a Sequential model"),
    ({"type": "Sequential", "dim": 2}, r"`spec\['layers'\]` must be a non-empty list"),
    ({"type": "Sequential", "layers": ["tanh"]},
     r"`spec\['layers'\]\[0\]` must be a layer description \(a dict with a 'kind'\)"),
    ({"type": "Sequential", "layers": [{"kind": "dense", "n_in": 2}]},
     r"`spec\['layers'\]\[0\]` does not describe a valid Dense layer .*n_out"),
    ({"type": "Sequential", "layers": [{"kind": "dense", "n_in": 2, "n_out": 2, "bias": 0}]},
     r"`spec\['layers'\]\[0\]` does not describe a valid Dense layer .*'bias'"),
    ({"type": "Sequential", "layers": [{"kind": "dense", "n_in": 2, "n_out": -2}]},
     r"valid Dense layer .*`n_out` of Dense must be a positive integer"),
    ({"type": "Sequential", "layers": [{"kind": "conv"}]},
     r"Unknown layer kind 'conv' in `spec\['layers'\]\[0\]`"),
], ids=["not-dict", "no-layers", "layer-not-dict", "missing-arg", "unknown-arg", "bad-value",
        "unknown-kind"])
def test_bad_spec_messages(spec, match):
    with pytest.raises(ValueError, match=match):
        Sequential.from_spec(spec)


def test_large_batches_split_over_threads_same_numbers():
    import numba
    # the ODE block of the digits example (8448 parameters): parallel kernels
    model = Sequential(TimeDense(64, 64), "tanh", TimeDense(64, 64))
    assert codegen.is_parallel(model) and "prange" in model.source
    assert not codegen.is_parallel(Sequential(Dense(2, 5), "tanh", Dense(5, 2)))
    rng = np.random.default_rng(0)
    theta = model.init(rng, scheme="glorot")
    rows = 3 * codegen.CHUNK_ROWS + 5              # four chunks of 96 or 97 rows
    assert codegen.n_chunks(rows) == 4
    assert [codegen.n_chunks(r) for r in (255, 256, 512, 513, 1024)] == [0, 4, 4, 8, 8]
    y, a = rng.normal(size=(rows, 64)), rng.normal(size=(rows, 64))
    results = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            results.append((model.rhs(0.2, y, theta), *model.vjp(0.2, y, theta, a)))
    finally:
        numba.set_num_threads(before)
    for got in results[1:]:          # the chunks do not depend on the thread count
        for x, x1 in zip(got, results[0]):
            np.testing.assert_array_equal(x, x1)
    f, a_y, a_theta, _ = results[0]
    np.testing.assert_allclose(f, model.apply(0.2, y, theta), rtol=1e-12, atol=1e-13)
    # rows are independent: a_y row by row, a_theta the sum over rows
    g_theta = autograd.grad(lambda th: np.sum(model.apply(0.2, y, th) * a))(theta)
    g_y = autograd.grad(lambda yy: np.sum(model.apply(0.2, yy, theta) * a))(y)
    np.testing.assert_allclose(a_theta, g_theta, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(a_y, g_y, rtol=1e-11, atol=1e-12)


def test_parallel_kernels_load_from_numba_cache_in_a_new_process():
    # a cached parallel kernel used to abort a new process ("LLVM ERROR: Symbol
    # not found: allocate_sched") before Numba's thread pool had started
    code = ("import numpy as np\n"
            "from nodekit.nn import Sequential, TimeDense\n"
            "m = Sequential(TimeDense(64, 64), 'tanh', TimeDense(64, 64))\n"
            "y = np.ones((300, 64))\n"
            "import nodekit as nk\n"
            "print(nk.solve(m.ode, y, [0.0, 0.1], m.init(0)).y[-1].sum())\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True) for _ in range(2)]      # the second loads from cache
    for res in out:
        assert res.returncode == 0, res.stderr[-2000:]
    assert out[0].stdout == out[1].stdout and float(out[0].stdout) != 0.0


_COLD_WARM = """
import sys
import numpy as np
import nodekit as nk
from nodekit.nn import Dense, Power, Sequential
from nodekit.nn.hyper import PlanarHyper
from nodekit.nn.trace import cnf_ode
model = eval(sys.argv[1])
rows = int(sys.argv[2])
rng = np.random.default_rng(0)
theta = model.init(rng) + 0.1 * rng.normal(size=model.n_params)
if sys.argv[3] == "cnf":  # the augmented state [z, log-density] of a CNF
    ode, width = cnf_ode(model, "exact"), model.dim + 1
else:
    ode, width = model.ode, model.dim
y = rng.normal(size=rows * width)
a = rng.normal(size=rows * width)
f, gy, gth = np.empty(y.size), np.empty(y.size), np.empty(model.n_params)
ode.rhs(0.3, y, theta, f)
ode.vjp(0.3, y, theta, a, gy, gth)
sys.stdout.write(np.concatenate([f, gy, gth]).tobytes().hex())
"""


@pytest.mark.slow
@pytest.mark.parametrize("model, rows, kind", [
    ("Sequential(Power(3), Dense(2, 50), 'tanh', Dense(50, 2))", 64, "ode"),  # row loops
    ("Sequential(Dense(3, 24), 'tanh', Dense(24, 24), 'softplus', Dense(24, 3))", 40,
     "ode"),                                                                  # batched
    ("Sequential(Dense(2, 40), 'tanh', Dense(40, 40), 'tanh', Dense(40, 2))", 300,
     "ode"),                                                                  # parallel
    ("Sequential(Dense(2, 16), 'tanh', Dense(16, 2))", 30, "cnf"),
    ("PlanarHyper(2, width=8, hidden=8)", 30, "cnf"),
], ids=["rows", "batched", "parallel", "cnf", "cnf-planar"])
def test_a_process_that_compiles_the_kernels_and_one_that_loads_them_agree_bit_for_bit(
        model, rows, kind, tmp_path):
    # the first process compiles every kernel (each called function on its
    # own first), the second loads the kernels from the caches it left: both
    # must run the same code, not the callers' own copies of the row loops
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"), NODEKIT_CACHE=str(tmp_path / "nk"))
    out = [subprocess.run([sys.executable, "-c", _COLD_WARM, model, str(rows), kind],
                          env=env, capture_output=True, text=True) for _ in range(2)]
    for res in out:
        assert res.returncode == 0, res.stderr[-2000:]
    cold = np.frombuffer(bytes.fromhex(out[0].stdout))
    warm = np.frombuffer(bytes.fromhex(out[1].stdout))
    assert cold.size == warm.size > 0 and np.all(np.isfinite(cold))
    np.testing.assert_array_equal(cold, warm)


@pytest.mark.parametrize("batch", [1, 3])
def test_jacobian_kernel_is_the_exact_block_diagonal(batch):
    # nn_jac (used by the stiff methods) against autograd's Jacobian of apply
    model = Sequential(TimeDense(3, 6), Tanh(), Dense(6, 6), "elu", Dense(6, 3))
    t, y, theta, _ = _random(model, 3, batch=batch)
    n = y.size
    J = np.empty((n, n))
    model.ode.jac(t, y.ravel(), theta, J)
    exact = autograd.jacobian(
        lambda z: autograd.numpy.ravel(model.apply(t, z.reshape(y.shape), theta)))(y.ravel())
    np.testing.assert_allclose(J, exact, rtol=1e-12, atol=1e-13)


def test_stiff_solve_of_a_network_uses_its_jacobian_kernel():
    # a stiff linear network (eigenvalues down to -1e4) on 3 rows of width 4:
    # the same solution with the exact Jacobian, without its 12 extra
    # evaluations per step for a difference Jacobian
    model = Sequential(Dense(4, 4))
    W = np.diag([-1e4, -1.0, -10.0, -0.5]) + 0.1 * np.ones((4, 4))
    theta = np.concatenate([W.ravel(), np.zeros(4)])
    y0 = np.ones((3, 4))
    exact_jac = nk.solve(model.ode, y0, [0.0, 1.0], theta, method="rodas5", rtol=1e-8,
                         atol=1e-10)
    plain = nk.ODE(model.ode.rhs, model.ode.vjp)
    differences = nk.solve(plain, y0, [0.0, 1.0], theta, method="rodas5", rtol=1e-8,
                           atol=1e-10)
    assert exact_jac.success and exact_jac.njev > 0
    np.testing.assert_allclose(exact_jac.y[-1], differences.y[-1], rtol=1e-7, atol=1e-10)
    assert differences.nfev - exact_jac.nfev >= 12 * (exact_jac.njev - 1)
