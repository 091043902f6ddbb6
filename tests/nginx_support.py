"""A real nginx for the tests: a generated config, run in the foreground
with its own prefix under test-output/, listening on 127.0.0.1 only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import Process, free_port, output_dir, require, wait_port
from webpy_socketio.cli import nginx_run

WSIO = str(Path(sys.executable).parent / "wsio")


def nginx_binary() -> str:
    path = nginx_run.find_nginx()
    require(path is not None, "nginx is not installed; apt install nginx libnginx-mod-stream")
    assert path is not None
    return path


def generate(*args: str, cwd: Path | None = None) -> str:
    """``wsio nginx-config ARGS`` as a user runs it; its stdout."""
    result = subprocess.run(
        [WSIO, "nginx-config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or output_dir("nginx"),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Nginx(Process):
    """nginx running ``text`` (a generated http or stream config).

    :param ports: the ports the config listens on, waited for.
    """

    def __init__(self, text: str, mode: str, name: str, ports: list[int]) -> None:
        binary = nginx_binary()
        self.prefix = output_dir("nginx") / f"{name}-{ports[0]}"
        command = nginx_run.prepare_prefix(self.prefix, text, mode, binary)
        super().__init__(command, self.prefix / "stdout.log")
        try:
            for port in ports:
                wait_port(port, proc=self.proc, timeout=15)
        except Exception:
            self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.errors()}") from None

    def errors(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else self.output()

    def access_log(self) -> list[str]:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def listen_port() -> tuple[int, str]:
    """A free port and its ``--listen`` value on 127.0.0.1."""
    port = free_port()
    return port, f"127.0.0.1:{port}"
