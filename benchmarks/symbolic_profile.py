"""Where the first use of a large symbolic system spends its time.

For dense linear systems ``dy/dt = A y`` (n states, the n*n entries of ``A``
as parameters), with an empty cache, each phase of ``compile()`` plus a first
gradient, timed separately:

* ``build``: ``ODESystem.from_strings`` (parsing);
* ``derivatives``: the derivative rows (:func:`codegen._derivatives`);
* ``cse``: SymPy's common-subexpression elimination of the VJP expressions;
* ``generate``: the whole generated source of each part (derivatives, CSE or
  tape recording, printing), with its size in lines;
* ``numba``: compiling the guarded wrappers ``nk.ODE`` builds around
  ``rhs`` and ``vjp`` (what a solve compiles: the wrapper compiles the
  kernel inside it; the kernels' own dispatchers are compiled only if called
  from Python);
* ``first solve``, ``first gradient``: ``nk.solve`` and ``autograd.grad``
  through ``nk.odeint`` once the kernels exist (the solver loops come from
  Numba's cache after the first run of the installed package);
* ``first use``: what a user waits for after ``import`` (build, compile,
  the two guarded kernels, first solve and gradient); ``derivatives``,
  ``cse`` and ``generate`` are measured separately and repeat work that
  ``compile()`` and the ``vjp`` module load also do.

Run: ``python -m nodekit.benchmarks.symbolic_profile [n ...] [--kernels straight|tape|auto]``
(default n = 10 20 30, kernels = auto).  Each n runs in a new process with a
fresh cache folder, so nothing is reused between sizes.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import autograd, autograd.numpy as anp
import sympy as sp
import nodekit as nk
from nodekit.symbolic import ODESystem, codegen
n, kernels = int(sys.argv[1]), sys.argv[2]
out = {"import": time.perf_counter() - t0}

def timed(name, fn):
    t = time.perf_counter()
    r = fn()
    out[name] = time.perf_counter() - t
    return r

names = [f"y{i}" for i in range(n)]
rhs = {y: " + ".join(f"a{i}_{j}*{names[j]}" for j in range(n)) for i, y in enumerate(names)}
params = [f"a{i}_{j}" for i in range(n) for j in range(n)]
system = timed("build", lambda: ODESystem.from_strings(rhs, params=params))
syms = codegen._symbols(system)
rows = timed("derivatives", lambda: codegen._derivatives(system, syms))
vjp_exprs = codegen._vjp_kernels(system, syms)[0].exprs
timed("cse (vjp, SymPy)", lambda: sp.cse(vjp_exprs, order="canonical"))
for part in ("rhs", "vjp"):
    src = timed(f"generate {part}", lambda: codegen.generate_source(system, part, kernels))
    out[f"lines {part}"] = src.count("\n")
    out[f"tape {part}"] = "tape.run(" in src
ode = timed("compile() (write + import)", lambda: system.compile(kernels=kernels))
y0, th = np.ones(n), np.random.default_rng(0).standard_normal(n * n) / n
timed("numba rhs (guarded cfunc)", lambda: ode.rhs_cfunc)
timed("load vjp module", lambda: ode.vjp)
timed("numba vjp (guarded cfunc)", lambda: ode.vjp_cfunc)
ts = np.linspace(0.0, 1.0, 5)
timed("first solve", lambda: nk.solve(ode, y0, ts, th))
timed("first gradient", lambda: autograd.grad(
    lambda th: anp.sum(nk.odeint(ode, y0, ts, th)))(th))
out["first use (no import)"] = sum(out[k] for k in (
    "build", "compile() (write + import)", "numba rhs (guarded cfunc)", "load vjp module",
    "numba vjp (guarded cfunc)", "first solve", "first gradient"))
print(json.dumps(out))
"""


def profile(n, kernels="auto"):
    """The phases of the first use of the n-state dense system, in seconds."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NODEKIT_CACHE=cache)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", _CHILD, str(n), kernels],
                             capture_output=True, text=True, env=env, check=True)
        phases = json.loads(res.stdout.strip().splitlines()[-1])
        phases["total (process)"] = time.perf_counter() - t
        return phases


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    kernels = "auto"
    if "--kernels" in argv:
        i = argv.index("--kernels")
        kernels = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    sizes = [int(a) for a in argv] or [10, 20, 30]
    results = {n: profile(n, kernels) for n in sizes}
    keys = list(next(iter(results.values())))
    print(f"kernels={kernels!r}; seconds (lines: generated source lines)")
    print(f"{'phase':32s}" + "".join(f"{'n=' + str(n):>10s}" for n in sizes))
    for k in keys:
        cells = []
        for n in sizes:
            v = results[n][k]
            cells.append(f"{str(v):>10s}" if isinstance(v, bool) else
                         f"{v:>10d}" if isinstance(v, int) else f"{v:>10.2f}")
        print(f"{k:32s}" + "".join(cells))


if __name__ == "__main__":
    main()
