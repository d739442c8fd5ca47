"""Running the validation suite: :func:`run` (the checks) and :func:`main`
(the command line, ``python -m nodekit.validation`` / ``nodekit validate``)."""
import argparse
import shlex
import sys
import time
import traceback
import warnings

from . import checks

#: The families, in the order they run and are reported: name -> ``runner(quick)``.
#: "NFE-B vs NFE-F" has no runner of its own: it reads the results of
#: "gradient accuracy" (:func:`validation.checks.nfe_backward`).
_RUNNERS = {
    "closed forms": checks.closed_forms,
    "order conditions": checks.order_conditions,
    "SciPy steps": checks.scipy_steps,
    "solution accuracy": checks.solution_accuracy,
    "convergence": checks.convergence,
    "dense output": checks.dense_convergence,
    "gradient accuracy": checks.gradient_accuracy,
    "NFE-B vs NFE-F": None,
    "finite differences": checks.finite_differences,
}

#: Family names, in order.
FAMILY_NAMES = tuple(_RUNNERS)


def _crashed(name, exc):
    """A family that raised: one failing check naming the exception."""
    fam = checks.Family(name, f"The family raised {type(exc).__name__}: {exc}",
                        ["runs to completion"])
    fam.add("suite", "", f"raised {type(exc).__name__}: {exc}"[:120], float("nan"), 0)
    return fam


def run(quick=False, only=None, progress=None):
    """Run the checks.

    Parameters
    ----------
    quick : bool
        The fast subset: fewer cases and tolerances.
    only : iterable of str, optional
        Family names to run (default: all of :data:`FAMILY_NAMES`).  "NFE-B vs
        NFE-F" needs "gradient accuracy", which is then run too.
    progress : callable, optional
        Called with each :class:`~validation.checks.Family` as it completes.

    Returns
    -------
    list of validation.checks.Family
        A family that raised holds a single failing check naming the error.
    """
    wanted = list(FAMILY_NAMES) if not only else [n for n in FAMILY_NAMES if n in set(only)]
    unknown = set(only or ()) - set(FAMILY_NAMES)
    if unknown:
        raise ValueError(f"unknown family {sorted(unknown)[0]!r}; choose from "
                         f"{', '.join(map(repr, FAMILY_NAMES))}.")
    if "NFE-B vs NFE-F" in wanted and "gradient accuracy" not in wanted:
        wanted.insert(wanted.index("NFE-B vs NFE-F"), "gradient accuracy")
    families, gradients = [], None
    with warnings.catch_warnings():
        # Numba's notice about first-class functions, once per process: not news here
        warnings.filterwarnings("ignore", message="First-class function type feature")
        for name in wanted:
            t0 = time.perf_counter()
            try:
                if name == "NFE-B vs NFE-F":
                    fam = checks.nfe_backward(gradients)
                else:
                    fam = _RUNNERS[name](quick)
            except Exception as exc:  # report it as a failure, run the rest
                traceback.print_exc(file=sys.stderr)
                fam = _crashed(name, exc)
            fam.seconds = time.perf_counter() - t0
            if name == "gradient accuracy":
                gradients = fam
            families.append(fam)
            if progress is not None:
                progress(fam)
    return families


def _progress(fam):
    n, ok = len(fam.checks), sum(c.passed for c in fam.checks)
    status = "all passed" if n == ok else f"{n - ok} FAILED"
    print(f"  {fam.name:<20s} {n:5d} checks, {status:<12s} ({fam.seconds:.1f} s)", flush=True)


def parser():
    p = argparse.ArgumentParser(
        prog="python -m nodekit.validation",
        description="nodekit's analytic validation suite: every method and gradient mode "
                    "against SymPy-verified closed forms and SciPy; writes report.md, CSV "
                    "files and plots.  Exit status 1 if any check fails.")
    p.add_argument("--quick", action="store_true",
                   help="a fast subset: 4 cases, fewer tolerances and step sizes")
    p.add_argument("--out", default="validation-report", metavar="DIR",
                   help="output folder (default: validation-report/)")
    p.add_argument("--only", action="append", metavar="FAMILY", choices=FAMILY_NAMES,
                   help="run only this family (repeatable): " + ", ".join(FAMILY_NAMES))
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv=None):
    """Run the suite from the command line; returns the exit status.

    0 when every check passes, 1 when any fails, 2 for bad arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `nodekit validate -- --quick` passes the separator on
        argv = argv[1:]
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, or bad arguments
        return int(exc.code or 0)
    from . import report
    import nodekit as nk
    cmd = shlex.join(["python", "-m", "validation"] + argv)
    header = (f"nodekit {nk.__version__} validation ({'quick' if args.quick else 'full'}): "
              f"{len(checks.case_names(args.quick))} closed-form cases, "
              f"{len(nk.EXPLICIT_METHODS)} methods, {len(checks.MODES)} gradient modes")
    print(header, flush=True)
    t0 = time.perf_counter()
    families = run(quick=args.quick, only=args.only, progress=_progress)
    seconds = time.perf_counter() - t0
    files = report.write(families, args.out, header, seconds, cmd, plots=not args.no_plots)
    print()
    print(report.terminal(families, header, seconds))
    print(f"\nReport: {args.out}/report.md ({len(files)} files)")
    return 0 if all(f.passed for f in families) else 1
