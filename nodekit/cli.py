"""The ``nodekit`` command line: ``nodekit demo``, ``nodekit bench``.

Also runs as ``python -m nodekit``.
"""
import argparse
import sys
import time

import numpy as np


def _demo_solve(args):
    """Solve a few ODEs with closed forms; print errors and timings beside SciPy."""
    from scipy.integrate import solve_ivp

    import nodekit as nk

    problems = [
        ("exponential decay", lambda t, y, k: -k[0] * y, [2.0], [0.7],
         lambda t: 2.0 * np.exp(-0.7 * t)[:, None], (0.0, 5.0)),
        ("logistic", lambda t, y, p: p[0] * y * (1 - y / p[1]), [0.1], [1.3, 2.0],
         lambda t: (2.0 * 0.1 / (0.1 + 1.9 * np.exp(-1.3 * t)))[:, None], (0.0, 8.0)),
        ("linear spiral", lambda t, y, p: np.array([-0.1 * y[0] + 2 * y[1],
                                                    -2 * y[0] - 0.1 * y[1]]),
         [2.0, 0.0], None,
         lambda t: 2 * np.exp(-0.1 * t)[:, None] * np.stack([np.cos(2 * t), -np.sin(2 * t)], 1),
         (0.0, 10.0)),
        ("nonautonomous growth", lambda t, y, k: k[0] * np.cos(t) * y, [1.0], [1.5],
         lambda t: np.exp(1.5 * np.sin(t))[:, None], (0.0, 6.0)),
    ]
    rows = []
    for name, f, y0, theta, exact, span in problems:
        ts = np.linspace(*span, 50)
        for method, ref in (("dopri5", "RK45"), ("dop853", "DOP853")):
            t0 = time.perf_counter()
            sol = nk.solve(f, y0, ts, theta, method=method, rtol=args.rtol, atol=args.rtol * 1e-3)
            t_nk = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = solve_ivp(lambda t, y: f(t, y, theta), span, y0, method=ref, t_eval=ts,
                          rtol=args.rtol, atol=args.rtol * 1e-3)
            t_sp = time.perf_counter() - t0
            e = exact(ts)
            rows.append((name, method, f"{np.max(np.abs(sol.y - e)):.2e}", str(sol.nfev),
                         f"{np.max(np.abs(r.y.T - e)):.2e}", str(r.nfev),
                         f"{1e3 * t_nk:.2f}", f"{1e3 * t_sp:.2f}"))
    from benchmarks._timing import table
    print(f"nodekit {nk.__version__}: closed-form problems, rtol={args.rtol:g}, "
          f"atol={args.rtol * 1e-3:g}, Python right-hand sides\n")
    print(table(rows, ["problem", "method", "max error", "nfev", "SciPy error", "SciPy nfev",
                       "nodekit ms", "SciPy ms"]))
    return 0


def _bench(args):
    from benchmarks import lotka_volterra
    lotka_volterra.run(quick=args.quick)
    return 0


def main(argv=None):
    """Entry point of the ``nodekit`` command."""
    parser = argparse.ArgumentParser(prog="nodekit", description="Neural ODEs for NumPy.")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo", help="solve closed-form problems and compare with SciPy "
                                    "(the default command)")
    p.add_argument("--rtol", type=float, default=1e-8, help="relative tolerance (default 1e-8)")
    p.set_defaults(func=_demo_solve)
    p = sub.add_parser("bench", help="run the benchmarks (peers measured in the same run)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"] + list(argv or []))
    try:
        return args.func(args)
    except (ValueError, TypeError) as exc:
        print(f"nodekit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
