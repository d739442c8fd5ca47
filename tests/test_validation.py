"""The validation suite (``validation/``): its cases, and its quick subset run
as tests.  The full suite is ``python -m nodekit.validation`` (a few minutes); here
the quick subset runs once and every family must pass (marked slow: deselected
by default, run with ``-m slow``)."""
import dataclasses

import numpy as np
import pytest

import nodekit.validation as validation
from nodekit.validation import checks, report, suite
from nodekit.validation.cases import all_cases, reference_cases, t, t0, verify


# --- the cases ---------------------------------------------------------------------
#: Cases whose symbolic verification takes SymPy 10-20 s (marked slow).
SLOW_TO_VERIFY = {"hopf normal form"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n in SLOW_TO_VERIFY else n for n in sorted(all_cases())])
def test_closed_form_is_verified_symbolically(name):
    assert verify(all_cases()[name]) == []


def test_verify_catches_wrong_closed_forms():
    decay = all_cases()["exponential decay"]
    # solves the ODE, misses the initial value
    bad = verify(dataclasses.replace(decay, solution=(2 * decay.solution[0],)))
    assert [b[2] for b in bad] == ["initial"]
    # meets the initial value, misses the ODE
    logistic = all_cases()["logistic"]
    bad = verify(dataclasses.replace(
        logistic, solution=(logistic.solution[0] * (1 + (t - t0) ** 3 / 1000),)))
    assert [b[2] for b in bad] == ["ode"]


def test_cases_span_the_kinds_of_ode():
    cases = list(all_cases().values())
    assert len(cases) >= 10
    for attr in ("is_autonomous", "is_linear"):
        assert {getattr(c, attr) for c in cases} == {True, False}, attr
    assert {c.dim > 1 for c in cases} == {True, False}
    assert {c.kind for c in cases} >= {"scalar, autonomous, linear",
                                       "scalar, nonautonomous, nonlinear",
                                       "2-D, autonomous, nonlinear",
                                       "2-D, nonautonomous, linear", "3-D, autonomous, linear"}
    assert set(reference_cases()) == {"lotka-volterra", "van der pol", "lorenz"}


@pytest.mark.parametrize("name", sorted(all_cases()))
def test_exact_gradient_matches_differences_of_the_closed_form(name):
    """``Case.exact_gradient`` (SymPy derivatives) against central differences
    of ``Case.exact``: the API the gradient tests rely on, for every case."""
    case = all_cases()[name]
    ts = np.linspace(*case.t_span, 4)
    W = np.random.default_rng(2).normal(size=(4, case.dim))
    y0, th = np.array(case.y0), np.array(case.theta)
    L = lambda y0, th, ts: np.sum(W * case.exact(ts, y0=y0, theta=th))
    got = case.exact_gradient(ts, W)
    for k, x in enumerate((y0, th, ts)):
        num = np.empty(x.size)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = 1e-6 * max(1.0, abs(x[i]))
            args_p = [y0, th, ts]
            args_m = [y0, th, ts]
            args_p[k], args_m[k] = x + e, x - e
            num[i] = (L(*args_p) - L(*args_m)) / (2 * e[i])
        np.testing.assert_allclose(got[k], num, rtol=1e-6, atol=1e-8 * np.max(np.abs(num)))


# --- the quick suite ---------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_families():
    return validation.run(quick=True)


@pytest.mark.slow  # the whole quick validation run (the module's fixture)
@pytest.mark.parametrize("family", suite.FAMILY_NAMES)
def test_quick_family_passes(quick_families, family):
    fam = next(f for f in quick_families if f.name == family)
    failed = [(c.subject, c.case, c.criterion, c.measured) for c in fam.checks
              if not c.passed]
    assert fam.checks and not failed


@pytest.mark.slow  # the whole quick validation run (the module's fixture)
def test_report_files(quick_families, tmp_path):
    files = report.write(quick_families, str(tmp_path), "nodekit validation (quick)", 1.0,
                         "python -m nodekit.validation --quick")
    for name in ("report.md", "checks.csv", "solution.csv", "convergence.csv",
                 "gradients.csv", "finite_differences.csv", "order_conditions.csv",
                 "solution_error.png", "solution_nfe.png", "convergence.png",
                 "dense_output.png", "gradient_error.png", "nfe_backward.png"):
        assert name in files and (tmp_path / name).stat().st_size > 0, name
    text = (tmp_path / "report.md").read_text()
    assert "checks passed" in text and "![nfe_backward.png](nfe_backward.png)" in text
    n = sum(len(f.checks) for f in quick_families)
    assert len((tmp_path / "checks.csv").read_text().splitlines()) == n + 1
    out = report.terminal(quick_families, "header", 1.0)
    assert f"All {n} checks passed." in out and "dopri5" in out and "discrete" in out


def test_check_records_pass_and_fail_by_their_limits():
    c = checks.Check("f", "s", "c", "error", 1e-7, 1e-6)
    assert c.passed and c.criterion == "error <= 1.00e-06" and c.margin == pytest.approx(0.1)
    assert not checks.Check("f", "s", "c", "error", np.nan, 1e-6).passed
    assert not checks.Check("f", "s", "c", "slope", 0.4, 0.5, kind="min").passed
    assert checks.Check("f", "s", "c", "count", 0, 0).passed


def test_asymptotic_fit_leaves_out_round_off_and_pre_asymptotic_steps():
    hs = 2.0 ** (-np.arange(24) / 2)
    errs = np.maximum(hs ** 4 * (1 + 50 * hs), 1e-15)  # pre-asymptotic, then round-off
    slope, mask = checks.asymptotic_fit(hs, errs, np.ones(24))
    assert abs(slope - 4) < 0.1 and mask.sum() >= 3
    assert not mask[0] and not mask[-1]


# --- the command line ---------------------------------------------------------------
def test_main_exit_status(tmp_path, monkeypatch, capsys):
    argv = ["--quick", "--only", "order conditions", "--out", str(tmp_path), "--no-plots"]
    assert validation.main(argv) == 0
    assert (tmp_path / "report.md").exists()
    monkeypatch.setattr(checks, "SHARP_RESIDUAL", 1.0)  # no declared order is "sharp" now
    assert validation.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "order is sharp" in out


def test_main_bad_arguments_and_help(capsys):
    assert validation.main(["--only", "nonsense"]) == 2
    assert validation.main(["--help"]) == 0
    assert "--quick" in capsys.readouterr().out


def test_a_crashing_family_is_a_failure_not_an_abort(monkeypatch):
    def boom(quick):
        raise RuntimeError("kaboom")
    monkeypatch.setitem(suite._RUNNERS, "order conditions", boom)
    fams = validation.run(only=["order conditions", "closed forms"], quick=True)
    assert [f.name for f in fams] == ["closed forms", "order conditions"]
    assert fams[0].passed and not fams[1].passed
    assert "kaboom" in fams[1].checks[0].quantity


def test_run_rejects_unknown_family():
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        validation.run(only=["nope"])
