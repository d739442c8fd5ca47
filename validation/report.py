"""Output of the validation suite: terminal tables, ``report.md``, CSV files
and PNG plots (matplotlib, Agg backend)."""
import csv
import os
import platform
from collections import OrderedDict

import numpy as np

import nodekit as nk
from nodekit._tables import table

from .checks import (ADAPTIVE, GRADIENT_RTOL, MODES, SOLUTION_TOLS, fmt)


# --- tables -----------------------------------------------------------------------
def text_table(rows, header, align=None):
    """A plain-text table (:func:`nodekit._tables.table`, text style)."""
    return table(rows, header, align, style="text")


def _closest(checks):
    """The check closest to (or furthest past) its limit."""
    return max(checks, key=lambda c: c.margin) if checks else None


def family_rows(families):
    rows = []
    for fam in families:
        n = len(fam.checks)
        ok = sum(c.passed for c in fam.checks)
        c = _closest(fam.checks)
        worst = ""
        if c is not None:
            where = c.subject + (f" / {c.case}" if c.case and c.case != c.subject else "")
            worst = f"{where}: {c.quantity} = {c.measured} (limit {fmt(c.limit)})"
        rows.append([fam.name, n, ok, n - ok, f"{fam.seconds:.1f}", worst])
    return rows


FAMILY_HEADER = ["family", "checks", "passed", "failed", "seconds", "closest to its limit"]
FAMILY_ALIGN = "lrrrrl"


def _by(fams):
    return {f.name: f for f in fams}


def _agg(checks, key):
    """Group checks by ``key(check)``, keeping order."""
    groups = OrderedDict()
    for c in checks:
        groups.setdefault(key(c), []).append(c)
    return groups


def _slopes(fam, method):
    if fam is None:
        return "-"
    fits = [f for f in fam.tables.get("convergence_fits", fam.tables.get("dense_output_fits", []))
            if f["method"] == method]
    if not fits:
        return "-"
    return ", ".join(f"{f['slope']:.2f}" for f in fits)


def method_rows(families):
    """One row per method: orders, fitted slopes, accuracy, NFE, SciPy steps."""
    fams = _by(families)
    rows = []
    for name, tab in nk.EXPLICIT_METHODS.items():
        row = [name, tab.order if not tab.is_adaptive else f"{tab.order}({tab.error_order})",
               tab.dense_order]
        oc = fams.get("order conditions")
        row.append("-" if oc is None else
                   ("exact" if all(c.passed for c in oc.checks if c.subject == name) else "FAIL"))
        conv = fams.get("convergence")
        row.append(_slopes(conv, name))
        dense = fams.get("dense output")
        row.append(_slopes(dense, name))
        sol = fams.get("solution accuracy")
        if tab.is_adaptive and sol is not None:
            ref = SOLUTION_TOLS[name][2]
            sel = [r for r in sol.tables["solution"] if r["method"] == name and r["rtol"] == ref]
            e1 = max((r["rel_error_t1"] for r in sel), default=np.nan)
            eo = max((r["rel_error_outputs"] for r in sel), default=np.nan)
            nf = np.median([r["nfev"] for r in sel]) if sel else np.nan
            row += [fmt(ref), fmt(e1), fmt(eo), fmt(nf)]
        else:
            row += ["-", "-", "-", "-"]
        sc = fams.get("SciPy steps")
        if tab.is_adaptive and sc is not None:
            sel = [c for c in sc.checks if c.subject.startswith(name + " /")]
            row.append("same" if sel and all(c.passed for c in sel) else "DIFFER")
        else:
            row.append("-")
        mine = [c for f in families for c in f.checks
                if c.subject == name or c.subject.startswith(name + " /")]
        row.append(f"{sum(c.passed for c in mine)}/{len(mine)}")
        rows.append(row)
    return rows


METHOD_HEADER = ["method", "order", "dense order", "order conditions",
                 "convergence slope(s) (expect order)", "dense-output slope(s) (expect q+1)",
                 "ref. rtol", "max error at t1", "max error at outputs", "median NFE",
                 "SciPy's steps", "checks passed"]
METHOD_ALIGN = "lrrlllrrrrlr"


def mode_rows(families):
    """One row per gradient mode: closed-form errors, NFE-B/NFE-F, FD errors."""
    fams = _by(families)
    rows = []
    for mode in MODES:
        row = [mode]
        g = fams.get("gradient accuracy")
        if g is not None:
            sel = [r for r in g.tables["gradients"]
                   if r["mode"] == mode and r["rtol"] == GRADIENT_RTOL]
            row.append(fmt(max((r["rel_error"] for r in sel), default=np.nan)))
            allr = [r for r in g.tables["gradients"] if r["mode"] == mode]
            ratio = np.array([r["nfev_backward"] / r["nfev_forward"] for r in allr])
            row += [fmt(np.median(ratio)), f"{fmt(ratio.min())} - {fmt(ratio.max())}"]
        else:
            row += ["-", "-", "-"]
        fd = fams.get("finite differences")
        if fd is not None:
            for path in ("python", "compiled"):
                sel = [r for r in fd.tables["finite_differences"]
                       if r["mode"] == mode and r["path"] == path]
                row.append(fmt(max((max(r["err_y0"], r["err_theta"], r["err_t"])
                                    for r in sel), default=np.nan)))
        else:
            row += ["-", "-"]
        mine = [c for f in families for c in f.checks
                if c.subject == mode or c.subject.startswith(mode + " (")]
        row.append(f"{sum(c.passed for c in mine)}/{len(mine)}")
        rows.append(row)
    return rows


MODE_HEADER = ["gradient mode", f"max error vs closed forms (rtol {fmt(GRADIENT_RTOL)})",
               "median NFE-B/NFE-F", "NFE-B/NFE-F range", "max error vs FD (Python)",
               "max error vs FD (compiled)", "checks passed"]
MODE_ALIGN = "lrrrrrr"


def aggregate_rows(fam):
    """Per (subject, quantity): the closest-to-limit measurement, and counts."""
    rows = []
    groups = _agg(fam.checks, lambda c: (c.subject, c.quantity))
    for (subject, quantity), cs in groups.items():
        c = _closest(cs)
        where = c.case if c.case and c.case != subject else ""
        rows.append([subject, quantity, c.measured + (f" ({where})" if where and len(cs) > 1
                                                      else ""),
                     ("<= " if c.kind == "max" else ">= ") + fmt(c.limit),
                     f"{sum(x.passed for x in cs)}/{len(cs)}"])
    return rows


AGG_HEADER = ["subject", "quantity", "closest to limit (case)", "limit", "passed"]


def failure_rows(families):
    return [[c.family, c.subject, c.case, c.criterion, c.measured]
            for f in families for c in f.checks if not c.passed]


# --- terminal ---------------------------------------------------------------------
def terminal(families, header, seconds):
    n = sum(len(f.checks) for f in families)
    ok = sum(c.passed for f in families for c in f.checks)
    lines = [header, "",
             text_table(family_rows(families) + [["total", n, ok, n - ok, f"{seconds:.1f}", ""]],
                        FAMILY_HEADER, FAMILY_ALIGN), "",
             "Methods (slopes: one per case; errors relative, worst case, and NFE median "
             "over cases, at the reference rtol with atol = rtol)",
             text_table(method_rows(families), METHOD_HEADER, METHOD_ALIGN), "",
             "Gradient modes (errors: relative, worst block and case; NFE-B/NFE-F over all "
             "gradient runs)",
             text_table(mode_rows(families), MODE_HEADER, MODE_ALIGN), ""]
    fails = failure_rows(families)
    if fails:
        lines += [f"FAILED: {len(fails)} of {n} checks",
                  text_table(fails, ["family", "subject", "case", "criterion", "measured"])]
    else:
        lines.append(f"All {n} checks passed.")
    return "\n".join(lines)


# --- CSV --------------------------------------------------------------------------
def write_csv(path, rows):
    if not rows:
        return
    keys = list(OrderedDict((k, None) for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k)) for k in keys})


def _csv_value(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return " ".join(repr(float(x)) for x in v)
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


# --- plots ------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _grid(plt, n, ncols=4, size=(3.4, 2.8)):
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _style(ax, xlabel, ylabel):
    """Log axes without minor tick labels, small fonts."""
    from matplotlib.ticker import NullFormatter
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _case_colors(names):
    """Distinct colours: tab20's ten dark hues first, then their light twins."""
    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    return {n: cmap((2 * i) % 20 + (2 * i) // 20 % 2) for i, n in enumerate(names)}


def _legend(fig, axes, ncol=4):
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)


def plot_solution(fam, out):
    plt = _plt()
    rows = fam.tables["solution"]
    names = list(dict.fromkeys(r["case"] for r in rows))
    colors = _case_colors(names)
    files = []
    for what, fname, ylabel in (("rel_error_outputs", "solution_error.png",
                                 "relative error (outputs; dotted: t1)"),
                                ("nfev", "solution_nfe.png", "NFE (forward)")):
        fig, axes = _grid(plt, len(ADAPTIVE))
        for ax, method in zip(axes, ADAPTIVE):
            for name in names:
                sel = [r for r in rows if r["method"] == method and r["case"] == name]
                x = [r["rtol"] for r in sel]
                ax.loglog(x, [r[what] for r in sel], "o-", ms=3, lw=1, color=colors[name],
                          label=name)
                if what == "rel_error_outputs":
                    ax.loglog(x, [max(r["rel_error_t1"], 1e-17) for r in sel], ":", lw=1,
                              color=colors[name])
            if what == "rel_error_outputs":
                lo, hi = min(x), max(x)
                ax.loglog([lo, hi], [lo, hi], "k--", lw=0.8)
                ref = SOLUTION_TOLS[method][2]
                ax.plot([ref], [1e3 * ref], "kv", ms=6)
            ax.invert_xaxis()
            ax.set_title(method, fontsize=10)
            _style(ax, "rtol (= atol)", ylabel)
        title = ("Solution error vs tolerance (dashed: error = rtol; triangle: the "
                 "pass limit at the reference rtol)" if what != "nfev" else
                 "Evaluations vs tolerance")
        fig.suptitle(title, fontsize=11)
        _legend(fig, axes)
        fig.tight_layout(rect=(0, 0.08, 1, 0.96))
        fig.savefig(os.path.join(out, fname), dpi=110)
        plt.close(fig)
        files.append(fname)
    # work-precision, one panel per case
    fig, axes = _grid(plt, len(names))
    mcolors = _case_colors(ADAPTIVE)
    for ax, name in zip(axes, names):
        for method in ADAPTIVE:
            sel = [r for r in rows if r["method"] == method and r["case"] == name]
            ax.loglog([r["nfev"] for r in sel], [r["rel_error_t1"] for r in sel], "o-", ms=3,
                      lw=1, color=mcolors[method], label=method)
        ax.set_title(name, fontsize=10)
        _style(ax, "NFE", "relative error at t1")
    fig.suptitle("Work-precision: error vs evaluations", fontsize=11)
    _legend(fig, axes, ncol=7)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(os.path.join(out, "work_precision.png"), dpi=110)
    plt.close(fig)
    files.append("work_precision.png")
    return files


def plot_convergence(fam, out, table, fits_table, fname, title):
    plt = _plt()
    rows, fits = fam.tables[table], fam.tables[fits_table]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = list(dict.fromkeys(r["case"] for r in rows))
    colors = _case_colors(names)
    fig, axes = _grid(plt, len(methods))
    for ax, method in zip(axes, methods):
        label = []
        for name in names:
            sel = [r for r in rows if r["method"] == method and r["case"] == name]
            h = np.array([r["h"] for r in sel])
            e = np.array([r["rel_error"] for r in sel])
            m = np.array([r["in_fit"] for r in sel])
            ax.loglog(h, np.maximum(e, 1e-17), "-", lw=0.8, color=colors[name], label=name)
            ax.loglog(h[~m], np.maximum(e[~m], 1e-17), "o", ms=3, mfc="none",
                      color=colors[name])
            ax.loglog(h[m], e[m], "o", ms=4, color=colors[name])
            fit = next(f for f in fits if f["method"] == method and f["case"] == name)
            if m.any():
                h0, e0 = h[m].min(), e[m][np.argmin(h[m])]
                hh = np.array([h0, h[m].max()])
                ax.loglog(hh, e0 / 4 * (hh / h0) ** fit["order"], "k--", lw=0.8)
            label.append(f"{fit['slope']:.2f}")
        ax.set_title(f"{method}: slope {', '.join(label)} (order {fit['order']})", fontsize=9)
        _style(ax, "h", "relative error")
    fig.suptitle(title, fontsize=11)
    _legend(fig, axes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(os.path.join(out, fname), dpi=110)
    plt.close(fig)
    return [fname]


def plot_gradients(fam, out):
    plt = _plt()
    rows = fam.tables["gradients"]
    names = list(dict.fromkeys(r["case"] for r in rows))
    colors = _case_colors(names)
    files = []
    fig, axes = _grid(plt, len(MODES), ncols=3, size=(4.2, 3.4))
    for ax, mode in zip(axes, MODES):
        for name in names:
            sel = [r for r in rows if r["mode"] == mode and r["case"] == name]
            ax.loglog([r["rtol"] for r in sel], [r["rel_error"] for r in sel], "o-", ms=3,
                      lw=1, color=colors[name], label=name)
        x = [r["rtol"] for r in rows]
        ax.loglog([min(x), max(x)], [min(x), max(x)], "k--", lw=0.8)
        ax.plot([GRADIENT_RTOL], [1e-6], "kv", ms=6)
        ax.invert_xaxis()
        ax.set_title(mode, fontsize=10)
        _style(ax, "rtol (= atol)", "relative gradient error (worst block)")
    fig.suptitle("Gradient error vs tolerance against the closed forms (dopri5)", fontsize=11)
    _legend(fig, axes)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(os.path.join(out, "gradient_error.png"), dpi=110)
    plt.close(fig)
    files.append("gradient_error.png")

    fig, axes = _grid(plt, len(MODES), ncols=3, size=(4.2, 3.6))
    for ax, mode in zip(axes, MODES):
        allx = []
        for name in names:
            sel = [r for r in rows if r["mode"] == mode and r["case"] == name]
            x = [r["nfev_forward"] for r in sel]
            allx += x
            ax.loglog(x, [r["nfev_backward"] for r in sel], "o-", ms=3, lw=0.8,
                      color=colors[name], label=name)
        lo, hi = min(allx), max(allx)
        ax.loglog([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.loglog([lo, hi], [lo / 2, hi / 2], "k:", lw=0.8)
        ax.set_title(mode, fontsize=10)
        _style(ax, "NFE-F", "NFE-B")
    fig.suptitle("NFE-B vs NFE-F (Chen et al. Figure 3c; dashed: equal, dotted: half)",
                 fontsize=11)
    _legend(fig, axes)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(os.path.join(out, "nfe_backward.png"), dpi=110)
    plt.close(fig)
    files.append("nfe_backward.png")
    return files


def plot_all(families, out):
    fams = _by(families)
    files = []
    if "solution accuracy" in fams:
        files += plot_solution(fams["solution accuracy"], out)
    if "convergence" in fams:
        files += plot_convergence(fams["convergence"], out, "convergence", "convergence_fits",
                                  "convergence.png",
                                  "Fixed-step convergence (filled: the fitted asymptotic "
                                  "range; dashed: slope = order, offset)")
    if "dense output" in fams:
        files += plot_convergence(fams["dense output"], out, "dense_output",
                                  "dense_output_fits", "dense_output.png",
                                  "Dense output, local error of one step (dashed: slope = "
                                  "dense order + 1, offset)")
    if "gradient accuracy" in fams:
        files += plot_gradients(fams["gradient accuracy"], out)
    return files


#: Plots shown in each family's section of report.md.
FAMILY_PLOTS = {"solution accuracy": ["solution_error.png", "solution_nfe.png",
                                      "work_precision.png"],
                "convergence": ["convergence.png"], "dense output": ["dense_output.png"],
                "gradient accuracy": ["gradient_error.png"],
                "NFE-B vs NFE-F": ["nfe_backward.png"]}


# --- report.md --------------------------------------------------------------------
def versions():
    import numba
    import scipy
    import sympy
    return (f"nodekit {nk.__version__}, Python {platform.python_version()}, NumPy "
            f"{np.__version__}, SciPy {scipy.__version__}, SymPy {sympy.__version__}, "
            f"Numba {numba.__version__}")


def markdown(families, header, seconds, plots, csvs, command):
    n = sum(len(f.checks) for f in families)
    ok = sum(c.passed for f in families for c in f.checks)
    verdict = f"All {n} checks passed" if ok == n else f"{n - ok} of {n} checks FAILED"
    out = ["# nodekit validation report", "",
           f"{header}", "",
           f"Command: `{command}`.  {versions()}; {platform.platform()}.", "",
           f"**{verdict}** in {seconds:.0f} s.", "",
           "## Summary", "",
           table(family_rows(families) + [["total", n, ok, n - ok, f"{seconds:.1f}", ""]],
                    FAMILY_HEADER, FAMILY_ALIGN), "",
           "### Methods", "",
           "Fitted slopes: one per convergence case; errors: relative, worst case, at the "
           "method's reference rtol (atol = rtol); NFE: median over cases.", "",
           table(method_rows(families), METHOD_HEADER, METHOD_ALIGN), "",
           "### Gradient modes", "",
           table(mode_rows(families), MODE_HEADER, MODE_ALIGN), ""]
    fails = failure_rows(families)
    if fails:
        out += ["## Failures", "",
                table(fails, ["family", "subject", "case", "criterion", "measured"]), ""]
    fams = _by(families)
    if "closed forms" in fams:
        rows = fams["closed forms"].tables.get("cases", [])
        out += ["## Cases", "",
                table([[r["case"], r["kind"], r["rhs"], r["y0"], r["theta"],
                           f"[{fmt(r['t0'])}, {fmt(r['t1'])}]"] for r in rows],
                         ["case", "kind", "dy/dt", "y0", "theta", "span"]), ""]
    for fam in families:
        out += [f"## {fam.name}", "", fam.description, "", "Pass criteria:", ""]
        out += [f"* {c}" for c in fam.criteria]
        out += ["", table(aggregate_rows(fam), AGG_HEADER, "lllrr"), ""]
        for p in FAMILY_PLOTS.get(fam.name, []):
            if p in plots:
                out += [f"![{p}]({p})", ""]
    out += ["## Files", "", "CSV (every number above): " + ", ".join(f"`{c}`" for c in csvs)
            + ".", "", "Plots: " + ", ".join(f"`{p}`" for p in plots) + ".", ""]
    return "\n".join(out)


def write(families, out, header, seconds, command, plots=True):
    """Write report.md, the CSV files and the plots into ``out``; returns the
    list of files written."""
    os.makedirs(out, exist_ok=True)
    csvs = ["checks.csv"]
    write_csv(os.path.join(out, "checks.csv"), [c.row() for f in families for c in f.checks])
    for fam in families:
        for name, rows in fam.tables.items():
            write_csv(os.path.join(out, f"{name}.csv"), rows)
            csvs.append(f"{name}.csv")
    pngs = plot_all(families, out) if plots else []
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write(markdown(families, header, seconds, pngs, csvs, command))
    return ["report.md"] + csvs + pngs
