"""Faults of the symbolic and nn front ends (issue: "no silently wrong number"):
unsafe strings, undeclared names, tampered caches, threads, pickling, and
derivatives that cannot be written."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp

import nodekit as nk
from nodekit import _codecache
from nodekit.nn import Dense, Sequential
from nodekit.symbolic import ODESystem, module_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LV = {"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}
TH = [1.5, 1.0, 3.0, 1.0]
T = np.linspace(0.0, 1.0, 5)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("nk_faults_symbolic"))


@pytest.fixture(scope="module")
def lv(cache):
    return ODESystem.from_strings(LV, params=["a", "b", "c", "d"]).compile(cache_dir=cache)


def _read(path):
    with open(path) as fh:
        return fh.read()


def _env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


# --- from_strings never evaluates its input (items 12, 13) --------------------------
def test_injection_never_runs(tmp_path):
    marker = tmp_path / "ran"
    attacks = [f"__import__('os').system('echo INJECTED > {marker}')",
               f"open({str(marker)!r}, 'w').write('x')",
               "exec('import os')", "x.__class__", "(lambda: 0)()", "[x for x in ()]"]
    for text in attacks:
        with pytest.raises(ValueError, match="not allowed|may be called|unknown function"):
            ODESystem.from_strings({"x": text})
    with pytest.raises(ValueError, match=r"__import__\('os'\)\.system"):
        ODESystem.from_strings({"x": "__import__('os').system('echo INJECTED')"})
    assert not marker.exists()


@pytest.mark.parametrize("name", ["E", "S", "N", "I", "beta", "gamma", "pi2", "Q"])
def test_undeclared_names_are_errors_listing_the_declared_ones(name):
    with pytest.raises(ValueError, match=rf"uses the name '{name}', which is not declared\. "
                                         r"Declared: t, x, k\."):
        ODESystem.from_strings({"x": f"-{name}*x + k"}, params=["k"])


def test_declared_names_shadow_sympy_meanings():
    s = ODESystem.from_strings({"S": "-beta*S*I/N", "I": "beta*S*I/N - gamma*I", "E": "0"},
                               params=["beta", "gamma", "N"])
    S, I, beta, gamma, N = sp.symbols("S I beta gamma N")  # noqa: E741 (the SIR names)
    assert s.rhs[:2] == (-beta * S * I / N, beta * S * I / N - gamma * I)
    assert all(isinstance(v, sp.Symbol) for v in s.states + s.params)


def test_caret_gets_a_hint():
    with pytest.raises(ValueError, match=r"'\^'.*write powers with '\*\*'"):
        ODESystem.from_strings({"x": "-x^2"})


def test_keyword_parameter_is_accepted(cache):
    s = ODESystem.from_strings({"x": "-lambda*x"}, params=["lambda"])
    assert s.params == (sp.Symbol("lambda"),)
    sol = nk.solve(s.compile(cache_dir=cache), [1.0], [0.0, 1.0], [2.0], rtol=1e-10, atol=1e-12)
    assert sol.y[-1, 0] == pytest.approx(np.exp(-2.0), rel=1e-8)


@pytest.mark.parametrize("text, pattern", [
    ("x(t)", "declared name, not a function"),
    ("sin(x, 2)", "calls sin with 2"),
    ("sin", "without calling it"),
    ("foo(x)", "unknown function 'foo'"),
    ("x if x > 0 else 0", "IfExp"),
    ("'x'", "only real numbers"),
    ("1j*x", "only real numbers"),
    ("9**9**9**9", "limited to 1024"),
    ("x //2", "'//'"),
    ("-x ** *", "could not be parsed"),
])
def test_bad_expressions_name_the_token(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        ODESystem.from_strings({"x": text})


def test_parsed_expressions_equal_sympy_ones():
    s = ODESystem.from_strings({"x": "-k*x/2 + 1/3 + 0.5*pi*sin(w*t)**2 - abs(x) + max(x, k)"},
                               params=["k", "w"])
    t, x, k, w = sp.symbols("t x k w")
    want = -k * x / 2 + sp.Rational(1, 3) + sp.Float(0.5) * sp.pi * sp.sin(w * t) ** 2 \
        - sp.Abs(x) + sp.Max(x, k)
    assert sp.simplify(s.rhs[0] - want) == 0


# --- the cache trusts no file contents (item 14) ------------------------------------
def test_tampered_symbolic_module_is_regenerated(tmp_path):
    system = ODESystem.from_strings({"x": "-a*x", "y": "-b*y"}, params=["a", "b"])
    system.compile(cache_dir=tmp_path)
    path = module_path(system, tmp_path)
    text = _read(path)
    assert "theta[0]" in text
    with open(path, "w") as fh:
        fh.write(text.replace("theta[0]", "theta[1]"))  # the end marker is intact
    sys.modules.pop(os.path.basename(path)[:-3])
    system.name = "again"  # not the memoised ODE of this process
    ode = system.compile(cache_dir=tmp_path)
    out = np.empty(2)
    ode.rhs(0.0, np.ones(2), np.array([2.0, 3.0]), out)
    np.testing.assert_array_equal(out, [-2.0, -3.0])
    assert _read(path) == text


# --- threads (item 17) -------------------------------------------------------------
def test_threads_compiling_one_system_all_succeed(tmp_path):
    barrier = threading.Barrier(4)

    def work(_):
        system = ODESystem.from_strings(LV, params=["a", "b", "c", "d"])
        barrier.wait()
        ode = system.compile(cache_dir=tmp_path)
        return ode, ode.rhs, ode.vjp

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))  # re-raises a thread's exception
    assert all(r == results[0] for r in results)
    assert results[0][0].vjp(0.0, np.ones(2), np.ones(4), np.ones(2), np.empty(2),
                             np.empty(4)) == 0.0


# --- derivatives are built when needed --------------------------------------------
def test_floor_solves_forward_and_explains_its_gradient(cache):
    ode = ODESystem.from_strings({"x": "-floor(x)"}).compile(cache_dir=cache)
    sol = nk.solve(ode, [2.5], [0.0, 0.25], rtol=1e-10, atol=1e-12)
    assert sol.success and sol.y[-1, 0] == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"derivative of rhs\[0\] = -floor\(x\) with respect "
                                         r"to x cannot be written.*Forward solves"):
        autograd.grad(lambda y0: anp.sum(nk.odeint(ode, y0, [0.0, 0.25])))(np.array([2.5]))


def test_derivative_modules_are_generated_on_first_use(tmp_path):
    system = ODESystem.from_strings({"x": "-k*x"}, params=["k"])
    ode = system.compile(cache_dir=tmp_path)
    assert os.path.exists(module_path(system, tmp_path, "rhs"))
    assert not os.path.exists(module_path(system, tmp_path, "vjp"))
    assert not os.path.exists(module_path(system, tmp_path, "jac"))
    assert ode.vjp is not None and os.path.exists(module_path(system, tmp_path, "vjp"))
    assert not os.path.exists(module_path(system, tmp_path, "jac"))


# --- pickling (item 18) ------------------------------------------------------------
@pytest.fixture(scope="module")
def net():
    model = Sequential(Dense(2, 3), "tanh", Dense(3, 2))
    return model, model.init(seed=0)


def test_symbolic_ode_pickles_after_use(lv):
    before = nk.solve(lv, [1.0, 1.0], T, TH)
    again = pickle.loads(pickle.dumps(lv))
    assert again.key == lv.key and again.system == lv.system
    np.testing.assert_array_equal(nk.solve(again, [1.0, 1.0], T, TH).y, before.y)


def test_nn_model_and_ode_pickle_after_use(net):
    model, theta = net
    y = nk.solve(model.ode, np.ones((3, 2)), T, theta).y
    model2 = pickle.loads(pickle.dumps(model))
    ode2 = pickle.loads(pickle.dumps(model.ode))
    assert model2 == model
    np.testing.assert_array_equal(nk.solve(model2.ode, np.ones((3, 2)), T, theta).y, y)
    np.testing.assert_array_equal(nk.solve(ode2, np.ones((3, 2)), T, theta).y, y)


def test_a_worker_process_unpickles_and_solves(lv, net, tmp_path):
    model, theta = net
    want = [nk.solve(lv, [1.0, 1.0], T, TH).y[-1], nk.solve(model.ode, np.ones(2), T, theta).y[-1]]
    blob = tmp_path / "odes.pkl"
    blob.write_bytes(pickle.dumps((lv, model.ode, theta)))
    code = textwrap.dedent(f"""
        import json, pickle, numpy as np, nodekit as nk
        sym, net, theta = pickle.loads(open({str(blob)!r}, "rb").read())
        a = nk.solve(sym, [1.0, 1.0], np.linspace(0, 1, 5), {TH!r}).y[-1]
        b = nk.solve(net, np.ones(2), np.linspace(0, 1, 5), theta).y[-1]
        print(json.dumps(list(a) + list(b)))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    np.testing.assert_array_equal(json.loads(out), np.concatenate(want))


def test_one_cache_serves_both_generators(lv, net):
    model, _ = net
    assert os.path.basename(model.kernels.__file__).startswith("nk_nn_")
    assert os.path.basename(lv.source_path).startswith("nk_symbolic_")
    for path in (model.kernels.__file__, lv.source_path):
        assert _codecache.read_valid(path, *os.path.basename(path)[3:-3].split("_")) is not None


# --- declared sizes (item 3) -------------------------------------------------------
def test_generated_odes_declare_their_sizes(lv, net):
    model, _ = net
    assert (lv.n_states, lv.n_theta) == (2, 4)
    assert (model.ode.n_theta, model.ode.state_width) == (model.n_params, 2)


def test_stiff_solve_uses_the_generated_jacobian(cache):
    robertson = ODESystem.from_strings(
        {"a": "-k1*a + k3*b*c", "b": "k1*a - k3*b*c - k2*b**2", "c": "k2*b**2"},
        params=["k1", "k2", "k3"]).compile(cache_dir=cache)
    assert robertson.jac is robertson.jac_y
    sol = nk.solve(robertson, [1.0, 0.0, 0.0], [0.0, 40.0], [0.04, 3e7, 1e4],
                   method="rodas5", rtol=1e-8, atol=1e-12)
    assert sol.success and sol.njev > 0
    # Hairer and Wanner's reference value of y1(40) for Robertson's problem
    assert sol.y[-1, 0] == pytest.approx(0.7158270687, rel=1e-6)
    floor = ODESystem.from_strings({"x": "-floor(x)"}).compile(cache_dir=cache)
    assert floor.jac is None  # no Jacobian kernel: the stiff solver differences


def test_nn_ode_checks_sizes_as_model_odeint_does(net):
    model, theta = net
    model.ode.check_sizes(np.ones((3, 2)), theta)
    with pytest.raises(ValueError, match=r"`y0` must have last axis of width 2"):
        model.ode.check_sizes(np.ones((3, 3)), theta)
    with pytest.raises(ValueError, match=rf"{model.n_params}"):
        model.ode.check_sizes(np.ones(2), theta[:5])


def test_solve_checks_the_declared_sizes(lv, net):
    with pytest.raises(ValueError, match=r"`y0` must have 2 values.*n_states=2"):
        nk.solve(lv, [1.0, 1.0, 1.0], T, TH)
    with pytest.raises(ValueError, match=r"`theta` must have 4 values.*n_theta=4"):
        nk.solve(lv, [1.0, 1.0], T, TH[:3])
    model, theta = net
    with pytest.raises(ValueError, match=rf"`theta`.*{model.n_params}"):
        nk.odeint(model.ode, np.ones((3, 2)), T, theta[:5])
