"""One cache of generated kernel modules, shared by every code generator.

``nk.symbolic`` and ``nk.nn`` (and any later generator) write Python source
with ``@numba.njit(cache=True)`` kernels into real files, so that a later
process imports them and Numba loads their machine code from disk instead of
compiling again.  This module holds the one implementation of that cache:

* **Folder.**  ``<root>/<kind>``, where ``root`` is ``$NODEKIT_CACHE`` if set,
  else ``$XDG_CACHE_HOME/nodekit``, else ``~/.cache/nodekit``.  If that cannot
  be created or written, a private folder in the system's temporary directory
  is used: ``nodekit-<uid>``, created with permissions 0o700 and accepted only
  if it is a real folder owned by this user that nobody else can write;
  otherwise a fresh ``tempfile.mkdtemp`` folder for this process.
* **Key.**  :func:`make_key`: the first 24 hex digits of the SHA-256 of a
  canonical JSON payload (which must name the generator and its version).
  The module of ``kind`` and ``key`` is ``nk_<kind>_<key>.py``.
* **Validity.**  A file is trusted only if its last line is the end marker
  ``# end of nodekit generated module <kind> <key> sha256 <digest>`` and
  ``<digest>`` is the SHA-256 of everything before that line.  A truncated,
  edited or foreign file fails the check and is regenerated; so is a file
  that passes it but does not import (a syntax error).  The source that was
  checked is the source that is executed (the file is not read twice).
* **Writing.**  Atomic: a temporary file in the same folder, flushed and
  fsync'ed, then ``os.replace``; if another process wrote a valid module in
  the meantime, its file (and modification time, which Numba's cache index
  keys on) is kept.
* **Threads.**  Generating, writing and importing hold one re-entrant lock,
  so threads that load the same module at once all get the complete module.
  A module that fails to import is removed from ``sys.modules``.

The generated modules import only ``math``, ``numpy`` and ``numba``.
"""
import hashlib
import importlib.util
import json
import os
import stat
import sys
import tempfile
import threading

#: Held while generating, writing and importing a module (and by generators
#: that memoise what they load); re-entrant.
LOCK = threading.RLock()

_MARK = "# end of nodekit generated module "
_FALLBACK = []


def make_key(payload):
    """The key naming a generated module.

    Parameters
    ----------
    payload : dict
        JSON-serialisable description of everything the source depends on:
        the generator's name and version, and the system or architecture.

    Returns
    -------
    str
        24 hex digits of the SHA-256 of ``payload`` as canonical JSON.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _writable_folder(folder):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def _private_folder(path):
    """Whether ``path`` is a real folder of this user that no one else can write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    uid = getattr(os, "getuid", None)
    return (stat.S_ISDIR(st.st_mode) and not (st.st_mode & 0o022)
            and (uid is None or st.st_uid == uid()))


def fallback_root():
    """A private folder in the system's temporary directory.

    ``<tmp>/nodekit-<uid>`` is created with permissions 0o700 and used only if
    it is a folder (not a link) owned by this user and not writable by others,
    so that no other user can plant modules in it.  Otherwise a new
    ``tempfile.mkdtemp`` folder (private, for this process only).

    Returns
    -------
    str
    """
    with LOCK:
        if _FALLBACK:
            return _FALLBACK[0]
        uid = getattr(os, "getuid", lambda: "user")()
        path = os.path.join(tempfile.gettempdir(), f"nodekit-{uid}")
        try:
            os.mkdir(path, 0o700)
        except OSError:
            pass
        if not _private_folder(path):
            path = tempfile.mkdtemp(prefix="nodekit-")
        _FALLBACK.append(path)
        return path


def cache_root():
    """The root of the generated-code cache.

    Returns
    -------
    str
        ``$NODEKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/nodekit``, else
        ``~/.cache/nodekit`` (not created here).
    """
    env = os.environ.get("NODEKIT_CACHE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nodekit")


def cache_folder(kind, cache_dir=None):
    """The folder of ``kind``'s modules.

    Parameters
    ----------
    kind : str
        The generator (``'symbolic'``, ``'nn'``, ...).
    cache_dir : str or os.PathLike, optional
        An explicit folder, used as given.  Default ``<cache_root()>/<kind>``,
        or ``<fallback_root()>/<kind>`` if that cannot be written.

    Returns
    -------
    str
    """
    if cache_dir is not None:
        return os.path.abspath(os.fspath(cache_dir))
    folder = os.path.join(cache_root(), kind)
    if not _writable_folder(folder):
        folder = os.path.join(fallback_root(), kind)
    return folder


def module_name(kind, key):
    """``nk_<kind>_<key>``: the module (and file stem) of ``kind`` and ``key``."""
    return f"nk_{kind}_{key}"


def module_path(kind, key, cache_dir=None):
    """Path of the module of ``kind`` and ``key`` (it may not exist yet)."""
    return os.path.join(cache_folder(kind, cache_dir), module_name(kind, key) + ".py")


def _marker(kind, key, body):
    return f"{_MARK}{kind} {key} sha256 {hashlib.sha256(body.encode()).hexdigest()}\n"


def seal(kind, key, source):
    """``source`` followed by its end marker (what is written to the file)."""
    body = source if source.endswith("\n") else source + "\n"
    return body + _marker(kind, key, body)


def read_valid(path, kind, key):
    """The text of ``path`` if it is a complete, unmodified module of ``kind``
    and ``key`` (see the module notes), else ``None``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None
    body, sep, last = text[:-1].rpartition("\n")
    if not sep or not text.endswith("\n"):
        return None
    body += "\n"
    return text if last + "\n" == _marker(kind, key, body) else None


def _write_atomic(path, text, kind, key):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if read_valid(path, kind, key) == text:  # another process won the race: keep its file
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _execute(path, name, text):
    """Import ``text`` (already checked) as module ``name`` whose file is ``path``."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        exec(compile(text, path, "exec"), mod.__dict__)  # noqa: S102 - our checked source
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _write(path, text, kind, key):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_atomic(path, text, kind, key)
    except OSError as exc:
        raise OSError(f"nodekit could not write the generated module {path!r} ({exc}). "
                      "Pass a writable folder (e.g. compile(cache_dir=...)) or set the "
                      "NODEKIT_CACHE environment variable.") from exc


def load_or_write(kind, key, source, cache_dir=None):
    """Import the generated module of ``kind`` and ``key``, writing it first if
    the cache holds no valid copy.

    Parameters
    ----------
    kind : str
        The generator: names the folder and the module prefix.
    key : str
        From :func:`make_key`.
    source : str or callable
        The module's source, or a function of no arguments returning it
        (called only when the cache has no valid copy, so an expensive
        generator runs once).  When a string is given, a cached file must
        equal it.
    cache_dir : str or os.PathLike, optional
        See :func:`cache_folder`.

    Returns
    -------
    module
        Registered in ``sys.modules`` as :func:`module_name`; loaded once
        per process and folder.

    Raises
    ------
    OSError
        If the module has to be written and the folder cannot be written.
    """
    path = module_path(kind, key, cache_dir)
    name = module_name(kind, key)
    with LOCK:
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None) == path:
            return mod
        text = read_valid(path, kind, key)
        if text is not None and isinstance(source, str) and text != seal(kind, key, source):
            text = None
        if text is not None:
            try:
                return _execute(path, name, text)
            except Exception:  # noqa: BLE001, S110 - a valid marker but no import: regenerate
                pass
        text = seal(kind, key, source if isinstance(source, str) else source())
        _write(path, text, kind, key)
        return _execute(path, name, text)
