"""Servers and measurements shared by the reliability tests."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import Process, free_port, output_dir, python_env, wait_port

HERE = Path(__file__).resolve().parent
RESULTS = output_dir("reliability")

#: the corpus of CI runs (fuzz seeds 1 to 40, 20,000 inputs each, also
#: passed without a traceback or a hung input when this was set)
CI_SEED = 20261130


def run_seed() -> int:
    """The seed of this run's generated inputs: ``RELIABILITY_SEED`` if set;
    under CI=true a fixed one (a CI run is reproducible and fails only for a
    change in the code); elsewhere a new one each run, which is how new bugs
    are found."""
    if "RELIABILITY_SEED" in os.environ:
        return int(os.environ["RELIABILITY_SEED"])
    if os.environ.get("CI") == "true":
        return CI_SEED
    return int(time.time()) % 100_000


#: registry entries that must all be zero once every client has gone
EMPTY_WHEN_IDLE = (
    "clients",
    "channel_rooms",
    "channel_memberships",
    "rooms_all",
    "eio_sockets",
    "environ",
    "binary_pending",
    "callbacks",
    "pending_connect",
    "connecting",
    "held",
    "pending_disconnect",
    "eio_to_sid",
)


def path_server(name: str, engine_path: str, settings: str = "rel_settings") -> Iterator[RelServer]:
    """A module fixture's body: the fixture server on ``engine_path``."""
    server = RelServer(f"{name}-{engine_path}", settings, env={"WSIO_TEST_PATH": engine_path})
    yield server
    server.stop()


class RelServer(Process):
    """tests/reliability/rel_app.py under SocketIOServer, with the settings
    module ``settings`` (a module in tests/reliability)."""

    def __init__(self, name: str, settings: str = "rel_settings", env: dict | None = None):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"http://127.0.0.1:{self.port}"
        log = output_dir("servers") / f"reliability-{name}-{self.port}.log"
        super().__init__(
            [sys.executable, str(HERE / "rel_app.py"), str(self.port)],
            log,
            cwd=HERE,
            env=python_env(WSIO_SETTINGS_MODULE=settings, **(env or {})),
        )
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"rel_app.py did not start:\n{self.output()}") from None

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def registry(self, gc: bool = False, trim: bool = False) -> dict[str, Any]:
        """What the server holds. ``gc``: count live objects and greenlets
        after a collection; ``trim``: ``rss_kb`` is measured after the
        collection and glibc's malloc_trim(0), so it shows what the process
        holds rather than the free heap pages the allocator keeps."""
        query = "&".join(q for q, on in (("gc=1", gc), ("trim=1", trim)) if on)
        return dict(self.get_json("/registry" + ("?" + query if query else "")))

    def rss_kb(self) -> int:
        """Resident memory of the server, read by us from /proc (not by the
        server about itself)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_idle(self, timeout: float = 20.0, clients: int = 0) -> dict[str, Any]:
        """Wait until the registry holds nothing for any client (or, with
        ``clients``, only that many clients and their sessions); return the
        last reading (the caller asserts on it)."""
        deadline = time.monotonic() + timeout
        while True:
            reading = self.registry()
            if clients:
                done = reading["clients"] == reading["eio_sockets"] == clients
            else:
                done = all(reading[k] == 0 for k in EMPTY_WHEN_IDLE)
            if done or time.monotonic() > deadline:
                return reading
            time.sleep(0.2)


def leftovers(reading: dict[str, Any]) -> dict[str, Any]:
    """The registry entries that are not empty."""
    return {k: reading[k] for k in EMPTY_WHEN_IDLE if reading[k]}


def save(name: str, data: Any) -> Path:
    """Write figures to test-output/reliability/NAME.json for the results
    table."""
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
