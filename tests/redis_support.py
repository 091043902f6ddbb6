"""A real redis-server for the tests, on 127.0.0.1 with its own folder and
no persistence; it can be killed and started again on the same port."""

from __future__ import annotations

import shutil
from pathlib import Path

from support import Process, free_port, output_dir, require, wait_port


def redis_binary() -> str:
    path = shutil.which("redis-server")
    require(path is not None, "redis-server is not installed; apt install redis-server")
    assert path is not None
    return path


class RedisServer:
    """redis-server on a free port; :meth:`kill` and :meth:`start` model an
    outage and a return on the same address."""

    def __init__(self, name: str = "redis", debug: bool = False) -> None:
        #: allow DEBUG SLEEP (a frozen Redis), from this machine only
        self.debug = debug
        self.binary = redis_binary()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder: Path = output_dir("redis") / f"{name}-{self.port}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: Process | None = None
        self.starts = 0
        self.start()

    def start(self) -> None:
        assert self.process is None or self.process.proc.poll() is not None
        self.starts += 1
        self.process = Process(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *(["--enable-debug-command", "local"] if self.debug else []),
            ],
            self.folder / f"redis-{self.starts}.log",
        )
        wait_port(self.port, proc=self.process.proc, timeout=10)

    def kill(self) -> None:
        """SIGKILL: connections drop at once, as when the host dies."""
        assert self.process is not None
        import signal

        self.process.stop(signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def command(self, *args: str) -> object:
        """Run one Redis command from a client of its own."""
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=30)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def publish_count(self) -> int:
        """How many PUBLISH commands this redis-server has run."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return int(stats.get("cmdstat_publish", {}).get("calls", 0))
