"""Hand-written Lotka-Volterra kernels, the baseline of ``benchmarks.symbolic``
(module level in a real file, so Numba caches them)."""
import numba

import nodekit as nk


@numba.njit(cache=True)
def lv_rhs(t, y, th, out):
    out[0] = th[0] * y[0] - th[1] * y[0] * y[1]
    out[1] = -th[2] * y[1] + th[3] * y[0] * y[1]


@numba.njit(cache=True)
def lv_vjp(t, y, th, a, out_y, out_th):
    out_y[0] = a[0] * (th[0] - th[1] * y[1]) + a[1] * th[3] * y[1]
    out_y[1] = -a[0] * th[1] * y[0] + a[1] * (-th[2] + th[3] * y[0])
    out_th[0] = a[0] * y[0]
    out_th[1] = -a[0] * y[0] * y[1]
    out_th[2] = -a[1] * y[1]
    out_th[3] = a[1] * y[0] * y[1]
    return 0.0


LV = nk.ODE(lv_rhs, lv_vjp, name="lv_hand")
