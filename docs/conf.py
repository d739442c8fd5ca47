"""Sphinx configuration of nodekit's documentation site.

Build: ``sphinx-build -W -b html docs build/html`` (needs the ``docs`` extras:
``pip install -e ".[docs]"``).  The guides are the Markdown pages of this
folder (MyST); the API reference is generated from the numpydoc docstrings.
"""
import os
import sys

# the package documented is the one of this checkout, installed or not
sys.path.insert(0, os.path.abspath(".."))
import nodekit  # noqa: E402

project = "nodekit"
author = "the nodekit authors"
copyright = "the nodekit authors"
release = version = nodekit.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "build"]
root_doc = "index"

myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"nodekit {release}"
suppress_warnings = ["myst.header"]
