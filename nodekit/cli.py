"""The ``nodekit`` command line (also ``python -m nodekit``).

``nodekit demo [spiral|digits|solve]``, ``nodekit validate``, ``nodekit bench``.
Errors in the arguments are one line, not a traceback.
"""
import argparse
import importlib
import os
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import(name):
    """Import a module of the source tree (examples/, validation/, benchmarks/)."""
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise SystemExit(f"nodekit: `{name}` is not available ({exc}); it ships with the "
                         "source tree: install nodekit with `pip install -e .` from a clone.")


def _demo_solve(args):
    """Solve closed-form problems; print errors and timings beside SciPy."""
    from scipy.integrate import solve_ivp

    import nodekit as nk
    table = _import("benchmarks._timing").table

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
            kw = dict(rtol=args.rtol, atol=args.rtol * 1e-3)
            nk.solve(f, y0, ts, theta, method=method, **kw)  # warm
            t0 = time.perf_counter()
            sol = nk.solve(f, y0, ts, theta, method=method, **kw)
            t_nk = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = solve_ivp(lambda t, y: f(t, y, theta), span, y0, method=ref, t_eval=ts, **kw)
            t_sp = time.perf_counter() - t0
            e = exact(ts)
            rows.append((name, method, f"{np.max(np.abs(sol.y - e)):.2e}", str(sol.nfev),
                         f"{np.max(np.abs(r.y.T - e)):.2e}", str(r.nfev),
                         f"{1e3 * t_nk:.2f}", f"{1e3 * t_sp:.2f}"))
    print(f"nodekit {nk.__version__}: closed-form problems, rtol={args.rtol:g}, "
          f"atol={args.rtol * 1e-3:g}, Python right-hand sides\n")
    print(table(rows, ["problem", "method", "max error", "nfev", "SciPy error", "SciPy nfev",
                       "nodekit ms", "SciPy ms"]))
    return 0


def _demo(args):
    if args.which == "solve":
        return _demo_solve(args)
    module = _import(f"examples.{args.which}")
    out = os.path.join(args.out, args.which)
    argv = ["--out", out, "--seed", str(args.seed)]
    if args.iters is not None:
        argv += ["--iters", str(args.iters)]
    status = module.cli(argv)
    if args.which == "digits" and not status:
        # the paper's Figure 3 on the ODE-Net just trained
        status = _import("examples.figure3").cli(
            ["--from", out, "--out", os.path.join(args.out, "figure3"), "--seed",
             str(args.seed)])
    return status


def _bench(args):
    lv = _import("benchmarks.lotka_volterra")
    lv.run(quick=args.quick)
    lv.run_gradient(quick=args.quick)
    print()
    _import("benchmarks.spiral").run(quick=args.quick)
    print()
    _import("benchmarks.symbolic").run(quick=args.quick)
    if not args.quick:
        print()
        _import("benchmarks.memory").run()
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nodekit", description="Neural ODEs for NumPy: demos, validation, benchmarks.")
    sub = parser.add_subparsers(dest="command", metavar="{demo,validate,bench}")
    p = sub.add_parser("demo", help="train a neural ODE and plot it (default: spiral)",
                       description="Run a demo: 'spiral' (the reference ode_demo: train, "
                                   "plot), 'digits' (ODE-Net vs ResNet vs RK-Net vs MLP) "
                                   "or 'solve' (closed-form problems against SciPy).")
    p.add_argument("which", nargs="?", default="spiral", choices=["spiral", "digits", "solve"])
    p.add_argument("--iters", type=_positive_int, default=None,
                   help="training iterations (default: the paper's setting)")
    p.add_argument("--out", default="out", help="folder for plots and reports (default: out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rtol", type=float, default=1e-8, help="tolerance for 'solve'")
    p.set_defaults(func=_demo)
    sub.add_parser("validate", help="run the analytic validation suite (--quick, --out DIR, "
                                    "--only FAMILY; see `nodekit validate --help`)",
                   add_help=False)
    p = sub.add_parser("bench", help="run the benchmarks (peers measured in the same run)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, no memory run")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the ``nodekit`` command."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo"] + argv
    if argv[0] == "validate":
        # every option belongs to the validation suite (--quick, --out, --only, ...)
        return _import("validation").main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"nodekit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
