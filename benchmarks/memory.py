"""Peak memory of a gradient through a long solve: "adjoint" and "discrete"
with checkpoints (the default) stay flat, "interpolated" and "discrete" with
``checkpoints=0`` (every step recorded) grow with the number of steps.

Each configuration runs in a fresh process: after a small warm-up gradient
(so compiled kernels are loaded or compiled: compilation has its own, larger
memory peak), the peak resident set size is reset (``/proc/self/clear_refs``)
and its growth during one gradient is reported (``VmHWM``).

Run: ``python -m nodekit.benchmarks.memory``.
"""
import json
import subprocess
import sys

from ._timing import child_env, table

_CHILD = r'''
import json, resource, sys, time
import numpy as np, autograd, autograd.numpy as anp
import nodekit as nk
from nodekit.benchmarks import _lv_hand as lv_kernels
mode, k = sys.argv[1], int(sys.argv[2])
extra = {{}}
if mode.startswith("discrete"):
    extra = dict(checkpoints=0 if mode == "discrete-all" else None)
    mode = "discrete"
th = np.array([1.5, 1.0, 3.0, 1.0]); y0 = np.ones(2)
def grad(T, st):
    ts = np.linspace(0.0, T, 200)
    loss = lambda y0: anp.sum(nk.odeint(lv_kernels.LV, y0, ts, th, rtol=1e-8, atol=1e-10,
                                        gradient=mode, max_steps=10**8, stats=st, **extra) ** 2)
    return autograd.grad(loss)(y0)
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
grad(60.0, {{}})  # compile or load every kernel first (60: several checkpoint segments)
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak resident set size to the current one
except OSError:
    pass
before = hwm_kb()
st = {{}}
t0 = time.perf_counter(); g = grad(20.0 * k, st); dt = time.perf_counter() - t0
after = hwm_kb()
print(json.dumps(dict(steps=st["nsteps_forward"], nfev_b=st["nfev_backward"],
                      growth_mb=(after - before) / 1024, seconds=dt)))
'''


MODES = ("adjoint", "interpolated", "discrete-all", "discrete")


def run(factors=(1, 10, 100, 1000), modes=MODES):
    code = _CHILD.format()
    rows = []
    for mode in modes:
        for k in factors:
            res = subprocess.run([sys.executable, "-c", code, mode, str(k)], env=child_env(),
                                 capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append((mode, f"{k}x", str(r["steps"]), f"{r['growth_mb']:.1f}",
                         f"{r['seconds']:.3f}"))
    print("discrete-all: gradient='discrete', checkpoints=0 (every step recorded); "
          "discrete: the default checkpoints")
    print("Peak RSS growth during one gradient of sum(y^2) (Lotka-Volterra, 200 outputs, "
          "horizon 20k, dopri5, rtol 1e-8)")
    print(table(rows, ["gradient", "horizon", "forward steps", "peak RSS growth (MB)",
                       "seconds"]))


if __name__ == "__main__":
    # ``python -m nodekit.benchmarks.memory discrete discrete-all`` runs only those modes
    run(modes=tuple(sys.argv[1:]) or MODES)
