"""Compiled kernels of the stiff test problems (Robertson, Van der Pol with
large mu), with analytic Jacobians, shared by tests, validation and
benchmarks.

Robertson's chemical kinetics (Hairer and Wanner, Sec. IV.1)::

    y1' = -k1 y1 + k3 y2 y3
    y2' =  k1 y1 - k3 y2 y3 - k2 y2^2
    y3' =  k2 y2^2,          theta = (k1, k2, k3) = (0.04, 3e7, 1e4)

Van der Pol's oscillator with ``mu = theta[0]`` (the right-hand side is
:func:`validation.kernels.van_der_pol_rhs`; here its Jacobian)::

    y1' = y2,   y2' = mu (1 - y1^2) y2 - y1
"""
import numba as nb
import numpy as np

ROBERTSON_THETA = np.array([0.04, 3e7, 1e4])
ROBERTSON_Y0 = np.array([1.0, 0.0, 0.0])


@nb.njit(cache=True)
def robertson_rhs(t, y, th, out):
    r1 = th[0] * y[0]
    r2 = th[1] * y[1] * y[1]
    r3 = th[2] * y[1] * y[2]
    out[0] = -r1 + r3
    out[1] = r1 - r2 - r3
    out[2] = r2


@nb.njit(cache=True)
def robertson_jac(t, y, th, out):
    out[0, 0] = -th[0]
    out[0, 1] = th[2] * y[2]
    out[0, 2] = th[2] * y[1]
    out[1, 0] = th[0]
    out[1, 1] = -2.0 * th[1] * y[1] - th[2] * y[2]
    out[1, 2] = -th[2] * y[1]
    out[2, 0] = 0.0
    out[2, 1] = 2.0 * th[1] * y[1]
    out[2, 2] = 0.0


@nb.njit(cache=True)
def van_der_pol_jac(t, y, th, out):
    out[0, 0] = 0.0
    out[0, 1] = 1.0
    out[1, 0] = -2.0 * th[0] * y[0] * y[1] - 1.0
    out[1, 1] = th[0] * (1.0 - y[0] * y[0])


@nb.njit(cache=True)
def hires_rhs(t, y, th, out):
    """HIRES (Schaefer's plant physiology model; test set of Mazzia et al.)."""
    out[0] = -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007
    out[1] = 1.71 * y[0] - 8.75 * y[1]
    out[2] = -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4]
    out[3] = 8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3]
    out[4] = -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6]
    out[5] = -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6]
    out[6] = 280.0 * y[5] * y[7] - 1.81 * y[6]
    out[7] = -280.0 * y[5] * y[7] + 1.81 * y[6]


@nb.njit(cache=True)
def orego_rhs(t, y, th, out):
    """OREGO (Field and Noyes' Oregonator; s = 77.27, w = 0.161, q = 8.375e-6)."""
    s, w, q = 77.27, 0.161, 8.375e-6
    out[0] = s * (y[1] - y[0] * y[1] + y[0] - q * y[0] * y[0])
    out[1] = (-y[1] - y[0] * y[1] + y[2]) / s
    out[2] = w * (y[0] - y[2])


# Published references at the final time of the Test Set for IVP Solvers
# (F. Mazzia, C. Magherini, University of Bari; computed with RADAU5 in
# extended precision).  The Van der Pol reference below reproduces the test
# set's VDPOL value at t = 2000 (its scaled time 2) to 1e-12.
HIRES_Y0 = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057])
HIRES_T1 = 321.8122
HIRES_REF = np.array([0.7371312573325668e-3, 0.1442485726316185e-3,
                      0.5888729740967575e-4, 0.1175651343283149e-2,
                      0.2386356198831331e-2, 0.6238968252742796e-2,
                      0.2849998395185769e-2, 0.2850001604814231e-2])
OREGO_Y0 = np.array([1.0, 2.0, 3.0])
OREGO_T1 = 360.0
OREGO_REF = np.array([0.1000814870318523e1, 0.1228178521549917e4, 0.1320554942846706e3])


# Reference solutions, computed with SciPy's Radau (analytic Jacobian) at
# rtol 1e-12, atol 1e-20 (Robertson) and rtol 1e-11, atol 1e-14 (Van der Pol);
# a run one decade looser agrees to ~1e-12 (Robertson) relative.
# `python -m nodekit.validation.stiff_kernels` recomputes and compares them.
ROBERTSON_T = np.array([0.0, 0.4, 40.0, 4e3, 1e5])
ROBERTSON_REF = np.array([
    [1.0, 0.0, 0.0],
    [9.8517211386099068e-01, 3.3863953789749516e-05, 1.4794022185218449e-02],
    [7.1582706871941204e-01, 9.1855347645572171e-06, 2.8416374574582537e-01],
    [1.8320225777670937e-01, 8.9423712527755601e-07, 8.1679684798616436e-01],
    [1.7865921142100099e-02, 7.2747514684365942e-08, 9.8213400611038337e-01]])

#: Robertson over the long horizon: ``y(4e10)`` from the same Radau run
#: (rtol 1e-12, atol 1e-20; a run one decade looser agrees to 2.3e-10
#: relative), and ``y(1e11)`` as published in the Test Set for IVP Solvers
#: (Mazzia and Magherini, problem ROBER), which that Radau run reproduces to
#: 3.5e-10 relative.
ROBERTSON_LONG_T = np.array([0.0, 4e10, 1e11])
ROBERTSON_LONG_REF = np.array([
    [1.0, 0.0, 0.0],
    [5.2083451764287714e-08, 2.0833381777773420e-13, 9.9999994791632063e-01],
    [0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050]])

VDP_MU = np.array([1000.0])
VDP_Y0 = np.array([2.0, 0.0])
VDP_T = np.linspace(0.0, 3000.0, 7)
VDP_REF = np.array([
    [2.0, 0.0],
    [1.5967689510518912e+00, -1.0303911878419695e-03],
    [-1.8636462548072421e+00, 7.5354308654511772e-04],
    [-1.3547459194869667e+00, 1.6217887275864569e-03],
    [1.7061677321688828e+00, -8.9280970102744426e-04],
    [-1.9465395177983995e+00, 6.9793038916314716e-04],
    [-1.5106069367438517e+00, 1.1783800007314910e-03]])


def radau_reference(rhs, jac, y0, ts, theta, rtol, atol):
    """``y(ts)`` from SciPy's Radau with the compiled kernels ``rhs``, ``jac``."""
    from scipy.integrate import solve_ivp
    n = len(y0)

    def f(t, y):
        out = np.empty(n)
        rhs(t, y, theta, out)
        return out

    def J(t, y):
        out = np.empty((n, n))
        jac(t, y, theta, out)
        return out

    sol = solve_ivp(f, (ts[0], ts[-1]), y0, method="Radau", t_eval=ts, rtol=rtol,
                    atol=atol, jac=J)
    return sol.y.T


if __name__ == "__main__":
    from .kernels import van_der_pol_rhs
    for name, args, ref in (
            ("Robertson", (robertson_rhs, robertson_jac, ROBERTSON_Y0, ROBERTSON_T,
                           ROBERTSON_THETA, 1e-12, 1e-20), ROBERTSON_REF),
            ("Robertson to 1e11", (robertson_rhs, robertson_jac, ROBERTSON_Y0,
                                   ROBERTSON_LONG_T, ROBERTSON_THETA, 1e-12, 1e-20),
             ROBERTSON_LONG_REF),
            ("Van der Pol", (van_der_pol_rhs, van_der_pol_jac, VDP_Y0, VDP_T, VDP_MU,
                             1e-11, 1e-14), VDP_REF)):
        y = radau_reference(*args)
        print(f"{name}: max relative difference from the stored reference "
              f"{np.max(np.abs(y - ref) / (np.abs(ref) + 1e-300 + (ref == 0))):.2e}")


@nb.njit(cache=True)
def prothero_robinson_rhs(t, y, th, out):
    """Prothero and Robinson's non-autonomous test ``y' = -k (y - cos t) - sin t``
    (``k = theta[0]``), whose solution from ``y(0) = 1`` is ``cos t``."""
    for i in range(y.size):
        out[i] = -th[0] * (y[i] - np.cos(t)) - np.sin(t)
