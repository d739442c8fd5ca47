"""Packaging and documentation: every package ships, and every Python block of
README.md and docs/*.md runs as a user would paste it into a ``python`` prompt
(blocks of one page in order, in one interactive interpreter fed on standard
input: blank lines end compound statements, nothing is cached against a file).
The page runs are marked slow: deselected by default, run with ``-m slow``."""
import configparser
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
#: Checks appended after a page's blocks (names its blocks define).
AFTER = {"README.md": "assert dy0.shape == (2,) and dth.shape == (4,) and dt.shape == (200,)"}
DONE = "ALL-BLOCKS-RAN"


def python_blocks(page):
    """The ```python blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def run_at_prompt(blocks, cwd, after=""):
    """Feed ``blocks`` to an interactive ``python``; returns the finished process."""
    text = "".join(b.rstrip("\n") + "\n\n" for b in blocks)
    text += f"{after}\nprint({DONE!r})\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-i", "-q"], input=text, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900)


@pytest.mark.slow  # a fresh interpreter per page, compiling what the page runs
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: p.name)
def test_page_blocks_run_at_a_prompt(page, tmp_path):
    res = run_at_prompt(python_blocks(page), tmp_path, AFTER.get(page.name, ""))
    errors = [line for line in res.stderr.splitlines()
              if re.search(r"Traceback|Error\b|Error:", line)]
    assert DONE in res.stdout and not errors, f"{page.name}:\n{res.stderr[-3000:]}"


def test_a_failing_block_is_caught(tmp_path):
    res = run_at_prompt(["x = undefined_name\n", "def f():\n    return 1\n\n    return 2\n"],
                        tmp_path)
    assert "NameError" in res.stderr and "IndentationError" in res.stderr


def _packages_on_disk():
    found = {"nodekit"}
    for init in (ROOT / "nodekit").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if "__pycache__" not in rel.parts and rel.parts != ("nodekit",):
            found.add(".".join(rel.parts))
    for folder in ("examples", "validation", "benchmarks"):
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join(("nodekit",) + init.parent.relative_to(ROOT).parts))
    return found


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    missing, extra = _packages_on_disk() - listed, listed - _packages_on_disk()
    assert not missing, f"add to [options] packages in setup.cfg: {sorted(missing)}"
    assert not extra, f"setup.cfg lists packages that do not exist: {sorted(extra)}"
    mapped = dict(line.split(" = ") for line in
                  cfg["options"]["package_dir"].strip().splitlines())
    assert mapped == {f"nodekit.{n}": n for n in ("examples", "validation", "benchmarks")}


def test_every_docs_page_is_in_the_site_index():
    index = (ROOT / "docs" / "index.md").read_text()
    listed = set(re.findall(r"^([\w./-]+)$", index, flags=re.M))
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    assert not pages - listed, f"add to a toctree of docs/index.md: {sorted(pages - listed)}"
