"""nodekit.symbolic against hand-written kernels on Lotka-Volterra.

dx = a x - b y x, dy = -c y + d x y, (a, b, c, d) = (1.5, 1, 3, 1), y0 = (1, 1),
200 outputs on [0, 20], dopri5, rtol 1e-8, atol 1e-10: the forward solve, the
gradient of sum(y**2) w.r.t. y0 and theta (``nk.odeint``, adjoint), and a fresh
process loading the cached symbolic system and solving once.

Run: ``python -m nodekit.benchmarks.symbolic`` (generated modules go to the default
cache, ``$NODEKIT_CACHE/symbolic`` or ``~/.cache/nodekit/symbolic``).

``python -m nodekit.benchmarks.symbolic --dense`` times the first use of dense linear
systems ``dy/dt = A y`` (n states, the n*n entries of ``A`` as parameters):
generating and compiling the kernels plus the first solve and the first
gradient, in a new process with an empty cache, for straight-line and tape
kernels; then the warm cost of a solve and of a gradient (best of a few).
"""
import json
import subprocess
import sys
import tempfile

import numpy as np

from ._timing import child_env, fresh_process_time, median_time, table

THETA = np.array([1.5, 1.0, 3.0, 1.0])
Y0 = np.array([1.0, 1.0])
T = np.linspace(0.0, 20.0, 200)
RTOL, ATOL = 1e-8, 1e-10

SYSTEM = {"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}

_FRESH = f"""
import numpy as np
import nodekit as nk
from nodekit.symbolic import ODESystem
ode = ODESystem.from_strings({SYSTEM!r}, params=["a", "b", "c", "d"]).compile()
nk.solve(ode, np.ones(2), np.linspace(0, 20, 200), np.array([1.5, 1.0, 3.0, 1.0]),
         rtol=1e-8, atol=1e-10)
"""

_FRESH_HAND = """
import numpy as np
import nodekit as nk
from nodekit.benchmarks._lv_hand import LV
nk.solve(LV, np.ones(2), np.linspace(0, 20, 200), np.array([1.5, 1.0, 3.0, 1.0]),
         rtol=1e-8, atol=1e-10)
"""


def run(quick=False):
    import autograd
    import autograd.numpy as anp

    import nodekit as nk
    from ._lv_hand import LV as hand
    from nodekit.symbolic import ODESystem

    sym = ODESystem.from_strings(SYSTEM, params=["a", "b", "c", "d"]).compile()
    rep = 5 if quick else 50

    def forward(ode):
        return lambda: nk.solve(ode, Y0, T, THETA, rtol=RTOL, atol=ATOL)

    def gradient(ode):
        loss = lambda y0, th: anp.sum(nk.odeint(ode, y0, T, th, rtol=RTOL, atol=ATOL,
                                                gradient="adjoint") ** 2)
        g = autograd.grad(loss, (0, 1))
        return lambda: g(Y0, THETA)

    ys, yh = forward(sym)().y, forward(hand)().y
    gs, gh = gradient(sym)(), gradient(hand)()
    assert np.array_equal(ys, yh), "symbolic and hand-written solves differ"
    gdiff = max(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) for a, b in zip(gs, gh))

    rows = []
    for label, make, r in (("forward nk.solve", forward, rep),
                           ("gradient, odeint adjoint (y0, theta)", gradient, max(3, rep // 3))):
        t_sym = median_time(make(sym), repeat=r)
        t_hand = median_time(make(hand), repeat=r)
        rows.append([label, f"{1e3 * t_sym:.3f}", f"{1e3 * t_hand:.3f}",
                     f"{t_sym / t_hand:.2f}x"])
    print("Lotka-Volterra, 200 outputs on [0, 20], dopri5, rtol 1e-8, atol 1e-10")
    print(table(rows, ["task", "symbolic ms / call", "hand-written ms / call",
                       "symbolic / hand (target <= 1.3x)"]))
    print(f"\nsolutions identical: yes; gradients agree to {gdiff:.1e} (relative); "
          f"gradient {np.array2string(np.concatenate(gs), precision=2)}")

    fresh_process_time(_FRESH, repeat=1)  # make sure every cache is written
    fresh_process_time(_FRESH_HAND, repeat=1)
    n = 1 if quick else 3
    best, med = fresh_process_time(_FRESH, repeat=n)
    hbest, _ = fresh_process_time(_FRESH_HAND, repeat=n)
    ibest, _ = fresh_process_time("import nodekit, sympy", repeat=n)
    print(f"\nfresh process, import + load the cached symbolic system + first solve: "
          f"{best:.2f} s (median {med:.2f} s); hand-written kernels: {hbest:.2f} s; "
          f"`import nodekit, sympy` alone: {ibest:.2f} s")
    print(f"generated module: {sym.source_path}")


_DENSE = """
import json, sys, time
import autograd, autograd.numpy as anp, numpy as np, sympy as sp
import nodekit as nk
from nodekit.symbolic import ODESystem
n, kernels = int(sys.argv[1]), sys.argv[2]
xs, A = sp.symbols(f"x0:{n}"), sp.symbols(f"a0:{n * n}")
system = ODESystem(states=xs, params=A,
                   rhs=[sum(A[i * n + j] * xs[j] for j in range(n)) for i in range(n)])
rng = np.random.default_rng(0)
theta = (rng.normal(size=(n, n)) / np.sqrt(n) - np.eye(n)).ravel()
y0, ts = np.ones(n), np.linspace(0.0, 10.0, 50)
loss = lambda th: anp.sum(nk.odeint(ode, y0, ts, th, rtol=1e-10, atol=1e-12))
t0 = time.perf_counter()
ode = system.compile(kernels=kernels)
nk.solve(ode, y0, ts, theta, rtol=1e-10, atol=1e-12)
t1 = time.perf_counter()
autograd.grad(loss)(theta)
t2 = time.perf_counter()


def best(fn, repeat=7):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


solve = best(lambda: nk.solve(ode, y0, ts, theta, rtol=1e-10, atol=1e-12))
grad = best(lambda: autograd.grad(loss)(theta), repeat=3)
print(json.dumps([t1 - t0, t2 - t1, solve, grad]))
"""


def dense(sizes=(10, 20, 30), modes=("straight", "tape")):
    """First-use and warm timings of dense linear systems (see the module notes)."""
    env = child_env()
    rows = []
    for n in sizes:
        for mode in modes:
            with tempfile.TemporaryDirectory() as cache:
                env["NODEKIT_CACHE"] = cache
                out = subprocess.run([sys.executable, "-c", _DENSE, str(n), mode], env=env,
                                     check=True, capture_output=True, text=True).stdout
            first, grad, solve, warm_grad = json.loads(out)
            rows.append([str(n), mode, f"{first:.1f}", f"{grad:.1f}", f"{first + grad:.1f}",
                         f"{1e3 * solve:.1f}", f"{1e3 * warm_grad:.0f}"])
    print("dense linear dy/dt = A y, n states, n*n parameters; 50 outputs on [0, 10], "
          "rtol 1e-10; new process, empty cache")
    print(table(rows, ["n", "kernels", "compile + first solve s", "first gradient s",
                       "total s", "warm solve ms", "warm gradient ms"]))


if __name__ == "__main__":
    if "--dense" in sys.argv:
        dense()
    else:
        run(quick="--quick" in sys.argv)
