"""SymPy front end: ODEs written as expressions, compiled to cached kernels.

>>> import sympy as sp
>>> from nodekit.symbolic import ODESystem
>>> t, y, k = sp.symbols("t y k")
>>> decay = ODESystem(t=t, states=[y], params=[k], rhs=[-k * y])
>>> ode = decay.compile()            # an nk.ODE with rhs, vjp, jac_y, jac_theta  # doctest: +SKIP

SymPy is imported here, never by ``import nodekit``.  The generated kernels
import only ``math`` and ``numba``.
"""
from .closed_form import ClosedForm, closed_form, closed_form_derivatives
from .codegen import (
                      GENERATOR_VERSION,
                      PARTS,
                      SymbolicODE,
                      default_cache_dir,
                      generate_source,
                      module_path,
)
from .system import ODESystem

__all__ = [
                      "GENERATOR_VERSION",
                      "PARTS",
                      "ClosedForm",
                      "ODESystem",
                      "SymbolicODE",
                      "closed_form",
                      "closed_form_derivatives",
                      "default_cache_dir",
                      "generate_source",
                      "module_path",
]
