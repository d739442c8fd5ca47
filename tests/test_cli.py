"""The command line: demo solve, help, bad arguments."""
import subprocess
import sys

import pytest

from nodekit.cli import main


def test_demo_solve_prints_table(capsys):
    assert main(["demo", "solve", "--rtol", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert "SciPy error" in out and "dop853" in out


@pytest.mark.parametrize("argv", [["demo", "nope"], ["demo", "--iters", "0"], ["frobnicate"]])
def test_bad_arguments_are_one_clean_error(argv):
    res = subprocess.run([sys.executable, "-m", "nodekit", *argv], capture_output=True,
                         text=True)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "error:" in res.stderr


def test_help_lists_commands():
    res = subprocess.run([sys.executable, "-m", "nodekit", "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0
    for word in ("demo", "validate", "bench"):
        assert word in res.stdout
