"""The explicit Runge--Kutta methods, as :class:`ButcherTableau` data.

Each method's citation is its tableau's ``references`` string (shown by
``nk.METHODS[name].references``); the comment above it says what the method
is.  :data:`METHODS` maps names to tableaux and :func:`get_tableau` resolves
a name.
"""
from __future__ import annotations

from fractions import Fraction

from . import dop853 as _dop853_data
from .core import ButcherTableau, _fr, _vec
from .dense import dop853_P
from .._scipy_compat import method_alias
from .esdirk import ESDIRK_METHODS
from .rosenbrock import ROSENBROCK_METHODS

__all__ = [
    "BOSH3",
    "CASH_KARP",
    "DOP853",
    "DOPRI5",
    "EULER",
    "HEUN",
    "HEUN_EULER",
    "METHODS",
    "MIDPOINT",
    "RALSTON",
    "RK4",
    "RK38",
    "RKF45",
    "TSIT5",
    "get_tableau",
]

_F = Fraction

_HNW = ("E. Hairer, S. P. Norsett, G. Wanner, \"Solving Ordinary Differential "
        "Equations I: Nonstiff Problems\", 2nd ed., Springer Series in "
        "Computational Mathematics 8, Springer, 1993.")
_BUTCHER = ("J. C. Butcher, \"Numerical Methods for Ordinary Differential "
            "Equations\", 3rd ed., Wiley, 2016.")

#: Forward Euler, order 1 (fixed step; cubic Hermite dense output, order 1).
EULER = ButcherTableau(
    name="euler", order=1, error_order=None, dense_order=1, fsal=False,
    references="L. Euler, \"Institutionum calculi integralis\", Vol. 1, "
               "Impensis Academiae Imperialis Scientiarum, St. Petersburg, 1768. "
               + _HNW,
    c=(0,), a=((),), b=(1,))

#: Explicit midpoint rule (Runge's method), order 2 (fixed step).
MIDPOINT = ButcherTableau(
    name="midpoint", order=2, error_order=None, dense_order=2, fsal=False,
    references="C. Runge, \"Ueber die numerische Aufloesung von "
               "Differentialgleichungen\", Mathematische Annalen 46, 167-178, 1895. "
               + _BUTCHER,
    c=(0, _F(1, 2)), a=((), (_F(1, 2),)), b=(0, 1))

_HEUN_REF = ("K. Heun, \"Neue Methoden zur approximativen Integration der "
             "Differentialgleichungen einer unabhaengigen Veraenderlichen\", "
             "Zeitschrift fuer Mathematik und Physik 45, 23-38, 1900. ")

#: Heun's method (explicit trapezoidal rule), order 2 (fixed step).
HEUN = ButcherTableau(
    name="heun", order=2, error_order=None, dense_order=2, fsal=False,
    references=_HEUN_REF + _BUTCHER,
    c=(0, 1), a=((), (1,)), b=(_F(1, 2), _F(1, 2)))

#: Ralston's second-order method (a21 = 2/3, minimum error bound), fixed step.
RALSTON = ButcherTableau(
    name="ralston", order=2, error_order=None, dense_order=2, fsal=False,
    references="A. Ralston, \"Runge-Kutta methods with minimum error bounds\", "
               "Mathematics of Computation 16(80), 431-437, 1962.",
    c=(0, _F(2, 3)), a=((), (_F(2, 3),)), b=(_F(1, 4), _F(3, 4)))

_KUTTA_REF = ("W. Kutta, \"Beitrag zur naeherungsweisen Integration totaler "
              "Differentialgleichungen\", Zeitschrift fuer Mathematik und Physik "
              "46, 435-453, 1901. ")

#: The classic fourth-order Runge--Kutta method (fixed step; Hermite dense
#: output of order 3).
RK4 = ButcherTableau(
    name="rk4", order=4, error_order=None, dense_order=3, fsal=False,
    references=_KUTTA_REF + _HNW,
    c=(0, _F(1, 2), _F(1, 2), 1),
    a=((), (_F(1, 2),), (0, _F(1, 2)), (0, 0, 1)),
    b=(_F(1, 6), _F(1, 3), _F(1, 3), _F(1, 6)))

#: Kutta's 3/8 rule, order 4 (fixed step; Hermite dense output of order 3).
RK38 = ButcherTableau(
    name="rk38", order=4, error_order=None, dense_order=3, fsal=False,
    references=_KUTTA_REF + _HNW,
    c=(0, _F(1, 3), _F(2, 3), 1),
    a=((), (_F(1, 3),), (_F(-1, 3), 1), (1, -1, 1)),
    b=(_F(1, 8), _F(3, 8), _F(3, 8), _F(1, 8)))

#: Heun--Euler 2(1) pair: Heun's method propagated, Euler embedded
#: (error_order 1).  Hermite dense output of order 2.
HEUN_EULER = ButcherTableau(
    name="heun_euler", order=2, error_order=1, dense_order=2, fsal=False,
    references=_HEUN_REF + _HNW,
    c=(0, 1), a=((), (1,)), b=(_F(1, 2), _F(1, 2)),
    b_err=(_F(-1, 2), _F(1, 2)))   # b_hat = (1, 0): Euler

#: Bogacki--Shampine 3(2) pair (FSAL), propagating the 3rd-order solution;
#: dense output is SciPy RK23's cubic (order 3).
BOSH3 = ButcherTableau(
    name="bosh3", order=3, error_order=2, dense_order=3, fsal=True,
    references="P. Bogacki, L. F. Shampine, \"A 3(2) pair of Runge-Kutta "
               "formulas\", Applied Mathematics Letters 2(4), 321-325, 1989.",
    c=(0, _F(1, 2), _F(3, 4), 1),
    a=((), (_F(1, 2),), (0, _F(3, 4)), (_F(2, 9), _F(1, 3), _F(4, 9))),
    b=(_F(2, 9), _F(1, 3), _F(4, 9), 0),
    # b_hat = (7/24, 1/4, 1/3, 1/8)
    b_err=(_F(2, 9) - _F(7, 24), _F(1, 3) - _F(1, 4), _F(4, 9) - _F(1, 3), _F(-1, 8)),
    dense=((1, _F(-4, 3), _F(5, 9)),
           (0, 1, _F(-2, 3)),
           (0, _F(4, 3), _F(-8, 9)),
           (0, -1, 1)))

# Note on the quartic dense outputs of rkf45 and cash_karp.  Neither paper
# gives one, and a cubic Hermite interpolant is an order short
# (inside a step it missed rtol 1e-12 by a factor of 100-400).  Both
# interpolants use the step's own stages and ``f(t + h, y_new)`` (no extra
# evaluation) and are the solution of linear equations in exact arithmetic:
# the continuous order conditions ``sum_k b_k(theta) Phi_k(t) =
# theta**|t| / gamma(t)`` for all trees up to order 4 as polynomial identities
# in theta (Hairer, Norsett and Wanner, Sec. II.6), ``b(1) = b``, and the
# Hermite conditions ``y'(0) = f0``, ``y'(1) = f1`` (so the dense solution is
# C1).  One coefficient stays free (the theta**4 weight of the sixth stage);
# it minimises the L2 norm over [0, 1] of the order-5 residuals.  The tests
# verify the order conditions exactly.

#: Runge--Kutta--Fehlberg 4(5).  Like the classic RKF45 code, the
#: **4th-order** solution is propagated (``order = 4``) and the difference to
#: Fehlberg's 5th-order solution estimates its local error
#: (``error_order = 4``; the embedded ``b_hat`` itself has order 5, see
#: ``embedded_order``).  Dense output of order 4: see the note on
#: quartic dense outputs above.
_RKF_B4 = (_F(25, 216), 0, _F(1408, 2565), _F(2197, 4104), _F(-1, 5), 0)
_RKF_B5 = (_F(16, 135), 0, _F(6656, 12825), _F(28561, 56430), _F(-9, 50), _F(2, 55))
RKF45 = ButcherTableau(
    name="rkf45", order=4, error_order=4, dense_order=4, fsal=False,
    references="E. Fehlberg, \"Low-order classical Runge-Kutta formulas with "
               "stepsize control and their application to some heat transfer "
               "problems\", NASA Technical Report R-315, 1969. " + _HNW,
    c=(0, _F(1, 4), _F(3, 8), _F(12, 13), 1, _F(1, 2)),
    a=((),
       (_F(1, 4),),
       (_F(3, 32), _F(9, 32)),
       (_F(1932, 2197), _F(-7200, 2197), _F(7296, 2197)),
       (_F(439, 216), -8, _F(3680, 513), _F(-845, 4104)),
       (_F(-8, 27), 2, _F(-3544, 2565), _F(1859, 4104), _F(-11, 40))),
    b=_RKF_B4,
    b_err=tuple(_F(x) - _F(y) for x, y in zip(_RKF_B4, _RKF_B5)),
    embedded_order=5,
    dense=(
        (1, _F(-1475077, 587760), _F(6565433, 2644920), _F(-1510921, 1763280)),
        (0, 0, 0, 0),
        (0, _F(5868096, 1163275), _F(-247913344, 31408425), _F(35571904, 10469475)),
        (0, _F(-417963871, 122841840), _F(4945374499, 552788280), _F(-1845741443, 368525520)),
        (0, _F(276849, 244900), _F(-374809, 122450), _F(423789, 244900)),
        (0, _F(-237441, 134695), _F(474882, 134695), _F(-237441, 134695)),
        (0, _F(3, 2), -4, _F(5, 2))))

#: Cash--Karp 5(4) pair, propagating the 5th-order solution.  Dense output of
#: order 4 (as for ``dopri5``; order 5 would need extra stages): see the note
#: on quartic dense outputs above.
_CK_B5 = (_F(37, 378), 0, _F(250, 621), _F(125, 594), 0, _F(512, 1771))
_CK_B4 = (_F(2825, 27648), 0, _F(18575, 48384), _F(13525, 55296), _F(277, 14336),
          _F(1, 4))
CASH_KARP = ButcherTableau(
    name="cash_karp", order=5, error_order=4, dense_order=4, fsal=False,
    references="J. R. Cash, A. H. Karp, \"A variable order Runge-Kutta method "
               "for initial value problems with rapidly varying right-hand "
               "sides\", ACM Transactions on Mathematical Software 16(3), "
               "201-222, 1990. " + _HNW + " (Sec. II.6, continuous extensions).",
    c=(0, _F(1, 5), _F(3, 10), _F(3, 5), 1, _F(7, 8)),
    a=((),
       (_F(1, 5),),
       (_F(3, 40), _F(9, 40)),
       (_F(3, 10), _F(-9, 10), _F(6, 5)),
       (_F(-11, 54), _F(5, 2), _F(-70, 27), _F(35, 27)),
       (_F(1631, 55296), _F(175, 512), _F(575, 13824), _F(44275, 110592),
        _F(253, 4096))),
    b=_CK_B5,
    b_err=tuple(_F(x) - _F(y) for x, y in zip(_CK_B5, _CK_B4)),
    dense=(
        (1, _F(-8585, 3031), _F(250121, 81837), _F(-61435, 54558)),
        (0, 0, 0, 0),
        (0, _F(120500, 29877), _F(-1736000, 268893), _F(253250, 89631)),
        (0, _F(-42875, 57156), _F(602375, 257202), _F(-236875, 171468)),
        (0, _F(-735, 1732), _F(735, 866), _F(-735, 1732)),
        (0, _F(-1170432, 766843), _F(3227648, 766843), _F(-1835520, 766843)),
        (0, _F(3, 2), -4, _F(5, 2))))

#: Dormand--Prince 5(4) pair (FSAL), propagating the 5th-order solution, with
#: Shampine's 4th-order continuous extension (the one SciPy's RK45 uses).
_DP5_B = (_F(35, 384), 0, _F(500, 1113), _F(125, 192), _F(-2187, 6784), _F(11, 84), 0)
_DP5_BHAT = (_F(5179, 57600), 0, _F(7571, 16695), _F(393, 640), _F(-92097, 339200),
             _F(187, 2100), _F(1, 40))
DOPRI5 = ButcherTableau(
    name="dopri5", order=5, error_order=4, dense_order=4, fsal=True, stiffness_bound=3.25,
    references="J. R. Dormand, P. J. Prince, \"A family of embedded Runge-Kutta "
               "formulae\", Journal of Computational and Applied Mathematics "
               "6(1), 19-26, 1980. L. F. Shampine, \"Some practical Runge-Kutta "
               "formulas\", Mathematics of Computation 46(173), 135-150, 1986.",
    c=(0, _F(1, 5), _F(3, 10), _F(4, 5), _F(8, 9), 1, 1),
    a=((),
       (_F(1, 5),),
       (_F(3, 40), _F(9, 40)),
       (_F(44, 45), _F(-56, 15), _F(32, 9)),
       (_F(19372, 6561), _F(-25360, 2187), _F(64448, 6561), _F(-212, 729)),
       (_F(9017, 3168), _F(-355, 33), _F(46732, 5247), _F(49, 176), _F(-5103, 18656)),
       _DP5_B[:6]),
    b=_DP5_B,
    b_err=tuple(x - y for x, y in zip(_DP5_B, _DP5_BHAT)),
    dense=(
        (1, _F(-8048581381, 2820520608), _F(8663915743, 2820520608),
         _F(-12715105075, 11282082432)),
        (0, 0, 0, 0),
        (0, _F(131558114200, 32700410799), _F(-68118460800, 10900136933),
         _F(87487479700, 32700410799)),
        (0, _F(-1754552775, 470086768), _F(14199869525, 1410260304),
         _F(-10690763975, 1880347072)),
        (0, _F(127303824393, 49829197408), _F(-318862633887, 49829197408),
         _F(701980252875, 199316789632)),
        (0, _F(-282668133, 205662961), _F(2019193451, 616988883),
         _F(-1453857185, 822651844)),
        (0, _F(40617522, 29380423), _F(-110615467, 29380423),
         _F(69997945, 29380423))))

#: Tsitouras 5(4) pair (FSAL), propagating the 5th-order solution, with
#: Tsitouras' 4th-order interpolant ``b_i(theta)``.  The coefficients are
#: published as decimals; they are stored as ``Fraction(str)`` of those
#: decimals (``exact=False``: order conditions hold to ~1e-15).
_TS_B = ("0.09646076681806523", "0.01", "0.4798896504144996", "1.379008574103742",
         "-3.290069515436081", "2.324710524099774", "0")
TSIT5 = ButcherTableau(
    name="tsit5", order=5, error_order=4, dense_order=4, fsal=True, exact=False,
    references="Ch. Tsitouras, \"Runge-Kutta pairs of order 5(4) satisfying only "
               "the first column simplifying assumption\", Computers & Mathematics "
               "with Applications 62(2), 770-775, 2011.",
    c=("0", "0.161", "0.327", "0.9", "0.9800255409045097", "1", "1"),
    a=((),
       ("0.161",),
       ("-0.008480655492356989", "0.335480655492357"),
       ("2.897153057105493", "-6.359448489975075", "4.3622954328695815"),
       ("5.325864828439257", "-11.748883564062828", "7.4955393428898365",
        "-0.09249506636175525"),
       ("5.86145544294642", "-12.92096931784711", "8.159367898576159",
        "-0.071584973281401", "-0.028269050394068383"),
       _TS_B[:6]),
    b=_TS_B,
    # Error weights as tabulated in OrdinaryDiffEq.jl (`btilde`) / diffrax
    # (`b_error`), last entry 1/66 exactly; b_hat = b - b_err is 4th order
    # (verified by the order conditions; the overall sign of an error estimate
    # does not affect its norm).
    b_err=("-0.00178001105222577714", "-0.0008164344596567469", "0.007880878010261995",
           "-0.1447110071732629", "0.5823571654525552", "-0.45808210592918697",
           _F(1, 66)),
    dense=(
        ("1", "-2.763706197274826", "2.9132554618219126", "-1.0530884977290216"),
        ("0", "0.13169999999999998", "-0.2234", "0.1017"),
        ("0", "3.9302962368947516", "-5.941033872131505", "2.490627285651253"),
        ("0", "-12.411077166933676", "30.33818863028232", "-16.548102889244902"),
        ("0", "37.50931341651104", "-88.1789048947664", "47.37952196281928"),
        ("0", "-27.896526289197286", "65.09189467479366", "-34.87065786149661"),
        ("0", "1.5", "-4", "2.5")))


def _dop853():
    """Build DOP853 from the sparse decimal data of :mod:`.dop853`."""
    n = 12
    zero = "0"
    data = _dop853_data

    def dense_row(i, length):
        row = data.A.get(i, {})
        return tuple(row.get(j, zero) for j in range(length))

    c = tuple(data.C[:n])
    a = tuple(dense_row(i, i) for i in range(n))
    b = dense_row(n, n)
    b_exact = _vec(b)
    bhh = tuple(_fr(data.BHH.get(j, zero)) for j in range(n))
    e3 = tuple(x - y for x, y in zip(b_exact, bhh))
    e5 = tuple(data.E5.get(j, zero) for j in range(n))
    extra_c = tuple(data.C[n + 1:])
    extra_a = tuple(dense_row(i, i) for i in range(n + 1, 16))
    D = [tuple(_fr(data.D[r].get(j, zero)) for j in range(16)) for r in range(4)]
    B_slots = b_exact + (Fraction(0),) * 4
    P = dop853_P(B_slots, n, D)
    return ButcherTableau(
        name="dop853", order=8, error_order=7, dense_order=7, fsal=False, exact=False,
        stiffness_bound=6.1,
        references="J. R. Dormand, P. J. Prince, \"High order embedded Runge-Kutta "
                   "formulae\", Journal of Computational and Applied Mathematics "
                   "7(1), 67-75, 1981. " + _HNW + " (Sec. II.10; code DOP853).",
        c=c, a=a, b=b, b_err=e5, b_err2=e3, extra_c=extra_c, extra_a=extra_a,
        dense=P, embedded_order=data.E5_ORDER)


#: Dormand--Prince 8(5,3) method "DOP853" (Hairer's code; SciPy's DOP853):
#: order 8, 12 stages (not FSAL), error estimators ``b_err = E5`` (Hairer's
#: 5th-order based estimate) and ``b_err2 = E3 = b - bhh`` (3rd order),
#: combined as in SciPy (``error_order = 7``).  Dense output of order 7
#: needs three extra stages (slots 13-15).  Decimal coefficients
#: (``exact=False``).
DOP853 = _dop853()

#: Registry of all methods by name.
METHODS = {t.name: t for t in (EULER, MIDPOINT, HEUN, RALSTON, RK4, RK38, HEUN_EULER,
                               BOSH3, RKF45, CASH_KARP, DOPRI5, TSIT5, DOP853)}


def get_tableau(method: str | ButcherTableau) -> ButcherTableau:
    """Look a method up by name (or pass a :class:`ButcherTableau` through).

    Parameters
    ----------
    method : str or ButcherTableau
        One of the keys of :data:`METHODS` (case-insensitive), or a tableau.

    Returns
    -------
    ButcherTableau

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    TypeError
        If `method` is neither a string nor a tableau.
    """
    if isinstance(method, ButcherTableau):
        return method
    if not isinstance(method, str):
        raise TypeError("`method` must be a method name (str) or a ButcherTableau; "
                        f"got {type(method).__name__}.")
    method = method_alias(method)  # SciPy's names: "RK45" is dopri5, "RK23" bosh3
    tab = METHODS.get(method, METHODS.get(method.strip().lower()))
    stiff = method.strip().lower()
    if tab is None and (stiff in ROSENBROCK_METHODS or stiff in ESDIRK_METHODS):
        raise ValueError(
            f"{method!r} is a stiff (Rosenbrock or ESDIRK) method: `nk.solve` and "
            "`nk.odeint` (gradient='interpolated') run it, but ensembles, fixed steps "
            "and events through it are not implemented; use an explicit method such as "
            "'dopri5' there.")
    if tab is None:
        names = ", ".join(repr(n) for n in sorted(METHODS))
        raise ValueError(f"`method` must be one of {names}; got {method!r}.")
    return tab
