"""The checks of the validation suite, one function per family.

Every family function takes ``quick`` (a fast subset) and returns a
:class:`Family`: its checks (each a measured number, a limit and the
criterion in words) and its raw tables (written as CSV files and plotted by
:mod:`validation.report`).  The limits are module constants, named after
what they bound, so that the report and ``docs/validation.md`` can quote
them.
"""
import time
from dataclasses import dataclass, field
from fractions import Fraction

import autograd
import autograd.numpy as anp
import numpy as np
from scipy.integrate import solve_ivp

import nodekit as nk
from nodekit import tableaux as T

from .cases import all_cases, reference_cases, verify

ADAPTIVE = [m for m, tab in nk.EXPLICIT_METHODS.items() if tab.is_adaptive]
FIXED = [m for m, tab in nk.EXPLICIT_METHODS.items() if not tab.is_adaptive]
MODES = list(nk.adjoint.GRADIENTS)
EPS = np.finfo(float).eps

#: Cases of the quick subset: scalar and vector, autonomous and not, linear
#: and not (the vector nonlinear Hopf case is left out: its symbolic check
#: alone takes seconds).
QUICK_CASES = ("logistic", "riccati", "linear 3-D", "forced oscillator")

# --- criteria ------------------------------------------------------------------
#: Order conditions: exact tableaux must satisfy them exactly; tableaux
#: published as decimals (tsit5, dop853) to within this.
DECIMAL_RESIDUAL = float(T.DECIMAL_TOL)
#: ... and the declared order must be sharp: some condition of order p + 1
#: fails by at least this.
SHARP_RESIDUAL = 1e-6
#: Closed forms: central difference of the lambdified solution vs the
#: lambdified right-hand side (a check of the code generation, not the math).
LAMBDIFY_RESIDUAL = 1e-6
#: SciPy steps: nodekit's solution at t1 vs SciPy's, taking the same steps.
SCIPY_SAME_STEPS_DIFF = 1e-10
#: ... and the step times, as a fraction of the span.  Not round-off small:
#: an error estimate is a difference of nearly equal sums (~1e-11 against
#: y ~ 1 at rtol 1e-9), so its rounding, which depends on the order of the
#: sums, moves step sizes by ~1e-5 relative; measured up to 7e-6 of the span
#: (dop853).  A different controller (safety factor, exponent, limits)
#: would move them by percents.
SCIPY_STEP_SHIFT = 1e-4
#: Solution accuracy: at the method's reference rtol (atol = rtol), the
#: relative error must be below this multiple of rtol ...
ERROR_PER_RTOL = 1e3
#: ... over the output times (between steps: the dense output), this multiple,
OUTPUT_ERROR_PER_RTOL = 1e4
#: ... the error must fall with the tolerance: least-squares slope of
#: log(error) against log(rtol), over errors above round-off, at least ...
ERROR_SLOPE_MIN = 0.6
#: ... and the NFE must rise: no tightening of rtol may cut the NFE by more
#: than this fraction.
NFE_DIP = 0.05
#: Relative errors below this are round-off, left out of slope fits.
ROUNDOFF = 1e-13
#: Convergence: fitted slope within this of the order.
SLOPE_TOL = 0.2
#: Convergence: the asymptotic range is the finest steps whose error is above
#: the round-off floor max(ROUNDOFF, 10 N eps), with step sizes up to this
#: factor above the finest such step (about four points of the sqrt(2) grid).
FIT_SPAN = 3.0
#: ... and at least this many points.
FIT_POINTS = 3
#: Gradient accuracy: at rtol = GRADIENT_RTOL (atol = rtol), the relative
#: error of each of dL/dy0, dL/dtheta, dL/dt below GRADIENT_ERROR.
GRADIENT_RTOL = 1e-10
GRADIENT_ERROR = 1e-6
#: NFE-B / NFE-F must stay within these bounds (the backward pass is a solve
#: of comparable smoothness at the same tolerance).
NFE_RATIO = (0.2, 5.0)
#: Finite differences: nodekit at FD_RTOL vs central differences of SciPy
#: DOP853 at rtol = atol = SCIPY_RTOL.
FD_RTOL = 1e-10
SCIPY_RTOL = 1e-12
FD_ERROR = 1e-6
#: Relative step of the 4th-order central differences (truncation error
#: ~1e-11 on these problems; SciPy's tolerance noise is smaller still).
FD_STEP = 2.5e-4
#: ... the forward solution vs SciPy's,
FD_SOLUTION_ERROR = 1e-8
#: ... the reference's own uncertainty (two step sizes of the 4th-order stencil),
FD_UNCERTAINTY = 1e-8
#: ... the compiled kernels vs the SymPy systems,
KERNEL_MISMATCH = 1e-12
#: ... and the discrete gradient vs finite differences of nodekit's own
#: fixed-step solution (it is the exact derivative of that computation).
DISCRETE_ERROR = 1e-7


# --- records -------------------------------------------------------------------
def fmt(x):
    """A number for a table: 3 significant digits, integers as integers."""
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    if 100 <= abs(x) < 1e6:
        return f"{x:.0f}"
    if 1e-3 <= abs(x) < 100:
        return f"{x:.3g}"
    return f"{x:.2e}"


@dataclass
class Check:
    """One pass/fail check: ``value`` against ``limit``.

    ``kind="max"`` passes when ``value <= limit``, ``kind="min"`` when
    ``value >= limit``; a NaN value fails.  ``shown`` overrides how the
    value is printed (e.g. ``"slope 4.01 (order 4)"``).
    """

    family: str
    subject: str
    case: str
    quantity: str
    value: float
    limit: float
    kind: str = "max"
    shown: str = ""

    @property
    def passed(self):
        v = float(self.value)
        if not np.isfinite(v):
            return False
        return v <= self.limit if self.kind == "max" else v >= self.limit

    @property
    def criterion(self):
        return f"{self.quantity} {'<=' if self.kind == 'max' else '>='} {fmt(self.limit)}"

    @property
    def measured(self):
        return self.shown or fmt(self.value)

    @property
    def margin(self):
        """How close to failing: above 1 fails, larger is worse."""
        v, lim = float(self.value), float(self.limit)
        if not np.isfinite(v):
            return np.inf
        if self.kind == "max":
            if lim > 0:
                return v / lim
            return 0.0 if v <= lim else np.inf
        if v > 0:
            return lim / v
        return 0.0 if lim <= 0 else np.inf

    def row(self):
        return dict(family=self.family, subject=self.subject, case=self.case,
                    quantity=self.quantity, value=float(self.value), limit=self.limit,
                    kind=self.kind, passed=self.passed, criterion=self.criterion)


@dataclass
class Family:
    """The checks of one family and the data behind them."""

    name: str
    description: str
    criteria: list
    checks: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self):
        return all(c.passed for c in self.checks)

    def add(self, *args, **kwargs):
        self.checks.append(Check(self.name, *args, **kwargs))


def case_names(quick):
    return list(QUICK_CASES) if quick else list(all_cases())


def rel_error(got, want):
    """``max |got - want| / max |want|`` (NaN if ``got`` has NaNs)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return np.nan
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def loglog_slope(x, y):
    """Least-squares slope of log(y) against log(x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2:
        return np.nan
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def weights(case, m, seed=0):
    """Fixed random loss weights, shape (m, n), for ``L = sum(W * y(ts))``."""
    return np.random.default_rng(seed).normal(size=(m, case.dim))


# --- 1. closed forms -------------------------------------------------------------
def closed_forms(quick):
    fam = Family(
        "closed forms",
        "Every closed-form solution solves its ODE and meets its initial value, "
        "proved symbolically with SymPy (`validation.cases.verify`); the lambdified "
        "forms used numerically agree with each other.",
        ["no nonzero symbolic residual (ODE and initial condition, every component)",
         f"central difference of the lambdified solution vs the lambdified right-hand "
         f"side: relative residual <= {fmt(LAMBDIFY_RESIDUAL)}"])
    rows = []
    for name in case_names(quick):
        case = all_cases()[name]
        t1 = time.perf_counter()
        bad = verify(case)
        seconds = time.perf_counter() - t1
        fam.add(name, name, "nonzero symbolic residuals", len(bad), 0)
        t0, tend = case.t_span
        tq = np.linspace(t0, tend, 9)[1:-1]
        h = 1e-5 * (tend - t0)
        at = lambda ts: case.exact(np.r_[t0, ts])[1:]
        dy = (at(tq + h) - at(tq - h)) / (2 * h)
        f = np.array([np.asarray(case.fun()(tj, yj, np.array(case.theta)), dtype=float)
                      for tj, yj in zip(tq, at(tq))])
        res = rel_error(dy, f)
        fam.add(name, name, "lambdified residual", res, LAMBDIFY_RESIDUAL)
        rows.append(dict(case=name, kind=case.kind, states=" ".join(map(str, case.states)),
                         params=" ".join(map(str, case.params)),
                         rhs="; ".join(map(str, case.rhs)),
                         solution="; ".join(map(str, case.solution)),
                         y0=" ".join(map(fmt, case.y0)), theta=" ".join(map(fmt, case.theta)),
                         t0=t0, t1=tend, symbolic_residuals=len(bad),
                         lambdified_residual=res, verify_seconds=seconds))
    fam.tables["cases"] = rows
    return fam


# --- 2. order conditions ---------------------------------------------------------
def order_conditions(quick):
    fam = Family(
        "order conditions",
        "Butcher's order conditions of every tableau in `nk.EXPLICIT_METHODS`, over all rooted "
        "trees, in exact rational arithmetic (`nodekit.tableaux.order_condition_residuals`): "
        "the propagated weights up to the declared order, the embedded weights up to "
        "theirs, the dense output at several points of the step.",
        ["exact tableaux: every residual is exactly 0; tableaux published as decimals "
         f"(tsit5, dop853): |residual| <= {fmt(DECIMAL_RESIDUAL)}",
         f"the declared order is sharp: some residual of order p+1 is >= {fmt(SHARP_RESIDUAL)}",
         "embedded weights b - b_err (and dop853's b - b_err2) satisfy the conditions "
         "up to their order; the dense output up to `dense_order` at theta = 1/4, 1/2, "
         "4/5, 1"])
    rows = []
    thetas = (Fraction(1, 4), Fraction(1, 2), Fraction(4, 5), Fraction(1))

    def worst(res, upto):
        vals = [abs(float(r)) for _, k, r in res if k <= upto]
        return max(vals), f"{len(vals)} tree{'s' if len(vals) != 1 else ''}"

    for name, tab in nk.EXPLICIT_METHODS.items():
        lim = 0.0 if tab.exact else DECIMAL_RESIDUAL
        p = tab.order
        res = T.order_condition_residuals(tab, p + 1)
        rows += [dict(method=name, weights="b", theta="", tree=s, order=k, residual=float(r))
                 for s, k, r in res]
        w, n = worst(res, p)
        fam.add(name, "", f"b: max |residual|, {n} of order <= {p}", w, lim)
        nxt = max(abs(float(r)) for _, k, r in res if k == p + 1)
        fam.add(name, "", f"b: max |residual| at order {p + 1} (order is sharp)", nxt,
                SHARP_RESIDUAL, kind="min")
        if tab.is_adaptive:
            q = tab.embedded_order
            res = T.embedded_order_condition_residuals(tab, q)
            rows += [dict(method=name, weights="b - b_err", theta="", tree=s, order=k,
                          residual=float(r)) for s, k, r in res]
            w, n = worst(res, q)
            fam.add(name, "", f"b - b_err: max |residual|, {n} of order <= {q}", w, lim)
        if tab.has_e2:
            res = T.embedded_order_condition_residuals(tab, 3, which="b_err2")
            rows += [dict(method=name, weights="b - b_err2", theta="", tree=s, order=k,
                          residual=float(r)) for s, k, r in res]
            w, n = worst(res, 3)
            fam.add(name, "", f"b - b_err2: max |residual|, {n} of order <= 3", w, lim)
        q = tab.dense_order
        ws = []
        for th in thetas:
            res = T.dense_order_condition_residuals(tab, th, q)
            rows += [dict(method=name, weights="dense", theta=str(th), tree=s, order=k,
                          residual=float(r)) for s, k, r in res]
            ws.append(worst(res, q))
        fam.add(name, "", f"dense output: max |residual|, {ws[0][1]} of order <= {q}, "
                f"theta = 1/4, 1/2, 4/5, 1", max(w for w, _ in ws), lim)
    fam.tables["order_conditions"] = rows
    return fam


# --- 3. SciPy's steps ------------------------------------------------------------------
#: SciPy's own implementations of nodekit's methods; the other adaptive
#: methods run in SciPy's generic ``RungeKutta`` class with nodekit's tableau.
SCIPY_NATIVE = {"dopri5": "RK45", "bosh3": "RK23", "dop853": "DOP853"}
#: rtol of the comparison (atol = rtol / 100): low orders at looser tolerances.
SCIPY_RTOLS = {"heun_euler": (1e-3, 1e-5), "bosh3": (1e-4, 1e-7)}


def scipy_method(method):
    """The SciPy ``OdeSolver`` class taking the steps nodekit's ``method`` should.

    dopri5, bosh3 and dop853 map to SciPy's RK45, RK23 and DOP853; the other
    adaptive tableaux are handed to SciPy's generic explicit Runge-Kutta class
    (``scipy.integrate._ivp.rk.RungeKutta``: SciPy's step-size controller,
    error norm and initial step, nodekit's coefficients).
    """
    if method in SCIPY_NATIVE:
        import scipy.integrate
        return getattr(scipy.integrate, SCIPY_NATIVE[method])
    from scipy.integrate._ivp.rk import RungeKutta
    tab = nk.get_tableau(method)
    s = tab.n_stages - 1 if tab.fsal else tab.n_stages  # SciPy's stages exclude f(t+h, y_new)
    attrs = dict(order=tab.order, error_estimator_order=tab.error_order, n_stages=s,
                 C=tab.C[:s].copy(), A=tab.A[:s, :s].copy(), B=tab.B[:s].copy(),
                 E=np.r_[tab.E[:s], tab.E[s] if tab.fsal else 0.0],
                 P=np.zeros((s + 1, 1)))  # dense output unused
    return type(f"SciPy_{method}", (RungeKutta,), attrs)


def scipy_steps(quick):
    fam = Family(
        "SciPy steps",
        "The default controller reproduces `scipy.integrate.solve_ivp`: every adaptive "
        "method takes exactly the steps SciPy takes with the same tableau (dopri5, bosh3, "
        "dop853 against SciPy's RK45, RK23, DOP853; heun_euler, rkf45, cash_karp, tsit5 "
        "against SciPy's generic `RungeKutta` class given nodekit's coefficients), on "
        "every case, never with more evaluations, landing on the same numbers.",
        ["accepted steps equal SciPy's",
         f"the step times agree: max |t_k - t_k(SciPy)| <= {fmt(SCIPY_STEP_SHIFT)} x span "
         "(the rounding of the error estimates, differences of nearly equal sums, moves "
         "step sizes by ~1e-5 relative)",
         "nfev <= SciPy's nfev (SciPy evaluates f(t+h, y_new) on rejected steps of "
         "non-FSAL methods too; nodekit does not)",
         f"relative difference of y(t1) from SciPy's <= {fmt(SCIPY_SAME_STEPS_DIFF)}"])
    rows = []
    for method in ADAPTIVE:
        cls = scipy_method(method)
        sub = f"{method} / {SCIPY_NATIVE.get(method, 'SciPy RungeKutta')}"
        for name in case_names(quick):
            case = all_cases()[name]
            f, th = case.fun(), np.array(case.theta)
            for rtol in SCIPY_RTOLS.get(method, (1e-5, 1e-9)):
                atol = rtol / 100
                sol = nk.solve(f, case.y0, list(case.t_span), th, method=method,
                               rtol=rtol, atol=atol)
                r = solve_ivp(lambda tt, y: f(tt, y, th), case.t_span, case.y0,
                              method=cls, rtol=rtol, atol=atol)
                diff = rel_error(sol.y[-1], r.y[:, -1])
                fam.add(sub, name, "|accepted steps - SciPy's|",
                        abs(sol.naccept - (r.t.size - 1)), 0,
                        shown=f"{sol.naccept} vs {r.t.size - 1}")
                grid = np.r_[nk.solve(f, case.y0, list(case.t_span), th, method=method,
                                      rtol=rtol, atol=atol, dense=True).dense.t_grid,
                             case.t_span[1]]
                shift = (float(np.max(np.abs(grid - r.t))) / (case.t_span[1] - case.t_span[0])
                         if grid.size == r.t.size else np.nan)
                fam.add(sub, name, "max |t_k - t_k(SciPy)| / span", shift, SCIPY_STEP_SHIFT)
                fam.add(sub, name, "nfev - SciPy's nfev", sol.nfev - r.nfev, 0,
                        shown=f"{sol.nfev} vs {r.nfev}")
                fam.add(sub, name, "rel. difference of y(t1)", diff, SCIPY_SAME_STEPS_DIFF)
                rows.append(dict(method=method, scipy=cls.__name__, case=name, rtol=rtol,
                                 atol=atol, naccept=sol.naccept, scipy_steps=r.t.size - 1,
                                 nreject=sol.nreject, nfev=sol.nfev, scipy_nfev=r.nfev,
                                 step_time_shift=shift, rel_difference=diff))
    fam.tables["scipy_steps"] = rows
    return fam


# --- 4. solution error and NFE vs tolerance ----------------------------------------
#: Adaptive method: (loosest and tightest decade of rtol, reference rtol).
#: Low orders stop earlier: heun_euler needs ~1e5 evaluations at rtol 1e-7.
SOLUTION_TOLS = {"heun_euler": (2, 7, 1e-6), "bosh3": (3, 10, 1e-8),
                 "rkf45": (3, 12, 1e-10), "cash_karp": (3, 12, 1e-10),
                 "dopri5": (3, 13, 1e-10), "tsit5": (3, 13, 1e-10), "dop853": (3, 13, 1e-10)}


def solution_rtols(method, quick):
    lo, hi, ref = SOLUTION_TOLS[method]
    decades = range(lo, hi + 1, 3 if quick else 1)
    return sorted({10.0 ** -k for k in decades} | {ref}, reverse=True)


def solution_accuracy(quick):
    fam = Family(
        "solution accuracy",
        "Every adaptive method on every closed-form case over a sweep of tolerances "
        "(atol = rtol): the relative error (max|y - y_exact| / max|y_exact|) at the end "
        "of the span, where a step lands, and over 11 output times, which the dense "
        "output reaches; and the number of evaluations.  The shape of Chen et al.'s "
        "Figure 3a/3b: error falls with the tolerance, NFE rises.",
        [f"at the reference rtol (1e-10; bosh3 1e-8, heun_euler 1e-6): relative error at "
         f"t1 <= {fmt(ERROR_PER_RTOL)} x rtol (1e-7 at rtol 1e-10)",
         f"... and over the 11 output times <= {fmt(OUTPUT_ERROR_PER_RTOL)} x rtol",
         f"error falls with the tolerance: slope of log(error at t1) vs log(rtol) >= "
         f"{ERROR_SLOPE_MIN} (errors below {fmt(ROUNDOFF)} left out)",
         f"NFE rises: no tightening of rtol lowers nfev by more than {NFE_DIP:.0%}",
         "every solve succeeds"])
    rows = []
    for method in ADAPTIVE:
        ref_rtol = SOLUTION_TOLS[method][2]
        rtols = solution_rtols(method, quick)
        for name in case_names(quick):
            case = all_cases()[name]
            ts = np.linspace(*case.t_span, 11)
            exact = case.exact(ts)
            f, th = case.fun(), np.array(case.theta)
            errs, nfevs, failed = [], [], 0
            for rtol in rtols:
                t1 = time.perf_counter()
                sol = nk.solve(f, case.y0, ts, th, method=method, rtol=rtol, atol=rtol)
                seconds = time.perf_counter() - t1
                failed += not sol.success
                scale = np.max(np.abs(exact))
                err_end = (float(np.max(np.abs(sol.y[-1] - exact[-1])) / scale)
                           if sol.success else np.nan)
                err_out = rel_error(sol.y, exact) if sol.success else np.nan
                errs.append((err_end, err_out))
                nfevs.append(sol.nfev)
                rows.append(dict(method=method, case=name, rtol=rtol, atol=rtol,
                                 rel_error_t1=err_end, rel_error_outputs=err_out,
                                 nfev=sol.nfev, nsteps=sol.nsteps, naccept=sol.naccept,
                                 nreject=sol.nreject, status=sol.status, seconds=seconds))
            errs, nfevs = np.array(errs), np.array(nfevs)
            k = rtols.index(ref_rtol)
            fam.add(method, name, f"rel. error at t1, rtol={fmt(ref_rtol)}", errs[k, 0],
                    ERROR_PER_RTOL * ref_rtol)
            fam.add(method, name, f"rel. error at outputs, rtol={fmt(ref_rtol)}", errs[k, 1],
                    OUTPUT_ERROR_PER_RTOL * ref_rtol)
            ok = np.isfinite(errs[:, 0]) & (errs[:, 0] > ROUNDOFF)
            slope = (loglog_slope(np.array(rtols)[ok], errs[ok, 0]) if ok.sum() >= 2
                     else np.nan)
            fam.add(method, name, "slope of log error vs log rtol", slope, ERROR_SLOPE_MIN,
                    kind="min")
            dips = int(np.sum(nfevs[1:] < (1 - NFE_DIP) * nfevs[:-1]))
            fam.add(method, name, "NFE drops as rtol tightens", dips, 0,
                    shown=f"{dips} ({nfevs[0]} -> {nfevs[-1]})")
            fam.add(method, name, "failed solves", failed, 0)
    fam.tables["solution"] = rows
    return fam


# --- 5. convergence orders -----------------------------------------------------
#: Cases of the fixed-step convergence study.
CONVERGENCE_CASES = ("logistic", "damped oscillator", "forced oscillator")
QUICK_CONVERGENCE_CASES = ("damped oscillator",)
#: Steps per span: N = 8 round(2^(k/2)) (the 9 output times are step ends),
#: up to this many for orders <= 3; higher orders reach round-off long
#: before MAX_STEPS_HIGH_ORDER.
MAX_STEPS_CONVERGENCE = 8192
MAX_STEPS_HIGH_ORDER = 4096
#: ... in the quick subset (the low orders are then fitted at coarser steps:
#: still within 0.05 of the order on the quick case).
QUICK_MAX_STEPS_CONVERGENCE = 2048


def step_counts(order, quick=False):
    """Step counts of a convergence study, coarse to fine."""
    if quick:
        top = QUICK_MAX_STEPS_CONVERGENCE
    else:
        top = MAX_STEPS_CONVERGENCE if order <= 3 else MAX_STEPS_HIGH_ORDER
    counts = sorted({8 * int(round(2 ** (k / 2))) for k in range(40)})
    return [n for n in counts if n <= top]


def asymptotic_fit(hs, errs, ns):
    """Fit the slope of log(error) against log(h) over the asymptotic range.

    The range is the finest steps whose error is above the round-off floor
    ``max(ROUNDOFF, 10 N eps)`` and at most ``FIT_SPAN`` times the finest
    such step: coarser steps are pre-asymptotic (higher-order terms still
    matter), finer ones are lost in round-off.  The order is not used to
    choose the range.

    Returns ``(slope, mask)``.
    """
    hs, errs, ns = map(np.asarray, (hs, errs, ns))
    above = np.isfinite(errs) & (errs > np.maximum(ROUNDOFF, 10 * ns * EPS))
    mask = np.zeros(hs.size, dtype=bool)
    if not above.any():
        return np.nan, mask
    h_fine = hs[above].min()
    mask = above & (hs <= FIT_SPAN * h_fine * (1 + 1e-9))
    if mask.sum() < FIT_POINTS:
        return np.nan, mask
    return loglog_slope(hs[mask], errs[mask]), mask


def _convergence_study(fam, rows, fits, method, name, quick):
    """One (method, case): fixed steps, errors at step ends."""
    case = all_cases()[name]
    tab = nk.get_tableau(method)
    f, th = case.fun(), np.array(case.theta)
    t0, t1 = case.t_span
    ts = np.linspace(t0, t1, 9)  # step ends for every N (a multiple of 8)
    exact = case.exact(ts)
    hs, errs, ns = [], [], []
    for n in step_counts(tab.order, quick):
        h = (t1 - t0) / n
        sol = nk.solve(f, case.y0, ts, th, method=method, step_size=h)
        err = rel_error(sol.y, exact) if sol.success else np.nan
        hs.append(h)
        errs.append(err)
        ns.append(n)
        if err < ROUNDOFF / 10:
            break
    slope, mask = asymptotic_fit(hs, errs, ns)
    for h, e, n, m in zip(hs, errs, ns, mask):
        rows.append(dict(method=method, case=name, steps=n, h=h, rel_error=e, in_fit=bool(m)))
    fits.append(dict(method=method, case=name, order=tab.order, slope=slope,
                     points=int(mask.sum()),
                     h_min=float(np.min(np.array(hs)[mask])) if mask.any() else np.nan,
                     h_max=float(np.max(np.array(hs)[mask])) if mask.any() else np.nan))
    fam.add(method, name, "|slope - order|", abs(slope - tab.order), SLOPE_TOL,
            shown=f"slope {slope:.2f} (order {tab.order}, {int(mask.sum())} points)")


def convergence(quick):
    fam = Family(
        "convergence",
        "Every method of `nk.EXPLICIT_METHODS` with fixed steps (`step_size=`, adaptive pairs "
        "too) on smooth closed-form cases: the slope of log(error) against log(h), "
        "fitted over the asymptotic range only, must match the order of the tableau.",
        [f"|fitted slope - order| <= {SLOPE_TOL}",
         "error = max over 9 output times at step ends, relative to max|y_exact|; "
         "h = span / N, N = 8 round(2^(k/2))",
         f"asymptotic range: the finest steps with error above the round-off floor "
         f"max({fmt(ROUNDOFF)}, 10 N eps), up to {FIT_SPAN:g}x the finest such step, at "
         f"least {FIT_POINTS} points (chosen without looking at the order)"])
    rows, fits = [], []
    for method in nk.EXPLICIT_METHODS:
        for name in (QUICK_CONVERGENCE_CASES if quick else CONVERGENCE_CASES):
            _convergence_study(fam, rows, fits, method, name, quick)
    fam.tables["convergence"] = rows
    fam.tables["convergence_fits"] = fits
    return fam


#: Where in the step the dense output is checked.
DENSE_THETA = 0.4
#: Cases of the dense-output study (linear and nonlinear).
DENSE_CASES = ("damped oscillator", "hopf normal form")


def dense_convergence(quick):
    fam = Family(
        "dense output",
        "The continuous extension of every method (how `nk.solve` reaches output times "
        f"between steps), on its own: one step of size h from the exact y(t0), the "
        f"dense output at t0 + {DENSE_THETA:g} h against the closed form.  Its local "
        "error is O(h^(q+1)) for dense order q.  (A global study mixes in the error "
        "carried from earlier steps, whose pre-asymptotic terms blur the slope.)",
        [f"|fitted slope - (dense_order + 1)| <= {SLOPE_TOL}, h = 2^(-k/2), asymptotic "
         "range chosen as for the convergence family"])
    rows, fits = [], []
    for method, tab in nk.EXPLICIT_METHODS.items():
        for name in (QUICK_CONVERGENCE_CASES if quick else DENSE_CASES):
            case = all_cases()[name]
            f, th = case.fun(), np.array(case.theta)
            t0 = case.t_span[0]
            expected = tab.dense_order + 1
            hs, errs = [], []
            for k in range(48):
                h = 2.0 ** (-k / 2)
                ts = np.array([t0, t0 + DENSE_THETA * h, t0 + h])
                exact = case.exact(ts)
                sol = nk.solve(f, case.y0, ts, th, method=method, step_size=h)
                err = (float(np.max(np.abs(sol.y[1] - exact[1])) / np.max(np.abs(exact)))
                       if sol.success else np.nan)
                hs.append(h)
                errs.append(err)
                if err < ROUNDOFF / 10:
                    break
            ns = np.ones(len(hs))
            slope, mask = asymptotic_fit(hs, errs, ns)
            for h, e, m in zip(hs, errs, mask):
                rows.append(dict(method=method, case=name, steps=1, h=h, rel_error=e,
                                 in_fit=bool(m)))
            fits.append(dict(method=method, case=name, order=expected, slope=slope,
                             points=int(mask.sum()),
                             h_min=float(np.min(np.array(hs)[mask])) if mask.any() else np.nan,
                             h_max=float(np.max(np.array(hs)[mask])) if mask.any() else np.nan))
            fam.add(method, name, "|slope - (dense_order + 1)|", abs(slope - expected),
                    SLOPE_TOL, shown=f"slope {slope:.2f} (dense order {tab.dense_order}, "
                    f"{int(mask.sum())} points)")
    fam.tables["dense_output"] = rows
    fam.tables["dense_output_fits"] = fits
    return fam


# --- 6. gradients vs closed forms, NFE-B vs NFE-F -------------------------------------
def gradient_rtols(quick):
    return [1e-4, 1e-7, 1e-10] if quick else [10.0 ** -k for k in range(3, 12)]


def gradient_accuracy(quick):
    fam = Family(
        "gradient accuracy",
        "`autograd.grad` through `nk.odeint` (dopri5, atol = rtol, 6 output times, "
        "L = sum(W * y(t)) with fixed random W) for every gradient mode on every "
        "closed-form case, against the SymPy-differentiated closed form: dL/dy0, "
        "dL/dtheta and dL/dt (every time, t0 included), over a sweep of tolerances.",
        [f"at rtol = {fmt(GRADIENT_RTOL)}: relative error of each of dL/dy0, dL/dtheta, "
         f"dL/dt <= {fmt(GRADIENT_ERROR)} (relative: max|g - g_exact| / max|g_exact| "
         "per block)",
         f"gradient error falls with the tolerance: slope of log(error) vs log(rtol) "
         f">= {ERROR_SLOPE_MIN}"])
    rows = []
    for mode in MODES:
        for name in case_names(quick):
            case = all_cases()[name]
            ts = np.linspace(*case.t_span, 6)
            W = weights(case, ts.size)
            want = case.exact_gradient(ts, W)
            y0, th = np.array(case.y0), np.array(case.theta)
            errs = []
            for rtol in gradient_rtols(quick):
                stats = {}

                def loss(y0, theta, t):
                    return anp.sum(W * nk.odeint(case.fun(), y0, t, theta, gradient=mode,
                                                 rtol=rtol, atol=rtol, stats=stats))

                t1 = time.perf_counter()
                try:
                    got = autograd.grad(loss, (0, 1, 2))(y0, th, ts)
                    e = [rel_error(g, w) for g, w in zip(got, want)]
                except (nk.SolveError, nk.GradientError):
                    e = [np.nan] * 3
                seconds = time.perf_counter() - t1
                err = max(e) if np.all(np.isfinite(e)) else np.nan
                errs.append(err)
                if rtol == GRADIENT_RTOL:
                    for block, eb in zip(("dL/dy0", "dL/dtheta", "dL/dt"), e):
                        fam.add(mode, name, f"rel. error of {block} at rtol="
                                f"{fmt(GRADIENT_RTOL)}", eb, GRADIENT_ERROR)
                rows.append(dict(mode=mode, case=name, rtol=rtol, atol=rtol, err_y0=e[0],
                                 err_theta=e[1], err_t=e[2], rel_error=err,
                                 nfev_forward=stats.get("nfev_forward", np.nan),
                                 nfev_backward=stats.get("nfev_backward", np.nan),
                                 nsteps_forward=stats.get("nsteps_forward", np.nan),
                                 nsteps_backward=stats.get("nsteps_backward", np.nan),
                                 max_drift=float(np.max(stats["drift"]))
                                 if "drift" in stats else np.nan,
                                 seconds=seconds))
            errs = np.array(errs)
            ok = np.isfinite(errs) & (errs > ROUNDOFF)
            slope = (loglog_slope(np.array(gradient_rtols(quick))[ok], errs[ok])
                     if ok.sum() >= 2 else np.nan)
            fam.add(mode, name, "slope of log gradient error vs log rtol", slope,
                    ERROR_SLOPE_MIN, kind="min")
    fam.tables["gradients"] = rows
    return fam


def nfe_backward(gradients):
    """NFE-B vs NFE-F (Chen et al.'s Figure 3c), from the gradient runs."""
    fam = Family(
        "NFE-B vs NFE-F",
        "Evaluations of the backward pass (right-hand side and VJPs, `stats"
        "['nfev_backward']`) against the forward pass's (`stats['nfev_forward']`) in the "
        "gradient runs above: Chen et al.'s Figure 3c, per gradient mode.",
        [f"{NFE_RATIO[0]} <= NFE-B / NFE-F <= {NFE_RATIO[1]} at every tolerance and case",
         "NFE-B rises with NFE-F: slope of log NFE-B vs log NFE-F per case >= 0.5"])
    rows = gradients.tables["gradients"]
    for mode in MODES:
        for name in dict.fromkeys(r["case"] for r in rows):
            sel = [r for r in rows if r["mode"] == mode and r["case"] == name]
            nf = np.array([r["nfev_forward"] for r in sel], dtype=float)
            nb = np.array([r["nfev_backward"] for r in sel], dtype=float)
            ratio = nb / nf
            fam.add(mode, name, "max NFE-B/NFE-F", np.max(ratio), NFE_RATIO[1])
            fam.add(mode, name, "min NFE-B/NFE-F", np.min(ratio), NFE_RATIO[0], kind="min")
            fam.add(mode, name, "slope of log NFE-B vs log NFE-F", loglog_slope(nf, nb), 0.5,
                    kind="min")
    return fam


# --- 7. no closed form: finite differences of SciPy ------------------------------------
def _scipy_loss(ref, W, y0, theta, ts):
    f = ref.numpy_fun()
    r = solve_ivp(lambda tt, y: f(tt, y, theta), (ts[0], ts[-1]), y0, method="DOP853",
                  t_eval=ts, rtol=SCIPY_RTOL, atol=SCIPY_RTOL)
    if not r.success:
        raise RuntimeError(f"SciPy failed on {ref.name}: {r.message}")
    return float(np.sum(W * r.y.T)), r.y.T


def _fd_gradient(fun, x, rel_step):
    """4th-order central differences of ``fun`` at ``x``."""
    g = np.empty(x.size)
    for k in range(x.size):
        h = rel_step * max(1.0, abs(x[k]))
        e = np.zeros(x.size)
        e[k] = h
        g[k] = (-fun(x + 2 * e) + 8 * fun(x + e) - 8 * fun(x - e) + fun(x - 2 * e)) / (12 * h)
    return g


def fd_reference(ref, W, y0, theta, ts, rel_step):
    """Central-difference gradients of the SciPy loss w.r.t. y0, theta, t."""
    return (_fd_gradient(lambda v: _scipy_loss(ref, W, v, theta, ts)[0], y0, rel_step),
            _fd_gradient(lambda v: _scipy_loss(ref, W, y0, v, ts)[0], theta, rel_step),
            _fd_gradient(lambda v: _scipy_loss(ref, W, y0, theta, v)[0], ts, rel_step))


def finite_differences(quick):
    from .kernels import COMPILED, kernel_mismatch
    fam = Family(
        "finite differences",
        "Problems without a closed form (Lotka-Volterra on [0, 3], Van der Pol with "
        "mu = 2 on [0, 3], Lorenz on [0, 1]): nodekit's gradients, every mode, Python "
        "and compiled (`nk.ODE`) right-hand sides, against 4th-order central "
        "differences of SciPy `solve_ivp` (DOP853, rtol = atol = 1e-12) solutions.",
        [f"at rtol = atol = {fmt(FD_RTOL)}: relative error of each of dL/dy0, dL/dtheta, "
         f"dL/dt <= {fmt(FD_ERROR)}",
         f"the forward solution agrees with SciPy's: relative difference <= "
         f"{fmt(FD_SOLUTION_ERROR)}",
         f"the reference is good enough: its two step sizes ({fmt(FD_STEP)}, "
         f"{fmt(FD_STEP / 2)} relative) agree to {fmt(FD_UNCERTAINTY)}",
         f"the compiled kernels agree with the SymPy systems to {fmt(KERNEL_MISMATCH)}",
         f"discrete mode with fixed rk4 steps vs central differences of nodekit's own "
         f"fixed-step solution (dL/dy0, dL/dtheta): <= {fmt(DISCRETE_ERROR)}"])
    rows, refrows = [], []
    for name, ref in reference_cases().items():
        ode = COMPILED[name]
        fam.add("compiled kernels", name, "rel. mismatch vs SymPy", kernel_mismatch(ref, ode),
                KERNEL_MISMATCH)
        ts = np.linspace(*ref.t_span, 5)
        W = weights(ref, ts.size, seed=1)
        y0, th = np.array(ref.y0), np.array(ref.theta)
        _, y_scipy = _scipy_loss(ref, W, y0, th, ts)
        fd = fd_reference(ref, W, y0, th, ts, FD_STEP)
        fd2 = fd_reference(ref, W, y0, th, ts, FD_STEP / 2)
        unc = max(rel_error(a, b) for a, b in zip(fd, fd2))
        fam.add("SciPy reference", name, "FD uncertainty", unc, FD_UNCERTAINTY)
        refrows.append(dict(problem=name, block="y0", fd=list(fd[0]), fd_half_step=list(fd2[0])))
        refrows.append(dict(problem=name, block="theta", fd=list(fd[1]),
                            fd_half_step=list(fd2[1])))
        refrows.append(dict(problem=name, block="t", fd=list(fd[2]), fd_half_step=list(fd2[2])))
        for path, fun in (("python", ref.fun()), ("compiled", ode)):
            for mode in MODES:
                stats = {}

                def loss(y0, theta, t):
                    return anp.sum(W * nk.odeint(fun, y0, t, theta, gradient=mode,
                                                 rtol=FD_RTOL, atol=FD_RTOL, stats=stats))

                t1 = time.perf_counter()
                got = autograd.grad(loss, (0, 1, 2))(y0, th, ts)
                seconds = time.perf_counter() - t1
                e = [rel_error(g, w) for g, w in zip(got, fd)]
                sub = f"{mode} ({path})"
                for block, eb in zip(("dL/dy0", "dL/dtheta", "dL/dt"), e):
                    fam.add(sub, name, f"rel. error of {block} vs FD", eb, FD_ERROR)
                rows.append(dict(problem=name, path=path, mode=mode, rtol=FD_RTOL,
                                 err_y0=e[0], err_theta=e[1], err_t=e[2],
                                 nfev_forward=stats.get("nfev_forward"),
                                 nfev_backward=stats.get("nfev_backward"), seconds=seconds))
            y_nk = nk.solve(fun, y0, ts, th, rtol=FD_RTOL, atol=FD_RTOL).y
            fam.add(f"solution ({path})", name, "rel. difference from SciPy",
                    rel_error(y_nk, y_scipy), FD_SOLUTION_ERROR)
        # RK-Net: the discrete gradient is the derivative of the solver's numbers
        h = (ref.t_span[1] - ref.t_span[0]) / 200
        kw = dict(method="rk4", step_size=h)
        loss = lambda y0, theta: anp.sum(W * nk.odeint(ode, y0, ts, theta,
                                                       gradient="discrete", **kw))
        got = autograd.grad(loss, (0, 1))(y0, th)
        solver = lambda y0, theta: float(np.sum(W * nk.solve(ode, y0, ts, theta, **kw).y))
        want = (_fd_gradient(lambda v: solver(v, th), y0, FD_STEP / 2),
                _fd_gradient(lambda v: solver(y0, v), th, FD_STEP / 2))
        e = max(rel_error(g, w) for g, w in zip(got, want))
        fam.add("discrete (rk4, fixed h)", name, "rel. error vs FD of nk.solve", e,
                DISCRETE_ERROR)
        rows.append(dict(problem=name, path="compiled", mode="discrete rk4 h=span/200",
                         rtol=np.nan, err_y0=rel_error(got[0], want[0]),
                         err_theta=rel_error(got[1], want[1]), err_t=np.nan,
                         nfev_forward=None, nfev_backward=None, seconds=np.nan))
    fam.tables["finite_differences"] = rows
    fam.tables["fd_reference"] = refrows
    return fam

