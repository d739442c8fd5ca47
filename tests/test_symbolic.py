"""nodekit.symbolic: generated kernels against SymPy and finite differences, the
cache across processes, closed forms, and every bad-input error."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import autograd
import autograd.numpy as anp

import numpy as np
import pytest
import sympy as sp

import nodekit as nk
from nodekit.symbolic import ODESystem, closed_form, closed_form_derivatives

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIGHT = dict(rtol=1e-11, atol=1e-13)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("nk_symbolic_cache"))


# --- systems ----------------------------------------------------------------------
def lotka_volterra():
    return ODESystem.from_strings({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"},
                                  params=["a", "b", "c", "d"], t="t", name="lv")


def forced_decay():
    t, y, k, w = sp.symbols("t y k w")
    return ODESystem(t=t, states=[y], params=[k, w], rhs=[-k * y + sp.sin(w * t)])


def van_der_pol():
    t, x, v, mu = sp.symbols("t x v mu")
    return ODESystem(t=t, states=[x, v], params=[mu], rhs=[v, mu * (1 - x**2) * v - x])


def zoo():
    """Functions the printer must get right, time everywhere, no parameter vector."""
    t, x, y, z = sp.symbols("t x y z", real=True)
    return ODESystem(t=t, states=[x, y, z], params=[], rhs=[
        -sp.Abs(x) * x + sp.Piecewise((t, t < 1), (sp.exp(-t), True)),
        sp.sqrt(1 + x**2) * sp.cos(t * y) - sp.tanh(z) / 3,
        sp.log(2 + sp.sin(x * t)) + sp.Max(y, z) ** 2 + sp.atan2(y, 2) + sp.pi])


SYSTEMS = {"lotka_volterra": (lotka_volterra, [1.5, 1.0, 3.0, 1.0]),
           "forced_decay": (forced_decay, [0.7, 2.3]),
           "van_der_pol": (van_der_pol, [1.3]),
           "zoo": (zoo, [])}


def _point(system, theta, seed):
    rng = np.random.default_rng(seed)
    return (float(rng.uniform(0.1, 2.0)), rng.uniform(-1.5, 1.5, system.n_states),
            np.array(theta, dtype=float))


def _f(ode, t, y, th):
    out = np.empty(y.size)
    ode.rhs(t, y, th, out)
    return out


def _central(fn, x, h=1e-6):
    """Central differences of vector fn at x: columns d fn / d x_j."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((fn(x + e) - fn(x - e)) / (2 * h))
    return np.array(cols).T.reshape(np.shape(fn(x)) + x.shape)


# --- kernels ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_rhs_matches_the_expressions(name, cache):
    make, theta = SYSTEMS[name]
    system = make()
    ode = system.compile(cache_dir=cache)
    assert isinstance(ode, nk.ODE) and ode.system is system
    fn = sp.lambdify((system.t, system.states, system.params), list(system.rhs), "math")
    for seed in range(5):
        t, y, th = _point(system, theta, seed)
        np.testing.assert_allclose(_f(ode, t, y, th), fn(t, list(y), list(th)),
                                   rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_vjp_and_jacobians_match_finite_differences(name, cache):
    make, theta = SYSTEMS[name]
    system = make()
    ode = system.compile(cache_dir=cache)
    n, p = system.n_states, system.n_params
    for seed in range(3):
        t, y, th = _point(system, theta, seed)
        a = np.random.default_rng(100 + seed).normal(size=n)
        Jy = _central(lambda v: _f(ode, t, v, th), y)
        Jth = _central(lambda v: _f(ode, t, y, v), th) if p else np.zeros((n, 0))
        ft = _central(lambda v: _f(ode, v[0], y, th), [t])[:, 0]
        out_y, out_th = np.empty(n), np.empty(p)
        ret = ode.vjp(t, y, th, a, out_y, out_th)
        np.testing.assert_allclose(out_y, a @ Jy, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(out_th, a @ Jth, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(ret, a @ ft, rtol=1e-7, atol=1e-8)
        Jy_k, Jth_k = np.empty((n, n)), np.empty((n, p))
        ode.jac_y(t, y, th, Jy_k)
        ode.jac_theta(t, y, th, Jth_k)
        np.testing.assert_allclose(Jy_k, Jy, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(Jth_k, Jth, rtol=1e-7, atol=1e-8)


def test_time_derivative_is_zero_for_autonomous_and_exact_for_forced(cache):
    ode = forced_decay().compile(cache_dir=cache)
    k, w, t, y, a = 0.7, 2.3, 0.4, 1.1, 1.7
    ret = ode.vjp(t, np.array([y]), np.array([k, w]), np.array([a]), np.empty(1), np.empty(2))
    assert ret == pytest.approx(a * w * np.cos(w * t), rel=1e-14)
    lv = lotka_volterra().compile(cache_dir=cache)
    assert lv.vjp(0.3, np.ones(2), np.ones(4), np.ones(2), np.empty(2), np.empty(4)) == 0.0


def lv_py(t, y, th):
    return anp.array([th[0] * y[0] - th[1] * y[0] * y[1], -th[2] * y[1] + th[3] * y[0] * y[1]])


def forced_py(t, y, th):
    return -th[0] * y + anp.sin(th[1] * t)


def vdp_py(t, y, th):
    return anp.array([y[1], th[0] * (1 - y[0] ** 2) * y[1] - y[0]])


@pytest.mark.parametrize("name, py, y0", [("lotka_volterra", lv_py, [1.0, 1.0]),
                                          ("forced_decay", forced_py, [0.5]),
                                          ("van_der_pol", vdp_py, [2.0, 0.0])])
def test_solve_matches_python_rhs(name, py, y0, cache):
    make, theta = SYSTEMS[name]
    ode = make().compile(cache_dir=cache)
    ts = np.linspace(0.0, 5.0, 21)
    a = nk.solve(ode, y0, ts, theta, rtol=1e-9, atol=1e-11)
    b = nk.solve(py, y0, ts, np.array(theta), rtol=1e-9, atol=1e-11)
    assert a.success and b.success
    np.testing.assert_allclose(a.y, b.y, rtol=1e-12, atol=1e-12)
    assert a.nfev == b.nfev


@pytest.mark.parametrize("name, y0", [("lotka_volterra", [1.0, 1.0]), ("forced_decay", [0.5])])
def test_odeint_adjoint_gradient_matches_finite_differences(name, y0, cache):
    make, theta = SYSTEMS[name]
    ode = make().compile(cache_dir=cache)
    ts = np.linspace(0.0, 3.0, 7)
    y0, theta = np.array(y0), np.array(theta)
    W = np.random.default_rng(0).normal(size=(ts.size, y0.size))

    def loss(y0, th, t):
        return anp.sum(W * nk.odeint(ode, y0, t, th, gradient="adjoint", **TIGHT))

    gy0, gth, gt = autograd.grad(loss, (0, 1, 2))(y0, theta, ts)
    h = 1e-5
    np.testing.assert_allclose(gy0, _central(lambda v: np.atleast_1d(loss(v, theta, ts)),
                                             y0, h)[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gth, _central(lambda v: np.atleast_1d(loss(y0, v, ts)),
                                             theta, h)[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gt, _central(lambda v: np.atleast_1d(loss(y0, theta, v)),
                                            ts, h)[0], rtol=1e-6, atol=1e-7)


# --- the cache --------------------------------------------------------------------
def test_compiling_twice_gives_the_same_module(cache):
    a, b = lotka_volterra().compile(cache_dir=cache), lotka_volterra().compile(cache_dir=cache)
    assert a.source_path == b.source_path and os.path.dirname(a.source_path) == cache
    assert a.rhs is b.rhs and a.vjp is b.vjp
    assert not [f for f in os.listdir(cache) if f.startswith(".tmp")]
    # a changed expression (or name) gets a new module
    t, x, y, a_, b_, c, d = sp.symbols("t x y a b c d")
    other = ODESystem(t=t, states=[x, y], params=[a_, b_, c, d],
                      rhs=[a_ * x - b_ * x * y, -c * y + d * x * y + 0])
    assert other.compile(cache_dir=cache).source_path == a.source_path
    changed = ODESystem(t=t, states=[x, y], params=[a_, b_, c, d],
                        rhs=[a_ * x - b_ * x * y, -c * y + 2 * d * x * y])
    assert changed.compile(cache_dir=cache).source_path != a.source_path


def test_env_var_chooses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEKIT_CACHE", str(tmp_path / "env_cache"))
    ode = forced_decay().compile()
    assert os.path.dirname(ode.source_path) == str(tmp_path / "env_cache" / "symbolic")
    assert os.path.exists(ode.source_path)


def test_a_fresh_process_loads_the_compiled_kernels_from_cache(tmp_path):
    cache = str(tmp_path / "shared")
    code = textwrap.dedent(f"""
        import json, os, numpy as np
        import nodekit as nk
        from nodekit.symbolic import ODESystem
        s = ODESystem.from_strings({{"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}},
                                   params=["a", "b", "c", "d"])
        ode = s.compile(cache_dir={cache!r})
        sol = nk.solve(ode, [1.0, 1.0], np.linspace(0, 20, 50), [1.5, 1.0, 3.0, 1.0],
                       rtol=1e-8, atol=1e-10)
        assert sol.success
        wrappers = [ode.rhs_cfunc, ode.vjp_cfunc]
        print(json.dumps({{
            "module": [ode.source_path, os.stat(ode.source_path).st_mtime_ns],
            "y": sol.y[-1].tolist(),
            # the guarded wrappers: loaded from Numba's disk cache (a hit) or compiled
            "cache_hits": [w.cache_hits for w in wrappers],
            # the system's own kernels, which compiling a wrapper compiles
            "kernels_compiled": [len(w.nodekit_source[2].signatures) for w in wrappers],
        }}))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    first, second = [json.loads(subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True,
        text=True).stdout) for _ in range(2)]
    # the generated module: the same file, untouched (same mtime), in the folder given
    assert first["module"] == second["module"]
    assert os.path.dirname(first["module"][0]) == cache
    assert first["y"] == second["y"]
    # the first process compiled this system's kernels (nothing in any cache
    # could hold them: the module is new); the second compiled nothing and
    # loaded both guarded wrappers, with the system's kernels inside, from disk
    assert first["cache_hits"] == [0, 0] and first["kernels_compiled"] == [1, 1]
    assert second["cache_hits"] == [1, 1] and second["kernels_compiled"] == [0, 0]


def test_a_corrupt_module_is_regenerated(tmp_path):
    system = forced_decay()
    path = nk.symbolic.module_path(system, tmp_path)
    os.makedirs(tmp_path, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("def rhs(:\n")  # half-written by something else
    ode = system.compile(cache_dir=tmp_path)
    out = np.empty(1)
    ode.rhs(0.0, np.array([1.0]), np.array([2.0, 0.0]), out)
    assert out[0] == -2.0


def test_unprintable_function_is_a_clear_error(tmp_path):
    t, y = sp.symbols("t y")
    with pytest.raises(ValueError, match="besselj"):
        ODESystem(t=t, states=[y], rhs=[sp.besselj(0, y)]).compile(cache_dir=tmp_path)


# --- closed forms -----------------------------------------------------------------
def logistic():
    t, y, r, K = sp.symbols("t y r K")
    return ODESystem(t=t, states=[y], params=[r, K], rhs=[r * y * (1 - y / K)])


def decay():
    t, y, k = sp.symbols("t y k")
    return ODESystem(t=t, states=[y], params=[k], rhs=[-k * y])


def damped_rotation():
    t, x, y, a, b, c = sp.symbols("t x y a b c")
    return ODESystem(t=t, states=[x, y], params=[a, b, c], rhs=[-a * x + b * y + c, -b * x - a * y])


CLOSED = {"decay-dsolve": (decay, "dsolve", [2.0], [0.8], 0.5),
          "decay-expm": (decay, "matrix exponential", [2.0], [0.8], 0.5),
          "logistic-dsolve": (logistic, "auto", [0.1], [1.3, 2.0], 0.0),
          "forced-dsolve": (forced_decay, "auto", [0.5], [0.7, 2.3], 0.25),
          "rotation-expm": (damped_rotation, "auto", [1.0, -0.5], [0.3, 2.0, 0.7], 0.0)}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_closed_form_matches_solve(name, cache):
    make, method, y0, theta, t0 = CLOSED[name]
    system = make()
    cf = closed_form(system, t0=sp.Symbol("t0"), method=method)
    assert cf.method == (method if method != "auto" else cf.method)
    ts = np.linspace(t0, t0 + 4.0, 9)
    sol = nk.solve(system.compile(cache_dir=cache), y0, ts, theta, **TIGHT)
    np.testing.assert_allclose(cf.evaluate(ts, y0, theta), sol.y, rtol=1e-9, atol=1e-10)
    # numeric t0 as well
    cf_num = closed_form(system, t0=t0, method=method)
    np.testing.assert_allclose(cf_num.evaluate(ts, y0, theta), sol.y, rtol=1e-9, atol=1e-10)


def test_closed_form_methods():
    assert closed_form(decay()).method == "matrix exponential"
    assert closed_form(logistic()).method == "dsolve"
    assert closed_form(damped_rotation()).method == "matrix exponential"
    assert not any(e.has(sp.I) for e in closed_form(damped_rotation()).solution)


@pytest.mark.parametrize("name", ["decay-expm", "logistic-dsolve", "forced-dsolve",
                                  "rotation-expm"])
def test_closed_form_derivatives_match_finite_differences(name, cache):
    make, method, y0, theta, t0 = CLOSED[name]
    system = make()
    d = closed_form_derivatives(system, t0=sp.Symbol("t0"), method=method)
    cf = d["solution"]
    ode = system.compile(cache_dir=cache)
    t1 = t0 + 1.7
    y0, theta = np.array(y0), np.array(theta)

    def y_at(y0=y0, theta=theta, t0=t0, t1=t1):
        return nk.solve(ode, y0, [t0, t1], theta, rtol=1e-12, atol=1e-14).y[-1]

    h = 1e-5
    got = {k: cf.lambdify(d[k])(t1, y0, theta, t0) for k in ("y0", "theta", "t", "t0")}
    np.testing.assert_allclose(got["y0"], _central(lambda v: y_at(y0=v), y0, h), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(got["theta"], _central(lambda v: y_at(theta=v), theta, h),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got["t"][:, 0], _central(lambda v: y_at(t1=v[0]), [t1], h)[:, 0],
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got["t0"][:, 0], _central(lambda v: y_at(t0=v[0]), [t0], h)[:, 0],
                               rtol=1e-6, atol=1e-8)
    # dy/dt of the closed form is the right-hand side at the solution
    f = sp.lambdify((system.t, system.states, system.params), list(system.rhs))
    np.testing.assert_allclose(got["t"][:, 0], f(t1, list(cf.evaluate([t0, t1], y0, theta)[-1]),
                                                 list(theta)), rtol=1e-10)


@pytest.mark.parametrize("kernels", ["straight", "tape"])
def test_float_constants_keep_every_digit(kernels, cache):
    # SymPy prints a Float of 53 bits with 15 digits: straight-line kernels
    # computed with 0.333333333333333 for a Python 1/3 (1.2e-15 relative)
    t, x = sp.symbols("t x")
    third, c = sp.Float(1 / 3), sp.Float(2.2345678901234567)
    ode = ODESystem(t=t, states=[x], rhs=[third * x - c]).compile(cache, kernels=kernels)
    out = np.empty(1)
    ode.rhs(0.0, np.array([0.7]), np.empty(0), out)
    assert out[0] == (1 / 3) * 0.7 - 2.2345678901234567


def _damped_oscillator():
    t, x, v, w, c = sp.symbols("t x v w c")
    return ODESystem(t=t, states=[x, v], params=[w, c], rhs=[v, -w**2 * x - c * v])


@pytest.mark.parametrize("theta", [[1.7, 0.3], [0.5, 3.0]], ids=["underdamped", "overdamped"])
def test_closed_form_whose_eigenvalues_change_kind_with_the_parameters(theta, cache):
    # SymPy writes the solution with re(), im() and atan2 around sqrt(c**2 - 4 w**2);
    # real arithmetic gave NaN for c**2 < 4 w**2 (no error); it is evaluated in
    # complex arithmetic there
    system = _damped_oscillator()
    d = closed_form_derivatives(system)
    cf = d["solution"]
    ts, y0 = np.linspace(0.0, 3.0, 7), np.array([0.4, -0.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a RuntimeWarning from NumPy
        got = cf.evaluate(ts, y0, theta)
    ode = system.compile(cache_dir=cache)
    sol = nk.solve(ode, y0, ts, theta, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, sol.y, rtol=1e-9, atol=1e-11)
    # the parameter derivatives (differentiated with real symbols: no
    # unevaluated Derivative of re() left) against central differences
    jac = cf.lambdify(d["theta"])(ts, y0, theta)  # (n, p, m)
    for k, step in enumerate(1e-6 * np.eye(2)):
        fd = (cf.evaluate(ts, y0, theta + step) - cf.evaluate(ts, y0, theta - step)) / 2e-6
        np.testing.assert_allclose(jac[:, k, :].T, fd, rtol=1e-6, atol=1e-8)


def test_closed_form_at_a_singular_parameter_value_raises():
    # critically damped: the formula divides by sqrt(c**2 - 4 w**2) = 0
    cf = closed_form(_damped_oscillator())
    with pytest.raises(ValueError, match="not finite at these values"):
        cf.evaluate([0.0, 1.0], [0.4, -0.2], [1.0, 2.0])


def test_no_closed_form_raises_not_implemented():
    with pytest.raises(NotImplementedError, match="not linear"):
        closed_form(van_der_pol())
    t, y = sp.symbols("t y")
    with pytest.raises(NotImplementedError, match="dsolve"):
        closed_form(ODESystem(t=t, states=[y], rhs=[y**2 + t]))
    with pytest.raises(NotImplementedError, match="constant"):
        closed_form(forced_decay(), method="matrix exponential")
    with pytest.raises(ValueError, match="`method`"):
        closed_form(decay(), method="laplace")
    with pytest.raises(TypeError, match="ODESystem"):
        closed_form("y' = -y")


# --- bad input --------------------------------------------------------------------
t_, x_, y_, k_ = sp.symbols("t x y k")


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(t="t", states=[x_], rhs=[-x_]), TypeError, r"`t` must be a sympy.Symbol; got str 't'"),
    (dict(t=t_, states=["x"], rhs=[-x_]), TypeError,
     r"`states\[0\]` must be a sympy.Symbol; got str"),
    (dict(t=t_, states=[x_], params=[1.5], rhs=[-x_]), TypeError, r"`params\[0\]`.*got float 1.5"),
    (dict(t=t_, states=[sp.Function("x")(t_)], rhs=[-x_]), TypeError,
     r"`states\[0\]`.*plain symbol"),
    (dict(t=t_, states=[x_], rhs=["-x"]), TypeError,
     r"`rhs\[0\]` must be a SymPy expression.*from_strings"),
    (dict(t=t_, states=[x_], rhs=[np.float64(1.0), None][1:]), TypeError, r"`rhs\[0\]`.*NoneType"),
    (dict(t=t_, states=[x_], rhs=[sp.Eq(x_, 1)]), TypeError, r"`rhs\[0\]` must be a scalar"),
    (dict(t=t_, states=[x_, k_], params=[k_], rhs=[-x_, 0]), ValueError,
     r"k is both a state.*and a parameter"),
    (dict(t=t_, states=[x_, t_], rhs=[-x_, 1]), ValueError,
     r"time symbol t is also listed as a state"),
    (dict(t=t_, states=[x_, x_], rhs=[-x_, 1]), ValueError, r"`states` lists the symbol x twice"),
    (dict(t=t_, states=[x_, y_], rhs=[-x_]), ValueError, r"expected 2.*got 1"),
    (dict(t=t_, states=[x_], rhs=[-x_, -x_]), ValueError, r"expected 1.*got 2"),
    (dict(t=t_, states=[x_], rhs=[-k_ * x_]), ValueError,
     r"`rhs\[0\]` = -k\*x has the free symbol k.*neither a state \[x\], "
     r"a parameter \[\] nor the time t"),
    (dict(t=t_, states=[x_], rhs=[-sp.Symbol("x", positive=True)]), ValueError,
     r"different assumptions"),
    (dict(t=t_, states=[x_], rhs=[sp.Function("g")(x_)]), ValueError,
     r"undefined function.*g\(x\)"),
    (dict(t=t_, states=[x_], rhs=[sp.I * x_]), ValueError, r"complex"),
    (dict(t=t_, states=[], rhs=[]), ValueError, r"at least one"),
    (dict(t=t_, states=[x_]), TypeError, r"missing the argument `rhs`"),
    (dict(t=t_, rhs=[x_]), TypeError, r"missing the argument `states`"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ODESystem(**kwargs)


def test_bad_strings_and_cache_dir(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        ODESystem.from_strings([("x", "-x")])
    with pytest.raises(ValueError, match=r"`rhs\['x'\]` = '-x \*\* \*' could not be parsed"):
        ODESystem.from_strings({"x": "-x ** *"})
    with pytest.raises(ValueError, match="name 'k', which is not declared"):
        ODESystem.from_strings({"x": "-k*x"})
    with pytest.raises(TypeError, match="identifier"):
        ODESystem.from_strings({"x": "-x"}, params=["k 2"])
    with pytest.raises(TypeError, match="`cache_dir` must be a path"):
        decay().compile(cache_dir=3)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="NODEKIT_CACHE"):
        decay().compile(cache_dir=blocker / "sub")


def test_from_strings_keeps_dict_order_and_sympy_names():
    s = ODESystem.from_strings({"y": "-gamma*y + beta*x", "x": "-x"}, params=["beta", "gamma"])
    assert [v.name for v in s.states] == ["y", "x"]
    assert [v.name for v in s.params] == ["beta", "gamma"]
    assert s.rhs[0] == -sp.Symbol("gamma") * sp.Symbol("y") + sp.Symbol("beta") * sp.Symbol("x")


def test_division_by_zero_is_a_failed_solve_not_garbage(tmp_path):
    t, y = sp.symbols("t y")
    ode = ODESystem(t=t, states=[y], rhs=[1 / y]).compile(cache_dir=tmp_path)
    sol = nk.solve(ode, [0.0], [0.0, 1.0])
    assert sol.status == -1 and "Non-finite" in sol.message


# --- tape kernels -----------------------------------------------------------------
def _all_kernels(ode, t, y, th, a):
    n, p = y.size, th.size
    f, gy, gth, J, Jth = np.empty(n), np.empty(n), np.empty(p), np.empty((n, n)), np.empty((n, p))
    ode.rhs(t, y, th, f)
    gt = ode.vjp(t, y, th, a, gy, gth)
    ode.jac_y(t, y, th, J)
    ode.jac_theta(t, y, th, Jth)
    return f, gy, gth, gt, J, Jth


@pytest.mark.parametrize("name", ["lotka_volterra", "van_der_pol"])
def test_tape_kernels_equal_straight_line_kernels(name, cache):
    make, theta = SYSTEMS[name]
    system = make()
    straight = system.compile(cache_dir=cache)
    taped = system.compile(cache_dir=cache, kernels="tape")
    assert "tape.run(" in open(taped.source_path).read()
    assert "tape.run(" not in open(straight.source_path).read()
    for seed in range(3):
        t, y, th = _point(system, theta, seed)
        a = np.random.default_rng(seed).normal(size=system.n_states)
        for u, v in zip(_all_kernels(straight, t, y, th, a), _all_kernels(taped, t, y, th, a)):
            np.testing.assert_allclose(u, v, rtol=1e-14, atol=1e-15)


def test_tape_falls_back_to_straight_code_for_piecewise(cache):
    ode = zoo().compile(cache_dir=cache, kernels="tape")
    assert "tape.run(" not in open(ode.source_path).read()


def test_auto_mode_tapes_large_kernels(tmp_path, monkeypatch):
    monkeypatch.setattr(nk.symbolic.codegen, "TAPE_THRESHOLD", 12)
    ode = lotka_volterra().compile(cache_dir=tmp_path)  # rhs: 13 instructions, vjp: more
    paths = [nk.symbolic.module_path(ode.system, tmp_path, part) for part in ("rhs", "vjp")]
    ode.vjp
    assert all("tape.run(" in open(p).read() for p in paths)
    ts = np.linspace(0.0, 2.0, 5)
    g = autograd.grad(lambda th: anp.sum(nk.odeint(ode, np.ones(2), ts, th, **TIGHT)))
    want = autograd.grad(lambda th: anp.sum(nk.odeint(lv_py, np.ones(2), ts, th, **TIGHT)))
    th = np.array(SYSTEMS["lotka_volterra"][1])
    np.testing.assert_allclose(g(th), want(th), rtol=1e-8)


def test_bad_kernels_mode():
    with pytest.raises(ValueError, match="`kernels` must be one of 'auto', 'straight', 'tape'"):
        decay().compile(kernels="fast")


def test_auto_mode_cache_key_follows_the_tape_threshold(monkeypatch):
    """Changing the threshold regenerates 'auto' modules instead of loading
    ones that were written under another choice."""
    system = lotka_volterra()
    codegen = nk.symbolic.codegen
    keys = {mode: codegen.system_key(system, "rhs", mode) for mode in codegen.KERNEL_MODES}
    monkeypatch.setattr(codegen, "TAPE_THRESHOLD", 12)
    assert codegen.system_key(system, "rhs", "auto") != keys["auto"]
    for mode in ("straight", "tape"):
        assert codegen.system_key(system, "rhs", mode) == keys[mode]
