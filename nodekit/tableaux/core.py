"""The :class:`ButcherTableau` record: exact coefficients, their checks, and
the float arrays the compiled loop reads.

Every coefficient is an exact :class:`fractions.Fraction` (built from exact
rationals, or -- for methods published only as decimals -- from
``Fraction(str)`` of the published decimal strings).  From the exact data a
tableau derives, once, the C-contiguous ``float64`` arrays of the *stage-slot
layout*:

* slots ``0 .. n_stages-1`` are the stages of one step (including the FSAL
  stage for FSAL methods);
* slot ``f1_index`` holds ``f(t + h, y_new)``: it is the last stage
  (``n_stages - 1``) for FSAL methods, otherwise an extra slot ``n_stages``
  whose row of ``A`` equals ``b`` and whose node is ``c = 1``;
* slots after ``f1_index`` are extra stages needed only by the dense output
  (DOP853's three extra stages).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from .dense import hermite_P

__all__ = ["DECIMAL_TOL", "ButcherTableau"]

#: Tolerance of the consistency checks for tableaux whose coefficients are
#: rounded decimals (``exact=False``); exact tableaux are checked exactly.
DECIMAL_TOL = Fraction(1, 10 ** 12)

Row = tuple[Fraction, ...]


def _fr(x) -> Fraction:
    """Exact Fraction of an int, Fraction or decimal *string* (never a float)."""
    if isinstance(x, float):
        raise TypeError("tableau coefficients must be exact (int, Fraction or a "
                        f"decimal string), not the float {x!r}")
    return Fraction(x)


def _vec(xs) -> Row:
    return tuple(_fr(x) for x in xs)


def _float_array(x, shape):
    return np.ascontiguousarray(np.array(x, dtype=np.float64).reshape(shape))


class _SlotLayout(NamedTuple):
    """Exact data of every slot (stages, the f1 slot, extra dense slots)."""

    f1_index: int
    n_slots: int
    A: tuple[Row, ...]     # (S, S), strictly lower triangular
    C: Row                 # (S,)
    B: Row                 # (S,), zero after the stages


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge--Kutta method, with exact coefficients.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``'dopri5'``.
    order : int
        Order of the propagated solution (weights `b`).
    error_order : int or None
        Order of the embedded error estimator, in the sense of SciPy's
        ``error_estimator_order`` (the estimate is ``O(h**(error_order+1))``);
        None for fixed-step methods.
    dense_order : int
        Order of the dense output (continuous extension).
    fsal : bool
        First-same-as-last: the last stage is evaluated at ``(t+h, y_new)``
        (``c[-1] == 1``, last row of `a` equals `b`, ``b[-1] == 0``).
    references : str
        Literature references.
    c : tuple of Fraction
        Nodes, length ``n_stages``.
    a : tuple of tuple of Fraction
        Strictly lower-triangular coefficients: row ``i`` has length ``i``
        (longer rows are accepted if the extra entries are zero).
    b : tuple of Fraction
        Weights of the propagated solution, length ``n_stages``.
    b_err : tuple of Fraction or None, optional
        Error weights ``b - b_hat`` (for DOP853: Hairer's/SciPy's ``E5``);
        None for fixed-step methods.
    b_err2 : tuple of Fraction or None, optional
        Second error estimator (DOP853's 3rd-order ``E3 = b - bhh``).
    extra_c, extra_a : tuple, optional
        Nodes and rows of the extra dense-output slots placed after
        ``f1_index``; row ``j`` has length ``f1_index + 1 + j``.
    dense : tuple of tuple of Fraction or None, optional
        Dense-output coefficients in the slot layout (shape ``(n_slots, q)``);
        None builds the cubic Hermite interpolant.
    exact : bool, optional
        True when the coefficients are exact rationals (consistency checked
        exactly); False for rounded decimal data (``tsit5``, ``dop853``),
        checked to within :data:`DECIMAL_TOL`.
    embedded_order : int or None, optional
        Order of the embedded weights ``b_hat = b - b_err`` as a method;
        defaults to `error_order`.  Differs for ``rkf45`` (propagates the
        4th-order solution, ``b_hat`` is Fehlberg's 5th-order one) and
        ``dop853`` (``E5`` is not ``b - b_hat`` of a 7th-order method).
    stiffness_bound : float or None, optional
        Where Hairer's stiffness test fires: ``|h| ||f(y_new) - f(Y)|| /
        ||y_new - Y||``, with ``Y`` the input of the last main stage at
        ``c = 1``, estimates ``|h lambda|`` and is compared with this bound
        (about where the stability region meets the negative real axis:
        3.25 for ``dopri5``, 6.1 for ``dop853``, as in Hairer's codes).
        None: no test.

    Attributes
    ----------
    n_stages : int
        Stages of one step, including the FSAL stage.
    f1_index : int
        Slot of ``f(t+h, y_new)``: ``n_stages-1`` if `fsal` else ``n_stages``.
    n_slots : int
        Total slots ``S`` (stages, f1 slot, extra dense slots).
    is_adaptive : bool
        True when `b_err` is not None.
    has_e2 : bool
        True when `b_err2` is not None.
    A_exact, C_exact, B_exact, P_exact : tuple
        Exact slot-layout data (``P_exact`` has shape ``(n_slots, q)``).
    A : ndarray, shape (S, S)
        Strictly lower-triangular float64 coefficients per slot.
    C, B, E, E2 : ndarray, shape (S,)
        Nodes, weights, error weights, second error weights (zero-padded; E
        and E2 are zero when absent).
    P : ndarray, shape (S, q)
        Dense output: ``y(t + θh) = y + h sum_k K_k sum_j P[k, j] θ**(j+1)``.
    """

    name: str
    order: int
    error_order: int | None
    dense_order: int
    fsal: bool
    references: str
    c: Row
    a: tuple[Row, ...]
    b: Row
    b_err: Row | None = None
    b_err2: Row | None = None
    extra_c: Row = ()
    extra_a: tuple[Row, ...] = ()
    dense: tuple[Row, ...] | None = field(default=None, repr=False)
    exact: bool = True
    embedded_order: int | None = None
    stiffness_bound: float | None = None

    # derived (not init arguments)
    n_stages: int = field(init=False, repr=False, compare=False)
    f1_index: int = field(init=False, repr=False, compare=False)
    n_slots: int = field(init=False, repr=False, compare=False)
    is_adaptive: bool = field(init=False, repr=False, compare=False)
    has_e2: bool = field(init=False, repr=False, compare=False)
    A_exact: tuple = field(init=False, repr=False, compare=False)
    C_exact: tuple = field(init=False, repr=False, compare=False)
    B_exact: tuple = field(init=False, repr=False, compare=False)
    P_exact: tuple = field(init=False, repr=False, compare=False)
    A: np.ndarray = field(init=False, repr=False, compare=False)
    C: np.ndarray = field(init=False, repr=False, compare=False)
    B: np.ndarray = field(init=False, repr=False, compare=False)
    E: np.ndarray = field(init=False, repr=False, compare=False)
    E2: np.ndarray = field(init=False, repr=False, compare=False)
    P: np.ndarray = field(init=False, repr=False, compare=False)

    # -- validation -------------------------------------------------------
    def _fail(self, msg):
        raise ValueError(f"inconsistent Butcher tableau {self.name!r}: {msg}")

    def _eq(self, x, y):
        if self.exact:
            return x == y
        return abs(x - y) <= DECIMAL_TOL
    def __post_init__(self):
        self._normalise()
        self._check_weights()
        self._check_error_weights()
        self._check_fsal()
        layout = self._slot_layout()
        P = self.dense if self.dense is not None else hermite_P(layout.B, layout.f1_index)
        self._check_dense(P, layout)
        self._store(layout, P)

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _normalise(self):
        """Convert every coefficient to an exact tuple of Fractions."""
        self._set("c", _vec(self.c))
        self._set("b", _vec(self.b))
        self._set("a", tuple(_vec(r) for r in self.a))
        for nm in ("b_err", "b_err2"):
            v = getattr(self, nm)
            if v is not None:
                self._set(nm, _vec(v))
        self._set("extra_c", _vec(self.extra_c))
        self._set("extra_a", tuple(_vec(r) for r in self.extra_a))
        if self.dense is not None:
            self._set("dense", tuple(_vec(r) for r in self.dense))
        if self.embedded_order is None:
            self._set("embedded_order", self.error_order)

    def _check_weights(self):
        """Shapes, strict lower triangularity, ``sum(b) = 1``, ``A 1 = c``."""
        s = len(self.b)
        if s < 1:
            self._fail("`b` is empty.")
        if len(self.c) != s or len(self.a) != s:
            self._fail(f"lengths differ: len(c)={len(self.c)}, len(a)={len(self.a)}, "
                       f"len(b)={s}.")
        for i, row in enumerate(self.a):
            if any(x != 0 for x in row[i:]):
                self._fail(f"`a` must be strictly lower triangular (row {i} has a "
                           "nonzero entry on or above the diagonal).")
        a = tuple(tuple(row[:i]) + (Fraction(0),) * (i - len(row[:i]))
                  for i, row in enumerate(self.a))
        self._set("a", a)
        if not self._eq(sum(self.b), 1):
            self._fail(f"sum(b) must be 1; got {sum(self.b)} (= {float(sum(self.b))!r}).")
        for i, row in enumerate(a):
            if not self._eq(sum(row, Fraction(0)), self.c[i]):
                self._fail(f"row sums of `a` must equal `c`: row {i} sums to "
                           f"{float(sum(row, Fraction(0)))!r} but c[{i}] = "
                           f"{float(self.c[i])!r}.")

    def _check_error_weights(self):
        """Error weights sum to 0 and come with an `error_order`."""
        s = len(self.b)
        for nm in ("b_err", "b_err2"):
            v = getattr(self, nm)
            if v is None:
                continue
            if len(v) != s:
                self._fail(f"len({nm})={len(v)} must equal n_stages={s}.")
            if not self._eq(sum(v), 0):
                self._fail(f"sum({nm}) must be 0; got {float(sum(v))!r}.")
        if self.b_err is None and (self.b_err2 is not None or self.error_order is not None):
            self._fail("`b_err2`/`error_order` given without `b_err`.")
        if self.b_err is not None and self.error_order is None:
            self._fail("`error_order` is required when `b_err` is given.")

    def _check_fsal(self):
        """A FSAL method's last stage is ``f(t + h, y_new)``."""
        if not self.fsal:
            return
        if self.c[-1] != 1:
            self._fail(f"FSAL requires c[-1] == 1; got {self.c[-1]}.")
        if self.b[-1] != 0:
            self._fail(f"FSAL requires b[-1] == 0; got {self.b[-1]}.")
        if tuple(self.a[-1]) != self.b[:-1]:
            self._fail("FSAL requires the last row of `a` to equal `b`.")

    def _slot_layout(self) -> _SlotLayout:
        """Place the stages, the f1 slot and the extra dense stages in slots."""
        s = len(self.b)
        f1 = s - 1 if self.fsal else s
        n_extra = len(self.extra_c)
        if len(self.extra_a) != n_extra:
            self._fail(f"len(extra_a)={len(self.extra_a)} != len(extra_c)={n_extra}.")
        S = f1 + 1 + n_extra
        rows = [tuple(r) + (Fraction(0),) * (S - len(r)) for r in self.a]
        C = list(self.c)
        if not self.fsal:
            rows.append(tuple(self.b) + (Fraction(0),) * (S - s))
            C.append(Fraction(1))
        for j, (cj, row) in enumerate(zip(self.extra_c, self.extra_a)):
            slot = f1 + 1 + j
            if any(x != 0 for x in row[slot:]):
                self._fail(f"extra dense-output row {j} (slot {slot}) references "
                           "slots at or after itself.")
            row = tuple(row[:slot])
            if not self._eq(sum(row, Fraction(0)), cj):
                self._fail(f"extra row {j} sums to {float(sum(row))!r}, not "
                           f"c={float(cj)!r}.")
            rows.append(row + (Fraction(0),) * (S - len(row)))
            C.append(cj)
        B = tuple(self.b) + (Fraction(0),) * (S - s)
        return _SlotLayout(f1, S, tuple(rows), tuple(C), B)

    def _check_dense(self, P, layout: _SlotLayout):
        """The dense output has the slot shape, ends at `b` and sums to theta."""
        S, B = layout.n_slots, layout.B
        if len(P) != S or len({len(r) for r in P}) != 1:
            self._fail(f"dense-output coefficients must have shape (n_slots={S}, q).")
        for k in range(S):
            if not self._eq(sum(P[k]), B[k]):
                self._fail(f"dense output at theta=1 must give b (slot {k}: "
                           f"{float(sum(P[k]))!r} != {float(B[k])!r}).")
        col_sums = [sum(P[k][j] for k in range(S)) for j in range(len(P[0]))]
        if not all(self._eq(x, 1 if j == 0 else 0) for j, x in enumerate(col_sums)):
            self._fail("dense output is inconsistent: sum_k b_k(theta) must equal theta.")

    def _store(self, layout: _SlotLayout, P):
        """Set the derived attributes: exact slot data and the float arrays."""
        s, S = len(self.b), layout.n_slots
        self._set("n_stages", s)
        self._set("f1_index", layout.f1_index)
        self._set("n_slots", S)
        self._set("is_adaptive", self.b_err is not None)
        self._set("has_e2", self.b_err2 is not None)
        self._set("A_exact", layout.A)
        self._set("C_exact", layout.C)
        self._set("B_exact", layout.B)
        self._set("P_exact", tuple(tuple(r) for r in P))

        def pad(v):
            if v is None:
                return np.zeros(S)
            return _float_array([float(x) for x in v] + [0.0] * (S - s), (S,))

        self._set("A", _float_array([[float(x) for x in r] for r in layout.A], (S, S)))
        self._set("C", _float_array([float(x) for x in layout.C], (S,)))
        self._set("B", _float_array([float(x) for x in layout.B], (S,)))
        self._set("E", pad(self.b_err))
        self._set("E2", pad(self.b_err2))
        self._set("P", _float_array([[float(x) for x in r] for r in P], (S, len(P[0]))))

    # -- conveniences -------------------------------------------------------
    @property
    def b_hat(self) -> Row | None:
        """Embedded weights ``b - b_err`` (None for fixed-step methods)."""
        if self.b_err is None:
            return None
        return tuple(x - y for x, y in zip(self.b, self.b_err))

    @property
    def dense_degree(self) -> int:
        """Polynomial degree ``q`` of the dense output (columns of `P`)."""
        return self.P.shape[1]

    def __repr__(self):
        kind = (f"{self.order}({self.error_order})" if self.is_adaptive
                else f"{self.order}")
        return (f"ButcherTableau({self.name!r}, order {kind}, {self.n_stages} stages"
                f"{', FSAL' if self.fsal else ''}, dense order {self.dense_order})")
