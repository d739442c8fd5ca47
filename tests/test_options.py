"""The options of nk.solve and nk.odeint: explicit keyword-only signatures
whose defaults come from one record, and nodekit's message for an unknown
keyword."""
import inspect

import numpy as np
import pytest

import nodekit as nk
from nodekit import options


def decay(t, y, k):
    return -k * y


@pytest.mark.parametrize("entry, names", [(nk.solve, options.SOLVE),
                                          (nk.odeint, options.ODEINT),
                                          (nk.solve_ensemble, options.FORWARD[:-1])])
def test_signatures_spell_out_the_options_with_the_record_defaults(entry, names):
    params = inspect.signature(entry).parameters
    for name in names:
        p = params[name]
        assert p.kind is p.KEYWORD_ONLY
        assert p.default is getattr(options.DEFAULTS, name) or (
            p.default == getattr(options.DEFAULTS, name)), name
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())


def test_the_record_holds_every_option_once():
    assert set(options.SOLVE) | set(options.ODEINT) == set(options.Options._fields)
    assert options.DEFAULTS.method == "dopri5" and options.DEFAULTS.max_steps == 100_000


@pytest.mark.parametrize("entry", [nk.solve, nk.odeint])
def test_an_unknown_keyword_gets_nodekits_message(entry):
    with pytest.raises(TypeError, match=r"got unexpected keyword argument\(s\) 'rtoll'; "
                                        "valid options are '.*'rtol'") as err:
        entry(decay, [1.0], [0.0, 1.0], [1.0], rtoll=1e-3)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_type_error_of_the_function_itself_is_not_replaced():
    def bad(t, y, k):
        raise TypeError("inside fun")
    with pytest.raises(TypeError, match="inside fun"):
        nk.solve(bad, [1.0], [0.0, 1.0], [1.0], rtol=1e-3)
    with pytest.raises(TypeError, match="multiple values for argument 'theta'"):
        nk.solve(decay, [1.0], [0.0, 1.0], [1.0], theta=[1.0])


def test_defaults_and_explicit_defaults_give_the_same_solve():
    d = options.DEFAULTS
    a = nk.solve(decay, [1.0, 2.0], np.linspace(0.0, 2.0, 5), [0.7])
    b = nk.solve(decay, [1.0, 2.0], np.linspace(0.0, 2.0, 5), [0.7], method=d.method,
                 rtol=d.rtol, atol=d.atol, max_steps=d.max_steps, controller=nk.PIController())
    np.testing.assert_array_equal(a.y, b.y)
    assert a.nfev == b.nfev
