"""nodekit's analytic validation suite: closed-form cases derived and checked
with SymPy, and reports comparing every solver against them.

Run it as ``python -m nodekit.validation`` (or ``nodekit validate``); ``--quick`` for
a fast subset, ``--out DIR`` for the report folder.  Modules:

* :mod:`validation.cases` -- the cases, defined once (SymPy systems, closed
  forms, :func:`~validation.cases.verify`);
* :mod:`validation.kernels` -- compiled twins of the reference problems;
* :mod:`validation.checks` -- the checks, one function per family, and their
  pass criteria;
* :mod:`validation.report` -- terminal tables, ``report.md``, CSV and PNG;
* :mod:`validation.suite` -- :func:`run` and :func:`main`.
"""


def main(argv=None):
    """Run the validation suite (``python -m nodekit.validation``); returns the exit
    status: 0 if every check passes, 1 if any fails, 2 for bad arguments.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``): ``--quick``,
        ``--out DIR``, ``--only FAMILY``, ``--no-plots``.
    """
    from .suite import main as _main
    return _main(argv)


def run(quick=False, only=None, progress=None):
    """Run the checks without writing anything; see :func:`validation.suite.run`."""
    from .suite import run as _run
    return _run(quick=quick, only=only, progress=progress)
