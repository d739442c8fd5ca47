"""nodekit._codecache: one generated-code cache for nk.symbolic and nk.nn.

Validity (end marker and content hash), regeneration of edited, truncated and
broken files, atomic writes, the private fallback folder, and threads."""
import os
import stat
import sys
import threading

import pytest

from nodekit import _codecache as cc

SOURCE = "VALUE = 'theta[0]'\n\n\ndef twice(x):\n    return 2 * x\n"


def _read(path):
    with open(path) as fh:
        return fh.read()


def _key(tag="a"):
    return cc.make_key({"generator": "tests", "tag": tag})


def _forget(kind, key):
    sys.modules.pop(cc.module_name(kind, key), None)


def test_key_is_canonical_and_short():
    assert cc.make_key({"a": 1, "b": [1, 2]}) == cc.make_key({"b": [1, 2], "a": 1})
    assert cc.make_key({"a": 1}) != cc.make_key({"a": 2})
    assert len(cc.make_key({})) == 24


def test_write_then_import_once(tmp_path):
    key = _key("once")
    calls = []

    def generate():
        calls.append(1)
        return SOURCE

    mod = cc.load_or_write("t", key, generate, tmp_path)
    assert mod.twice(3) == 6 and mod.VALUE == "theta[0]"
    path = cc.module_path("t", key, tmp_path)
    assert mod.__file__ == path and os.path.basename(path) == f"nk_t_{key}.py"
    text = _read(path)
    assert text.startswith(SOURCE) and text.rstrip().splitlines()[-1].startswith(
        "# end of nodekit generated module t " + key + " sha256 ")
    assert cc.load_or_write("t", key, generate, tmp_path) is mod
    _forget("t", key)
    assert cc.load_or_write("t", key, generate, tmp_path).VALUE == "theta[0]"
    assert calls == [1]  # the second process-like load read the file
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


@pytest.mark.parametrize("damage", ["edited", "truncated", "no marker", "other key"])
def test_damaged_file_is_regenerated(tmp_path, damage):
    key = _key("damage-" + damage)
    path = cc.module_path("t", key, tmp_path)
    sealed = cc.seal("t", key, SOURCE)
    bad = {"edited": sealed.replace("theta[0]", "theta[1]"),  # end marker intact
           "truncated": sealed[: len(sealed) // 2],
           "no marker": SOURCE,
           "other key": cc.seal("t", _key("other"), SOURCE)}[damage]
    os.makedirs(tmp_path, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(bad)
    _forget("t", key)
    mod = cc.load_or_write("t", key, lambda: SOURCE, tmp_path)
    assert mod.VALUE == "theta[0]"
    assert _read(path) == sealed


def test_valid_marker_but_syntax_error_is_regenerated(tmp_path):
    key = _key("syntax")
    path = cc.module_path("t", key, tmp_path)
    with open(path, "w") as fh:
        fh.write(cc.seal("t", key, "def twice(x:\n"))
    _forget("t", key)
    assert cc.load_or_write("t", key, lambda: SOURCE, tmp_path).twice(2) == 4
    assert cc.module_name("t", key) in sys.modules


def test_failed_import_leaves_no_module_behind(tmp_path):
    key = _key("raises")
    with pytest.raises(ZeroDivisionError):
        cc.load_or_write("t", key, "X = 1 / 0\n", tmp_path)
    assert cc.module_name("t", key) not in sys.modules


def test_string_source_must_match_the_file(tmp_path):
    key = _key("string")
    cc.load_or_write("t", key, SOURCE, tmp_path)
    _forget("t", key)
    changed = SOURCE.replace("theta[0]", "theta[2]")
    assert cc.load_or_write("t", key, changed, tmp_path).VALUE == "theta[2]"


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="NODEKIT_CACHE"):
        cc.load_or_write("t", _key("blocked"), SOURCE, blocker / "sub")


def test_cache_folder_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEKIT_CACHE", str(tmp_path / "root"))
    assert cc.cache_folder("nn") == str(tmp_path / "root" / "nn")
    assert cc.cache_folder("nn", tmp_path / "x") == str(tmp_path / "x")
    monkeypatch.delenv("NODEKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.cache_folder("symbolic") == str(tmp_path / "xdg" / "nodekit" / "symbolic")


@pytest.fixture
def fresh_fallback(tmp_path, monkeypatch):
    """An unwritable cache root, and a private temporary directory."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("NODEKIT_CACHE", str(blocker / "cache"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    monkeypatch.setattr(cc, "_FALLBACK", [])
    return tmp / f"nodekit-{os.getuid()}"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_fallback_folder_is_private(fresh_fallback):
    folder = cc.cache_folder("nn")
    assert folder == str(fresh_fallback / "nn")
    st = os.lstat(fresh_fallback)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
@pytest.mark.parametrize("plant", ["world-writable", "symlink"])
def test_planted_fallback_folder_is_not_trusted(fresh_fallback, tmp_path, plant):
    if plant == "world-writable":
        fresh_fallback.mkdir()
        os.chmod(fresh_fallback, 0o777)
    else:
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", fresh_fallback)
    folder = cc.cache_folder("nn")
    assert not folder.startswith(str(fresh_fallback) + os.sep)
    assert stat.S_IMODE(os.lstat(os.path.dirname(folder)).st_mode) == 0o700


def test_threads_loading_one_module_all_get_it_complete(tmp_path):
    key = _key("threads")
    slow = "import time\ntime.sleep(0.2)\n" + SOURCE
    barrier = threading.Barrier(4)
    results, errors = [], []

    def work():
        barrier.wait()
        try:
            results.append(cc.load_or_write("t", key, lambda: slow, tmp_path).twice(5))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and results == [10] * 4
