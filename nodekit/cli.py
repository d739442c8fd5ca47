"""The ``nodekit`` command line (also ``python -m nodekit``).

``nodekit demo [spiral|digits|solve|cnf|latent]``, ``nodekit validate``,
``nodekit bench``, ``nodekit --version``.  The demos, the validation suite and
the benchmarks ship inside the package (``nodekit.examples``,
``nodekit.validation``, ``nodekit.benchmarks``).  Errors in the arguments are
one line, not a traceback.
"""
import argparse
import importlib
import os
import sys
import tempfile
import textwrap
import time
from collections import namedtuple

import numpy as np

#: One demo: the module (under ``nodekit.``) and its entry point taking
#: ``argv``, what it does, and its defaults as shown by ``--help``.
Demo = namedtuple("Demo", "module entry summary defaults")

DEMOS = {
    "spiral": Demo("examples.spiral", "cli",
                   "torchdiffeq's ode_demo: an MLP on y**3 learns the cubic spiral; "
                   "writes trajectories, phase portrait, vector field and loss plots",
                   "2000 iterations, dopri5 rtol 1e-7 atol 1e-9, adjoint gradients"),
    "digits": Demo("examples.digits", "cli",
                   "the paper's Table 1 (ODE-Net, ResNet, RK-Net, MLP) on scikit-learn's "
                   "8x8 digits, then Figure 3 on the trained ODE-Net",
                   "60 epochs per model; --iters N trains N steps per model instead"),
    "solve": Demo(None, None,
                  "closed-form problems solved by nodekit and SciPy: error, nfev, time; "
                  "plots the error against the tolerance",
                  "--rtol 1e-8 for the table, atol = rtol * 1e-3"),
    "cnf": Demo("examples.cnf", "main",
                "continuous normalizing flows (FFJORD-style) fitted to 2-D densities, "
                "against a planar flow; options of its own: --data, --trace, --matching",
                "200 iterations on two-circles, exact trace (the rings sharpen by 500)"),
    "latent": Demo("examples.latent_ode", "main",
                   "the paper's latent ODE against an RNN on irregularly observed spirals "
                   "(Table 2); options of its own: --obs, --batch, --quick",
                   "1000 spirals, 300 iterations per model"),
}

#: The demos whose models train with ``gradient="adjoint"``: on a first run
#: their compiled backward solve is compiled in a second process meanwhile
#: (:mod:`nodekit._precompile`).
ADJOINT_DEMOS = ("spiral", "digits")


def prepare_demo(which):
    """What ``nodekit demo <which>`` starts before the demo itself: on a first
    run of a demo trained with adjoint gradients, the compile of the backward
    solve in a second process (see :mod:`nodekit._precompile`).  Returns that
    process (wait for it when the demo is done), or None."""
    if which not in ADJOINT_DEMOS:
        return None
    from ._precompile import start_backsolve_compile
    return start_backsolve_compile()


#: Tolerances of the error-against-tolerance plot of ``nodekit demo solve``.
SOLVE_TOLS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
#: The closed-form cases of the validation suite that ``nodekit demo solve`` runs.
SOLVE_CASES = ("exponential decay", "logistic", "linear spiral", "nonautonomous growth")
#: nodekit's methods and the SciPy methods they are compared with.
SOLVE_METHODS = (("dopri5", "RK45"), ("dop853", "DOP853"))


class CommandError(Exception):
    """A problem the user can fix, reported in one line (exit status 2)."""


def _import(name):
    """``nodekit.<name>``; a missing demo module is a :class:`CommandError`."""
    full = f"{__package__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name in (full, f"{__package__}.{name.partition('.')[0]}"):
            raise CommandError(f"`{full}` is not available in nodekit "
                               f"{_version()}.") from None
        raise CommandError(f"`{full}` needs `{exc.name}`, which is not installed: "
                           "pip install \"nodekit[examples]\".") from None


def _version():
    from . import __version__
    return __version__


def writable_folder(path):
    """Create ``path`` if needed and check that files can be written in it.

    Raises
    ------
    CommandError
        Naming the folder and the reason, before any work is done.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"--out: {path!r} exists and is not a folder; choose another "
                           "--out.")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CommandError(f"--out: cannot write in {path!r} ({exc.strerror or exc}); "
                           "choose a writable folder with --out.") from None
    return path


def _solve_errors(case, rtol, solve_ivp, timed=True):
    """Max errors and nfev of nodekit and SciPy on one closed-form case (and the
    times of warm solves if ``timed``)."""
    import nodekit as nk
    f, theta = case.fun(), np.asarray(case.theta, dtype=float)
    ts = np.linspace(*case.t_span, 50)
    exact = case.exact(ts)
    kw = dict(rtol=rtol, atol=rtol * 1e-3)
    rows = []
    for method, ref in SOLVE_METHODS:
        if timed:
            nk.solve(f, case.y0, ts, theta, method=method, **kw)  # warm
        t0 = time.perf_counter()
        sol = nk.solve(f, case.y0, ts, theta, method=method, **kw)
        t_nk = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = solve_ivp(lambda t, y: f(t, y, theta), case.t_span, case.y0, method=ref,
                      t_eval=ts, **kw)
        t_sp = time.perf_counter() - t0
        rows.append(dict(method=method, ref=ref, error=np.max(np.abs(sol.y - exact)),
                         nfev=sol.nfev, ref_error=np.max(np.abs(r.y.T - exact)),
                         ref_nfev=r.nfev, ms=1e3 * t_nk, ref_ms=1e3 * t_sp))
    return rows


def _plot_solve(path, sweep):
    """Error against tolerance, one panel per case (nodekit solid, SciPy dashed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True, sharey=True)
    tols = np.array(SOLVE_TOLS)
    for ax, (name, per_tol) in zip(axes.flat, sweep.items()):
        for k, (method, ref) in enumerate(SOLVE_METHODS):
            ax.loglog(tols, [rows[k]["error"] for rows in per_tol], "o-", color=f"C{k}",
                      label=f"nodekit {method}")
            ax.loglog(tols, [rows[k]["ref_error"] for rows in per_tol], "s--", ms=9,
                      mfc="none", color=f"C{k}", alpha=0.7, label=f"SciPy {ref}")
        ax.loglog(tols, tols, "k:", lw=1, label="error = rtol")
        ax.set_title(name)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("rtol (atol = rtol * 1e-3)")
    for ax in axes[:, 0]:
        ax.set_ylabel("max abs error at 50 outputs")
    axes[0, 0].invert_xaxis()
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Closed-form problems: error against tolerance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _demo_solve(args):
    """Solve closed-form problems; print errors and timings beside SciPy; plot."""
    from scipy.integrate import solve_ivp

    cases = _import("validation.cases").all_cases()
    table = _import("benchmarks._timing").table
    out = writable_folder(os.path.join(args.out, "solve"))
    rtol = 1e-8 if args.rtol is None else args.rtol
    rows = []
    for name in SOLVE_CASES:
        for r in _solve_errors(cases[name], rtol, solve_ivp):
            rows.append((name, r["method"], f"{r['error']:.2e}", r["nfev"],
                         f"{r['ref_error']:.2e}", r["ref_nfev"], f"{r['ms']:.2f}",
                         f"{r['ref_ms']:.2f}"))
    print(f"nodekit {_version()}: closed-form problems, rtol={rtol:g}, atol={rtol * 1e-3:g}, "
          "Python right-hand sides, 50 outputs\n")
    print(table(rows, ["problem", "method", "max error", "nfev", "SciPy error", "SciPy nfev",
                       "nodekit ms", "SciPy ms"], align="llrrrrrr"))
    sweep = {name: [_solve_errors(cases[name], tol, solve_ivp, timed=False)
                    for tol in SOLVE_TOLS]
             for name in SOLVE_CASES}
    path = os.path.join(out, "error_vs_tolerance.png")
    _plot_solve(path, sweep)
    print(f"\nerror against tolerance ({', '.join(f'{t:g}' for t in SOLVE_TOLS)}): {path}")
    return 0


def _demo_argv(args, out):
    argv = ["--out", out, "--seed", str(args.seed)] + args.extra
    if args.iters is not None:
        argv += ["--iters", str(args.iters)]
    if args.no_progress:
        argv.append("--no-progress")
    return argv


def _demo(args):
    demo = DEMOS[args.which]
    if args.rtol is not None and args.which != "solve":
        raise CommandError(f"--rtol applies to `demo solve` only; `demo {args.which}` uses "
                           "the reference tolerances of its setting.")
    if args.extra and demo.module is None:
        raise CommandError(f"unrecognized arguments for `demo {args.which}`: "
                           f"{' '.join(args.extra)}")
    if demo.module is None:
        return _demo_solve(args)
    helper = prepare_demo(args.which)
    module = _import(demo.module)
    out = writable_folder(os.path.join(args.out, args.which))
    try:
        status = getattr(module, demo.entry)(_demo_argv(args, out))
    except BaseException:  # Ctrl-C or a failure: do not wait for the compile
        if helper is not None:
            helper.kill()
        raise
    finally:
        if helper is not None:
            helper.wait()  # done long before: this process needed its result
    if args.which == "digits" and not status:
        # the paper's Figure 3 on the ODE-Net just trained
        fig_out = writable_folder(os.path.join(args.out, "figure3"))
        argv = ["--from", out, "--out", fig_out, "--seed", str(args.seed)]
        status = _import("examples.figure3").cli(argv)
    return status or 0


def _bench(args):
    lv = _import("benchmarks.lotka_volterra")
    lv.run(quick=args.quick)
    lv.run_gradient(quick=args.quick)
    _import("benchmarks.adjoint_nfe").run(quick=args.quick)
    print()
    _import("benchmarks.spiral").run(quick=args.quick)
    print()
    _import("benchmarks.symbolic").run(quick=args.quick)
    print()
    _import("benchmarks.ensemble").run(quick=args.quick)
    print()
    _import("benchmarks.events").run(quick=args.quick)
    print()
    _import("benchmarks.stiff").main([])
    if not args.quick:
        print()
        _import("benchmarks.memory").run()
        print()
        _import("benchmarks.latent").main([])
        print()
        _import("benchmarks.nn_threads").main()
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _demo_help():
    lines = []
    for name, d in DEMOS.items():
        text = d.summary + (f". Default: {d.defaults}." if d.defaults else ".")
        lines.append(textwrap.fill(text, 79, initial_indent=f"  {name:8s}",
                                   subsequent_indent=" " * 10))
    lines.append("Options a demo has of its own are passed on to it, e.g. "
                 "`nodekit demo cnf --data two-moons`.")
    return "demos:\n" + "\n".join(lines)


def build_parser():
    """The argument parser of the ``nodekit`` command."""
    parser = argparse.ArgumentParser(
        prog="nodekit", description="Neural ODEs for NumPy: demos, validation, benchmarks.")
    parser.add_argument("--version", action="version", version=f"nodekit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,validate,bench}")
    p = sub.add_parser("demo", help="train a neural ODE and plot it (default: spiral)",
                       description="Run a demo (default: spiral).", epilog=_demo_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="?", default="spiral", choices=list(DEMOS),
                   help="which demo (default: spiral)")
    p.add_argument("--iters", type=_positive_int, default=None,
                   help="training iterations (default: the demo's setting, listed below)")
    p.add_argument("--out", default="out",
                   help="folder for plots and reports; each demo writes OUT/<demo> "
                        "(default: out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--rtol", type=_positive_float, default=None,
                   help="relative tolerance of the table of 'solve' (default: 1e-8; other "
                        "demos use their reference tolerances and reject it)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (default: shown)")
    p.set_defaults(func=_demo)
    sub.add_parser("validate", help="run the analytic validation suite (--quick, --out DIR, "
                                    "--only FAMILY; see `nodekit validate --help`)",
                   add_help=False)
    p = sub.add_parser("bench", help="run the benchmarks (peers measured in the same run)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, no memory run")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    """Entry point of the ``nodekit`` command; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["demo"] + argv
    try:
        if argv[0] == "validate":
            # every option belongs to the validation suite (--quick, --out, --only, ...)
            return _import("validation").main(argv[1:])
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "demo":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra  # a demo's own options (e.g. `demo cnf --data two-moons`)
        return args.func(args)
    except (CommandError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"nodekit {argv[0]}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
