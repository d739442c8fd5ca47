"""nodekit: Neural ODEs for NumPy.

Numba-compiled explicit Runge-Kutta integrators (fixed-step and adaptive),
gradients through ODE solves, and the models of Chen et al. (2018), with no
deep-learning framework.

>>> import nodekit as nk
>>> sol = nk.solve(lambda t, y, theta: -y, [1.0], [0.0, 1.0])
>>> sol.success
True
"""
from . import _cachelock  # noqa: F401  (first: locks Numba's disk cache across processes)
from . import _compile_notice  # noqa: F401  (one line on stderr while a first run compiles)
from .controllers import PIController
from .integrate import Solution, solve
from .ode import ODE
from .primitive import SolveError, odeint
from . import adjoint  # noqa: F401  (nk.adjoint.GRADIENTS, nk.adjoint.GradientError)
from .adjoint import GradientError
from .tableaux import METHODS, ButcherTableau, get_tableau
from .tableaux import STIFF_METHODS
from ._warnings import (AccuracyWarning, AdjointDriftWarning, NodekitWarning,
                        StiffnessWarning, UntracedFunctionWarning)
from .ensemble import EnsembleSolution, odeint_ensemble, solve_ensemble
from .events import Event, NoEventError, odeint_event
from .check import CheckReport, KernelCheckError, check_ode

#: The explicit Runge-Kutta methods (Butcher tableaux) by name.
EXPLICIT_METHODS = METHODS
#: Every method by name: the explicit ones and the stiff ones (Rosenbrock, ESDIRK).
METHODS = {**EXPLICIT_METHODS, **STIFF_METHODS}

__version__ = "0.1.0"

from . import _source_tree  # noqa: E402  (nodekit.examples etc. in a source checkout)
_source_tree.install()


def __getattr__(name):
    # subpackages that pull in SymPy (or generate code) load on first use,
    # so that `import nodekit` stays fast
    if name in ("symbolic", "nn", "train", "models", "datasets"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nodekit' has no attribute {name!r}")

__all__ = ["ODE", "METHODS", "STIFF_METHODS", "ButcherTableau", "GradientError", "PIController",
           "EXPLICIT_METHODS",
           "EnsembleSolution", "Event", "NoEventError", "odeint_event", "Solution",
           "SolveError", "get_tableau", "odeint", "odeint_ensemble", "solve", "solve_ensemble",
           "__version__"]
__all__ += ["NodekitWarning", "AccuracyWarning", "AdjointDriftWarning",
            "UntracedFunctionWarning", "StiffnessWarning"]
__all__ += ["check_ode", "CheckReport", "KernelCheckError"]
