"""SciPy's names in nodekit: method aliases and hints for ``solve_ivp`` options.

Users coming from :func:`scipy.integrate.solve_ivp` type its method names and
options.  Where nodekit has the same method under another name, the SciPy name
is an alias; where an option has a nodekit counterpart, the "unknown option"
error says what to write instead.
"""

#: SciPy method names (lower case) and nodekit's method that is the same scheme:
#: RK45 is Dormand-Prince 5(4), RK23 Bogacki-Shampine 3(2), DOP853 Hairer's 8(5,3).
METHOD_ALIASES = {"rk45": "dopri5", "rk23": "bosh3", "dop853": "dop853"}

#: SciPy methods without a nodekit equivalent (implicit, for stiff problems).
NO_EQUIVALENT = {
    "radau": "implicit Runge-Kutta method for stiff problems",
    "bdf": "implicit multistep method for stiff problems",
    "lsoda": "switching stiff/non-stiff multistep method",
}

#: ``solve_ivp`` options that nodekit spells differently, with what to write.
OPTION_HINTS = {
    "t_span": "nodekit's `t` is the array of output times, the first being the initial "
              "time: pass t=np.linspace(t0, t1, n) (t=(t0, t1) returns two rows)",
    "t_eval": "nodekit's `t` is the output times: pass them as `t` (the first is the "
              "initial time)",
    "args": "extra parameters go in `theta`: fun(t, y, theta)",
    "dense_output": "pass dense=True; the Solution is then callable, sol(t)",
    "events": "events are an option of nk.solve (SciPy's semantics); for differentiable "
              "event times use nk.odeint_event",
    "vectorized": "not needed: a batch of states is one y0 of shape (batch, n), solved "
                  "jointly (or nk.solve_ensemble for per-trajectory steps)",
    "jac": "the methods are explicit and need no Jacobian; for gradients give a "
           "vector-Jacobian product, nk.ODE(rhs, vjp), or let nk.symbolic derive it",
    "min_step": "there is no minimum step; a step below the resolution of t stops the "
                "solve with a message",
    "fun": "the right-hand side is the first positional argument, fun(t, y, theta)",
}


def method_alias(method):
    """nodekit's name for a SciPy method name; other values are returned unchanged.

    Raises
    ------
    ValueError
        For SciPy's implicit methods (``"Radau"``, ``"BDF"``, ``"LSODA"``),
        which nodekit does not have, saying what to use instead.

    Examples
    --------
    >>> method_alias("RK45"), method_alias("RK23"), method_alias("tsit5")
    ('dopri5', 'bosh3', 'tsit5')
    """
    if not isinstance(method, str):
        return method
    key = method.strip().lower()
    if key in NO_EQUIVALENT:
        raise ValueError(
            f"`method`={method!r} is SciPy's {NO_EQUIVALENT[key]}, which nodekit does "
            "not have. For a stiff problem nk.solve has the Rosenbrock methods 'rodas4' "
            "and 'rodas5'; otherwise try 'dopri5' (SciPy's 'RK45') or 'dop853'.")
    return METHOD_ALIASES.get(key, method)


def option_hints(names):
    """One sentence per SciPy option in ``names`` that nodekit spells differently
    (an empty string if there is none), for "unknown option" errors.

    Examples
    --------
    >>> option_hints(["args", "foo"])
    ' `args`: extra parameters go in `theta`: fun(t, y, theta).'
    """
    return "".join(f" `{n}`: {OPTION_HINTS[n]}." for n in names if n in OPTION_HINTS)
