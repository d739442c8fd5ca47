"""nodekit._compile_notice: one line on stderr when nodekit compiles, and
nothing when nothing is compiled."""
import importlib.util
import io
import os
import uuid

from numba.core import event

from nodekit import _compile_notice
from nodekit._compile_notice import MESSAGE, CompileNotice

SOURCE = '''
import numba


@numba.njit(cache=False)
def f(x):
    return 2.0 * x + 1.0
'''


def _fresh_module(tmp_path, prefix):
    """A new module with a jitted function not compiled yet."""
    name = f"{prefix}{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _listen(calls, delay=0.0):
    """Run ``calls()`` under a notice counting the ``nk_probe_`` modules."""
    out = io.StringIO()
    notice = CompileNotice(stream=out, delay=delay, prefixes=("nk_probe_",))
    with event.install_listener("numba:compile", notice):
        calls()
    return out.getvalue(), notice


def test_message_when_a_compile_starts(tmp_path):
    mod = _fresh_module(tmp_path, "nk_probe_")

    def calls():
        assert mod.f(1.0) == 3.0
        assert mod.f(2.0) == 5.0  # compiled already: no second line
        mod.f(3)                  # a second signature compiles: still one line

    text, notice = _listen(calls)
    assert text == MESSAGE + "\n" and notice.shown


def test_silent_without_a_compile(tmp_path):
    mod = _fresh_module(tmp_path, "nk_probe_")
    mod.f(1.0)  # compiled before the listener exists
    text, notice = _listen(lambda: mod.f(4.0))
    assert text == "" and not notice.shown


def test_silent_for_functions_outside_nodekit(tmp_path):
    mod = _fresh_module(tmp_path, "user_code_")
    text, notice = _listen(lambda: mod.f(1.0))
    assert text == "" and not notice.shown


def test_short_compile_below_the_delay_is_silent(tmp_path):
    mod = _fresh_module(tmp_path, "nk_probe_")
    text, notice = _listen(lambda: mod.f(1.0), delay=1e9)
    # the compile ended long before the delay: its timer is cancelled, nothing printed
    assert notice._timer is None and notice._depth == 0
    assert text == "" and not notice.shown


def test_installed_on_import_and_switched_off_by_the_environment(monkeypatch):
    if os.environ.get(_compile_notice.ENV, "").strip() != "0":
        assert _compile_notice._INSTALLED, "import nodekit installs the notice"
    monkeypatch.setattr(_compile_notice, "_INSTALLED", [])
    monkeypatch.setenv(_compile_notice.ENV, "0")
    assert _compile_notice.install() is None and _compile_notice._INSTALLED == []
