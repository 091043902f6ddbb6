"""The official client without the internet: one pin for every copy of the
version, ``wsio client`` (real npm, its refusals), ``wsio new`` fetching it,
and a page whose client did not load naming the fix (headless Chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser import ProjectServer, chromium
from click.testing import CliRunner
from support import NODE_DIR, ROOT, free_port, output_dir, require_executable
from webpy_socketio.cli.main import cli
from webpy_socketio.cli.new import render

from webpy_socketio import jsclient, settings

WSIO = str(Path(sys.executable).parent / "wsio")
#: folders whose files do not name the pages' client (the benchmarks measure
#: their own Node peers; caches and fetched packages are not ours)
NOT_SCANNED = {"node_modules", ".venv", "build", "dist", "test-output", ".git", "benchmarks"}


def wsio_client(cwd: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [WSIO, "client", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "made").mkdir()
    return render("offchat", tmp_path / "made")


# -- one pin -------------------------------------------------------------------------


def test_every_copy_of_the_client_version_is_the_pin():
    assert settings.DEFAULT_CLIENT_URL == jsclient.CDN_URL
    assert settings.DEFAULT_CLIENT_INTEGRITY == jsclient.INTEGRITY
    assert f"/{jsclient.VERSION}/" in jsclient.CDN_URL
    package = json.loads((NODE_DIR / "package.json").read_text())
    assert package["dependencies"][jsclient.PACKAGE] == jsclient.VERSION
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"][jsclient.PACKAGE] == jsclient.VERSION
    locked = lock["packages"][f"node_modules/{jsclient.PACKAGE}"]
    assert (locked["version"], locked["integrity"]) == (jsclient.VERSION, jsclient.NPM_INTEGRITY)
    # and every mention in the code, templates and documentation
    mentions = re.compile(r"cdn\.socket\.io/(\d+\.\d+\.\d+)|socket\.io-client@(\d+\.\d+\.\d+)")
    found = {}
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if parts & NOT_SCANNED or not path.is_file():
            continue
        if path.suffix not in (".py", ".rst", ".md", ".html", ".js", ".json", ".toml", ".txt"):
            continue
        for match in mentions.finditer(path.read_text(errors="replace")):
            found[f"{path.relative_to(ROOT)}: {match.group(0)}"] = match.group(1) or match.group(2)
    assert found, "the scan found no mention at all"
    assert {k: v for k, v in found.items() if v != jsclient.VERSION} == {}


# -- wsio client ---------------------------------------------------------------------


@pytest.mark.node
def test_wsio_client_fetches_checks_and_replaces_a_wrong_copy(project: Path):
    require_executable("npm", "install npm to fetch socket.io-client")
    result = wsio_client(project, "--check")
    assert result.returncode == 1
    assert "There is no static/socket.io.min.js" in result.stderr
    result = wsio_client(project)
    assert result.returncode == 0, result.stderr
    assert f"Put socket.io-client {jsclient.VERSION} (from npm, integrity checked)" in result.stdout
    copy = project / "static" / "socket.io.min.js"
    assert jsclient.integrity_of(copy.read_bytes()) == jsclient.INTEGRITY
    assert [p.name for p in copy.parent.iterdir() if p.name.endswith(".partial")] == []
    assert wsio_client(project, "--check").returncode == 0
    result = wsio_client(project / "templates")  # from a folder of the project
    assert result.returncode == 0 and "is already socket.io-client" in result.stdout
    # a copy that is not the pinned file is refused by --check, replaced by a fetch
    copy.write_text("/* socket.io-client 4.0.0 */")
    result = wsio_client(project, "--check")
    assert result.returncode == 1 and "its integrity hash differs" in result.stderr
    assert wsio_client(project).returncode == 0
    assert jsclient.copy_problem(project) is None


def test_without_npm_it_says_how_to_do_it_by_hand(project: Path, tmp_path: Path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = wsio_client(project, env={"PATH": str(empty)})
    assert result.returncode == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert "npm is not installed" in line
    assert jsclient.CDN_URL in line and "wsio client --check" in line
    assert "Traceback" not in result.stderr
    assert not (project / "static" / "socket.io.min.js").exists()


@pytest.mark.node
def test_npm_that_cannot_fetch_is_one_line_and_writes_nothing(project: Path, tmp_path: Path):
    require_executable("npm", "install npm to fetch socket.io-client")
    offline = {
        # an empty cache and a registry that refuses connections: as offline
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_registry": f"http://127.0.0.1:{free_port()}/",
        "npm_config_fetch_retries": "0",
    }
    result = wsio_client(project, env=offline)
    assert result.returncode == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert f"npm could not fetch socket.io-client@{jsclient.VERSION}" in line
    assert "wsio client --check" in line
    assert not (project / "static" / "socket.io.min.js").exists()


def test_outside_a_project_it_says_where_to_run(tmp_path: Path):
    result = wsio_client(tmp_path)
    assert result.returncode == 1
    assert "Run wsio client in the folder of a project" in result.stderr


# -- wsio new ------------------------------------------------------------------------


@pytest.mark.node
def test_wsio_new_puts_the_client_in_static(tmp_path: Path):
    require_executable("npm", "install npm to fetch socket.io-client")
    result = CliRunner().invoke(cli, ["new", "netless", "-d", str(tmp_path)], prog_name="wsio")
    assert result.exit_code == 0, result.output
    assert "(from npm, integrity checked) in static/socket.io.min.js" in result.output
    assert jsclient.copy_problem(tmp_path / "netless") is None
    # the project's .gitignore keeps the third-party file out of its history
    assert "static/socket.io.min.js" in (tmp_path / "netless" / ".gitignore").read_text()


def test_wsio_new_without_npm_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    result = CliRunner().invoke(cli, ["new", "nonpm", "-d", str(tmp_path)], prog_name="wsio")
    assert result.exit_code == 0, result.output
    assert "npm is not installed" in result.output and "run 'wsio client'" in result.output
    assert not (tmp_path / "nonpm" / "static" / "socket.io.min.js").exists()


# -- the page ------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.browser
def test_a_page_whose_client_did_not_load_names_the_fix(project: Path):
    """The client URL is a port nothing listens on (what an offline machine
    sees of the CDN): the page says so and names ``wsio client``; after
    ``wsio client`` the same page works."""
    unreachable = f"http://127.0.0.1:{free_port()}/socket.io.min.js"
    with open(project / "settings.py", "a") as f:
        f.write(f"SOCKETIO_CLIENT_URL = {unreachable!r}\n")
    server = ProjectServer(project, "offline-page")
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(10000)
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/")
            box = page.locator("#wsio-notice[data-state=error]")
            box.wait_for()
            text = box.inner_text()
            assert unreachable in text and "wsio client" in text
            assert any("webpy-socketio: Realtime features are unavailable" in c for c in console)
            page.screenshot(path=str(output_dir("browser") / "client-missing.png"))
            page.fill("input[name=name]", "Ann")
            page.click("#join button")
            assert any("run `wsio client`" in e for e in errors), errors
            # the fix it names (the client copied from the tests' npm
            # install: `wsio client` itself is tested above)
            shutil.copyfile(
                NODE_DIR / "node_modules" / "socket.io-client" / jsclient.DIST_FILE,
                project / jsclient.LOCAL_PATH,
            )
            page.reload()
            page.fill("input[name=name]", "Ann")
            page.click("#join button")
            page.wait_for_selector("#room:not([hidden])")
            assert page.locator("#wsio-notice").count() == 0
    finally:
        server.stop()
