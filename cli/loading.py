"""Find and import a project's application and settings.

Shared by the commands that serve a project (``wsio runserver``,
``wsio serve``). A project is a folder with ``app.py`` defining ``app``
(a ``web.application``) and usually ``settings.py``; any WSGI callable
named as ``MODULE:ATTR`` works too::

    from webpy_socketio.cli.loading import load_app, read_settings, use_settings

    use_settings("settings_dev")            # or None for the default
    values = read_settings()                # every SOCKETIO_* setting
    application = load_app("app:app")       # a WSGI callable

Nothing here imports gevent or web.py: call :func:`load_app` only after
gevent's monkey patching, since the app's module imports web.py.

Two kinds of failure are kept apart. When the app cannot be *found* (no
such module, no such attribute, not callable), :class:`NoAppError` says so
in one line with what to do. When the app's own code raises while it is
imported, that exception propagates unchanged, because its traceback is
what the developer needs; :func:`format_user_traceback` prints it without
the frames of this module.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from webpy_socketio.exceptions import ImproperlyConfigured, WebpySocketIOError

#: What ``--app`` means when it is not given.
DEFAULT_APP = "app:app"
#: Attribute names tried, in order, when ``--app`` names only a module.
DEFAULT_ATTRIBUTES = ("app", "application")
#: How many parent folders are searched for a project.
MAX_PARENTS = 8

_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ATTR_RE = re.compile(r"[A-Za-z_]\w*")
# folders inside a project that hold somebody else's code
_FOREIGN_DIRS = {"site-packages", "dist-packages", "node_modules", "__pycache__"}


class NoAppError(WebpySocketIOError):
    """Raised when the application cannot be found: the module does not
    exist, lacks the attribute, or the attribute is not a WSGI callable.
    The message is one line that says what to do."""


def parse_app_spec(spec: str) -> tuple[str, str | None, Path | None]:
    """Split ``MODULE[:ATTR]`` or ``path/to/file.py[:ATTR]``.

    :returns: ``(module, attribute or None, folder to import from or None)``.
    :raises NoAppError: when the text is neither form.
    """
    target, colon, attr = spec.strip().partition(":")
    if colon and not _ATTR_RE.fullmatch(attr):
        raise NoAppError(f"{spec!r}: {attr!r} is not a Python name; use MODULE:ATTR.")
    folder = None
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = Path(target)
        if path.suffix != ".py":
            raise NoAppError(f"{spec!r}: a file given to --app must end in .py.")
        folder, target = path.parent.resolve(), path.stem
    if not _MODULE_RE.fullmatch(target):
        raise NoAppError(
            f"{spec!r} is not MODULE:ATTR (for example 'app:app' or 'mysite.wsgi:application')."
        )
    return target, attr or None, folder


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of the project that ``start`` (default: the current
    folder) is in, or None.

    ``start`` itself counts when it has ``app.py``. A parent counts when it
    has both ``app.py`` and ``settings.py`` (what ``wsio new`` writes), so
    the command also works from ``templates/`` or ``static/`` without
    picking up a stray ``app.py`` higher up.
    """
    here = Path(start or os.getcwd()).resolve()
    if (here / "app.py").is_file():
        return here
    for parent in list(here.parents)[:MAX_PARENTS]:
        if (parent / "app.py").is_file() and (parent / "settings.py").is_file():
            return parent
    return None


def resolve_project(app_spec: str | None, command: str) -> tuple[str, str]:
    """The app spec and the project folder for ``wsio <command>``; the folder
    becomes the current one, where the app finds its templates and static
    files.

    :raises click.ClickException: when no project is found.
    :raises click.BadParameter: for a malformed ``--app``.
    """
    import click

    if app_spec is None:
        root = find_project_root()
        if root is None:
            raise click.ClickException(
                f"No app.py in {os.getcwd()} or a folder above it. Run wsio {command} in the "
                "folder of a project made by 'wsio new', or pass --app MODULE:ATTR."
            )
        os.chdir(root)
        return DEFAULT_APP, str(root)
    try:
        parse_app_spec(app_spec)
    except NoAppError as exc:
        raise click.BadParameter(str(exc), param_hint="--app") from None
    return app_spec, os.getcwd()


def add_to_path(folder: str | os.PathLike[str]) -> None:
    """Put ``folder`` first on ``sys.path`` (once), so the project's
    modules win over same-named installed ones, as with ``python app.py``."""
    folder = os.fspath(folder)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)


def use_settings(module: str | None) -> str:
    """Choose the settings module of this process and of the processes it
    starts: the one way every command does it (``--settings MODULE``; None
    keeps ``WSIO_SETTINGS_MODULE``, or else ``settings``). Values read
    before are forgotten.

    :returns: the name of the module in use.
    :raises click.BadParameter: when ``module`` is not a dotted module name.
    """
    import click

    from webpy_socketio import settings

    if module is not None:
        problem = None
        if module.endswith(".py"):
            problem = (
                f"--settings {module!r} is a file name; give the module name "
                f"{Path(module).stem!r} (its folder must be the project's or on PYTHONPATH)."
            )
        elif not _MODULE_RE.fullmatch(module):
            problem = f"--settings {module!r} is not a Python module name such as 'settings'."
        if problem:
            raise click.BadParameter(problem, param_hint="--settings")
        os.environ[settings.MODULE_ENV] = module
    settings.reset()
    return settings.selected_module()


def read_settings(fresh: bool = False) -> dict[str, Any]:
    """Every setting with its value, from the selected settings module.

    :param fresh: import the settings module again, for a process that
        reads it more than once while the developer edits it.
    :raises ImproperlyConfigured: for an unknown setting, a bad value or a
        settings module that cannot be imported (the message says which).
    :raises Exception: whatever the settings module's own code raises.
    """
    from webpy_socketio import settings

    if fresh:
        sys.modules.pop(settings.selected_module(), None)
        importlib.invalidate_caches()
        settings.reset()
    return settings.as_dict()


def read_settings_or_exit(fresh: bool = False) -> dict[str, Any]:
    """:func:`read_settings` for a command that cannot wait for a fix: any
    failure becomes a :class:`click.ClickException` (one line for a bad
    setting, the trimmed traceback for an error in the module's code)."""
    import click

    try:
        return read_settings(fresh)
    except Exception as exc:
        message = describe_error(exc).strip().removeprefix("Error: ")
        raise click.ClickException(message) from None


def load_app(spec: str = DEFAULT_APP, root: str | os.PathLike[str] | None = None) -> Any:
    """Import the application named by ``spec`` and return a WSGI callable.

    A ``web.application`` is turned into its ``wsgifunc()``. Without an
    attribute, ``app`` then ``application`` are tried, then the module's
    only ``web.application``.

    :param spec: ``MODULE[:ATTR]`` or ``path/to/file.py[:ATTR]``.
    :param root: the folder to import from (default: the current folder).
    :raises NoAppError: when the module or attribute is missing or is not
        callable.
    :raises Exception: whatever the application's own code raises while it
        is imported (a ``SyntaxError``, an ``ImportError`` of a module it
        needs, ...), unchanged.
    """
    module_name, attr, folder = parse_app_spec(spec)
    add_to_path(folder or Path(root or os.getcwd()).resolve())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # only a missing *target* is ours to explain; a module the app
        # itself imports and lacks is the app's error, with its traceback
        if exc.name is not None and module_name.split(".")[0] == exc.name.split(".")[0]:
            where = folder or Path(root or os.getcwd()).resolve()
            raise NoAppError(
                f"Could not import {module_name!r} from {where}: no such module. Run the "
                "command in the project's folder (the one with app.py) or pass --app MODULE:ATTR."
            ) from None
        raise
    return _wsgi_callable(module, module_name, attr)


def _wsgi_callable(module: Any, module_name: str, attr: str | None) -> Any:
    if attr is None:
        found = next((a for a in DEFAULT_ATTRIBUTES if hasattr(module, a)), None)
        if found is None:
            apps = [name for name, value in vars(module).items() if _is_webpy_app(value)]
            if len(apps) != 1:
                several = f" and several web.py applications ({', '.join(sorted(apps))})"
                raise NoAppError(
                    f"Module {module_name!r} has no 'app' or 'application'"
                    f"{several if apps else ''}; pass --app {module_name}:NAME."
                )
            found = apps[0]
        attr = found
    try:
        obj = getattr(module, attr)
    except AttributeError:
        names = [n for n, v in vars(module).items() if _is_webpy_app(v) or _looks_wsgi(n, v)]
        hint = f" It defines {', '.join(sorted(names))}." if names else ""
        raise NoAppError(
            f"Module {module_name!r} ({getattr(module, '__file__', '?')}) has no attribute "
            f"{attr!r}.{hint} Pass --app {module_name}:NAME."
        ) from None
    wsgifunc = getattr(obj, "wsgifunc", None)
    if callable(wsgifunc):
        return wsgifunc()
    if not callable(obj) or isinstance(obj, type):
        raise NoAppError(
            f"{module_name}:{attr} is a {type(obj).__name__}, not a web.py application or a "
            "WSGI callable."
        )
    return obj


def _is_webpy_app(value: Any) -> bool:
    web = sys.modules.get("web")
    application = getattr(web, "application", None)
    return isinstance(application, type) and isinstance(value, application)


def _looks_wsgi(name: str, value: Any) -> bool:
    return callable(value) and not isinstance(value, type) and "app" in name.lower()


def format_user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised by the application while
    :func:`load_app` imported it, starting at the application's code (the
    frames of these commands and of importlib are left out)."""
    tb = exc.__traceback__
    # whoever called load_app() is not interesting either: start after it
    entry = tb
    while entry is not None:
        if entry.tb_frame.f_code is load_app.__code__:
            tb = entry
            break
        entry = entry.tb_next
    while tb is not None and _is_loader_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _is_loader_frame(filename: str) -> bool:
    # the commands' own frames (this folder), importlib's, and the frozen
    # import machinery that Python leaves in for some errors
    if filename.startswith("<frozen importlib"):
        return True
    path = os.path.abspath(filename)
    return os.path.dirname(path) == os.path.dirname(os.path.abspath(__file__)) or path == (
        os.path.abspath(importlib.__file__ or "")
    )


def describe_error(exc: BaseException) -> str:
    """What to print when loading failed: one line for a project mistake
    (:class:`NoAppError`, :class:`ImproperlyConfigured`), the trimmed
    traceback for an error in the application's code."""
    if isinstance(exc, NoAppError | ImproperlyConfigured):
        return f"Error: {exc}\n"
    return format_user_traceback(exc)


# -- fresh imports of the project's own modules ------------------------------------


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that never uses a ``.pyc``.

    A ``.pyc`` records its source's mtime in whole seconds plus its size, so
    an edit that keeps the size and lands in the same second as the ``.pyc``
    was written looks unchanged, and the old code would be served until the
    next edit. Compiling the project's few modules costs milliseconds.
    """

    def path_stats(self, path: str) -> dict[str, Any]:
        # SourceLoader.get_code() skips the bytecode cache, reading and
        # writing, when the source's stats are unavailable
        raise OSError("compile project sources afresh")


def always_compile(root: str | os.PathLike[str]) -> Callable[[str], Any]:
    """Make modules imported from ``root`` (and its packages, but not a
    virtualenv or hidden folder inside it) compile from source, ignoring
    any ``__pycache__``.

    :returns: the path hook that was installed.
    """
    root_path = os.path.abspath(os.fspath(root))
    details: Iterable[tuple[type, list[str]]] = [
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (_FreshSourceLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    ]

    def in_project(path: str) -> bool:
        path = os.path.abspath(path or os.getcwd())
        if path != root_path and not path.startswith(root_path + os.sep):
            return False
        parts = Path(path).relative_to(root_path).parts
        return not any(p.startswith(".") or p in _FOREIGN_DIRS for p in parts)

    def hook(path: str) -> Any:
        if not in_project(path):
            raise ImportError("not a project folder")  # the next hook takes it
        return importlib.machinery.FileFinder(path, *details)

    sys.path_hooks.insert(0, hook)
    for cached in list(sys.path_importer_cache):
        if in_project(cached):
            del sys.path_importer_cache[cached]
    return hook
