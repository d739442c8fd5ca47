"""Hand-written Lotka-Volterra kernels, the baseline of the benchmarks (the
validation suite's compiled reference kernels: module level in a real file,
so Numba caches them)."""
import nodekit as nk
from nodekit.validation.kernels import lotka_volterra_rhs as lv_rhs
from nodekit.validation.kernels import lotka_volterra_vjp as lv_vjp

LV = nk.ODE(lv_rhs, lv_vjp, name="lv_hand")
