"""``ODESystem``: an ODE right-hand side given as SymPy expressions, validated."""
import numbers
from functools import cached_property

import sympy as sp
from sympy.core.function import AppliedUndef


def _describe(obj):
    return f"{type(obj).__name__} {obj!r}"


def _check_symbol(obj, name):
    if not isinstance(obj, sp.Symbol):
        hint = ""
        if isinstance(obj, str):
            hint = (f" Create it with sympy.Symbol({obj!r}), or build the system with "
                    "ODESystem.from_strings.")
        elif isinstance(obj, AppliedUndef):
            hint = (" Use a plain symbol for the state (x, not x(t)); the time "
                    "dependence is implied.")
        raise TypeError(f"`{name}` must be a sympy.Symbol; got {_describe(obj)}.{hint}")
    return obj


def _check_symbols(seq, name, allow_empty):
    if isinstance(seq, sp.Symbol):
        seq = [seq]
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of sympy.Symbol; got {_describe(seq)}.")
    out = tuple(_check_symbol(s, f"{name}[{i}]") for i, s in enumerate(seq))
    if not out and not allow_empty:
        raise ValueError(f"`{name}` must hold at least one sympy.Symbol; got an empty "
                         "sequence.")
    seen = {}
    for i, s in enumerate(out):
        if s in seen:
            raise ValueError(f"`{name}` lists the symbol {s} twice (at {seen[s]} and {i}); "
                             "each symbol must appear once.")
        seen[s] = i
    return out


def _check_expr(obj, name):
    if isinstance(obj, sp.Basic):
        expr = obj
    elif isinstance(obj, numbers.Real) and not isinstance(obj, bool):
        expr = sp.sympify(obj)
    else:
        hint = " Use ODESystem.from_strings for strings." if isinstance(obj, str) else ""
        raise TypeError(f"`{name}` must be a SymPy expression (or a real number); got "
                        f"{_describe(obj)}.{hint}")
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"`{name}` must be a scalar SymPy expression; got "
                        f"{type(expr).__name__} {expr}.")
    undef = sorted(str(f) for f in expr.atoms(AppliedUndef))
    if undef:
        raise ValueError(f"`{name}` contains undefined function(s) {', '.join(undef)}; "
                         "expected an expression in the state, parameter and time "
                         "symbols only (write x, not x(t)).")
    for kind in (sp.Derivative, sp.Integral):
        if expr.has(kind):
            raise ValueError(f"`{name}` contains an unevaluated {kind.__name__}: {expr}; "
                             "expected an explicit expression (call .doit() first).")
    if expr.has(sp.I):
        raise ValueError(f"`{name}` is complex ({expr}); the generated kernels are real "
                         "float64 code.")
    return expr


class ODESystem:
    """An ODE ``dy/dt = f(t, y, theta)`` written with SymPy.

    Parameters
    ----------
    t : sympy.Symbol or None
        The time symbol (``None``: a fresh ``Symbol('t')``; use it only for
        autonomous systems).
    states : sequence of sympy.Symbol, shape (n,)
        The state variables, in the order of ``y``.  A single symbol is
        accepted for a scalar equation.
    params : sequence of sympy.Symbol, shape (p,), optional
        The parameters, in the order of ``theta``.  May be empty.
    rhs : sequence of sympy.Expr, shape (n,)
        ``dy_i/dt`` in terms of ``t``, ``states`` and ``params``.  A single
        expression is accepted for a scalar equation.
    name : str, optional
        Shown in reprs and as the name of the compiled ``nk.ODE``.

    Raises
    ------
    TypeError
        If ``t``, a state or a parameter is not a ``sympy.Symbol``, or an
        entry of ``rhs`` is not a SymPy expression (or a real number).
    ValueError
        If a symbol is repeated or is both a state and a parameter (or the
        time), if ``rhs`` and ``states`` differ in length, if ``rhs`` has a
        free symbol that is neither a state, a parameter nor ``t``, or holds an
        undefined function, an unevaluated derivative or a complex number.

    See Also
    --------
    ODESystem.from_strings : the same from strings.
    ODESystem.compile : generate the compiled ``nk.ODE``.
    nodekit.symbolic.closed_form : the exact solution, when SymPy finds one.

    Examples
    --------
    >>> import sympy as sp
    >>> from nodekit.symbolic import ODESystem
    >>> t, x, y, a, b, c, d = sp.symbols("t x y a b c d")
    >>> lv = ODESystem(t=t, states=[x, y], params=[a, b, c, d],
    ...                rhs=[a * x - b * x * y, -c * y + d * x * y])
    >>> lv
    ODESystem(t=t, states=[x, y], params=[a, b, c, d], rhs=[a*x - b*x*y, -c*y + d*x*y])
    """

    def __init__(self, t=None, states=None, params=(), rhs=None, *, name=None):
        if states is None:
            raise TypeError("ODESystem() missing the argument `states` (a sequence of "
                            "sympy.Symbol).")
        if rhs is None:
            raise TypeError("ODESystem() missing the argument `rhs` (one SymPy "
                            "expression per state).")
        self.t = sp.Symbol("t") if t is None else _check_symbol(t, "t")
        self.states = _check_symbols(states, "states", allow_empty=False)
        self.params = _check_symbols(params if params is not None else (), "params",
                                     allow_empty=True)
        for s in self.states:
            if s in self.params:
                raise ValueError(f"The symbol {s} is both a state (states[{self.states.index(s)}]) "
                                 f"and a parameter (params[{self.params.index(s)}]); "
                                 "each symbol must be one or the other.")
        for kind, seq in (("state", self.states), ("parameter", self.params)):
            if self.t in seq:
                raise ValueError(f"The time symbol {self.t} is also listed as a {kind}; "
                                 "`t` must differ from every state and parameter.")
        names = {}
        for s in (self.t,) + self.states + self.params:
            if s.name in names:
                raise ValueError(f"Two different symbols are named {s.name!r} ({names[s.name]!r} "
                                 f"and {s!r}, with different assumptions); symbol names "
                                 "must be unique.")
            names[s.name] = s
        if isinstance(rhs, (sp.Basic, numbers.Real)) and not isinstance(rhs, sp.MatrixBase):
            rhs = [rhs]
        if isinstance(rhs, (str, bytes)) or not hasattr(rhs, "__iter__"):
            raise TypeError(f"`rhs` must be a sequence of SymPy expressions; got "
                            f"{_describe(rhs)}.")
        self.rhs = tuple(_check_expr(e, f"rhs[{i}]") for i, e in enumerate(rhs))
        if len(self.rhs) != len(self.states):
            raise ValueError(f"`rhs` must have one expression per state: expected "
                             f"{len(self.states)} (states={list(self.states)}); got "
                             f"{len(self.rhs)}.")
        known = set(self.states) | set(self.params) | {self.t}
        for i, e in enumerate(self.rhs):
            unknown = sorted(e.free_symbols - known, key=str)
            if unknown:
                s = unknown[0]
                hint = ""
                if s.name in names:
                    hint = (f" A symbol named {s.name!r} is declared, but with different "
                            f"assumptions ({names[s.name].assumptions0} vs "
                            f"{s.assumptions0}).")
                raise ValueError(
                    f"`rhs[{i}]` = {e} has the free symbol {s} (all unknown: "
                    f"{', '.join(map(str, unknown))}), which is neither a state "
                    f"{list(self.states)}, a parameter {list(self.params)} nor the time "
                    f"{self.t}. Add it to `params` or substitute a value.{hint}")
        self.name = name

    # --- construction ---------------------------------------------------------
    @classmethod
    def from_strings(cls, rhs, params=(), t="t", *, name=None):
        """Build a system from strings.

        The strings are parsed with a whitelist, never evaluated: they may
        use numbers, the declared names (states, ``params``, ``t``),
        ``+ - * / **``, the functions ``sin cos tan asin acos atan atan2 sinh
        cosh tanh asinh acosh atanh exp log sqrt abs min max sign floor
        ceiling Heaviside erf erfc`` and the constant ``pi``.  Every other
        name is an error (``E`` is not Euler's number; write ``exp(1)``), and
        so is every other construct (``^``: write ``**``).  A declared name
        may be a Python keyword (``lambda``).

        Parameters
        ----------
        rhs : dict of str to str
            ``{state name: expression}``; the order of the states is the
            order of the dict.
        params : sequence of str, optional
            Parameter names, in the order of ``theta``.
        t : str, default 't'
            Name of the time variable.
        name : str, optional

        Returns
        -------
        ODESystem

        Raises
        ------
        TypeError
            If ``rhs`` is not a dict of strings or a name is not a string.
        ValueError
            If an expression cannot be parsed or uses anything outside the
            whitelist (the message names the token; an undeclared name gets
            the list of declared ones), a name is declared twice, or any
            check of :class:`ODESystem` fails.

        Examples
        --------
        >>> from nodekit.symbolic import ODESystem
        >>> ODESystem.from_strings({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"},
        ...                        params=["a", "b", "c", "d"]).states
        (x, y)
        """
        from .parse import parse_expression
        if not isinstance(rhs, dict):
            raise TypeError("`rhs` must be a dict {state name: expression string}; got "
                            f"{_describe(rhs)}.")
        if isinstance(params, str):
            params = [params]
        for label, names in (("state names (keys of `rhs`)", list(rhs)),
                             ("`params`", list(params)), ("`t`", [t])):
            for nm in names:
                if not isinstance(nm, str) or not nm.isidentifier():
                    raise TypeError(f"{label} must be identifier strings; got {nm!r}.")
        table = {}
        for kind, names in (("the time `t`", [t]), ("a state", list(rhs)),
                            ("a parameter", list(params))):
            for nm in names:
                if nm in table:
                    raise ValueError(f"The name {nm!r} is declared twice (again as {kind}); "
                                     "each state, parameter and the time need distinct names.")
                table[nm] = sp.Symbol(nm)
        exprs = []
        for key, text in rhs.items():
            if isinstance(text, (int, float)) and not isinstance(text, bool):
                text = repr(text)
            if not isinstance(text, str):
                raise TypeError(f"`rhs[{key!r}]` must be an expression string; got "
                                f"{_describe(text)}.")
            exprs.append(parse_expression(text, table, f"`rhs[{key!r}]`"))
        return cls(t=table[t], states=[table[k] for k in rhs],
                   params=[table[p] for p in params], rhs=exprs, name=name)

    # --- derived quantities -----------------------------------------------------
    @property
    def n_states(self):
        """Number of states ``n``."""
        return len(self.states)

    @property
    def n_params(self):
        """Number of parameters ``p``."""
        return len(self.params)

    @property
    def is_autonomous(self):
        """Whether the right-hand side does not depend on ``t``."""
        return not any(e.has(self.t) for e in self.rhs)

    @cached_property
    def srepr(self):
        """The exact text of time, states, parameters and right-hand side
        (``sympy.srepr``: names and assumptions included), as a dict."""
        return {"t": sp.srepr(self.t), "states": [sp.srepr(s) for s in self.states],
                "params": [sp.srepr(s) for s in self.params],
                "rhs": [sp.srepr(e) for e in self.rhs]}

    def jacobian_y(self):
        """``df/dy`` as a SymPy matrix, shape (n, n)."""
        return sp.Matrix(self.rhs).jacobian(self.states)

    def jacobian_theta(self):
        """``df/dtheta`` as a SymPy matrix, shape (n, p)."""
        return sp.Matrix(self.rhs).jacobian(self.params) if self.params \
            else sp.zeros(len(self.rhs), 0)

    def compile(self, cache_dir=None, *, kernels="auto"):
        """Generate, cache and load compiled kernels for this system.

        Parameters
        ----------
        cache_dir : str or os.PathLike, optional
            Folder of generated modules (created if missing).  Default:
            ``$NODEKIT_CACHE/symbolic`` if ``NODEKIT_CACHE`` is set, else
            ``$XDG_CACHE_HOME/nodekit/symbolic`` (``~/.cache/nodekit/symbolic``).
        kernels : {'auto', 'straight', 'tape'}, default 'auto'
            How the kernels are written.  ``'straight'``: straight-line
            scalar code after common-subexpression elimination (fastest to
            run; Numba's compile time grows with its length, roughly 1.5 s
            plus 10 ms per operation on a busy 2-core machine).  ``'tape'``:
            the operations as data run by one interpreter compiled once for
            all systems (compiles in a few seconds whatever the size; runs 3
            to 4 times slower).  ``'auto'``: a tape for kernels of more than
            ``nodekit.symbolic.codegen.TAPE_THRESHOLD`` (500) operations.

        Returns
        -------
        SymbolicODE
            An ``nk.ODE`` with the generated ``rhs`` kernel, and ``vjp``,
            ``jac_y(t, y, theta, out)`` (``out`` shape (n, n)) and
            ``jac_theta(t, y, theta, out)`` (``out`` shape (n, p)) generated
            on first access, all Numba-jitted; ``system`` (this ODESystem)
            and ``source_path`` (the module of ``rhs``).

        Raises
        ------
        ValueError
            If an expression uses a function the code printer cannot write as
            Numba-compatible Python (``math`` module) code.  A derivative
            that cannot be written raises when the ``vjp`` or a Jacobian is
            first needed, not here.
        OSError
            If the cache folder cannot be created or written.

        Notes
        -----
        Each generated module is named by a hash of the expressions, the
        symbol names, the part (``rhs``, ``vjp``, ``jac``), the generator
        version and the SymPy version: a changed system gets new modules, and
        an unchanged one is imported without regenerating.  The kernels are
        ``@numba.njit(cache=True)``, so a later process loads the machine code
        from Numba's cache (``__pycache__`` in the cache folder) instead of
        compiling again.  Files are written atomically and verified by a
        content hash when loaded.  The result pickles by this system, and
        compiling is thread-safe.  Derivatives of ``Heaviside``/``sign``
        (Dirac deltas) are taken as 0.
        """
        from .codegen import compile_system
        return compile_system(self, cache_dir, kernels)

    def __eq__(self, other):
        return (isinstance(other, ODESystem) and self.t == other.t
                and self.states == other.states and self.params == other.params
                and self.rhs == other.rhs)

    def __hash__(self):
        return hash((self.t, self.states, self.params, self.rhs))

    def __repr__(self):
        return (f"ODESystem(t={self.t}, states={list(self.states)}, "
                f"params={list(self.params)}, rhs={list(self.rhs)})")
