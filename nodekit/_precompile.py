"""The first run's two compiles at once: the adjoint's backward solve in a
second process while this one compiles the rest.

A first gradient with ``gradient="adjoint"`` needs two large compiled
functions: the integration loop of the forward solve and the compiled
backward solve (:func:`nodekit.adjoint.backsolve`, which holds a second copy
of the loop for the adjoint system).  Each takes many seconds to compile
(15 s and 12 s of the spiral demo's 31 s first run on the development
machine), one after the other, on one core.  Numba cannot compile two
functions at once in one process, but the backward solve's argument types do
not depend on the user's right-hand side (every kernel reaches it as a
first-class function of one signature), so another process can compile it
from those types alone, before any forward solve.

:func:`start_backsolve_compile` starts that process, when the backward solve
is not in Numba's disk cache yet and the machine has a second core.  It
compiles under nodekit's cross-process compile lock
(:mod:`nodekit._cachelock`), so when this process reaches its first backward
solve it waits for that compile to finish and loads the result from the
cache instead of compiling it again.  Run as ``python -m
nodekit._precompile``, this module compiles the backward solve and exits.
"""
import os
import subprocess
import sys

import numba as nb
import numpy as np


def backsolve_signature():
    """The argument types of every call of :func:`nodekit.adjoint.backsolve`
    (as :func:`nodekit.adjoint.run_backsolve` passes them)."""
    from . import adjoint
    from ._kernel_type import KernelType
    from .ode import RHS_GUARDED_SIG, VJP_GUARDED_SIG
    from .options import DEFAULT_CONTROLLER
    from .primitive import backward_options

    vec = nb.types.float64[::1]
    mat = nb.types.float64[:, ::1]
    # the options record as a gradient builds it (any values: only the types count)
    adj = backward_options(adjoint.strategy("adjoint"), "dopri5", 1e-6, 1e-9, None, None,
                           None, False, 10, np.inf, None, DEFAULT_CONTROLLER)
    back = adjoint.backsolve_options(adj, 1, 1)
    return (KernelType(RHS_GUARDED_SIG), KernelType(VJP_GUARDED_SIG), vec, vec, mat, mat,
            nb.types.float64, nb.typeof(back), vec, vec, vec, vec)


def is_cached(function, sig):
    """Whether Numba's disk cache holds ``function`` compiled for ``sig``
    (read from the cache index, nothing loaded)."""
    cache = getattr(function, "_cache", None)
    if cache is None or not hasattr(cache, "_cache_file"):
        return False
    key = cache._index_key(sig, function.targetctx.codegen())
    return key in cache._cache_file._load_index()


def start_backsolve_compile():
    """Compile the adjoint's backward solve in a background process, when it
    is not in the disk cache and there is a second core to do it on.

    Returns the started ``subprocess.Popen``, or None when nothing was
    started.  Never raises: the backward solve is then compiled in this
    process when first needed, as without this call.
    """
    try:
        from . import adjoint
        if (os.cpu_count() or 1) < 2 or is_cached(adjoint.backsolve, backsolve_signature()):
            return None
        root = os.path.dirname(os.path.dirname(os.path.abspath(adjoint.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return subprocess.Popen([sys.executable, "-m", "nodekit._precompile"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except Exception:  # noqa: BLE001 - an optimisation only
        return None


def main():
    """Compile the backward solve for :func:`backsolve_signature` (cached on disk)."""
    from . import adjoint
    adjoint.backsolve.compile(backsolve_signature())


if __name__ == "__main__":
    main()
