"""The command line: demo solve, help, version, bad arguments, output folders."""
import os
import subprocess
import sys

import pytest

import nodekit as nk
from nodekit import cli
from nodekit.cli import main


def _run(*argv):
    return subprocess.run([sys.executable, "-m", "nodekit", *argv], capture_output=True,
                          text=True)


def test_demo_solve_prints_table_and_plots(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "SOLVE_TOLS", (1e-3, 1e-6))  # the plot's sweep, shortened
    assert main(["demo", "solve", "--rtol", "1e-6", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SciPy error" in out and "dop853" in out and "exponential decay" in out
    png = tmp_path / "solve" / "error_vs_tolerance.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["demo", "nope"], ["demo", "--iters", "0"], ["frobnicate"],
                                  ["demo", "spiral", "--rtol", "1e-3"],
                                  ["demo", "solve", "--rtol", "-1"]])
def test_bad_arguments_are_one_clean_error(argv):
    res = _run(*argv)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "error:" in res.stderr


def test_unwritable_out_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = _run("demo", "spiral", "--out", str(blocker))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "--out" in res.stderr
    with pytest.raises(cli.CommandError, match="not a folder"):
        cli.writable_folder(str(blocker))
    folder = tmp_path / "out" / "spiral"
    os.makedirs(folder)
    assert cli.writable_folder(str(folder)) == str(folder)  # an existing folder is fine


def test_missing_demo_module_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(cli.DEMOS, "cnf", cli.Demo("examples.no_such_demo", "main", "", ""))
    assert main(["demo", "cnf", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "nodekit.examples.no_such_demo` is not available" in err and err.count("\n") == 1


def test_help_lists_commands_and_defaults():
    res = _run("--help")
    assert res.returncode == 0
    for word in ("demo", "validate", "bench"):
        assert word in res.stdout
    res = _run("demo", "--help")
    assert res.returncode == 0
    for word in ("2000 iterations", "60 epochs", "--no-progress", "cnf", "latent"):
        assert word in res.stdout


def test_version():
    res = _run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"nodekit {nk.__version__}"


def test_shipped_folders_import_under_the_nodekit_name():
    from nodekit.benchmarks import _timing
    from nodekit.examples import spiral
    from nodekit.validation import cases
    for module, folder in ((_timing, "benchmarks"), (spiral, "examples"), (cases, "validation")):
        assert os.path.basename(os.path.dirname(module.__file__)) == folder
