"""A hand-written Numba Dormand-Prince 5(4) loop with the Lotka-Volterra right-hand
side inlined: the practical speed limit that ``nk.solve`` is measured against.

Coefficients fixed in the source, SciPy's integral controller, cubic Hermite
output at the requested times.  A measuring instrument, not library code.
"""
import numba
import numpy as np

# Dormand & Prince (1980) coefficients, written out.
a21 = 1 / 5
a31, a32 = 3 / 40, 9 / 40
a41, a42, a43 = 44 / 45, -56 / 15, 32 / 9
a51, a52, a53, a54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
a61, a62, a63, a64, a65 = 9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656
b1, b3, b4, b5, b6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
e1, e3, e4, e5, e6, e7 = (-71 / 57600, 71 / 16695, -71 / 1920, 17253 / 339200,
                          -22 / 525, 1 / 40)


@numba.njit(cache=True, inline="always")
def _hermite(s):
    """Cubic Hermite basis at ``s`` in [0, 1]: weights of y0, h f0, y1, h f1."""
    return (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2, s * s * (3 - 2 * s), s * s * (s - 1)


@numba.njit(cache=True, inline="always")
def _lv(y0, y1, th):
    return (th[0] * y0 - th[1] * y0 * y1, -th[2] * y1 + th[3] * y0 * y1)


@numba.njit(cache=True)
def dp5_lv(y0, ts, th, rtol, atol, h):
    """Solve Lotka-Volterra on ``ts`` with a fixed-coefficient DP5 loop."""
    out = np.empty((ts.size, 2))
    out[0, 0], out[0, 1] = y0[0], y0[1]
    t, x, z = ts[0], y0[0], y0[1]
    k1x, k1z = _lv(x, z, th)
    nfev, j = 1, 1
    while t < ts[-1]:
        h = min(h, ts[-1] - t)
        k2x, k2z = _lv(x + h * a21 * k1x, z + h * a21 * k1z, th)
        k3x, k3z = _lv(x + h * (a31 * k1x + a32 * k2x), z + h * (a31 * k1z + a32 * k2z), th)
        k4x, k4z = _lv(x + h * (a41 * k1x + a42 * k2x + a43 * k3x),
                       z + h * (a41 * k1z + a42 * k2z + a43 * k3z), th)
        k5x, k5z = _lv(x + h * (a51 * k1x + a52 * k2x + a53 * k3x + a54 * k4x),
                       z + h * (a51 * k1z + a52 * k2z + a53 * k3z + a54 * k4z), th)
        k6x, k6z = _lv(x + h * (a61 * k1x + a62 * k2x + a63 * k3x + a64 * k4x + a65 * k5x),
                       z + h * (a61 * k1z + a62 * k2z + a63 * k3z + a64 * k4z + a65 * k5z), th)
        xn = x + h * (b1 * k1x + b3 * k3x + b4 * k4x + b5 * k5x + b6 * k6x)
        zn = z + h * (b1 * k1z + b3 * k3z + b4 * k4z + b5 * k5z + b6 * k6z)
        k7x, k7z = _lv(xn, zn, th)
        nfev += 6
        ex = e1 * k1x + e3 * k3x + e4 * k4x + e5 * k5x + e6 * k6x + e7 * k7x
        ez = e1 * k1z + e3 * k3z + e4 * k4z + e5 * k5z + e6 * k6z + e7 * k7z
        sx = atol + rtol * max(abs(x), abs(xn))
        sz = atol + rtol * max(abs(z), abs(zn))
        err = h * np.sqrt(0.5 * ((ex / sx) ** 2 + (ez / sz) ** 2))
        if err < 1.0:
            tn = t + h
            while j < ts.size and ts[j] <= tn:
                h00, h10, h01, h11 = _hermite((ts[j] - t) / h)
                out[j, 0] = h00 * x + h10 * h * k1x + h01 * xn + h11 * h * k7x
                out[j, 1] = h00 * z + h10 * h * k1z + h01 * zn + h11 * h * k7z
                j += 1
            t, x, z = tn, xn, zn
            k1x, k1z = k7x, k7z
            h *= min(10.0, 0.9 * err ** -0.2) if err > 0 else 10.0
        else:
            h *= max(0.2, 0.9 * err ** -0.2)
    return out, nfev


@numba.njit(cache=True)
def _lv_into(t, y, th, out):
    out[0] = th[0] * y[0] - th[1] * y[0] * y[1]
    out[1] = -th[2] * y[1] + th[3] * y[0] * y[1]


@numba.njit(cache=True)
def dp5_arrays(y0, ts, th, rtol, atol, h):
    """The same loop over state arrays of any size (stage vectors k1..k7), as a
    user would write it for a general right-hand side ``_lv_into``."""
    n = y0.size
    y = y0.copy()
    yn = np.empty(n)
    tmp = np.empty(n)
    k1, k2, k3, k4 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    k5, k6, k7 = np.empty(n), np.empty(n), np.empty(n)
    out = np.empty((ts.size, n))
    out[0] = y0
    t = ts[0]
    _lv_into(t, y, th, k1)
    nfev, j = 1, 1
    while t < ts[-1]:
        h = min(h, ts[-1] - t)
        for i in range(n):
            tmp[i] = y[i] + h * a21 * k1[i]
        _lv_into(t + h / 5, tmp, th, k2)
        for i in range(n):
            tmp[i] = y[i] + h * (a31 * k1[i] + a32 * k2[i])
        _lv_into(t + 3 * h / 10, tmp, th, k3)
        for i in range(n):
            tmp[i] = y[i] + h * (a41 * k1[i] + a42 * k2[i] + a43 * k3[i])
        _lv_into(t + 4 * h / 5, tmp, th, k4)
        for i in range(n):
            tmp[i] = y[i] + h * (a51 * k1[i] + a52 * k2[i] + a53 * k3[i] + a54 * k4[i])
        _lv_into(t + 8 * h / 9, tmp, th, k5)
        for i in range(n):
            tmp[i] = y[i] + h * (a61 * k1[i] + a62 * k2[i] + a63 * k3[i] + a64 * k4[i]
                                 + a65 * k5[i])
        _lv_into(t + h, tmp, th, k6)
        for i in range(n):
            yn[i] = y[i] + h * (b1 * k1[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i]
                                + b6 * k6[i])
        _lv_into(t + h, yn, th, k7)
        nfev += 6
        err = 0.0
        for i in range(n):
            e = (e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i]
                 + e7 * k7[i]) / (atol + rtol * max(abs(y[i]), abs(yn[i])))
            err += e * e
        err = h * np.sqrt(err / n)
        if err < 1.0:
            tn = t + h
            while j < ts.size and ts[j] <= tn:
                h00, h10, h01, h11 = _hermite((ts[j] - t) / h)
                for i in range(n):
                    out[j, i] = h00 * y[i] + h10 * h * k1[i] + h01 * yn[i] + h11 * h * k7[i]
                j += 1
            t = tn
            for i in range(n):
                y[i] = yn[i]
                k1[i] = k7[i]
            h *= min(10.0, 0.9 * err ** -0.2) if err > 0 else 10.0
        else:
            h *= max(0.2, 0.9 * err ** -0.2)
    return out, nfev
