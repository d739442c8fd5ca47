"""Work and precision of the stiff methods against published references.

For every stiff method and tolerance, the error at the final time on

* HIRES (t = 321.8122) and OREGO (t = 360) against the reference values of
  the Test Set for IVP Solvers (Mazzia and Magherini),
* Robertson to t = 1e5 against the Radau reference of
  :mod:`validation.stiff_kernels`, and to t = 1e11 against the test set's
  published value (problem ROBER),
* Van der Pol with mu = 1000 (t = 3000) against its Radau reference,

as ``max |y - y_ref| / |y_ref|`` (atol = 1e-4 rtol, so every component is
held relatively; 1e-10 rtol on Robertson to 1e11, whose ``y2`` ends near
1e-13), with the accepted steps, the evaluations and the time of one solve.
The low-order methods (``ros3p``, ``trbdf2``) are run at the loose
tolerances only (at rtol 1e-8 they need 10^5 .. 10^6 steps).

Run: ``python -m nodekit.validation.stiff_precision`` (a minute);
``--plot FILE.png`` also draws the work-precision diagram (error against
time per solve, one panel per problem; needs matplotlib).
"""
import numpy as np

from .stiff_kernels import (HIRES_REF, HIRES_T1, HIRES_Y0, OREGO_REF, OREGO_T1, OREGO_Y0,
                            ROBERTSON_LONG_REF, ROBERTSON_REF, ROBERTSON_THETA, ROBERTSON_Y0,
                            VDP_MU, VDP_REF, VDP_Y0, hires_rhs, orego_rhs, robertson_jac,
                            robertson_rhs, van_der_pol_jac)

#: Tolerances per method: the low-order methods at the loose ones only.
RTOLS = {"rodas5": (1e-4, 1e-6, 1e-8, 1e-10), "rodas4": (1e-4, 1e-6, 1e-8),
         "kvaerno5": (1e-4, 1e-6, 1e-8, 1e-10), "ros3p": (1e-3, 1e-4, 1e-6),
         "trbdf2": (1e-3, 1e-4, 1e-6)}


def problems():
    """``name: (ode, y0, t1, theta, reference)`` of the five problems."""
    import nodekit as nk
    from .kernels import van_der_pol_rhs
    return {
        "HIRES": (nk.ODE(hires_rhs), HIRES_Y0, HIRES_T1, np.zeros(1), HIRES_REF),
        "OREGO": (nk.ODE(orego_rhs), OREGO_Y0, OREGO_T1, np.zeros(1), OREGO_REF),
        "Robertson": (nk.ODE(robertson_rhs, jac=robertson_jac), ROBERTSON_Y0, 1e5,
                      ROBERTSON_THETA, ROBERTSON_REF[-1]),
        "Robertson to 1e11": (nk.ODE(robertson_rhs, jac=robertson_jac), ROBERTSON_Y0, 1e11,
                              ROBERTSON_THETA, ROBERTSON_LONG_REF[-1]),
        "Van der Pol": (nk.ODE(van_der_pol_rhs, jac=van_der_pol_jac), VDP_Y0, 3000.0,
                        VDP_MU, VDP_REF[-1]),
    }


def _atol(name, rtol):
    return rtol * (1e-10 if name == "Robertson to 1e11" else 1e-4)


def _solve_time(solve):
    """Seconds of one solve: the best of three after a warm-up."""
    import time
    solve()
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        solve()
        best = min(best, time.perf_counter() - t0)
    return best


def measurements():
    """One record per problem, method and tolerance: ``(problem, method, rtol,
    error, steps, nfev, seconds)`` (``error`` NaN for a failed solve)."""
    import nodekit as nk
    out = []
    for name, (ode, y0, t1, theta, ref) in problems().items():
        for method, rtols in RTOLS.items():
            for rtol in rtols:
                def solve(method=method, rtol=rtol):
                    return nk.solve(ode, y0, [0.0, t1], theta, method=method, rtol=rtol,
                                    atol=_atol(name, rtol), max_steps=2_000_000)
                sol = solve()
                if sol.success:
                    err = np.max(np.abs(sol.y[-1] - ref) / np.abs(ref))
                    sec = _solve_time(solve)
                else:                      # a failed solve is shown, not timed
                    err = sec = np.nan
                out.append((name, method, rtol, err, sol.naccept, sol.nfev, sec))
    return out


def rows(records=None):
    """The table rows: ``[problem, method, rtol, error, steps, nfev, ms]``."""
    return [[name, method, f"{rtol:.0e}", f"{err:.1e}", str(steps), str(nfev),
             f"{1e3 * sec:.2f}"]
            for name, method, rtol, err, steps, nfev, sec in (records or measurements())]


def plot(records, path):
    """The work-precision diagram of ``records`` (:func:`measurements`) in ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter
    names = list(dict.fromkeys(r[0] for r in records))
    cols = 3
    rows_ = -(-(len(names) + 1) // cols)            # one more panel for the legend
    fig, axes = plt.subplots(rows_, cols, figsize=(4.3 * cols, 3.6 * rows_))
    axes = np.ravel(axes)
    for ax, name in zip(axes, names):
        for method in RTOLS:
            pts = [(r[6] * 1e3, r[3]) for r in records
                   if r[0] == name and r[1] == method and np.isfinite(r[3])]
            if pts:
                x, y = zip(*pts)
                ax.loglog(x, y, "o-", label=method)
        ax.set_title(name)
        ax.set_xlabel("ms per solve")
        ax.set_ylabel("max relative error at t1")
        ax.xaxis.set_minor_locator(LogLocator(subs="all"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[len(names):]:
        ax.axis("off")
    axes[len(names)].legend(handles, labels, loc="center", title="method (rtol 1e-3 .. 1e-10)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    import argparse

    from nodekit._tables import table
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", metavar="FILE", help="also draw the work-precision "
                        "diagram into FILE (a .png)")
    args = parser.parse_args(argv)
    records = measurements()
    print(table(rows(records), ["problem", "method", "rtol", "max rel. error at t1",
                                "steps", "nfev", "ms"]))
    if args.plot:
        plot(records, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
