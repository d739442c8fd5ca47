"""Test cases, defined once.

Each :class:`Case` is a SymPy system with a closed-form solution in terms of
the time, the initial time, the initial values and the parameters.  The
closed forms are written down and *verified* symbolically (the residual of
the ODE simplifies to zero and the initial condition holds: :func:`verify`),
so no numerical reference is trusted.  :func:`all_cases` lists them.

Each :class:`Reference` is a SymPy system without a closed form (Lotka-Volterra,
Van der Pol, Lorenz), checked against SciPy's ``solve_ivp`` and finite
differences of it: :func:`reference_cases` lists them.

SymPy is imported only here (and in the rest of ``validation``), never by
``nodekit``.
"""
from dataclasses import dataclass
from functools import lru_cache

import autograd.numpy as anp
import numpy as np
import sympy as sp

t, t0 = sp.symbols("t t0", real=True)


class _SystemInfo:
    """Properties shared by :class:`Case` and :class:`Reference`."""

    @property
    def dim(self):
        return len(self.states)

    @property
    def is_autonomous(self):
        return _is_autonomous(self)

    @property
    def is_linear(self):
        return _is_linear(self)

    @property
    def kind(self):
        return _kind(self)


@dataclass(frozen=True)
class Case(_SystemInfo):
    """One ODE with a closed-form solution.

    Attributes
    ----------
    name : str
    states, params : tuple of sympy.Symbol
    rhs : tuple of sympy.Expr
        ``dy_i/dt`` in terms of ``t``, ``states`` and ``params``.
    initial : tuple of sympy.Symbol
        Symbols standing for ``y(t0)``.
    solution : tuple of sympy.Expr
        ``y_i(t)`` in terms of ``t``, ``t0``, ``initial`` and ``params``.
    y0, theta : tuple of float
        Default numerical values.
    t_span : tuple of float
    dim, is_autonomous, is_linear, kind : properties
        Size of the state; whether ``t`` is absent from ``rhs``; whether
        ``rhs`` is affine in the states; the three as a phrase.
    """

    name: str
    states: tuple
    params: tuple
    rhs: tuple
    initial: tuple
    solution: tuple
    y0: tuple
    theta: tuple
    t_span: tuple

    def fun(self):
        """The right-hand side as an autograd-NumPy function ``fun(t, y, theta)``."""
        return _fun(self)


    def exact(self, ts, y0=None, theta=None):
        """Closed-form ``y(ts)``, shape ``(len(ts), n)``, with ``t0 = ts[0]``."""
        ts = np.asarray(ts, dtype=float)
        y0 = self.y0 if y0 is None else y0
        theta = self.theta if theta is None else theta
        f = _solution_fn(self)
        cols = [np.broadcast_to(np.asarray(c, dtype=float), ts.shape)
                for c in f(ts, ts[0], tuple(y0), tuple(theta))]
        return np.stack(cols, axis=-1)


    def exact_gradient(self, ts, weights, y0=None, theta=None):
        """Closed-form gradient of ``L = sum(weights * y(ts))``.

        ``weights`` has shape ``(len(ts), n)``; the solution is differentiated
        symbolically, so nothing numerical is trusted.

        Returns
        -------
        dy0 : ndarray, shape (n,)
        dtheta : ndarray, shape (p,)
        dt : ndarray, shape (len(ts),)
            With respect to every time, ``ts[0]`` (the initial time) included.
        """
        ts = np.asarray(ts, dtype=float)
        y0 = self.y0 if y0 is None else y0
        theta = self.theta if theta is None else theta
        weights = np.asarray(weights, dtype=float)
        d_init, d_par, d_t, d_t0 = _derivative_fns(self)
        args = lambda tj: (tj, ts[0], tuple(y0), tuple(theta))
        dy0 = sum(weights[j] @ np.array(d_init(*args(ts[j])), dtype=float).reshape(
            len(self.states), len(self.initial)) for j in range(ts.size))
        dth = sum(weights[j] @ np.array(d_par(*args(ts[j])), dtype=float).reshape(
            len(self.states), len(self.params)) for j in range(ts.size))
        dt = np.array([weights[j] @ np.ravel(np.array(d_t(*args(ts[j])), dtype=float))
                       for j in range(ts.size)])
        # y(ts[0]) = y0 whatever t0: the initial time acts through the other outputs
        dt[0] = sum(weights[j] @ np.ravel(np.array(d_t0(*args(ts[j])), dtype=float))
                    for j in range(1, ts.size))
        return np.asarray(dy0, dtype=float), np.asarray(dth, dtype=float), dt


def _is_autonomous(case):
    return not any(f.has(t) for f in case.rhs)


def _is_linear(case):
    """Affine in the states: every second derivative vanishes identically."""
    return all(sp.simplify(sp.diff(f, a, b)) == 0
               for f in case.rhs for a in case.states for b in case.states)


def _kind(case):
    return ", ".join(("scalar" if case.dim == 1 else f"{case.dim}-D",
                      "autonomous" if case.is_autonomous else "nonautonomous",
                      "linear" if case.is_linear else "nonlinear"))


@dataclass(frozen=True)
class Reference(_SystemInfo):
    """An ODE without a closed form, checked against SciPy.

    Attributes
    ----------
    name : str
    states, params : tuple of sympy.Symbol
    rhs : tuple of sympy.Expr
        ``dy_i/dt`` in terms of ``t``, ``states`` and ``params``.
    y0, theta : tuple of float
        Default numerical values.
    t_span : tuple of float
        A short horizon, on which central finite differences of a
        tight-tolerance SciPy solution are an accurate reference.
    """

    name: str
    states: tuple
    params: tuple
    rhs: tuple
    y0: tuple
    theta: tuple
    t_span: tuple

    def fun(self):
        """The right-hand side as an autograd-NumPy function ``fun(t, y, theta)``."""
        return _fun(self)

    def numpy_fun(self):
        """The right-hand side as a plain NumPy ``fun(t, y, theta) -> list``
        (for ``scipy.integrate.solve_ivp``)."""
        return _numpy_fun(self)

    def vjp(self):
        """``vjp(t, y, theta, a) -> (a^T df/dy, a^T df/dtheta)`` from the
        SymPy Jacobians (to check compiled kernels against)."""
        return _numpy_vjp(self)



@lru_cache(maxsize=None)
def _numpy_fun(case):
    return sp.lambdify((t, case.states, case.params), list(case.rhs), modules="numpy")


@lru_cache(maxsize=None)
def _numpy_vjp(case):
    f = sp.Matrix(case.rhs)
    jy = sp.lambdify((t, case.states, case.params), f.jacobian(sp.Matrix(case.states)),
                     modules="numpy")
    jp = sp.lambdify((t, case.states, case.params), f.jacobian(sp.Matrix(case.params)),
                     modules="numpy")

    def vjp(tt, y, theta, a):
        a = np.asarray(a, dtype=float)
        return (a @ np.array(jy(tt, y, theta), dtype=float),
                a @ np.array(jp(tt, y, theta), dtype=float))
    return vjp


@lru_cache(maxsize=None)
def _derivative_fns(case):
    sol = sp.Matrix(case.solution)
    mats = (sol.jacobian(sp.Matrix(case.initial)), sol.jacobian(sp.Matrix(case.params)),
            sol.diff(t), sol.diff(t0))
    return tuple(sp.lambdify((t, t0, case.initial, case.params), M.tolist(), modules="numpy")
                 for M in mats)


@lru_cache(maxsize=None)
def _fun(case):
    f = sp.lambdify((t, case.states, case.params), list(case.rhs), modules=anp)

    def fun(tt, y, theta):
        return anp.array(f(tt, y, theta))
    fun.__name__ = case.name
    return fun


@lru_cache(maxsize=None)
def _solution_fn(case):
    return sp.lambdify((t, t0, case.initial, case.params), list(case.solution),
                       modules="numpy")


def _is_zero(expr):
    """True if ``expr`` simplifies to zero.

    Cheap equivalence transformations first (expansion, then rational
    cancellation, then trigonometric simplification), ``sympy.simplify``
    last: each step rewrites the expression into an equal one, so a zero at
    any step is a proof.  (The cheap steps settle most cases in a fraction
    of the time ``simplify`` alone takes.)
    """
    e = sp.expand(expr)
    if e == 0:
        return True
    e = sp.cancel(sp.together(e))
    if e == 0:
        return True
    if e.has(sp.sin, sp.cos, sp.tan):
        e = sp.trigsimp(sp.cancel(sp.together(sp.expand_trig(e))))
        if e == 0:
            return True
    return sp.simplify(e) == 0


def verify(case):
    """Check symbolically that ``case.solution`` solves ``case.rhs`` with the
    initial values; returns the list of nonzero residuals (empty if exact).

    Each entry is ``(case name, component, "ode" or "initial", residual)``.
    """
    subs = dict(zip(case.states, case.solution))
    bad = []
    for i, (sol, f) in enumerate(zip(case.solution, case.rhs)):
        r = sp.diff(sol, t) - f.subs(subs)
        if not _is_zero(r):
            bad.append((case.name, i, "ode", sp.simplify(r)))
        r0 = sol.subs(t, t0) - case.initial[i]
        if not _is_zero(r0):
            bad.append((case.name, i, "initial", sp.simplify(r0)))
    return bad


def _sym(names):
    return sp.symbols(names, real=True)


def _decay():
    y, k, y0 = _sym("y k y_0")
    return Case("exponential decay", (y,), (k,), (-k * y,), (y0,),
                (y0 * sp.exp(-k * (t - t0)),), (2.0,), (0.7,), (0.0, 5.0))


def _logistic():
    y, r, K, y0 = _sym("y r K y_0")
    sol = K * y0 / (y0 + (K - y0) * sp.exp(-r * (t - t0)))
    return Case("logistic", (y,), (r, K), (r * y * (1 - y / K),), (y0,), (sol,),
                (0.1,), (1.3, 2.0), (0.0, 8.0))


def _spiral():
    x, y, a, b, x0, y0 = _sym("x y a b x_0 y_0")
    M = sp.Matrix([[-a, b], [-b, -a]])
    tau = t - t0
    # the matrix exponential of M*tau, written out and verified below
    E = sp.exp(-a * tau) * sp.Matrix([[sp.cos(b * tau), sp.sin(b * tau)],
                                      [-sp.sin(b * tau), sp.cos(b * tau)]])
    sol = E * sp.Matrix([x0, y0])
    rhs = M * sp.Matrix([x, y])
    return Case("linear spiral", (x, y), (a, b), tuple(rhs), (x0, y0), tuple(sol),
                (2.0, 0.0), (0.1, 2.0), (0.0, 10.0))


def _nonautonomous():
    y, k, y0 = _sym("y k y_0")
    return Case("nonautonomous growth", (y,), (k,), (k * sp.cos(t) * y,), (y0,),
                (y0 * sp.exp(k * (sp.sin(t) - sp.sin(t0))),), (1.0,), (1.5,), (0.0, 6.0))


def _forced():
    y, k, w, y0 = _sym("y k w y_0")
    # dy/dt = -k y + sin(w t): linear, nonautonomous
    part = lambda s: (k * sp.sin(w * s) - w * sp.cos(w * s)) / (k**2 + w**2)
    sol = part(t) + (y0 - part(t0)) * sp.exp(-k * (t - t0))
    return Case("forced decay", (y,), (k, w), (-k * y + sp.sin(w * t),), (y0,), (sol,),
                (1.0,), (0.5, 3.0), (0.0, 6.0))


def _riccati():
    y, a, b, y0 = _sym("y a b y_0")
    # dy/dt = a (y - b t)^2 + b (all three Riccati coefficients nonzero, and
    # nonautonomous).  y = b t is a particular solution; y = b t + 1/v turns
    # the equation into v' = -a.  With y0 < b t0, v < 0 never vanishes.
    sol = b * t + 1 / (1 / (y0 - b * t0) - a * (t - t0))
    return Case("riccati", (y,), (a, b), (a * (y - b * t) ** 2 + b,), (y0,), (sol,),
                (-0.5,), (0.8, 0.6), (0.0, 4.0))


def _bernoulli():
    y, a, b, y0 = _sym("y a b y_0")
    # dy/dt = a y - b y^3; u = y^-2 solves the linear u' = -2 a u + 2 b
    E = sp.exp(a * (t - t0))
    sol = y0 * E / sp.sqrt(1 + b / a * y0 ** 2 * (E ** 2 - 1))
    return Case("bernoulli", (y,), (a, b), (a * y - b * y ** 3,), (y0,), (sol,),
                (0.2,), (0.8, 2.0), (0.0, 4.0))


def _gompertz():
    # log(K/y) needs y, K > 0: positive symbols (the closed form stays positive)
    y, r, K, y0 = sp.symbols("y r K y_0", positive=True)
    sol = K * sp.exp(sp.log(y0 / K) * sp.exp(-r * (t - t0)))
    return Case("gompertz", (y,), (r, K), (r * y * sp.log(K / y),), (y0,), (sol,),
                (0.2,), (0.7, 3.0), (0.0, 6.0))


#: Eigenvectors (columns) of the 3-D linear case.
_P3 = sp.Matrix([[1, 1, 0], [0, 1, 1], [1, 0, 1]])


def _linear3():
    x, y, z, a, b, c, x0, y0, z0 = _sym("x y z a b c x_0 y_0 z_0")
    # M = P diag(-a, -b, c) P^-1: real distinct eigenvalues, a non-normal,
    # fully coupled matrix; exp(M tau) = P exp(D tau) P^-1 (SymPy's own route
    # through the eigendecomposition, written out: Matrix.exp on the symbolic
    # M takes seconds)
    D = sp.diag(-a, -b, c)
    Pinv = _P3.inv()
    M = _P3 * D * Pinv
    E = _P3 * (D * (t - t0)).exp() * Pinv
    sol = E * sp.Matrix([x0, y0, z0])
    rhs = M * sp.Matrix([x, y, z])
    return Case("linear 3-D", (x, y, z), (a, b, c), tuple(rhs), (x0, y0, z0),
                tuple(sol), (1.0, -0.5, 0.7), (0.4, 1.1, 0.25), (0.0, 2.0))


def _damped_oscillator():
    x, v, g, w, x0, v0 = _sym("x v gamma omega x_0 v_0")
    # x'' + 2 gamma x' + (gamma^2 + omega^2) x = 0: underdamped, damped
    # frequency omega (parametrised by it, so the closed form has no roots)
    tau = t - t0
    X = sp.exp(-g * tau) * (x0 * sp.cos(w * tau) + (v0 + g * x0) / w * sp.sin(w * tau))
    return Case("damped oscillator", (x, v), (g, w),
                (v, -2 * g * v - (g ** 2 + w ** 2) * x), (x0, v0), (X, sp.diff(X, t)),
                (1.0, 0.0), (0.15, 2.0), (0.0, 5.0))


def _forced_oscillator():
    x, v, w, nu, F, x0, v0 = _sym("x v omega nu F x_0 v_0")
    # x'' + omega^2 x = F cos(nu t), nu != omega (no resonance): homogeneous
    # part plus the particular solution F cos(nu t) / (omega^2 - nu^2)
    tau = t - t0
    A = F / (w ** 2 - nu ** 2)
    X = ((x0 - A * sp.cos(nu * t0)) * sp.cos(w * tau)
         + (v0 + A * nu * sp.sin(nu * t0)) / w * sp.sin(w * tau) + A * sp.cos(nu * t))
    return Case("forced oscillator", (x, v), (w, nu, F),
                (v, -w ** 2 * x + F * sp.cos(nu * t)), (x0, v0), (X, sp.diff(X, t)),
                (0.5, 0.0), (1.5, 0.9, 0.8), (0.0, 5.0))


def _hopf():
    x, y, mu, w, x0, y0 = _sym("x y mu omega x_0 y_0")
    # the Hopf normal form: in polar coordinates r' = mu r - r^3 (Bernoulli)
    # and phi' = omega, so the flow is a rotation times a radial scaling s
    tau = t - t0
    s = 1 / sp.sqrt(sp.exp(-2 * mu * tau)
                    + (x0 ** 2 + y0 ** 2) / mu * (1 - sp.exp(-2 * mu * tau)))
    X = s * (x0 * sp.cos(w * tau) - y0 * sp.sin(w * tau))
    Y = s * (x0 * sp.sin(w * tau) + y0 * sp.cos(w * tau))
    r2 = x ** 2 + y ** 2
    return Case("hopf normal form", (x, y), (mu, w),
                (mu * x - w * y - x * r2, w * x + mu * y - y * r2), (x0, y0), (X, Y),
                (0.5, 0.0), (0.5, 2.0), (0.0, 3.0))


@lru_cache(maxsize=None)
def all_cases():
    """The closed-form cases, by name."""
    return {c.name: c for c in (_decay(), _logistic(), _spiral(), _nonautonomous(),
                                 _forced(), _riccati(), _bernoulli(), _gompertz(),
                                 _linear3(), _damped_oscillator(), _forced_oscillator(),
                                 _hopf())}


def _lotka_volterra():
    x, y, a, b, c, d = _sym("x y alpha beta gamma delta")
    return Reference("lotka-volterra", (x, y), (a, b, c, d),
                     (a * x - b * x * y, -c * y + d * x * y), (1.0, 1.0),
                     (1.5, 1.0, 3.0, 1.0), (0.0, 3.0))


def _van_der_pol():
    x, v, mu = _sym("x v mu")
    return Reference("van der pol", (x, v), (mu,), (v, mu * (1 - x ** 2) * v - x),
                     (2.0, 0.0), (2.0,), (0.0, 3.0))


def _lorenz():
    x, y, z, s, r, b = _sym("x y z sigma rho beta")
    return Reference("lorenz", (x, y, z), (s, r, b),
                     (s * (y - x), x * (r - z) - y, x * y - b * z), (1.0, 1.0, 1.0),
                     (10.0, 28.0, 8.0 / 3.0), (0.0, 1.0))


@lru_cache(maxsize=None)
def reference_cases():
    """The problems without a closed form, by name."""
    return {c.name: c for c in (_lotka_volterra(), _van_der_pol(), _lorenz())}
