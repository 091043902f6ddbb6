"""Real projects for the chat and browser tests: a copy of a project folder
served by its own ``python app.py PORT``, and headless Chromium driven by
Playwright. Every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import NODE_DIR, Process, free_port, output_dir, require, wait_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CLIENT_JS = NODE_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"


def copy_project(source: Path, dest: Path) -> Path:
    """Copy a project folder without its database, caches or client copy,
    and put the official client (from npm) in its ``static/``: the machine
    running the tests may be offline, so pages must not need the CDN."""
    require(CLIENT_JS.is_file(), "socket.io-client is not installed; run npm ci in tests/node")
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns("*.db", "__pycache__", ".pytest_cache", "socket.io.min.js"),
    )
    (dest / "static").mkdir(exist_ok=True)
    shutil.copyfile(CLIENT_JS, dest / "static" / "socket.io.min.js")
    return dest


class ProjectServer(Process):
    """``python app.py PORT`` in a project folder, on a free port."""

    def __init__(self, folder: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log = output_dir("servers") / f"{name}-{self.port}.log"
        super().__init__([sys.executable, "app.py", str(self.port)], log, cwd=folder, env=full_env)
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{folder / 'app.py'} did not start:\n{self.output()}") from None

    def request(
        self,
        path: str,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """GET, or POST a form when ``data`` is given; redirects are not
        followed. Returns status, headers and body."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read().decode()


def playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's, not Playwright's download)."""
    require(os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing; apt-get install chromium")
    require(playwright_available(), "playwright is not installed; pip install playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
