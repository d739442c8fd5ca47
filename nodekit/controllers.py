"""Step-size control: error norms, the initial step, the PI controller.

The functions here are small compiled pieces that the integration loop in
:mod:`nodekit._kernels` calls; :class:`PIController` is the user-facing
description of the controller, handed to the loop as a float array.
"""
import math
from dataclasses import dataclass

import numpy as np

from . import _jitflags

_jit = _jitflags.jit
_inline = _jitflags.inline

# Indices into the controller parameter array.
SAFETY, MIN_FACTOR, MAX_FACTOR, ICOEFF, PCOEFF = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class PIController:
    """Proportional-integral step-size controller.

    After a step with scaled error norm ``err`` (``err < 1`` accepts), the
    next step size is ``h * factor`` with::

        factor = safety * err**(-(icoeff + pcoeff) / k) * err_prev**(pcoeff / k)

    clipped to ``[min_factor, max_factor]`` (and to at most 1 right after a
    rejection), where ``k = error_order + 1`` of the method and ``err_prev``
    is the norm of the previous accepted step.  A rejected step is retried
    with ``max(min_factor, safety * err**(-1/k))``.

    With the defaults (``icoeff=1, pcoeff=0``) this is the plain integral
    controller of SciPy's ``solve_ivp`` and reproduces its step sequences.
    Gustafsson's PI controller is ``icoeff=0.3, pcoeff=0.4`` (diffrax's
    ``PIDController(pcoeff=0.4, icoeff=0.3)``); Hairer's DOPRI5 code uses a
    similar choice (``beta = 0.04``, i.e. ``pcoeff = 0.2`` in this
    convention) for smoother step sequences on mildly stiff problems.

    Parameters
    ----------
    safety : float, default 0.9
        Factor in (0, 1] applied to the optimal step.
    min_factor, max_factor : float, default 0.2, 10.0
        Bounds of the step-size change per step, ``0 < min_factor < 1 <
        max_factor``.
    icoeff, pcoeff : float, default 1.0, 0.0
        Integral and proportional coefficients.

    References
    ----------
    .. [1] E. Hairer, S. P. Norsett, G. Wanner, "Solving Ordinary Differential
       Equations I: Nonstiff Problems", 2nd ed., Springer, 1993, Sec. II.4.
    .. [2] K. Gustafsson, "Control theoretic techniques for stepsize selection
       in explicit Runge-Kutta methods", ACM TOMS 17(4), 1991.
    """

    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    icoeff: float = 1.0
    pcoeff: float = 0.0

    def __post_init__(self):
        for name in ("safety", "min_factor", "max_factor", "icoeff", "pcoeff"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"`{name}` must be a finite number; got {name}={v!r}.")
        if not 0.0 < self.safety <= 1.0:
            raise ValueError(f"`safety` must be in (0, 1]; got safety={self.safety!r}.")
        if not 0.0 < self.min_factor < 1.0:
            raise ValueError(f"`min_factor` must be in (0, 1); got min_factor={self.min_factor!r}.")
        if not self.max_factor > 1.0:
            raise ValueError(f"`max_factor` must be > 1; got max_factor={self.max_factor!r}.")
        if not self.icoeff + self.pcoeff > 0.0:
            raise ValueError("`icoeff + pcoeff` must be positive; got "
                             f"icoeff={self.icoeff!r}, pcoeff={self.pcoeff!r}.")
        object.__setattr__(self, "array", self.as_array())

    def as_array(self):
        """The parameters as the float array the compiled loop reads."""
        return np.array([self.safety, self.min_factor, self.max_factor,
                         self.icoeff, self.pcoeff], dtype=np.float64)


@_jit
def scaled_rms(x, y, rtol, atol, n_err):
    """RMS of ``x / (atol + rtol*|y|)`` over the first ``n_err`` components."""
    acc = 0.0
    for i in range(n_err):
        v = x[i] / (atol[i] + rtol[i] * abs(y[i]))
        acc += v * v
    return math.sqrt(acc / max(n_err, 1))


@_inline
def error_norm(h, E, E2, has_e2, K, y, ynew, rtol, atol, n_err):
    """Weighted RMS norm of the local error estimate of one step.

    The estimate is ``h * sum_k E[k] K[k]``, scaled component-wise by
    ``atol + rtol * max(|y|, |ynew|)`` as in SciPy's ``solve_ivp``.  With a
    second estimator (``has_e2``, Hairer's DOP853) the two are blended as in
    Hairer's code: ``|h| e5^2 / sqrt(n (e5^2 + 0.01 e3^2))``, computed out of
    line so that the common case stays small.  Only the first ``n_err``
    components count (a seminorm when ``n_err < y.size``).
    """
    if has_e2:
        return _error_norm_dop853(h, E, E2, K, y, ynew, rtol, atol, n_err)
    e5 = 0.0
    for i in range(n_err):
        acc = 0.0
        for k in range(E.size):
            acc += E[k] * K[k, i]
        v = acc / (atol[i] + rtol[i] * max(abs(y[i]), abs(ynew[i])))
        e5 += v * v
    return abs(h) * math.sqrt(e5 / max(n_err, 1))


@_jit
def _error_norm_dop853(h, E, E2, K, y, ynew, rtol, atol, n_err):
    """:func:`error_norm` with Hairer's blend of two estimators (DOP853)."""
    e5 = 0.0
    e3 = 0.0
    for i in range(n_err):
        sc = atol[i] + rtol[i] * max(abs(y[i]), abs(ynew[i]))
        acc = 0.0
        acc3 = 0.0
        for k in range(E.size):
            acc += E[k] * K[k, i]
            acc3 += E2[k] * K[k, i]
        e5 += (acc / sc) ** 2
        e3 += (acc3 / sc) ** 2
    if e5 == 0.0 and e3 == 0.0:
        return 0.0
    return abs(h) * e5 / math.sqrt((e5 + 0.01 * e3) * max(n_err, 1))


@_jit
def initial_step_trial(y0, f0, span, rtol, atol, n_err):
    """First half of Hairer's starting-step algorithm.

    Returns ``(h0, d1)``: a trial step and the scaled norm of ``f0``.  The
    caller evaluates ``f`` at ``y0 + h0 f0`` and passes it to
    :func:`initial_step_final`.
    """
    d0 = scaled_rms(y0, y0, rtol, atol, n_err)
    d1 = scaled_rms(f0, y0, rtol, atol, n_err)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    if not h0 > 0.0:  # d1 overflowed to inf
        h0 = 1e-6
    return min(h0, span), d1


@_jit
def initial_step_final(h0, d1, f0, f1, y0, span, max_step, order, rtol, atol, n_err):
    """Second half of Hairer's starting-step algorithm (Hairer, Norsett and
    Wanner, Solving ODEs I, Sec. II.4; the same rule as SciPy's)."""
    acc = 0.0
    for i in range(n_err):
        v = (f1[i] - f0[i]) / (atol[i] + rtol[i] * abs(y0[i]))
        acc += v * v
    # h0 > 0 (a tiny h0 or a huge state give inf, never a division by zero)
    d2 = math.sqrt(acc / max(n_err, 1)) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    h = min(100.0 * h0, h1, span, max_step)
    return h if h > 0.0 else min(h0, span, max_step)  # NaN or 0 from overflow


@_inline
def accept_factor(err, err_prev, exponent, ctrl, after_reject):
    """Step-size factor after an accepted step with error norm ``err``."""
    if err == 0.0:
        factor = ctrl[MAX_FACTOR]
    else:
        factor = ctrl[SAFETY] * err ** ((ctrl[ICOEFF] + ctrl[PCOEFF]) * exponent)
        if ctrl[PCOEFF] != 0.0:
            factor *= err_prev ** (-ctrl[PCOEFF] * exponent)
        factor = min(ctrl[MAX_FACTOR], factor)
    if after_reject:
        factor = min(1.0, factor)
    return max(ctrl[MIN_FACTOR], factor)


@_inline
def reject_factor(err, exponent, ctrl):
    """Step-size factor after a rejected step (non-finite ``err`` shrinks most)."""
    if math.isfinite(err):
        return max(ctrl[MIN_FACTOR], ctrl[SAFETY] * err ** exponent)
    return ctrl[MIN_FACTOR]
