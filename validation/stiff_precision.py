"""Work and precision of the stiff methods against published references.

For every stiff method and tolerance, the error at the final time on

* HIRES (t = 321.8122) and OREGO (t = 360) against the reference values of
  the Test Set for IVP Solvers (Mazzia and Magherini),
* Robertson (t = 1e5) and Van der Pol with mu = 1000 (t = 3000) against the
  Radau references of :mod:`validation.stiff_kernels`,

as ``max |y - y_ref| / |y_ref|`` (atol = 1e-4 rtol, so every component is
held relatively), with the accepted steps and the evaluations.  The
low-order methods (``ros3p``, ``trbdf2``) are run at the loose tolerances
only (at rtol 1e-8 they need 10^5 .. 10^6 steps).

Run: ``python -m nodekit.validation.stiff_precision`` (a minute).
"""
import numpy as np

from .stiff_kernels import (HIRES_REF, HIRES_T1, HIRES_Y0, OREGO_REF, OREGO_T1, OREGO_Y0,
                            ROBERTSON_REF, ROBERTSON_THETA, ROBERTSON_Y0, VDP_MU, VDP_REF,
                            VDP_Y0, hires_rhs, orego_rhs, robertson_jac, robertson_rhs,
                            van_der_pol_jac)

#: Tolerances per method: the low-order methods at the loose ones only.
RTOLS = {"rodas5": (1e-4, 1e-6, 1e-8, 1e-10), "rodas4": (1e-4, 1e-6, 1e-8),
         "kvaerno5": (1e-4, 1e-6, 1e-8, 1e-10), "ros3p": (1e-3, 1e-4, 1e-6),
         "trbdf2": (1e-3, 1e-4, 1e-6)}


def problems():
    """``name: (ode, y0, t1, theta, reference)`` of the four problems."""
    import nodekit as nk
    from .kernels import van_der_pol_rhs
    return {
        "HIRES": (nk.ODE(hires_rhs), HIRES_Y0, HIRES_T1, np.zeros(1), HIRES_REF),
        "OREGO": (nk.ODE(orego_rhs), OREGO_Y0, OREGO_T1, np.zeros(1), OREGO_REF),
        "Robertson": (nk.ODE(robertson_rhs, jac=robertson_jac), ROBERTSON_Y0, 1e5,
                      ROBERTSON_THETA, ROBERTSON_REF[-1]),
        "Van der Pol": (nk.ODE(van_der_pol_rhs, jac=van_der_pol_jac), VDP_Y0, 3000.0,
                        VDP_MU, VDP_REF[-1]),
    }


def rows():
    """One row per problem, method and tolerance: ``[problem, method, rtol,
    error, steps, nfev]``."""
    import nodekit as nk
    out = []
    for name, (ode, y0, t1, theta, ref) in problems().items():
        for method, rtols in RTOLS.items():
            for rtol in rtols:
                sol = nk.solve(ode, y0, [0.0, t1], theta, method=method, rtol=rtol,
                               atol=1e-4 * rtol, max_steps=2_000_000)
                err = np.max(np.abs(sol.y[-1] - ref) / np.abs(ref)) if sol.success \
                    else np.nan
                out.append([name, method, f"{rtol:.0e}", f"{err:.1e}", str(sol.naccept),
                            str(sol.nfev)])
    return out


def main():
    from nodekit._tables import table
    print(table(rows(), ["problem", "method", "rtol", "max rel. error at t1", "steps",
                         "nfev"]))


if __name__ == "__main__":
    main()
