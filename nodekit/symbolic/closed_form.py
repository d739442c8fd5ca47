"""Closed-form solutions of an :class:`ODESystem`, where SymPy finds one.

Two routes: a linear system with constant coefficients, ``dy/dt = M y + c``
(any size; ``M`` and ``c`` may hold parameters but not ``t``), is solved
with the matrix exponential; any other scalar equation goes to
``sympy.dsolve`` with the initial condition.  Everything else raises
``NotImplementedError``.
"""
import numbers

import numpy as np
import sympy as sp

from .system import ODESystem


#: SymPy functions of real arguments that NumPy has only for real numbers, for
#: evaluating a closed form in complex arithmetic (their arguments are real
#: there, up to rounding: SymPy writes ``re(sqrt(x))`` as ``sqrt(|x|)
#: cos(atan2(0, x) / 2)``, for example).
_COMPLEX_SAFE = {"atan2": lambda y, x: np.arctan2(np.real(y), np.real(x))}


class ClosedForm:
    """The exact solution ``y(t)`` of an :class:`ODESystem` with ``y(t0) = y0``.

    Attributes
    ----------
    system : ODESystem
    t : sympy.Symbol
        The system's time symbol.
    t0 : sympy.Symbol or sympy.Number
        The initial time.
    initial : tuple of sympy.Symbol, shape (n,)
        Symbols standing for ``y(t0)``, in the order of the states.
    solution : tuple of sympy.Expr, shape (n,)
        ``y_i(t)`` in terms of ``t``, ``t0``, ``initial`` and the parameters.
    method : str
        ``'matrix exponential'`` or ``'dsolve'``.
    """

    def __init__(self, system, t0, initial, solution, method):
        self.system = system
        self.t = system.t
        self.t0 = t0
        self.initial = tuple(initial)
        self.solution = tuple(solution)
        self.method = method

    def lambdify(self, exprs=None):
        """A NumPy function evaluating ``exprs`` (default: the solution).

        Parameters
        ----------
        exprs : sympy.Expr, sympy.Matrix or sequence, optional
            In terms of ``t``, ``t0``, ``initial`` and the parameters (e.g.
            an entry of :func:`closed_form_derivatives`).

        Returns
        -------
        callable
            ``fn(t, y0, theta=(), t0=None)`` -> float ndarray shaped like
            ``exprs`` with the shape of ``t`` appended when ``t`` is an
            array.  ``t0`` is required when the closed form's ``t0`` is a
            symbol, ignored otherwise.  Complex intermediates with a
            negligible imaginary part are returned as real.  Where real
            arithmetic gives a non-finite value (the square root of a
            quantity whose sign the symbols leave open, negative here), the
            expression is evaluated again in complex arithmetic.

        Raises
        ------
        ValueError
            Where the value is still not finite (a parameter value at which
            the formula is singular) or is complex.
        """
        mat = sp.Matrix(self.solution) if exprs is None else exprs
        mat = sp.Matrix(mat) if not isinstance(mat, sp.Expr) else mat
        t0sym = self.t0 if isinstance(self.t0, sp.Symbol) else sp.Dummy("t0")
        args = (self.t, t0sym, self.initial, self.system.params)
        # the complex version only where a value needs it (lambdify costs time)
        modules = {float: "numpy", complex: [_COMPLEX_SAFE, "numpy"]}
        fns = {}
        symbolic_t0 = isinstance(self.t0, sp.Symbol)

        shape = sp.Matrix(mat).shape if not isinstance(mat, sp.Expr) else ()

        def call(t, t0, y0, theta, dtype):
            """``mat`` at these values, computed in ``dtype`` (float or complex)."""
            if dtype not in fns:
                fns[dtype] = sp.lambdify(args, mat, modules=modules[dtype])
            with np.errstate(all="ignore"):  # non-finite results are checked below
                raw = fns[dtype](t.astype(dtype), dtype(t0),
                                 tuple(np.ravel(y0).astype(dtype)),
                                 tuple(np.ravel(theta).astype(dtype)))
            if isinstance(mat, sp.Expr):
                return np.broadcast_to(np.asarray(raw, dtype=complex), t.shape)
            out = np.empty(shape + t.shape, dtype=complex)
            for i in range(shape[0]):
                for j in range(shape[1]):
                    out[i, j] = raw[i][j]
            return out

        def evaluate(t, y0, theta=(), t0=None):
            if symbolic_t0 and t0 is None:
                raise ValueError(f"This closed form has a symbolic initial time {self.t0}; "
                                 "pass its value as t0=.")
            t = np.asarray(t, dtype=float)
            t0 = 0.0 if t0 is None else float(t0)
            out = call(t, t0, y0, theta, float)
            if not np.all(np.isfinite(out)):
                # a square root (or log, power) of a quantity whose sign the
                # symbols leave open, negative at these values: in real
                # arithmetic NaN, in complex arithmetic the real solution
                try:
                    out = call(t, t0, y0, theta, complex)
                except TypeError:  # a function NumPy has only for real numbers
                    pass
            if not np.all(np.isfinite(out)):
                raise ValueError(
                    "The closed form is not finite at these values (a parameter value where "
                    "the formula is singular, such as a repeated eigenvalue of a linear "
                    "system whose solution divides by the difference of two eigenvalues, or "
                    "values outside the domain of SymPy's solution); solve numerically "
                    "there, or perturb the parameters.")
            scale = max(1.0, float(np.max(np.abs(out), initial=0.0)))
            if np.max(np.abs(out.imag), initial=0.0) > 1e-9 * scale:
                raise ValueError("The closed form evaluated to complex values here (outside "
                                 "the domain where SymPy's solution is real).")
            return np.array(out.real)

        return evaluate

    def evaluate(self, ts, y0, theta=(), t0=None):
        """``y(ts)`` as an array of shape ``(len(ts), n)``.

        Parameters
        ----------
        ts : array_like, shape (m,)
        y0 : array_like, shape (n,)
        theta : array_like, shape (p,), optional
        t0 : float, optional
            The initial time, when it is a symbol here (default ``ts[0]``).

        Returns
        -------
        ndarray, shape (m, n)
        """
        ts = np.atleast_1d(np.asarray(ts, dtype=float))
        if t0 is None and isinstance(self.t0, sp.Symbol):
            t0 = ts[0]
        return self.lambdify()(ts, y0, theta, t0)[:, 0, :].T

    def __repr__(self):
        sol = ", ".join(f"{s}(t)={e}" for s, e in zip(self.system.states, self.solution))
        return f"ClosedForm({sol}; t0={self.t0}, method={self.method!r})"


def _initial_symbols(system, initial):
    if initial is not None:
        if isinstance(initial, sp.Symbol):
            initial = [initial]
        initial = tuple(initial)
        if len(initial) != system.n_states or not all(isinstance(s, sp.Symbol)
                                                       for s in initial):
            raise TypeError(f"`initial` must be {system.n_states} sympy.Symbol (one per "
                            f"state {list(system.states)}); got {initial!r}.")
        return initial
    used = {s.name for s in (system.t,) + system.states + system.params}
    out = []
    for s in system.states:
        name = f"{s.name}0"
        while name in used:
            name += "_"
        used.add(name)
        out.append(sp.Symbol(name))
    return tuple(out)


def _check_t0(system, t0):
    if isinstance(t0, str):
        t0 = sp.Symbol(t0)
    if isinstance(t0, numbers.Real) and not isinstance(t0, bool):
        t0 = sp.nsimplify(t0) if float(t0).is_integer() else sp.Float(t0)
    if not isinstance(t0, (sp.Symbol, sp.Number)):
        raise TypeError(f"`t0` must be a real number or a sympy.Symbol; got "
                        f"{type(t0).__name__} {t0!r}.")
    if isinstance(t0, sp.Symbol) and t0 in (system.t,) + system.states + system.params:
        raise ValueError(f"`t0`={t0} must be a new symbol, not the time, a state or a "
                         "parameter of the system.")
    return t0


def _realify(system, t0, initial):
    """Map every symbol to a real one (so exp(i b t) becomes cos/sin) and back."""
    to_real, back = {}, {}
    for s in (system.t,) + system.states + system.params + tuple(initial) + (
            (t0,) if isinstance(t0, sp.Symbol) else ()):
        if s.is_real:
            continue
        d = sp.Dummy(s.name, real=True)
        to_real[s], back[d] = d, s
    return to_real, back


def _linear(system, t0, initial, to_real):
    """``dy/dt = M y + c`` with constant ``M``, ``c`` -> ``(M, c)`` or None."""
    rhs = [e.xreplace(to_real) for e in system.rhs]
    states = [to_real.get(s, s) for s in system.states]
    try:
        M, b = sp.linear_eq_to_matrix(rhs, states)
    except Exception:  # noqa: BLE001 - NonlinearError
        return None
    t = to_real.get(system.t, system.t)
    if M.has(t) or b.has(t):
        return None
    return M, -b


def _matrix_exponential(M, c, tau, y0):
    E = (M * tau).exp()
    y = E * y0
    if any(ci != 0 for ci in c):
        if sp.simplify(M.det()) != 0:
            y += M.inv() * (E - sp.eye(M.shape[0])) * c
        else:
            s = sp.Dummy("s", real=True)
            y += (M * s).exp().integrate((s, 0, tau)) * c
    out = []
    for e in y:
        if e.has(sp.I):
            e = sp.simplify(sp.expand_complex(e))
        out.append(e)
    return out


def _dsolve(system, t0, y0):
    t, x = system.t, system.states[0]
    Y = sp.Function(x.name)
    eq = sp.Eq(Y(t).diff(t), system.rhs[0].xreplace({x: Y(t)}))
    try:
        sols = sp.dsolve(eq, Y(t), ics={Y(t0): y0})
    except Exception as exc:
        raise NotImplementedError(
            f"No closed form found: sympy.dsolve could not solve d{x}/dt = "
            f"{system.rhs[0]} with {x}({t0}) = {y0} ({type(exc).__name__}: {exc}).") from exc
    sols = sols if isinstance(sols, list) else [sols]
    good = [s.rhs for s in sols if isinstance(s, sp.Eq) and s.lhs == Y(t)
            and not s.rhs.has(Y) and not s.rhs.has(sp.Integral)]
    if len(good) > 1:
        good = [g for g in good if sp.simplify(g.subs(t, t0) - y0) == 0]
    if len(good) != 1:
        raise NotImplementedError(
            f"No unique explicit closed form: sympy.dsolve returned {sols} for d{x}/dt = "
            f"{system.rhs[0]} with {x}({t0}) = {y0}.")
    return [good[0]]


_METHODS = ("auto", "matrix exponential", "dsolve")


def closed_form(system, t0=0, initial=None, method="auto"):
    """The exact solution of ``system`` from ``y(t0) = y0``, when SymPy finds one.

    Parameters
    ----------
    system : ODESystem
    t0 : float or sympy.Symbol or str, default 0
        The initial time; a symbol (or its name) keeps it symbolic.
    initial : sequence of sympy.Symbol, shape (n,), optional
        Symbols for ``y(t0)``; default ``x0`` for a state ``x`` (underscores
        appended on a clash).
    method : {'auto', 'matrix exponential', 'dsolve'}, default 'auto'
        'auto' takes the matrix exponential for a linear constant-coefficient
        system and ``sympy.dsolve`` for any other scalar equation.

    Returns
    -------
    ClosedForm
        ``.solution`` in terms of ``t``, ``t0``, ``.initial`` and the
        parameters; ``.evaluate(ts, y0, theta)`` gives numbers.

    Raises
    ------
    NotImplementedError
        If the system is neither linear with constant coefficients nor a
        scalar equation that ``sympy.dsolve`` solves explicitly.
    TypeError, ValueError
        For a ``system`` that is not an ODESystem, or bad ``t0``/``initial``.

    Notes
    -----
    Linear constant-coefficient systems ``dy/dt = M y + c`` (found with
    ``sympy.linear_eq_to_matrix``) give ``y = e^{M tau} y0 + M^{-1}(e^{M tau}
    - I) c`` with ``tau = t - t0`` (the integral of ``e^{M s}`` when ``M``
    is singular).  Symbols are taken as real while solving so that complex
    eigenvalues come out as ``cos``/``sin``.  When the kind of the
    eigenvalues depends on the parameters (a damped oscillator,
    ``sqrt(c**2 - 4 w**2)``), SymPy's real form holds ``re``, ``im`` and
    ``atan2``, and it is evaluated in complex arithmetic where that square
    root is imaginary.  The formula with ``M^{-1}`` is
    singular at parameter values making ``M`` singular (and this form at
    repeated eigenvalues): evaluating it there raises ``ValueError``.  Solutions of
    ``dsolve`` are valid where SymPy's branch is (e.g. logistic growth from
    ``y0 > 0``).

    Examples
    --------
    >>> import sympy as sp
    >>> from nodekit.symbolic import ODESystem, closed_form
    >>> t, y, k = sp.symbols("t y k")
    >>> closed_form(ODESystem(t=t, states=[y], params=[k], rhs=[-k * y])).solution
    (y0*exp(-k*t),)
    """
    if not isinstance(system, ODESystem):
        raise TypeError(f"`system` must be an nodekit.symbolic.ODESystem; got "
                        f"{type(system).__name__}.")
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}; got {method!r}.")
    t0 = _check_t0(system, t0)
    initial = _initial_symbols(system, initial)
    to_real, back = _realify(system, t0, initial)
    lin = None if method == "dsolve" else _linear(system, t0, initial, to_real)
    if method == "matrix exponential" and lin is None:
        raise NotImplementedError(
            f"method='matrix exponential' needs a linear system with constant "
            f"coefficients, dy/dt = M y + c with M, c free of {system.t}; got "
            f"{list(system.rhs)}.")
    if lin is not None:
        t = to_real.get(system.t, system.t)
        tr0 = to_real.get(t0, t0)
        y0 = sp.Matrix([to_real.get(s, s) for s in initial])
        sol = _matrix_exponential(lin[0], lin[1], t - tr0, y0)
        sol = [e.xreplace(back) for e in sol]
        return ClosedForm(system, t0, initial, sol, "matrix exponential")
    if system.n_states == 1:  # 'auto' or 'dsolve'
        return ClosedForm(system, t0, initial, _dsolve(system, t0, initial[0]), "dsolve")
    raise NotImplementedError(
        f"No closed form for this system of {system.n_states} equations: it is not linear "
        f"with constant coefficients (dy/dt = M y + c with M, c free of {system.t}), and "
        "sympy.dsolve is used only for scalar equations. Solve it numerically with "
        "nk.solve(system.compile(), ...).")


def closed_form_derivatives(system, t0=0, initial=None, method="auto"):
    """Exact derivatives of the closed-form solution.

    Parameters
    ----------
    system : ODESystem or ClosedForm
        A ClosedForm is used as is; an ODESystem is solved first with
        :func:`closed_form` (``t0`` and ``initial`` passed on).
    t0, initial, method : optional
        As in :func:`closed_form` (ignored for a ClosedForm).

    Returns
    -------
    dict
        ``'solution'``: the ClosedForm; ``'y0'``: Matrix (n, n),
        ``dy_i(t)/dy0_j``; ``'theta'``: Matrix (n, p), ``dy_i(t)/dtheta_k``;
        ``'t'``: Matrix (n, 1), ``dy_i/dt``; and, when ``t0`` is a symbol,
        ``'t0'``: Matrix (n, 1), ``dy_i/dt0``.  Evaluate them with
        ``solution.lambdify(matrix)``.

    Raises
    ------
    NotImplementedError
        As :func:`closed_form`.

    Examples
    --------
    >>> import sympy as sp
    >>> from nodekit.symbolic import ODESystem, closed_form_derivatives
    >>> t, y, k = sp.symbols("t y k")
    >>> closed_form_derivatives(ODESystem(t=t, states=[y], params=[k], rhs=[-k * y]))["theta"]
    Matrix([[-t*y0*exp(-k*t)]])
    """
    cf = system if isinstance(system, ClosedForm) else closed_form(system, t0, initial, method)
    # differentiated with real symbols, so that d re(f)/dk = re(df/dk) (a solution
    # written with re(), im() and atan2 otherwise keeps unevaluated derivatives)
    to_real, back = _realify(cf.system, cf.t0, cf.initial)
    real = {s: to_real.get(s, s) for s in
            (cf.t, cf.t0) + cf.initial + tuple(cf.system.params) if isinstance(s, sp.Symbol)}
    sol = sp.Matrix(cf.solution).xreplace(to_real)
    params = [real[p] for p in cf.system.params]
    out = {"y0": sol.jacobian([real[s] for s in cf.initial]),
           "theta": sol.jacobian(params) if params else sp.zeros(len(cf.solution), 0),
           "t": sol.diff(real[cf.t])}
    if isinstance(cf.t0, sp.Symbol):
        out["t0"] = sol.diff(real[cf.t0])
    out = {key: value.xreplace(back) for key, value in out.items()}
    out["solution"] = cf
    return out
