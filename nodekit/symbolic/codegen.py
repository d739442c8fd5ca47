"""Kernel generation for :class:`ODESystem`: SymPy -> Python source -> Numba.

Each system gets up to three generated modules, each built on first use:

* ``rhs``: the right-hand side (built by ``compile``);
* ``vjp``: ``a^T df/dy``, ``a^T df/dtheta`` and ``a^T df/dt`` (built when a
  gradient is first asked for);
* ``jac``: the dense Jacobians ``jac_y`` and ``jac_theta`` (built when one
  of them is first used).

So a right-hand side whose derivative cannot be written (``floor``) still
solves forward, and a large system pays for its Jacobians only if they are
used.  The kernels are ``@numba.njit(cache=True)`` straight-line scalar code
after common-subexpression elimination: every array entry the code reads is
loaded once into a local at the top (``theta_3 = theta[3]``), which halves
Numba's compile time against indexing at every use.  The modules live in the
generated-code cache (:mod:`nodekit._codecache`) under a key hashed from the
system, so a later process imports them, and Numba's cached machine code,
without differentiating or compiling anything.
"""
import os
from typing import NamedTuple

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .. import _codecache
from ..ode import ODE
from . import tape

#: Bump when the generated source (or how it is compiled) changes for the same system.
GENERATOR_VERSION = "5"
#: The generated-code cache's name for this generator (folder and module prefix).
KIND = "symbolic"
#: The generated modules of one system, in the order they are usually needed.
PARTS = ("rhs", "vjp", "jac")
#: How kernels are written: straight-line code, a tape run by one compiled
#: interpreter (:mod:`nodekit.symbolic.tape`), or chosen by size.
KERNEL_MODES = ("auto", "straight", "tape")
#: In ``'auto'`` mode, kernels of more tape instructions than this are tapes.
#: Numba compiles a straight-line kernel in about 1.5 s plus 10 ms per
#: instruction, a tape kernel in 2 to 6 s whatever its size (a shared 2-core
#: machine; ``benchmarks/symbolic_profile.py``): 500 keeps every straight-line
#: kernel under about 7 s, and the kernels of small systems (n = 10 dense:
#: 201 and 403 instructions) straight-line, which run 3 to 4 times faster.
TAPE_THRESHOLD = 500


def default_cache_dir():
    """The folder for generated modules.

    Returns
    -------
    str
        ``$NODEKIT_CACHE/symbolic`` if ``NODEKIT_CACHE`` is set, else
        ``$XDG_CACHE_HOME/nodekit/symbolic`` (``~/.cache/nodekit/symbolic``);
        a private temporary folder if that cannot be written.
    """
    return _codecache.cache_folder(KIND)


def _check_mode(kernels):
    if kernels not in KERNEL_MODES:
        raise ValueError(f"`kernels` must be one of {', '.join(map(repr, KERNEL_MODES))}; "
                         f"got {kernels!r}.")


def _check_part(part):
    if part not in PARTS:
        raise ValueError(f"`part` must be one of {', '.join(map(repr, PARTS))}; got {part!r}.")


def system_key(system, part="rhs", kernels="auto"):
    """Hex digest naming the generated module ``part`` of ``system``.

    A hash of the expressions (``srepr``, which includes symbol names and
    assumptions), the order of time, states and parameters, the part, the
    kernel mode (and for ``'auto'`` the :data:`TAPE_THRESHOLD` that chooses
    between them), the generator version and the SymPy version (whose
    printer and ``cse`` shape the code).
    """
    _check_part(part)
    _check_mode(kernels)
    return _codecache.make_key({
        "generator": "nodekit.symbolic", "version": GENERATOR_VERSION,
        "sympy": sp.__version__, "part": part, "kernels": kernels,
        "threshold": TAPE_THRESHOLD if kernels == "auto" else None,
        "system": system.srepr})


def module_path(system, cache_dir=None, part="rhs", kernels="auto"):
    """Path of the generated module ``part`` of ``system`` (it may not exist yet).

    Parameters
    ----------
    system : ODESystem
    cache_dir : str or os.PathLike, optional
        Default :func:`default_cache_dir`.
    part : {'rhs', 'vjp', 'jac'}, default 'rhs'
    kernels : {'auto', 'straight', 'tape'}, default 'auto'

    Returns
    -------
    str
    """
    return _codecache.module_path(KIND, system_key(system, part, kernels), cache_dir)


# --- printing -------------------------------------------------------------------
class KernelPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` (``math.*`` calls, which Numba compiles) that
    prints the system's symbols as locals (``y_0``, ``theta_1``)."""

    def __init__(self, names):
        settings = {"fully_qualified_modules": True}
        if "strict" in PythonCodePrinter._default_settings:
            settings["strict"] = True
        super().__init__(settings)
        self._names = names

    def _print_Symbol(self, expr):
        name = self._names.get(expr)
        return name if name is not None else super()._print_Symbol(expr)

    def _print_Float(self, expr):
        # the float64 the kernel computes with, in the shortest form that reads
        # back as it: SymPy prints a Float of 53 bits with 15 digits, so a
        # constant such as 0.1 * 3 or a Python float 1/3 lost its last digits
        # (1.2e-15 relative) in straight-line kernels, not in tapes
        return repr(float(expr))  # (a negative one is parenthesised by precedence)

    _print_Dummy = _print_Symbol


class _Symbols(NamedTuple):
    """The system in real dummy symbols (so that d|x|/dx = sign(x), not
    re/im terms), and how each prints."""
    t: sp.Dummy
    ys: list
    ths: list
    adj: list
    f: list             # the right-hand side in the dummies
    loads: dict         # dummy -> its array entry ("y[0]")
    printer: KernelPrinter


def _symbols(system):
    n, p = system.n_states, system.n_params
    t = sp.Dummy("t", real=True)
    ys = [sp.Dummy(f"y{i}", real=True) for i in range(n)]
    ths = [sp.Dummy(f"theta{k}", real=True) for k in range(p)]
    adj = [sp.Dummy(f"a{i}", real=True) for i in range(n)]
    sub = dict(zip((system.t,) + system.states + system.params, [t] + ys + ths))
    f = [e.xreplace(sub) for e in system.rhs]
    loads, names = {}, {t: "t"}
    for arr, syms in (("y", ys), ("theta", ths), ("a", adj)):
        for i, s in enumerate(syms):
            loads[s] = f"{arr}[{i}]"
            names[s] = f"{arr}_{i}"
    return _Symbols(t, ys, ths, adj, f, loads, KernelPrinter(names))


def _doprint(printer, expr, what):
    try:
        text = printer.doprint(expr)
    except Exception as exc:  # noqa: BLE001 - PrintMethodNotImplementedError and friends
        raise ValueError(f"{what}: {expr} cannot be written as Numba-compatible Python "
                         f"code ({exc}). Use functions of the `math` module (sin, exp, "
                         "sqrt, Abs, Piecewise, ...).") from None
    missing = getattr(printer, "_not_supported", None)
    if missing:
        raise ValueError(f"{what}: {expr} uses {', '.join(map(str, missing))}, which the "
                         "code printer cannot write as Numba-compatible Python code.")
    return text


def _prepare(expr):
    """Make ``expr`` printable as float code: Dirac deltas (derivatives of
    Heaviside/sign) are 0, an incomplete Piecewise is NaN outside its cases."""
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return expr.replace(
        lambda e: isinstance(e, sp.Piecewise) and e.args[-1].cond != sp.true,
        lambda e: sp.Piecewise(*e.args, (sp.S.NaN, True)))


def _block(targets, exprs, syms, what, indent="    "):
    """Straight-line code assigning ``exprs`` to ``targets`` (``None``: return)
    after CSE, with every array entry read loaded once into a local first."""
    exprs = [_prepare(sp.sympify(e)) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), order="canonical")
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    printer = syms.printer
    lines = [f"{indent}{printer.doprint(s)} = {syms.loads[s]}"
             for s in syms.loads if s in used]  # dict order: y, theta, a by index
    lines += [f"{indent}{printer.doprint(s)} = {_doprint(printer, e, what)}" for s, e in repl]
    for target, e in zip(targets, reduced):
        text = _doprint(printer, e, what)
        if e.is_Number and e.is_finite:
            text = repr(float(e))
        lines.append(f"{indent}{target} = {text}" if target else f"{indent}return {text}")
    return lines


class _Kernel(NamedTuple):
    """One generated kernel: its signature, what it computes and where each
    value goes (straight-line target text, and tape target ``(array, index)``
    with ``array`` 1 or 2 for the first or second output, 0 to return)."""
    signature: str
    doc: str
    exprs: list
    targets: list
    tape_targets: list
    tape_args: str      # t, y, theta, a, out1, out2 as passed to tape.run
    returns: bool


def _kernel_source(kernel, syms, kernels):
    """Straight-line code, or a tape and a one-line kernel running it."""
    name = kernel.signature.split("(")[0]
    exprs = [_prepare(sp.sympify(e)) for e in kernel.exprs]
    if kernels != "straight":
        try:
            tp = tape.record(kernel.tape_targets, exprs, syms)
        except tape.Unsupported:
            tp = None
        if tp is not None and (kernels == "tape" or len(tp.code) > TAPE_THRESHOLD):
            table = f"_{name}_tape"
            call = (f"tape.run({table}, {table}_consts, {table}_registers, "
                    f"{kernel.tape_args})")
            return [*tape.source(tp, table), "", "", _DECO, f"def {kernel.signature}:",
                    f'    """{kernel.doc} (a tape of {len(tp.code)} instructions)."""',
                    f"    return {call}" if kernel.returns else f"    {call}"]
    return [_DECO, f"def {kernel.signature}:", f'    """{kernel.doc}."""',
            *_block(kernel.targets, exprs, syms, name)]


def _diff(e, s):
    """``d e / d s`` by the sum and product rules over the arguments that
    hold ``s`` only (SymPy's own rules visit every argument), then ``diff``."""
    if e == s:
        return sp.S.One
    if e.is_Add or e.is_Mul:
        holding = [k for k, arg in enumerate(e.args) if s in arg.free_symbols]
        if e.is_Add:
            return sp.Add(*[_diff(e.args[k], s) for k in holding])
        return sp.Add(*[sp.Mul(*e.args[:k], _diff(e.args[k], s), *e.args[k + 1:])
                        for k in holding])
    return e.diff(s)


def _derivative(terms, s, i, system, var):
    """``d f_i / d s`` from the terms of ``f_i`` that hold ``s``, or a
    ValueError if SymPy leaves it unevaluated."""
    d = sp.Add(*[_diff(term, s) for term in terms])
    if d.has(sp.Derivative):
        raise ValueError(
            f"The derivative of rhs[{i}] = {system.rhs[i]} with respect to {var} cannot be "
            f"written ({d}), so there are no gradient or Jacobian kernels for this system. "
            "Forward solves (nk.solve) work; for gradients replace the function by a "
            "differentiable one (e.g. a smooth approximation).")
    return d


def _derivatives(system, syms):
    """Rows of ``df_i/dy_j``, ``df_i/dtheta_k`` and ``df_i/dt`` as dicts
    {column: expression} holding only the entries whose symbol ``f_i`` contains.

    Each term of a sum is visited once to find its symbols, and each
    derivative sums the derivatives of the terms that hold the symbol: a
    dense linear system of n states costs O(n^2), not O(n^3)."""
    cols = {s: ("y", j) for j, s in enumerate(syms.ys)}
    cols.update({s: ("theta", k) for k, s in enumerate(syms.ths)})
    cols[syms.t] = ("t", 0)
    names = dict(zip(syms.ys, system.states))
    names.update(zip(syms.ths, system.params))
    names[syms.t] = system.t
    rows = []
    for i, fi in enumerate(syms.f):
        holding = {}
        for term in (fi.args if fi.is_Add else (fi,)):
            for s in term.free_symbols:
                if s in cols:
                    holding.setdefault(s, []).append(term)
        rows.append({cols[s]: _derivative(holding[s], s, i, system, names[s])
                     for s in sorted(holding, key=lambda s: cols[s])})
    return rows


def _header(system, key, part):
    def sym_list(prefix, syms):
        return ", ".join(f"{prefix}[{i}] = {s}" for i, s in enumerate(syms)) or "(none)"

    head = [
        f'"""{part.upper()} kernels generated by nodekit.symbolic; do not edit."""',
        f"# generator version {GENERATOR_VERSION}, sympy {sp.__version__}, key {key}",
        f"# time: t = {system.t}",
        f"# states: {sym_list('y', system.states)}",
        f"# params: {sym_list('theta', system.params)}",
    ]
    head += [f"# d{s}/dt = {sp.sstr(e, order='none')}" for s, e in zip(system.states, system.rhs)]
    return head + ["import math", "", "import numba"]


_DECO = '@numba.njit(cache=True, error_model="numpy")'


def _rhs_kernels(system, syms):
    n = system.n_states
    return [_Kernel("rhs(t, y, theta, out)", "dy/dt into out, shape (n,)", syms.f,
                    [f"out[{i}]" for i in range(n)], [(1, i) for i in range(n)],
                    "t, y, theta, y, out, out", False)]


def _vjp_kernels(system, syms):
    n, p = system.n_states, system.n_params
    g = {("y", j): [] for j in range(n)}
    g.update({("theta", k): [] for k in range(p)})
    g[("t", 0)] = []
    for i, row in enumerate(_derivatives(system, syms)):
        for col, d in row.items():
            g[col].append(syms.adj[i] * d)
    return [_Kernel(
        "vjp(t, y, theta, a, out_y, out_theta)",
        "out_y = a^T df/dy, out_theta = a^T df/dtheta; returns a^T df/dt",
        [sp.Add(*terms) for terms in g.values()],
        [f"out_y[{j}]" for j in range(n)] + [f"out_theta[{k}]" for k in range(p)] + [None],
        [(1, j) for j in range(n)] + [(2, k) for k in range(p)] + [(0, 0)],
        "t, y, theta, a, out_y, out_theta", True)]


def _jac_kernels(system, syms):
    n, p = system.n_states, system.n_params
    rows = _derivatives(system, syms)
    flat = "t, y, theta, y, out.reshape(out.size), out.reshape(out.size)"
    return [
        _Kernel("jac_y(t, y, theta, out)", "df/dy into out, shape (n, n)",
                [rows[i].get(("y", j), 0) for i in range(n) for j in range(n)],
                [f"out[{i}, {j}]" for i in range(n) for j in range(n)],
                [(1, i * n + j) for i in range(n) for j in range(n)], flat, False),
        _Kernel("jac_theta(t, y, theta, out)", "df/dtheta into out, shape (n, p)",
                [rows[i].get(("theta", k), 0) for i in range(n) for k in range(p)],
                [f"out[{i}, {k}]" for i in range(n) for k in range(p)],
                [(1, i * p + k) for i in range(n) for k in range(p)], flat, False)]


_KERNELS = {"rhs": _rhs_kernels, "vjp": _vjp_kernels, "jac": _jac_kernels}


def generate_source(system, part="rhs", kernels="auto"):
    """The Python source of the generated module ``part`` of ``system``.

    Parameters
    ----------
    system : ODESystem
    part : {'rhs', 'vjp', 'jac'}, default 'rhs'
        ``'rhs'`` holds ``rhs``; ``'vjp'`` holds ``vjp``; ``'jac'`` holds
        ``jac_y`` and ``jac_theta``.
    kernels : {'auto', 'straight', 'tape'}, default 'auto'
        Straight-line code, a tape (:mod:`nodekit.symbolic.tape`), or a tape
        for kernels of more than :data:`TAPE_THRESHOLD` instructions.

    Returns
    -------
    str
        Without the cache's end marker (see :mod:`nodekit._codecache`).

    Raises
    ------
    ValueError
        If an expression (or a needed derivative) cannot be written as
        Numba-compatible code.
    """
    key = system_key(system, part, kernels)
    syms = _symbols(system)
    body = []
    for kernel in _KERNELS[part](system, syms):
        body += ["", ""] + _kernel_source(kernel, syms, kernels)
    imports = ["import numpy as np", "", "from nodekit.symbolic import tape"] \
        if any("tape.run(" in line for line in body) else []
    return "\n".join(_header(system, key, part) + imports + body) + "\n"


# --- the compiled ODE -------------------------------------------------------------
def _load_part(system, part, cache_dir, kernels):
    return _codecache.load_or_write(KIND, system_key(system, part, kernels),
                                    lambda: generate_source(system, part, kernels), cache_dir)


class SymbolicODE(ODE):
    """An ``nk.ODE`` whose kernels were generated from an :class:`ODESystem`.

    Used exactly like any ``nk.ODE`` (``nk.solve``, ``nk.odeint``).  Built by
    :meth:`ODESystem.compile`; the derivative kernels are generated on first
    use.  Pickles by its system: another process loads (or regenerates) the
    kernels from its own cache.

    Attributes
    ----------
    rhs : numba-jitted function
        The generated right-hand side (see :class:`nodekit.ODE`).
    vjp : numba-jitted function
        The generated VJP, built on first access.
    jac_y : numba-jitted function
        ``jac_y(t, y, theta, out)`` writes ``df/dy`` into ``out``, a
        float64 array of shape (n, n); built on first access.
    jac_theta : numba-jitted function
        ``jac_theta(t, y, theta, out)`` writes ``df/dtheta`` into ``out``,
        shape (n, p); built on first access.
    jac : numba-jitted function or None
        ``jac_y``, read by stiff methods (``method="rodas5"``).
    system : ODESystem
        The system the kernels were generated from.
    source_path : str
        The generated module of ``rhs`` (see :func:`module_path` for the others).
    key : str
        The hash naming it.
    n_states, n_theta : int
        The sizes of ``y`` and ``theta`` the kernels read and write.
    """

    def __init__(self, system, cache_dir=None, kernels="auto"):
        self.system = system
        self.cache_dir = cache_dir
        self.kernels = kernels
        self.key = system_key(system, "rhs", kernels)
        self._parts = {}
        mod = self._part("rhs")
        self.source_path = mod.__file__
        super().__init__(mod.rhs, None, name=system.name or f"symbolic_{self.key[:8]}")
        # the sizes the kernels read and write: y has n entries, theta p
        self.n_states, self.n_theta = system.n_states, system.n_params

    def _part(self, part):
        with _codecache.LOCK:
            if part not in self._parts:
                try:
                    self._parts[part] = _load_part(self.system, part, self.cache_dir,
                                                   self.kernels)
                except ValueError as exc:  # a derivative that cannot be written: once
                    self._parts[part] = exc
            if isinstance(self._parts[part], Exception):
                raise self._parts[part]
            return self._parts[part]

    @property
    def vjp(self):
        return self._part("vjp").vjp

    @vjp.setter
    def vjp(self, value):
        if value is not None:
            raise AttributeError("The vjp of a SymbolicODE is generated from its system; "
                                 "it cannot be set.")

    @property
    def jac_y(self):
        return self._part("jac").jac_y

    @property
    def jac_theta(self):
        return self._part("jac").jac_theta

    @property
    def jac(self):
        """``jac_y``, the Jacobian kernel stiff solvers read (``None`` when a
        derivative of the system cannot be written: they then difference)."""
        try:
            return self.jac_y
        except ValueError:
            return None

    @jac.setter
    def jac(self, value):
        if value is not None:
            raise AttributeError("The jac of a SymbolicODE is generated from its system; "
                                 "it cannot be set.")

    def check_sizes(self, y0, theta):
        """``y0`` must hold the system's ``n_states`` values and ``theta`` its
        ``n_theta`` (the kernels read exactly these; nothing checks inside).

        Raises
        ------
        ValueError
            Naming the argument, the declared size and the size received.
        """
        n = int(np.size(y0))
        if n != self.n_states:
            raise ValueError(
                f"`y0` must have {self.n_states} values for {self.name} (n_states="
                f"{self.n_states}: states {[str(s) for s in self.system.states]}); got "
                f"shape {tuple(np.shape(y0))} ({n} values). A symbolic system takes one "
                "state, not a batch.")
        if int(np.size(theta)) != self.n_theta:
            raise ValueError(
                f"`theta` must have {self.n_theta} values for {self.name} (n_theta="
                f"{self.n_theta}: params {[str(s) for s in self.system.params]}); got "
                f"{int(np.size(theta))} values.")

    def __reduce__(self):
        return compile_system, (self.system, self.cache_dir, self.kernels)

    def __repr__(self):
        return f"nk.ODE({self.name}, symbolic, key={self.key})"


_ODES = {}


def compile_system(system, cache_dir=None, kernels="auto"):
    """Generate (or find in the cache) and load the kernels of ``system``.

    See :meth:`ODESystem.compile`.  Thread-safe: threads compiling the same
    system at once get the same ``SymbolicODE``.
    """
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, bytes, os.PathLike)):
            raise TypeError(f"`cache_dir` must be a path (str or os.PathLike); got "
                            f"{type(cache_dir).__name__} {cache_dir!r}.")
        cache_dir = os.path.abspath(os.fsdecode(cache_dir))
    memo = (_codecache.cache_folder(KIND, cache_dir), system_key(system, "rhs", kernels),
            system.name)
    with _codecache.LOCK:
        if memo not in _ODES:
            _ODES[memo] = SymbolicODE(system, cache_dir, kernels)
        return _ODES[memo]
