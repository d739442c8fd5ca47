"""Every compiled function of the package sets the flags Numba would otherwise
take from its first caller (see :mod:`nodekit._jitflags`)."""
import importlib
import pkgutil
import re
import sys

import numba as nb
import numpy as np
import pytest
from numba.core.compiler import Flags
from numba.core.registry import CPUDispatcher

import nodekit
from nodekit import _jitflags

INHERITED = ("_nrt", "error_model", "fastmath")


def _package_dispatchers():
    found = {}
    for info in pkgutil.walk_packages(nodekit.__path__, "nodekit."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (dask, matplotlib) is missing
            continue
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def _compiled_flags(dispatcher, sig):
    """The flags an overload was compiled with, read back from its symbol name
    (Numba mangles them into an ABI tag)."""
    name = dispatcher.overloads[sig].fndesc.mangled_name
    for match in re.finditer(r"B(\d+)", name):
        tag = name[match.end():match.end() + int(match.group(1))]
        try:
            return Flags.demangle(tag)
        except Exception:  # noqa: BLE001 - not the flags' tag
            continue
    raise AssertionError(f"no flags tag in {name}")


def test_every_compiled_function_of_the_package_sets_the_inherited_flags():
    found = _package_dispatchers()
    assert len(found) > 50  # the walk really saw the compiled modules
    missing = {name: [k for k in INHERITED if k not in d.targetoptions]
               for name, d in found.items()}
    missing = {name: keys for name, keys in missing.items() if keys}
    assert not missing, f"compiled functions that inherit flags from their caller: {missing}"


def _first_called_from_a_body(helper):
    """Compile ``helper`` first from inside a loop body (no reference
    counting), then call it from an ordinary function; returns that function."""
    body = nb.njit(**dict(_jitflags.FLAGS, cache=False, _nrt=False),
                   no_cpython_wrapper=True, no_cfunc_wrapper=True)(
        lambda a, b: helper(True, a, b)[0])
    outer = nb.njit(**dict(_jitflags.FLAGS, cache=False))(lambda a, b: body(a, b))

    def use(a, b):
        return helper(True, a, b).sum()
    use = nb.njit(**dict(_jitflags.FLAGS, cache=False))(use)
    a, b = np.ones(3), np.zeros(3)
    outer(a, b)
    return use, a, b


def _pick(flag, a, b):
    if flag:
        return a
    return b


def test_numba_hands_a_body_flags_down_to_an_undecorated_helper():
    """The mechanism the presets guard against (numba/numba#7168): a helper
    without its own ``_nrt`` compiled first from a body has no reference
    counting, whoever calls it later."""
    helper = nb.njit(cache=False)(_pick)
    _first_called_from_a_body(helper)
    (sig,) = helper.overloads
    assert "nrt=True" not in _compiled_flags(helper, sig)


def test_a_preset_helper_first_compiled_in_a_body_still_counts_references():
    helper = nb.njit(**dict(_jitflags.FLAGS, cache=False))(_pick)
    use, a, b = _first_called_from_a_body(helper)
    (sig,) = helper.overloads
    assert "nrt=True" in _compiled_flags(helper, sig)
    before = sys.getrefcount(a)
    for _ in range(50):
        assert use(a, b) == 3.0
    assert sys.getrefcount(a) == before


@pytest.mark.parametrize("name", ["nodekit._kernels.either", "nodekit._kernels.record_step"])
def test_package_helpers_returning_arrays_count_references(name):
    """The helpers behind the heap corruption: whatever compiled them (this
    process or a cache written by another), their code counts references."""
    import autograd
    import autograd.numpy as anp

    import nodekit as nk

    @nb.njit
    def rhs(t, y, theta, out):
        for i in range(y.size):
            out[i] = -theta[0] * y[i]

    @nb.njit
    def vjp(t, y, theta, a, out_y, out_theta):
        out_theta[0] = 0.0
        for i in range(y.size):
            out_y[i] = -theta[0] * a[i]
            out_theta[0] -= a[i] * y[i]

    ode = nk.ODE(rhs, vjp)
    # an explicit interpolated gradient runs the adjoint system in the loop body
    grad = autograd.grad(lambda th: anp.sum(nk.odeint(
        ode, np.ones(2), [0.0, 1.0], th, gradient="interpolated", rtol=1e-10,
        atol=1e-12)[-1]))
    np.testing.assert_allclose(grad(np.array([0.5])), -2 * np.exp(-0.5), rtol=1e-8)
    module, func = name.rsplit(".", 1)
    dispatcher = getattr(importlib.import_module(module), func)
    for sig in dispatcher.overloads:
        assert "nrt=True" in _compiled_flags(dispatcher, sig), (name, sig)
