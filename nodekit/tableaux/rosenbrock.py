"""Rosenbrock (linearly implicit) methods for stiff problems, as data.

A Rosenbrock method with ``s`` stages solves, per step, ``s`` linear systems
with the one matrix ``I - h gamma J`` (``J = df/dy`` at the step's start).
It is stored here in the transformed form that codes use (Hairer and
Wanner, Sec. IV.7, eq. (7.4'); ``U_i = sum_j Gamma_ij k_i``)::

    (I / (h gamma) - J) U_i = f(t + c_i h, y + sum_j a_ij U_j)
                              + sum_j (C_ij / h) U_j + h d_i df/dt
    y_new = y + sum_i m_i U_i,    error estimate  sum_i e_i U_i

and each tableau derives from it, exactly, the classical coefficients
``alpha = a Gamma``, ``Gamma = (diag(1/gamma) - C)^-1``, ``b = m Gamma``, in
which the order conditions are written (:func:`rosenbrock_order_residuals`).

The float arrays the compiled loop reads use the explicit tableaux' slot
convention: stage ``i`` is stored as ``K_i = U_i / h``, so the error weights
``E``, the solution weights ``M`` and the dense-output matrix ``P`` act on
``h K`` exactly as for :class:`~nodekit.tableaux.ButcherTableau`, and the
same output interpolation serves both families.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from .core import DECIMAL_TOL, Row, _float_array, _vec
from .trees import _weights_residuals, tree_density, tree_order

__all__ = ["RODAS4", "RODAS5", "ROS3P", "ROSENBROCK_METHODS", "RosenbrockTableau",
           "rosenbrock_order_residuals"]


def _mat(rows, s):
    """Square exact matrix (list of lists) from ragged lower-triangular rows."""
    return [[(r[j] if j < len(r) else Fraction(0)) for j in range(s)] for r in rows]


def _inverse(M):
    """Exact inverse of a lower-triangular Fraction matrix (forward substitution)."""
    s = len(M)
    inv = [[Fraction(0)] * s for _ in range(s)]
    for col in range(s):
        for i in range(s):
            acc = Fraction(int(i == col))
            for k in range(i):
                acc -= M[i][k] * inv[k][col]
            inv[i][col] = acc / M[i][i]
    return inv


def _matmul(X, Y):
    return [[sum((X[i][k] * Y[k][j] for k in range(len(Y))), Fraction(0))
             for j in range(len(Y[0]))] for i in range(len(X))]


@dataclass(frozen=True)
class RosenbrockTableau:
    """A Rosenbrock method in the transformed form, with checks.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``'rodas5'``.
    order, error_order, dense_order : int
        Order of the solution, of the embedded solution ``m - e``, and of the
        dense output.
    references : str
        Literature references.
    gamma : Fraction or str
        The diagonal ``gamma_ii``.
    a, C : tuple of tuple
        Strictly lower-triangular transformed coefficients, row ``i`` of
        length ``i``.
    m, e : tuple
        Solution weights and error weights (``y_new - y_hat``), length ``s``.
    c, d : tuple
        Nodes ``c_i = sum_j alpha_ij`` and ``d_i = sum_j Gamma_ij`` (the
        weights of ``df/dt``), as published; checked against ``a`` and ``C``.
    dense : tuple of tuple
        Rows ``h_1, h_2, ...`` of the dense output
        ``y(t + theta h) = (1 - theta) y + theta (y_new + (1 - theta)
        (D_1 + theta D_2 + theta^2 D_3 ...))`` with ``D_r = sum_j h_rj U_j``.
    exact : bool
        False for coefficients published as decimals (checked to
        :data:`~nodekit.tableaux.DECIMAL_TOL`).
    defect_theta : Fraction or str, optional
        If given, every step's error estimate is also checked against the
        defect of the dense output at ``theta`` (see :data:`RODAS5`): the
        step is accepted only if both are within tolerance.

    Attributes
    ----------
    n_stages : int
    alpha, Gamma, b, b_hat : tuple
        Exact classical coefficients derived from the transformed ones.
    A, Cm : ndarray, shape (s, s)
        ``a`` and ``C`` as floats.
    M, E, c_arr, d_arr : ndarray, shape (s,)
    P : ndarray, shape (s, q)
        Dense output on ``K_i = U_i / h``: ``y(t + theta h) = y + h sum_i K_i
        sum_j P[i, j] theta**(j+1)``.
    defect_weights : ndarray, shape (2, s)
        With `defect_theta`: the dense output's weights at ``theta`` (row 0)
        and those of its time derivative (row 1, ``y'(t + theta h) = sum_i
        K_i row1_i``); zeros without.
    """

    name: str
    order: int
    error_order: int
    dense_order: int
    references: str
    gamma: Fraction
    a: tuple
    C: tuple
    m: Row
    e: Row
    c: Row
    d: Row
    dense: tuple = ()
    exact: bool = False
    defect_theta: Fraction | None = None

    n_stages: int = field(init=False, repr=False, compare=False)
    alpha: tuple = field(init=False, repr=False, compare=False)
    Gamma: tuple = field(init=False, repr=False, compare=False)
    b: tuple = field(init=False, repr=False, compare=False)
    b_hat: tuple = field(init=False, repr=False, compare=False)
    P_exact: tuple = field(init=False, repr=False, compare=False)
    A: np.ndarray = field(init=False, repr=False, compare=False)
    Cm: np.ndarray = field(init=False, repr=False, compare=False)
    M: np.ndarray = field(init=False, repr=False, compare=False)
    E: np.ndarray = field(init=False, repr=False, compare=False)
    c_arr: np.ndarray = field(init=False, repr=False, compare=False)
    d_arr: np.ndarray = field(init=False, repr=False, compare=False)
    P: np.ndarray = field(init=False, repr=False, compare=False)
    defect_weights: np.ndarray = field(init=False, repr=False, compare=False)

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _fail(self, msg):
        raise ValueError(f"inconsistent Rosenbrock tableau {self.name!r}: {msg}")

    def _eq(self, x, y):
        return x == y if self.exact else abs(x - y) <= DECIMAL_TOL

    def __post_init__(self):
        self._normalise()
        s = len(self.m)
        self._check_shapes(s)
        alpha, Gamma = self._classical(s)
        self._check_nodes(alpha, Gamma)
        P = self._dense_P(s)
        self._store(s, alpha, Gamma, P)

    def _normalise(self):
        self._set("gamma", Fraction(self.gamma))
        for nm in ("m", "e", "c", "d"):
            self._set(nm, _vec(getattr(self, nm)))
        for nm in ("a", "C", "dense"):
            self._set(nm, tuple(_vec(r) for r in getattr(self, nm)))
        if self.defect_theta is not None:
            self._set("defect_theta", Fraction(self.defect_theta))

    def _check_shapes(self, s):
        if not self.gamma > 0:
            self._fail(f"`gamma` must be positive; got {float(self.gamma)!r}.")
        for nm in ("e", "c", "d"):
            if len(getattr(self, nm)) != s:
                self._fail(f"len({nm})={len(getattr(self, nm))} must equal len(m)={s}.")
        for nm in ("a", "C"):
            rows = getattr(self, nm)
            if len(rows) != s or any(len(r) > i for i, r in enumerate(rows)):
                self._fail(f"`{nm}` must have {s} strictly lower-triangular rows.")
        if any(len(r) != s for r in self.dense):
            self._fail(f"every dense-output row must have length {s}.")

    def _classical(self, s):
        """``Gamma = (diag(1/gamma) - C)^-1`` and ``alpha = a Gamma``."""
        Cm = _mat(self.C, s)
        inv_gamma = [[(1 / self.gamma if i == j else Fraction(0)) - Cm[i][j]
                      for j in range(s)] for i in range(s)]
        Gamma = _inverse(inv_gamma)
        alpha = _matmul(_mat(self.a, s), Gamma)
        return alpha, Gamma

    def _check_nodes(self, alpha, Gamma):
        for i, (row, g) in enumerate(zip(alpha, Gamma)):
            if not self._eq(sum(row), self.c[i]):
                self._fail(f"c[{i}]={float(self.c[i])!r} but the row sum of alpha is "
                           f"{float(sum(row))!r}.")
            if not self._eq(sum(g), self.d[i]):
                self._fail(f"d[{i}]={float(self.d[i])!r} but the row sum of Gamma is "
                           f"{float(sum(g))!r}.")

    def _dense_P(self, s):
        """``y(theta) = y + theta sum_j m_j U_j + theta (1 - theta) sum_r theta^r D_r``
        with ``D_r = sum_j h_rj U_j``, expanded in powers of theta."""
        q = len(self.dense) + 1
        P = []
        for j in range(s):
            coef = [self.m[j]] + [Fraction(0)] * (q - 1)
            for r, row in enumerate(self.dense):      # (theta^(r+1) - theta^(r+2)) h_rj
                coef[r] += row[j]
                coef[r + 1] -= row[j]
            P.append(tuple(coef))
        return tuple(P)

    def _store(self, s, alpha, Gamma, P):
        self._set("n_stages", s)
        self._set("alpha", tuple(tuple(r) for r in alpha))
        self._set("Gamma", tuple(tuple(r) for r in Gamma))
        b = _matmul([list(self.m)], Gamma)[0]
        b_hat = _matmul([[x - y for x, y in zip(self.m, self.e)]], Gamma)[0]
        self._set("b", tuple(b))
        self._set("b_hat", tuple(b_hat))
        if not self._eq(sum(b), 1):
            self._fail(f"sum(b) must be 1; got {float(sum(b))!r}.")
        self._set("P_exact", P)

        def flt(x, shape):
            return _float_array([float(v) for v in x], shape)

        self._set("A", flt([v for r in _mat(self.a, s) for v in r], (s, s)))
        self._set("Cm", flt([v for r in _mat(self.C, s) for v in r], (s, s)))
        self._set("M", flt(self.m, (s,)))
        self._set("E", flt(self.e, (s,)))
        self._set("c_arr", flt(self.c, (s,)))
        self._set("d_arr", flt(self.d, (s,)))
        self._set("P", flt([v for r in P for v in r], (s, len(P[0]))))
        self._set("defect_weights", flt(self._defect_weights(P, s), (2, s)))

    def _defect_weights(self, P, s):
        """Rows ``sum_j P[i, j] theta^(j+1)`` and ``sum_j (j+1) P[i, j] theta^j``."""
        if self.defect_theta is None:
            return [0.0] * (2 * s)
        th = self.defect_theta
        if not 0 < th < 1:
            self._fail(f"`defect_theta` must lie in (0, 1); got {float(th)!r}.")
        value = [sum(coef * th ** (k + 1) for k, coef in enumerate(row)) for row in P]
        slope = [sum((k + 1) * coef * th ** k for k, coef in enumerate(row)) for row in P]
        return value + slope

    def __repr__(self):
        return (f"RosenbrockTableau({self.name!r}, order {self.order}({self.error_order}), "
                f"{self.n_stages} stages, gamma={float(self.gamma):g}, "
                f"dense order {self.dense_order})")


def rosenbrock_order_residuals(tableau: RosenbrockTableau, max_order: int,
                               which: str = "b", theta=None):
    """Order-condition residuals of a Rosenbrock method, in exact arithmetic.

    For every rooted tree ``t`` with ``|t| <= max_order`` the condition is
    ``sum_i b_i Phi_i(t) = 1 / gamma(t)``, where ``Phi`` is built from
    ``alpha`` at vertices with two or more children and from
    ``beta = alpha + Gamma`` (diagonal ``gamma`` included) at vertices with
    one child (Hairer and Wanner, Sec. IV.7).

    Parameters
    ----------
    tableau : RosenbrockTableau
    max_order : int
        Largest tree order.
    which : {'b', 'b_hat', 'dense'}, optional
        The solution, the embedded solution, or the dense output at `theta`
        (condition ``sum_i b_i(theta) Phi_i(t) = theta**|t| / gamma(t)``).
    theta : Fraction or str, optional
        Position in the step for ``which='dense'``.

    Returns
    -------
    list of (str, int, Fraction)
        ``(tree symbol, tree order, residual)``.
    """
    s = tableau.n_stages
    one, zero = Fraction(1), Fraction(0)
    beta = [[tableau.alpha[i][j] + tableau.Gamma[i][j] for j in range(s)] for i in range(s)]
    th = one
    if which == "b":
        w = tableau.b
    elif which == "b_hat":
        w = tableau.b_hat
    elif which == "dense":
        th = Fraction(theta)
        p = [sum((coef * th ** (k + 1) for k, coef in enumerate(row)), zero)
             for row in tableau.P_exact]
        w = _matmul([p], [list(r) for r in tableau.Gamma])[0]
    else:
        raise ValueError(f"`which` must be 'b', 'b_hat' or 'dense'; got {which!r}.")

    def rhs(t):  # theta**|t| / gamma(t), theta = 1 for the step's end
        return th ** tree_order(t) / tree_density(t)

    return _weights_residuals([list(r) for r in tableau.alpha], [zero] * s, list(w),
                              max_order, rhs, one, zero, single=beta)


# ---------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------
_HW2 = ("E. Hairer, G. Wanner, \"Solving Ordinary Differential Equations II: Stiff "
        "and Differential-Algebraic Problems\", 2nd ed., Springer, 1996, Sec. IV.7.")

_R5_A6 = ("-14.09640773051259", "6.925207756232704", "-41.47510893210728",
          "2.343771018586405", "24.13215229196062")

#: Rodas5(4): Di Marzo's stiffly accurate 8-stage Rosenbrock method of order
#: 5 with an embedded order-4 solution (the error estimate is the last stage)
#: and an order-4 dense output; L-stable.  Decimal coefficients as tabulated
#: in the transformed form (16 digits); the order conditions are verified.
#: Its error weights live on the last three stages, which share node 1 and
#: carry no ``df/dt`` term, so the embedded estimate vanishes identically on
#: a component that depends on time alone (``y' = g(t)``); the loop
#: therefore also checks the defect of the dense output at the step's
#: middle (``defect_theta = 1/2``, see :func:`nodekit._implicit.defect_error`).
RODAS5 = RosenbrockTableau(
    name="rodas5", order=5, error_order=4, dense_order=4,
    references="G. Di Marzo, \"RODAS5(4) -- Methodes de Rosenbrock d'ordre 5(4) "
               "adaptees aux problemes differentiels-algebriques\", Master's thesis, "
               "University of Geneva, 1993. " + _HW2,
    gamma="0.19",
    a=((),
       ("2.0",),
       ("3.040894194418781", "1.041747909077569"),
       ("2.576417536461461", "1.622083060776640", "-0.9089668560264532"),
       ("2.760842080225597", "1.446624659844071", "-0.3036980084553738",
        "0.2877498600325443"),
       _R5_A6,
       _R5_A6 + ("1",),
       _R5_A6 + ("1", "1")),
    C=((),
       ("-10.31323885133993",),
       ("-21.04823117650003", "-7.234992135176716"),
       ("32.22751541853323", "-4.943732386540191", "19.44922031041879"),
       ("-20.69865579590063", "-8.816374604402768", "1.260436877740897",
        "-0.7495647613787146"),
       ("-46.22004352711257", "-17.49534862857472", "-289.6389582892057",
        "93.60855400400906", "318.3822534212147"),
       ("34.20013733472935", "-14.15535402717690", "57.82335640988400",
        "25.83362985412365", "1.408950972071624", "-6.551835421242162"),
       ("42.57076742291101", "-13.80770672017997", "93.98938432427124",
        "18.77919633714503", "-31.58359187223370", "-6.685968952921985",
        "-5.810979938412932")),
    m=_R5_A6 + ("1", "1", "1"),
    e=(0, 0, 0, 0, 0, 0, 0, 1),
    c=("0", "0.38", "0.3878509998321533", "0.4839718937873840", "0.4570477008819580",
       "1", "1", "1"),
    d=("0.19", "-0.1823079225333714636", "-0.319231832186874912", "0.3449828624725343",
       "-0.377417564392089818", "0", "0", "0"),
    dense=(("27.354592673333357", "-6.925207756232857", "26.40037733258859",
            "0.5635230501052979", "-4.699151156849391", "-1.6008677469422725",
            "-1.5306074446748028", "-1.3929872940716344"),
           ("44.19024239501722", "1.3677947663381929e-13", "202.93261852171622",
            "-35.5669339789154", "-181.91095152160645", "3.4116351403665033",
            "2.5793540257308067", "2.2435122582734066"),
           ("-44.0988150021747", "-5.755396159656812e-13", "-181.26175034586677",
            "56.99302194811676", "183.21182741427398", "-7.480257918273637",
            "-5.792426076169686", "-5.32503859794143")),
    defect_theta="1/2")

_R4_A5 = ("1.221224509226641", "6.019134481288629", "12.53708332932087",
          "-0.6878860361058950")

#: Rodas4(3): Hairer and Wanner's stiffly accurate 6-stage Rosenbrock method
#: of order 4 (code RODAS) with an embedded order-3 solution (the last stage)
#: and an order-3 dense output; L-stable.  Decimal coefficients of the
#: transformed form; the order conditions are verified.
RODAS4 = RosenbrockTableau(
    name="rodas4", order=4, error_order=3, dense_order=3,
    references=_HW2 + " (the method of their code RODAS).",
    gamma="0.25",
    a=((),
       ("1.544",),
       ("0.9466785280815826", "0.2557011698983284"),
       ("3.314825187068521", "2.896124015972201", "0.9986419139977817"),
       _R4_A5,
       _R4_A5 + ("1",)),
    C=((),
       ("-5.6688",),
       ("-2.430093356833875", "-0.2063599157091915"),
       ("-0.1073529058151375", "-9.594562251023355", "-20.47028614809616"),
       ("7.496443313967647", "-10.24680431464352", "-33.99990352819905",
        "11.70890893206160"),
       ("8.083246795921522", "-7.981132988064893", "-31.52159432874371",
        "16.31930543123136", "-6.058818238834054")),
    m=_R4_A5 + ("1", "1"),
    e=(0, 0, 0, 0, 0, 1),
    c=("0", "0.386", "0.21", "0.63", "1", "1"),
    d=("0.25", "-0.1043", "0.1035", "-0.0362", "0", "0"),
    dense=(("10.12623508344586", "-7.487995877610167", "-34.80091861555747",
            "-7.992771707568823", "1.025137723295662", "0"),
           ("-0.6762803392801253", "6.087714651680015", "16.43084320892478",
            "24.76722511418386", "-6.594389125716872", "0")))

def _second_order_dense_row(tab):
    """The one dense-output row ``h_1`` of least norm that makes the
    interpolant of ``tab`` second order at every theta, exactly.

    With ``y(theta) = y + theta sum_j m_j U_j + theta (1 - theta) sum_j h_j
    U_j`` the conditions are ``h Gamma 1 = 0`` (order 1) and ``h Gamma v =
    -1/2`` with ``v = (alpha + Gamma) 1`` (order 2; ``b v = 1/2``)."""
    s = tab.n_stages
    G = tab.Gamma
    d = [sum(G[i]) for i in range(s)]
    v = [sum(tab.alpha[i]) + sum(G[i]) for i in range(s)]
    Gv = [sum(G[i][j] * v[j] for j in range(s)) for i in range(s)]
    rows = (d, Gv)
    rhs = (Fraction(0), Fraction(-1, 2))
    # least norm: h = R^T (R R^T)^-1 rhs
    g = [[sum(x * y for x, y in zip(r1, r2)) for r2 in rows] for r1 in rows]
    det = g[0][0] * g[1][1] - g[0][1] * g[1][0]
    lam = ((g[1][1] * rhs[0] - g[0][1] * rhs[1]) / det,
           (g[0][0] * rhs[1] - g[1][0] * rhs[0]) / det)
    return tuple(lam[0] * d[j] + lam[1] * Gv[j] for j in range(s))


def _ros3p():
    """ROS3P with a fourth, estimate-only stage at ``y_new``: its
    coefficients involve ``sqrt(3)``, stored to 40 digits (``Fraction`` of
    the decimal strings), in the transformed form."""
    with localcontext() as ctx:
        ctx.prec = 40
        r3 = Decimal(3).sqrt()

        def q(x):
            return Fraction(str(x))

        g = Decimal(1) / 2 + r3 / 6            # gamma; 1 / gamma = 3 - sqrt 3
        m = (2, q(r3 / 3), q(1 - r3 / 3))
        base = RosenbrockTableau(
            name="ros3p", order=3, error_order=2, dense_order=2,
            references="J. Lang, J. Verwer, \"ROS3P -- an accurate third-order "
                       "Rosenbrock solver designed for parabolic problems\", BIT Numer. "
                       "Math. 41(4), 731-738, 2001 (the method; its error estimate is "
                       "nodekit's, see the module).",
            gamma=q(g),
            a=((), (q(3 - r3),), (q(3 - r3), 0), m),
            C=((), (q(-(12 - 6 * r3)),), (q(-2 * r3), q(-r3)), (0, 0, 0)),
            m=m + (0,),
            # y_hat = y + (1/2 + gamma) k_1 + (1/2 - gamma) k_4 (classical weights)
            e=(q((r3 - 1) / 2), q(r3 / 3), q(1 - r3 / 3), q((r3 - 1) / 2)),
            c=(0, 1, 1, 1),
            d=(q(g), q(g - 1), q(-Decimal(1) / 2 - r3 / 3), q(g)))
    return replace(base, dense=(_second_order_dense_row(base),))


#: ROS3P (Lang and Verwer 2001): a Rosenbrock method of order 3 with three
#: stages that keeps its order on parabolic problems, A-stable (not
#: L-stable: ``R(inf) = 1 - sqrt 3``); for loose tolerances.  The published
#: order-2 embedded solution is useless as an error estimate: on these
#: stages every order-2 weight vector differs from ``b`` by a multiple of
#: ``(1, -1, 0)``, and ``k_1 = k_2`` on a linear autonomous problem, where
#: the estimate therefore vanishes identically (steps would grow without
#: bound with a wrong answer).  So the error is estimated with a fourth stage
#: at ``y_new`` (``f(t + h, y_new)``, one more back-substitution, ``m_4 =
#: 0``): ``y_hat = y + (1/2 + gamma) k_1 + (1/2 - gamma) k_4`` is of order 2 and
#: differs from ROS3P on linear problems.  Dense output: the second-order
#: least-norm row on the four stages.
ROS3P = _ros3p()

#: Registry of the Rosenbrock methods by name.
ROSENBROCK_METHODS = {t.name: t for t in (RODAS4, RODAS5, ROS3P)}
