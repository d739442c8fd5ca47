"""The shipped folders of a source checkout under their installed names.

A wheel installs the repository's top-level ``examples/``, ``validation/`` and
``benchmarks/`` folders as ``nodekit.examples``, ``nodekit.validation`` and
``nodekit.benchmarks`` (``package_dir`` in ``setup.cfg``), and the command
line imports them under those names.  When nodekit is imported from a source
checkout that is not installed (``python -m pytest`` or ``python -m
nodekit.cli`` at the repository root), this finder gives the three folders the
same names, so that the code reads the same in both layouts.  It maps only
those three names and only when the folders sit beside the package.
"""
import importlib.abc
import importlib.util
import os
import sys

#: Top-level folders of the repository that ship inside the ``nodekit`` package.
SHIPPED = ("examples", "validation", "benchmarks")

_PACKAGE = __name__.rpartition(".")[0]
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Find ``nodekit.<folder>`` in the checkout's top-level ``<folder>/``."""

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if parent != _PACKAGE or name not in SHIPPED:
            return None
        init = os.path.join(_ROOT, name, "__init__.py")
        if not os.path.isfile(init):
            return None
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[os.path.dirname(init)])


def install():
    """Register the finder when nodekit runs from a source checkout (once)."""
    checkout = os.path.isfile(os.path.join(_ROOT, "setup.cfg"))
    if checkout and not any(isinstance(f, _SourceTreeFinder) for f in sys.meta_path):
        sys.meta_path.append(_SourceTreeFinder())
