"""The pieces of ``wsio runserver`` one step at a time
(``cli/dev/watcher.py``, ``cli/loading.py``): which files count, the
watchers (watchdog and stat polling, on real files) with their debounce,
and the app loading and settings selection shared with ``wsio serve``."""

from __future__ import annotations

import importlib
import os
import py_compile
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import click
import pytest
from webpy_socketio.cli.dev.watcher import (
    Changes,
    ProjectFiles,
    StatWatcher,
    WatchdogWatcher,
    Watcher,
)
from webpy_socketio.cli.loading import (
    NoAppError,
    always_compile,
    find_project_root,
    format_user_traceback,
    load_app,
    parse_app_spec,
    read_settings,
    use_settings,
)

from webpy_socketio import settings as wsio_settings
from webpy_socketio.exceptions import ImproperlyConfigured

TIMESTAMP = py_compile.PycInvalidationMode.TIMESTAMP


def write(path: Path, text: str = "x = 1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for name in (
        "app.py",
        "events.py",
        "settings.py",
        "templates/index.html",
        "templates/mail.mako",
        "static/style.css",
        "static/page.html",
        "pkg/__init__.py",
        "pkg/mod.py",
        ".venv/lib/python3.11/site-packages/dep.py",
        "venv/lib/dep.py",
        "node_modules/m/index.js",
        "__pycache__/app.cpython-311.pyc",
        ".git/HEAD",
        "chat.db",
        "notes.txt",
        "mypkg.egg-info/PKG-INFO",
    ):
        write(root / name)
    return root


# -- which files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.py", "code"),
        ("pkg/mod.py", "code"),
        ("templates/index.html", "template"),
        ("templates/mail.mako", "template"),
        ("static/style.css", "static"),
        ("static/page.html", "static"),  # the folder decides, not the suffix
        (".venv/lib/python3.11/site-packages/dep.py", None),
        ("venv/lib/dep.py", None),
        ("node_modules/m/index.js", None),
        ("__pycache__/app.cpython-311.pyc", None),
        (".git/HEAD", None),
        ("chat.db", None),  # the app's own data must not restart it
        ("chat.db-journal", None),
        ("notes.txt", None),
        (".app.py.swp", None),
        ("app.py~", None),
        ("4913", None),  # vim's probe file
        ("../outside.py", None),
    ],
)
def test_kind(tree: Path, name: str, kind: str | None):
    assert ProjectFiles(tree).kind(tree / name) == kind


def test_static_not_watched_without_browser_reload(tree: Path):
    files = ProjectFiles(tree, watch_static=False)
    assert files.kind(tree / "static" / "style.css") is None
    assert files.kind(tree / "templates" / "index.html") == "template"


def test_walk_lists_the_watched_files(tree: Path):
    found = sorted(p.relative_to(tree).as_posix() for p in ProjectFiles(tree).walk())
    assert found == [
        "app.py",
        "events.py",
        "pkg/__init__.py",
        "pkg/mod.py",
        "settings.py",
        "static/page.html",
        "static/style.css",
        "templates/index.html",
        "templates/mail.mako",
    ]
    assert ProjectFiles(tree).describe().startswith(f"9 files in {tree}: *.py, templates (")


def test_changes():
    changes = Changes()
    assert not changes
    changes.add("static", "static/a.css")
    assert changes and not changes.restart and changes.reload_browsers
    changes.add("code", "app.py")
    assert changes.restart
    assert not Changes(code={"app.py"}).reload_browsers
    assert Changes(templates={"t.html"}).restart
    many = Changes(code={"a.py", "b.py", "c.py", "d.py", "e.py"})
    assert many.summary() == "a.py, b.py, c.py and 2 more changed"
    assert many.names() == ["a.py", "b.py", "c.py", "d.py", "e.py"]


# -- the debounce, without threads ---------------------------------------------------------


def test_a_burst_is_one_change(tree: Path):
    watcher = Watcher(ProjectFiles(tree), quiet=0.05)
    for name in ("app.py", "app.py", "templates/index.html", "chat.db", "static/style.css"):
        watcher.push(str(tree / name))
    changes = watcher.wait(timeout=1)
    assert changes == Changes(
        code={"app.py"},
        templates={"templates/index.html"},
        static={"static/style.css"},
        first_seen=changes.first_seen,
    )
    assert watcher.wait(timeout=0.05) is None


def test_ignored_events_are_not_queued(tree: Path):
    watcher = Watcher(ProjectFiles(tree))
    watcher.push(str(tree / "chat.db"))
    watcher.push(os.fsencode(tree / ".git" / "index"))
    assert watcher.queue.empty()


def test_an_endless_burst_still_ends(tree: Path):
    watcher = Watcher(ProjectFiles(tree), quiet=0.05, max_delay=0.3)
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.wait(0.01):
            watcher.push(str(tree / "app.py"))

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        started = time.monotonic()
        assert watcher.wait(timeout=1)
        assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        thread.join()


def test_wake(tree: Path):
    watcher = Watcher(ProjectFiles(tree))
    threading.Timer(0.05, watcher.wake).start()
    started = time.monotonic()
    assert watcher.wait(timeout=5) is None
    assert time.monotonic() - started < 2


def test_wake_during_a_burst_keeps_the_changes(tree: Path):
    watcher = Watcher(ProjectFiles(tree), quiet=0.2)
    watcher.push(str(tree / "app.py"))
    watcher.wake()
    changes = watcher.wait(timeout=1)
    assert changes is not None and changes.code == {"app.py"}
    assert watcher.wait(timeout=1) is None  # the wake is not lost


# -- real watchers on real files --------------------------------------------------------------


@pytest.fixture(params=["watchdog", "stat"])
def watcher(request, tree: Path) -> Iterator[Watcher]:
    files = ProjectFiles(tree)
    instance = WatchdogWatcher(files) if request.param == "watchdog" else StatWatcher(files, 0.05)
    instance.start()
    yield instance
    instance.close()


def test_modified_file(watcher: Watcher, tree: Path):
    time.sleep(0.02)  # a new mtime for the stat watcher
    write(tree / "events.py", "x = 2\n")
    changes = watcher.wait(timeout=5)
    assert changes is not None and changes.code == {"events.py"}, changes


def test_editor_style_save(watcher: Watcher, tree: Path):
    # write a temporary file, then rename it over the original (atomic save)
    write(tree / ".events.py.tmp", "x = 3\n")
    os.replace(tree / ".events.py.tmp", tree / "events.py")
    changes = watcher.wait(timeout=5)
    assert changes is not None and changes.names() == ["events.py"], changes


def test_template_static_and_deleted(watcher: Watcher, tree: Path):
    time.sleep(0.02)
    write(tree / "templates" / "index.html", "<p>new</p>")
    write(tree / "static" / "style.css", "p {}")
    (tree / "pkg" / "mod.py").unlink()
    seen = Changes()
    deadline = time.monotonic() + 5
    while seen.names() != ["pkg/mod.py", "static/style.css", "templates/index.html"]:
        assert time.monotonic() < deadline, seen
        more = watcher.wait(timeout=0.5)
        if more:
            seen.code |= more.code
            seen.templates |= more.templates
            seen.static |= more.static


def test_ignored_files_restart_nothing(watcher: Watcher, tree: Path):
    write(tree / "chat.db", "data")
    write(tree / ".venv" / "lib" / "python3.11" / "site-packages" / "dep.py", "y = 1\n")
    write(tree / "__pycache__" / "events.cpython-311.pyc", "junk")
    write(tree / "notes.txt", "hello")
    assert watcher.wait(timeout=0.6) is None


def test_new_folder_is_watched(watcher: Watcher, tree: Path):
    write(tree / "newpkg" / "__init__.py", "")
    changes = watcher.wait(timeout=5)
    assert changes is not None and "newpkg/__init__.py" in changes.code
    while watcher.wait(timeout=0.3):
        pass
    time.sleep(0.02)
    write(tree / "newpkg" / "later.py", "z = 1\n")
    changes = watcher.wait(timeout=5)
    assert changes is not None and changes.code == {"newpkg/later.py"}, changes


# -- loading the app --------------------------------------------------------------------------


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what loading does to the process beyond the library's state
    (which conftest's clean_global_state resets): sys.path, imported
    modules, path hooks."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "path_hooks", list(sys.path_hooks))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path_importer_cache.clear()


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("app:app", ("app", "app", None)),
        ("app", ("app", None, None)),
        ("mysite.wsgi:application", ("mysite.wsgi", "application", None)),
    ],
)
def test_parse_app_spec(spec: str, parsed: tuple):
    assert parse_app_spec(spec) == parsed


def test_parse_app_spec_file(tmp_path: Path):
    assert parse_app_spec(f"{tmp_path}/serve_me.py:app") == ("serve_me", "app", tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my-app", "is not MODULE:ATTR"),
        ("app:", "'' is not a Python name"),
        ("app:a.b", "'a.b' is not a Python name"),
        ("dir/app.txt", "must end in .py"),
        (":app", "is not MODULE:ATTR"),
    ],
)
def test_parse_app_spec_errors(spec: str, message: str):
    with pytest.raises(NoAppError, match=message):
        parse_app_spec(spec)


WEBPY_APP = """
import web
urls = ("/", "Index")
class Index:
    def GET(self):
        return "hello from {name}"
{attr} = web.application(urls, globals(), autoreload=False)
"""


def call(wsgi) -> str:
    environ: dict = {}
    setup_testing_defaults(environ)
    statuses = []
    body = b"".join(wsgi(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses == ["200 OK"]
    return body.decode()


def test_load_webpy_application(tmp_path: Path, isolated):
    write(tmp_path / "ld_webpy.py", WEBPY_APP.format(name="webpy", attr="app"))
    assert call(load_app("ld_webpy:app", tmp_path)) == "hello from webpy"


@pytest.mark.parametrize("attr", ["app", "application", "site"])
def test_load_module_only_finds_the_app(tmp_path: Path, isolated, attr: str):
    write(tmp_path / f"ld_{attr}.py", WEBPY_APP.format(name=attr, attr=attr))
    assert call(load_app(f"ld_{attr}", tmp_path)) == f"hello from {attr}"


def test_load_plain_wsgi_callable_and_file_path(tmp_path: Path, isolated):
    write(
        tmp_path / "sub" / "ld_plain.py",
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'plain']\n",
    )
    assert call(load_app(f"{tmp_path}/sub/ld_plain.py:application")) == "plain"


def test_load_missing_module(tmp_path: Path, isolated):
    with pytest.raises(NoAppError) as caught:
        load_app("ld_nothing:app", tmp_path)
    assert str(caught.value) == (
        f"Could not import 'ld_nothing' from {tmp_path}: no such module. Run the command in "
        "the project's folder (the one with app.py) or pass --app MODULE:ATTR."
    )


def test_missing_import_inside_the_app_is_the_apps_error(tmp_path: Path, isolated):
    write(tmp_path / "ld_needs.py", "import ld_not_installed\napp = None\n")
    with pytest.raises(ModuleNotFoundError, match="ld_not_installed"):
        load_app("ld_needs:app", tmp_path)


def test_load_missing_attribute(tmp_path: Path, isolated):
    write(tmp_path / "ld_attr.py", WEBPY_APP.format(name="x", attr="my_app"))
    with pytest.raises(NoAppError, match="has no attribute 'app'. It defines my_app. Pass --app"):
        load_app("ld_attr:app", tmp_path)


def test_load_several_apps_needs_a_name(tmp_path: Path, isolated):
    text = WEBPY_APP.format(name="x", attr="one") + "two = web.application(urls, globals())\n"
    write(tmp_path / "ld_two.py", text)
    with pytest.raises(NoAppError, match=r"several web.py applications \(one, two\)"):
        load_app("ld_two", tmp_path)


@pytest.mark.parametrize(("value", "kind"), [("42", "int"), ("dict", "type")])
def test_load_not_callable(tmp_path: Path, isolated, value: str, kind: str):
    write(tmp_path / f"ld_bad_{kind}.py", f"app = {value}\n")
    with pytest.raises(NoAppError, match=f"ld_bad_{kind}:app is a {kind}, not a web.py"):
        load_app(f"ld_bad_{kind}:app", tmp_path)


def test_traceback_starts_in_the_project(tmp_path: Path, isolated):
    write(tmp_path / "ld_boom.py", "import ld_boom_helper\n")
    write(tmp_path / "ld_boom_helper.py", "x = 1\nraise ValueError('broken on purpose')\n")
    with pytest.raises(ValueError) as caught:
        load_app("ld_boom:app", tmp_path)
    text = format_user_traceback(caught.value)
    assert text.splitlines()[0] == "Traceback (most recent call last):"
    assert text.splitlines()[1].startswith(f'  File "{tmp_path / "ld_boom.py"}", line 1')
    assert "ld_boom_helper.py" in text and text.endswith("ValueError: broken on purpose\n")
    assert "loading.py" not in text and "importlib" not in text


def test_find_project_root(tmp_path: Path):
    write(tmp_path / "outer" / "app.py")  # an app.py without settings.py above
    project = tmp_path / "outer" / "proj"
    write(project / "app.py")
    write(project / "settings.py")
    (project / "templates" / "deep").mkdir(parents=True)
    assert find_project_root(project) == project
    assert find_project_root(project / "templates" / "deep") == project
    assert find_project_root(tmp_path / "outer") == tmp_path / "outer"
    assert find_project_root(tmp_path) is None
    (project / "settings.py").unlink()
    assert find_project_root(project / "templates") is None


def test_settings_selection_and_fresh_read(tmp_path: Path, isolated):
    write(tmp_path / "ld_settings_dev.py", "SOCKETIO_PORT = 8123\n")
    sys.path.insert(0, str(tmp_path))
    assert use_settings("ld_settings_dev") == "ld_settings_dev"
    assert os.environ[wsio_settings.MODULE_ENV] == "ld_settings_dev"
    assert read_settings()["SOCKETIO_PORT"] == 8123
    write(tmp_path / "ld_settings_dev.py", "SOCKETIO_PORT = 8124\n")
    assert read_settings(fresh=True)["SOCKETIO_PORT"] == 8124
    write(tmp_path / "ld_settings_dev.py", "SOCKETIO_PROT = 1\n")
    with pytest.raises(ImproperlyConfigured, match="Did you mean SOCKETIO_PORT"):
        read_settings(fresh=True)
    with pytest.raises(click.BadParameter, match="is a file name; give the module name 'ld_s"):
        use_settings("ld_settings.py")
    with pytest.raises(click.BadParameter, match="is not a Python module name such as 'settings'"):
        use_settings("ld-settings")


def test_always_compile_ignores_stale_bytecode(tmp_path: Path, isolated):
    module = write(tmp_path / "proj" / "ld_fresh.py", 'VALUE = "old"\n')
    venv_module = write(tmp_path / "proj" / ".venv" / "ld_dep.py", 'VALUE = "old"\n')
    for path in (module, venv_module):
        stat = path.stat()
        py_compile.compile(str(path), doraise=True, invalidation_mode=TIMESTAMP)
        path.write_text('VALUE = "new"\n')  # same size, same mtime: the .pyc looks current
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    sys.path[:0] = [str(tmp_path / "proj"), str(tmp_path / "proj" / ".venv")]
    always_compile(tmp_path / "proj")
    assert importlib.import_module("ld_fresh").VALUE == "new"
    # a virtualenv inside the project is somebody else's code: caches as usual
    assert importlib.import_module("ld_dep").VALUE == "old"
