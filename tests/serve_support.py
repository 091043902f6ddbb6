"""``wsio serve`` as the tests run it: the command with N workers on
consecutive ports, its workers' pids, and their /stats."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
from pathlib import Path

from support import (
    TESTS,
    AppServer,
    Process,
    free_port,
    output_dir,
    python_env,
    wait_port,
    wait_until,
)

APPS = TESTS / "apps"
WSIO = str(Path(sys.executable).parent / "wsio")


def queue_env(url: str) -> dict[str, str]:
    return {"WSIO_SETTINGS_MODULE": "queue_settings", "WSIO_TEST_QUEUE": url}


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free."""
    for _ in range(50):
        first = free_port()
        if first + count - 1 > 65535:
            continue
        taken = False
        for port in range(first, first + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return first
    raise RuntimeError("no run of free ports found")


class Serve(Process):
    """``wsio serve PORT --workers N --app APP`` with the queue at ``url``
    (tests/apps/serve_app.py and queue_settings by default); ``app=None``
    and a project folder as ``cwd`` serve that project, as a user would."""

    def __init__(
        self,
        workers: int,
        url: str,
        name: str = "serve",
        app: str | None = "serve_app:app",
        env: dict[str, str] | None = None,
        cwd: Path = APPS,
    ) -> None:
        self.port = consecutive_free_ports(workers)
        self.ports = [self.port + i for i in range(workers)]
        log = output_dir("serve") / f"{name}-{self.port}.log"
        super().__init__(
            [
                WSIO,
                "serve",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                *(["--app", app] if app else []),
                "--graceful-timeout",
                "5",
            ],
            log,
            cwd=cwd,
            env=python_env(**(env if env is not None else queue_env(url))),
        )
        try:
            for port in self.ports:
                wait_port(port, proc=self.proc, timeout=60)
            assert wait_until(lambda: "supervisor pid" in self.output(), timeout=10)
        except Exception:
            self.stop()
            raise RuntimeError(f"wsio serve did not start:\n{self.output()}") from None

    def worker_pids(self) -> dict[int, int]:
        """worker index -> pid of its latest process."""
        found: dict[int, int] = {}
        for index, pid in re.findall(r"\[worker (\d+) pid (\d+)\] listening", self.output()):
            found[int(index)] = int(pid)
        return found

    def stats(self, index: int) -> dict:
        server = AppServer.__new__(AppServer)  # only its get() helper
        server.url = f"http://127.0.0.1:{self.ports[index]}"
        return server.stats()

    def terminate_supervisor(self, timeout: float = 30) -> int:
        """SIGTERM to the supervisor alone, as systemd's stop does."""
        os.kill(self.pid, signal.SIGTERM)
        return self.proc.wait(timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: only its parent's wait() was missing
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True
