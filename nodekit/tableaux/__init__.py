"""Runge--Kutta methods stored as exact, self-checking data.

Every method is a :class:`ButcherTableau` with exact
:class:`fractions.Fraction` coefficients (exact rationals, or ``Fraction`` of
the published decimal strings for ``tsit5`` and ``dop853``), checked for
consistency when built, and the ``float64`` arrays the compiled loop reads.
The order conditions over Butcher's rooted trees are evaluated exactly by
:func:`order_condition_residuals` and its embedded and dense variants, which
the tests use to verify every method.

Modules, one concern each:

* :mod:`.core` -- the :class:`ButcherTableau` record, its checks, the slot
  layout and the float arrays;
* :mod:`.trees` -- rooted trees and order-condition residuals;
* :mod:`.dense` -- continuous extensions written in the common ``P`` form;
* :mod:`.methods` -- the methods, :data:`METHODS` and :func:`get_tableau`;
* :mod:`.dop853` -- DOP853's decimal coefficients alone;
* :mod:`.rosenbrock`, :mod:`.esdirk` -- the stiff families (Rosenbrock and
  ESDIRK methods, :data:`STIFF_METHODS`).

Only the standard library and NumPy are imported.
"""
from .core import DECIMAL_TOL, ButcherTableau
from .methods import (
    BOSH3,
    CASH_KARP,
    DOP853,
    DOPRI5,
    EULER,
    HEUN,
    HEUN_EULER,
    METHODS,
    MIDPOINT,
    RALSTON,
    RK4,
    RK38,
    RKF45,
    TSIT5,
    get_tableau,
)
from .esdirk import ESDIRK_METHODS
from .rosenbrock import ROSENBROCK_METHODS
from .trees import (
    dense_order_condition_residuals,
    embedded_order_condition_residuals,
    order_condition_residuals,
    rooted_trees,
    tree_density,
    tree_order,
    tree_symbol,
)

#: Every stiff method by name: the Rosenbrock and the ESDIRK methods.
STIFF_METHODS = {**ROSENBROCK_METHODS, **ESDIRK_METHODS}

__all__ = [
    "BOSH3",
    "CASH_KARP",
    "DECIMAL_TOL",
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
    "STIFF_METHODS",
    "TSIT5",
    "ButcherTableau",
    "dense_order_condition_residuals",
    "embedded_order_condition_residuals",
    "get_tableau",
    "order_condition_residuals",
    "rooted_trees",
    "tree_density",
    "tree_order",
    "tree_symbol",
]
