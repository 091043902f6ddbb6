"""``wsio new``: real renders of the bundled cookiecutter template into
temporary folders, the rendered projects' own tests, and every way the
command refuses bad input without leaving anything behind."""

from __future__ import annotations

import compileall
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser import ProjectServer, copy_project
from click.testing import CliRunner
from support import NodeAgent
from webpy_socketio.cli.main import cli
from webpy_socketio.cli.new import DEPENDENCY_MODULES, template_dir

from webpy_socketio import settings

COMMON_FILES = {
    ".gitignore",
    "README.rst",
    "app.py",
    "events.py",
    "pyproject.toml",
    "requirements.txt",
    "settings.py",
    "static/style.css",
    "templates/index.html",
    "tests/conftest.py",
    "tests/test_events.py",
    "tests/test_pages.py",
}
VARIANT_FILES = {"chat": {"static/chat.js"}, "minimal": {"static/app.js"}}


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    # cookiecutter must not read or write the real home folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return CliRunner()


def files_of(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def new(runner: CliRunner, *args: str, client: bool = False):
    """``wsio new ARGS``; without the npm fetch of the client unless asked
    (tests/test_offline_client.py tests it)."""
    return runner.invoke(
        cli, ["new", *args, *([] if client else ["--no-client"])], prog_name="wsio"
    )


def error_line(output: str) -> str:
    """The one line that says what is wrong."""
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


# -- start-up cost -------------------------------------------------------------------


def test_help_and_new_help_import_nothing_heavy():
    heavy = ["gevent", "web", "socketio", "engineio", "cookiecutter", "watchdog", "mako", "jinja2"]
    code = (
        "import sys, json\n"
        "from webpy_socketio.cli.main import cli\n"
        "for args in (['--help'], ['new', '--help']):\n"
        "    try:\n"
        "        cli(args, prog_name='wsio')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    help_text, modules_json = result.stdout.rsplit("\n", 2)[:2]
    assert "new" in help_text and "--template [chat|minimal]" in result.stdout
    loaded = set(json.loads(modules_json))
    assert [m for m in heavy if m in loaded] == []


def test_shell_completion_offers_the_command_and_its_options():
    wsio = Path(sys.executable).parent / "wsio"

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_WSIO_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        result = subprocess.run([wsio], env=env, capture_output=True, text=True, timeout=60)
        return result.stdout.split()

    assert "plain,new" in complete("wsio ne")
    assert complete("wsio new x --te") == ["plain,--template"]
    assert "plain,minimal" in complete("wsio new x --template m")


# -- rendering -----------------------------------------------------------------------


def test_new_renders_a_chat_project(runner, tmp_path):
    result = new(runner, "mychat", "--directory", str(tmp_path))
    assert result.exit_code == 0, result.output
    project = tmp_path / "mychat"
    assert files_of(project) == COMMON_FILES | VARIANT_FILES["chat"]
    # nothing else was left in the parent: no staging folder, no replay file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mychat"]
    assert "cd " in result.output and "wsio runserver" in result.output

    app = (project / "app.py").read_text()
    assert app.startswith('"""mychat:')
    assert app.index("monkey.patch_all()") < app.index("import web")
    assert "urls += socketio_urls" in app
    assert "web.application(urls, globals(), autoreload=False)" in app
    assert 'if __name__ == "__main__":' in app and "SocketIOServer(" in app
    assert (
        '<%include file="socketio_scripts.html"/>'
        in (project / "templates" / "index.html").read_text()
    )
    assert "@on_subscribe(channel=" in (project / "events.py").read_text()
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")  # rendered Python is valid Python


def test_settings_list_every_setting_commented(runner, tmp_path):
    assert new(runner, "withsettings", "-d", str(tmp_path), "--port", "8123").exit_code == 0
    text = (tmp_path / "withsettings" / "settings.py").read_text()
    for name in settings.DEFAULTS:
        if name == "SOCKETIO_PORT":
            assert re.search(r"^SOCKETIO_PORT = 8123$", text, re.M)
        else:
            assert re.search(rf"^# {name} = ", text, re.M), name
    namespace: dict = {}
    exec(compile(text, "settings.py", "exec"), namespace)
    assert namespace["SOCKETIO_PORT"] == 8123
    assert namespace["DEBUG"] is False  # web.py's debug pages show tracebacks: off


def test_minimal_template(runner, tmp_path):
    result = new(runner, "tiny", "-d", str(tmp_path), "--template", "minimal")
    assert result.exit_code == 0, result.output
    project = tmp_path / "tiny"
    assert files_of(project) == COMMON_FILES | VARIANT_FILES["minimal"]
    assert "def echo(" in (project / "events.py").read_text()
    assert "chat" not in (project / "README.rst").read_text().split("Run it")[0]


def test_new_writes_into_the_current_folder_by_default(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = new(runner, "here")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "here" / "app.py").is_file()
    assert "cd here " in result.output


def test_an_existing_empty_folder_is_used(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    assert new(runner, "empty", "-d", str(tmp_path)).exit_code == 0
    assert (tmp_path / "empty" / "app.py").is_file()


@pytest.mark.parametrize("variant", ["chat", "minimal"])
def test_the_rendered_projects_own_tests_pass(runner, tmp_path, variant):
    assert new(runner, f"proj_{variant}", "-d", str(tmp_path), "-t", variant).exit_code == 0
    project = tmp_path / f"proj_{variant}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WSIO_SETTINGS_MODULE")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ passed", result.stdout)


def test_plain_cookiecutter_renders_the_template(tmp_path):
    command = Path(sys.executable).parent / "cookiecutter"
    assert command.is_file()
    # as pip installs it: with every .py file byte-compiled
    template = tmp_path / "template"
    shutil.copytree(template_dir(), template)
    assert compileall.compile_dir(template, quiet=1, force=True)
    assert list(template.rglob("__pycache__"))
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    out = tmp_path / "out"
    args = [str(command), "--no-input", str(template), "-o", str(out)]
    result = subprocess.run(
        [*args, "project_name=plainchat", "variant=minimal", "port=9001"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert files_of(out / "plainchat") == COMMON_FILES | VARIANT_FILES["minimal"]
    assert "SOCKETIO_PORT = 9001" in (out / "plainchat" / "settings.py").read_text()
    # its pre-generation hook refuses a name that shadows a module, and
    # cookiecutter then removes the folder
    result = subprocess.run(
        [*args, "project_name=json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "would shadow a module" in result.stderr
    assert not (out / "json").exists()
    result = subprocess.run(
        [*args, "project_name=events"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "is the name of one of the project's own modules" in result.stderr


# -- requirements -------------------------------------------------------------------


def test_requirements_name_the_installed_webpy_socketio_and_pip_resolves_it(runner, tmp_path):
    """This suite runs webpy-socketio installed from this checkout (editable
    or not), and it is on no index: the project's requirements name the
    checkout, and pip finds it there (a plain 'webpy-socketio>=1.0,<2'
    fails with "No matching distribution")."""
    from support import ROOT

    assert new(runner, "reqs", "-d", str(tmp_path)).exit_code == 0
    lines = (tmp_path / "reqs" / "requirements.txt").read_text().splitlines()
    wanted = [line for line in lines if line.startswith("webpy-socketio")]
    assert wanted == [f"webpy-socketio @ {ROOT.as_uri()}"], lines
    assert any("webpy-socketio>=1.0,<2" in line for line in lines if line.startswith("#"))
    assert "pytest>=8" in lines
    only = tmp_path / "only-webpy-socketio.txt"
    only.write_text(wanted[0] + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed"]
        + ["--disable-pip-version-check", "-r", str(only)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Would install webpy-socketio-" in result.stdout


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "suggestion"),
    [
        ("my-chat", "is not a valid Python identifier", "my_chat"),
        ("1chat", "is not a valid Python identifier", "project_1chat"),
        ("café", "is not a valid Python identifier", "caf"),
        ("chat room", "is not a valid Python identifier", "chat_room"),
        ("", "is not a valid Python identifier", "mychat"),
        ("class", "is a Python keyword", "class_app"),
        ("json", "would shadow the standard library module 'json'", "json_app"),
        ("Queue", "would shadow the standard library module 'queue'", "queue_app"),
        ("web", "would shadow the 'web' module the project depends on", "web_app"),
        ("gevent", "would shadow the 'gevent' module", "gevent_app"),
        ("socketio", "would shadow the 'socketio' module", "socketio_app"),
        ("mako", "would shadow the 'mako' module", "mako_app"),
        ("click", "would shadow the 'click' module", "click_app"),
        ("playwright", "would shadow the installed module 'playwright'", "playwright_app"),
        ("events", "is the name of one of the project's own modules", "events_app"),
        ("app", "is the name of one of the project's own modules", "app_app"),
        ("settings", "is the name of one of the project's own modules", "settings_app"),
        ("Tests", "is the name of one of the project's own modules", "tests_app"),
    ],
)
def test_a_bad_name_is_a_one_line_usage_error(runner, tmp_path, name, reason, suggestion):
    result = new(runner, name, "-d", str(tmp_path))
    assert result.exit_code == 2
    line = error_line(result.output)
    assert line.startswith("Error: Invalid value for 'NAME': ")
    assert reason in line and f"(for example {suggestion!r})" in line
    assert list(tmp_path.iterdir()) == []


def test_the_dependency_list_covers_what_a_project_imports():
    assert {"web", "gevent", "socketio", "mako", "click", "webpy_socketio"} <= DEPENDENCY_MODULES


def test_an_existing_non_empty_folder_needs_force(runner, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    (target / "app.py").write_text("# my own app\n")
    result = new(runner, "mine", "-d", str(tmp_path))
    assert result.exit_code == 1
    line = error_line(result.output)
    assert "already exists and is not empty" in line and "--force" in line
    assert files_of(target) == {"notes.txt", "app.py"}
    assert (target / "app.py").read_text() == "# my own app\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]

    result = new(runner, "mine", "-d", str(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert files_of(target) == COMMON_FILES | VARIANT_FILES["chat"] | {"notes.txt"}
    assert (target / "notes.txt").read_text() == "keep me"
    assert "urls += socketio_urls" in (target / "app.py").read_text()


def test_a_file_in_the_way_is_refused(runner, tmp_path):
    (tmp_path / "taken").write_text("a file")
    result = new(runner, "taken", "-d", str(tmp_path), "--force")
    assert result.exit_code == 1
    assert "exists and is not a folder" in error_line(result.output)
    assert (tmp_path / "taken").read_text() == "a file"


def test_a_missing_directory_is_a_usage_error(runner, tmp_path):
    result = new(runner, "ok_name", "-d", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "does not exist" in error_line(result.output)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "fancy"], "'fancy' is not one of 'chat', 'minimal'"),
        (["--port", "0"], "0 is not in the range 1<=x<=65535"),
        (["--port", "70000"], "70000 is not in the range 1<=x<=65535"),
        (["--port", "http"], "'http' is not a valid integer"),
    ],
)
def test_bad_options_are_usage_errors(runner, tmp_path, args, message):
    result = new(runner, "fine", "-d", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in error_line(result.output)
    assert not (tmp_path / "fine").exists()


def _drop_file_permission_override() -> None:
    """In the child, before exec: remove CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from the bounding set, so that even root obeys
    file permissions (the tests may run as root in a container)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for capability in (1, 2):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_an_unwritable_directory_is_refused_and_nothing_is_left(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    wsio = Path(sys.executable).parent / "wsio"
    preexec = _drop_file_permission_override if os.geteuid() == 0 else None
    try:
        result = subprocess.run(
            [str(wsio), "new", "mychat", "--directory", str(locked)],
            env={**os.environ, "HOME": str(tmp_path / "home")},
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=preexec,
        )
    except subprocess.SubprocessError as exc:  # prctl refused: no capability to drop
        pytest.skip(f"cannot take away root's permission override here: {exc}")
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: Cannot write to {locked}: permission denied. Choose a folder you can write "
        "to with --directory."
    ]
    assert list(locked.iterdir()) == []


# -- the rendered chat, served ----------------------------------------------------------


@pytest.mark.server
@pytest.mark.node
def test_the_rendered_chat_serves_the_official_client(runner, tmp_path):
    assert new(runner, "servedchat", "-d", str(tmp_path)).exit_code == 0
    folder = copy_project(tmp_path / "servedchat", tmp_path / "served")
    server = ProjectServer(folder, "new-chat")
    agent = NodeAgent("new-chat")
    try:
        status, headers, page = server.request("/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert '<script src="/static/socket.io.min.js"></script>' in page
        for name in ("ada", "bob"):
            agent.connect(name, server.url, "websocket", auth={"name": name})
            assert agent.call("subscribe", name, channel="room-lobby") == {"ok": True}
        agent.wait_for("ada", lambda m: m.get("members") == ["ada", "bob"])
        reply = agent.call("send", "bob", data={"room": "lobby", "text": "<b>hi</b>"})
        assert reply == {"ok": True}
        message = {"type": "chat", "name": "bob", "text": "<b>hi</b>"}
        agent.wait_for("ada", lambda m: m == message)
        agent.call("disconnect", "bob")
        agent.wait_for("ada", lambda m: m == {"type": "system", "text": "bob left"})
        with pytest.raises(AssertionError, match="Choose a name"):
            agent.connect("nameless", server.url, "websocket")
    finally:
        agent.close()
        server.stop()
    shutil.rmtree(folder)


@pytest.mark.server
def test_python_app_py_on_a_port_in_use_is_one_line(runner, tmp_path):
    import socket

    assert new(runner, "portchat", "-d", str(tmp_path)).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "app.py", str(port)],
            cwd=tmp_path / "portchat",
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: Port {port} on 127.0.0.1 is already in use; stop the other server or choose "
        "another port."
    )
