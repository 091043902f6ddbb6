"""What changed: the file watching of ``wsio runserver``.

Nothing here imports gevent: watchdog's queue breaks in a process that
gevent has monkey-patched, so the watching runs in the supervisor
(:mod:`.supervisor`), which never patches.

A watcher turns file events into :class:`Changes`, sorted by what they
need: Python code and templates restart the worker; static files only make
browsers reload (they are read from disk on every request). Bursts of
events (an editor writing a temporary file, renaming it, then touching it)
are merged by waiting until the events stop for :attr:`Watcher.quiet`
seconds. :meth:`Watcher.wait` runs one such step and returns, so the
watchers are tested without a loop.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..output import say

#: Suffixes of the files whose change restarts the worker, by kind.
CODE_SUFFIXES = (".py",)
TEMPLATE_SUFFIXES = (".html", ".htm", ".mako", ".tmpl", ".jinja", ".jinja2", ".j2", ".xml")
#: Folders never watched (besides every hidden one): caches, virtualenvs,
#: version control, test and build output.
IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        "node_modules",
        "venv",
        "env",
        "build",
        "dist",
        "htmlcov",
        "test-output",
        "site-packages",
    }
)


def _editor_temp(name: str) -> bool:
    # vim's swap and probe files, emacs locks and backups, other temp files
    return (
        name.startswith(".")
        or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", ".bak"))
        or name == "4913"
    )


class ProjectFiles:
    """Which files of a project are watched, and what their change means.

    :param root: the project's folder.
    :param static_dir: the folder served at ``/static/`` (relative to
        ``root``); its files are "static" whatever their suffix.
    :param watch_static: whether static files are watched at all (they
        only matter for reloading browsers).
    """

    def __init__(
        self, root: str | os.PathLike[str], static_dir: str = "static", watch_static: bool = True
    ) -> None:
        self.root = Path(root).resolve()
        self.static = self.root / static_dir
        self.watch_static = watch_static

    def ignored_dir(self, name: str) -> bool:
        return name.startswith(".") or name in IGNORED_DIRS or name.endswith(".egg-info")

    def kind(self, path: str | os.PathLike[str]) -> str | None:
        """``"code"``, ``"template"``, ``"static"`` or None (not watched)."""
        path = Path(os.path.abspath(path))
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return None
        if not parts or _editor_temp(parts[-1]) or any(self.ignored_dir(p) for p in parts[:-1]):
            return None
        if path.is_relative_to(self.static):
            return "static" if self.watch_static else None
        if path.suffix in CODE_SUFFIXES:
            return "code"
        if path.suffix in TEMPLATE_SUFFIXES:
            return "template"
        return None

    def walk(self, start: Path | None = None) -> Iterator[Path]:
        """Every watched file that exists now (under ``start``, by default
        the whole project)."""
        for folder, dirs, files in os.walk(start or self.root):
            dirs[:] = sorted(d for d in dirs if not self.ignored_dir(d))
            for name in files:
                path = Path(folder) / name
                if self.kind(path):
                    yield path

    def describe(self) -> str:
        count = sum(1 for _ in self.walk())
        kinds = "*.py, templates (" + ", ".join("*" + s for s in TEMPLATE_SUFFIXES[:3]) + ", ...)"
        if self.watch_static:
            kinds += f", {self.static.relative_to(self.root)}/"
        return f"{count} files in {self.root}: {kinds}"


@dataclass
class Changes:
    """Files changed in one burst, by kind (paths relative to the root)."""

    code: set[str] = field(default_factory=set)
    templates: set[str] = field(default_factory=set)
    static: set[str] = field(default_factory=set)
    #: time.monotonic() of the first event of the burst
    first_seen: float = 0.0

    def add(self, kind: str, name: str) -> None:
        {"code": self.code, "template": self.templates, "static": self.static}[kind].add(name)

    def __bool__(self) -> bool:
        return bool(self.code or self.templates or self.static)

    @property
    def restart(self) -> bool:
        """Whether the worker must be restarted (code or templates)."""
        return bool(self.code or self.templates)

    @property
    def reload_browsers(self) -> bool:
        """Whether pages must reload (what they show may have changed)."""
        return bool(self.templates or self.static)

    def names(self) -> list[str]:
        return sorted(self.code | self.templates | self.static)

    def summary(self, limit: int = 3) -> str:
        names = self.names()
        more = f" and {len(names) - limit} more" if names[limit:] else ""
        return ", ".join(names[:limit]) + more + " changed"


_WAKE = object()


class Watcher:
    """Base of the watchers: a queue of changed paths and the debounce.

    :param files: what to watch.
    :param quiet: a burst ends after this many seconds without an event.
    :param max_delay: a burst never lasts longer than this (an endless
        stream of events still restarts now and then).
    """

    name = "base"

    def __init__(self, files: ProjectFiles, quiet: float = 0.02, max_delay: float = 0.5) -> None:
        self.files = files
        self.quiet = quiet
        self.max_delay = max_delay
        self.queue: queue.Queue[Any] = queue.Queue()

    def start(self) -> None:
        """Begin watching (events before this are not seen)."""

    def close(self) -> None:
        """Stop watching."""

    def push(self, path: str | bytes) -> None:
        """Note a file event on ``path`` (ignored unless it is watched)."""
        path = os.fsdecode(path)
        kind = self.files.kind(path)
        if kind is not None:
            rel = Path(os.path.abspath(path)).relative_to(self.files.root).as_posix()
            self.queue.put((kind, rel, time.monotonic()))

    def wake(self) -> None:
        """Make a :meth:`wait` in progress (or the next one) return now."""
        self.queue.put(_WAKE)

    def wait(self, timeout: float | None = None) -> Changes | None:
        """Wait up to ``timeout`` seconds for a burst of changes.

        :returns: the changes, or None when nothing changed in time or
            :meth:`wake` was called.
        """
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _WAKE:
            return None
        changes = Changes(first_seen=item[2])
        changes.add(item[0], item[1])
        deadline = time.monotonic() + self.max_delay
        while True:
            left = min(self.quiet, deadline - time.monotonic())
            if left <= 0:
                break
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if item is _WAKE:
                self.queue.put(_WAKE)  # for the caller's next wait
                break
            changes.add(item[0], item[1])
        return changes


class WatchdogWatcher(Watcher):
    """Watches with watchdog (inotify on Linux, FSEvents on macOS, ...)."""

    name = "watchdog"

    def __init__(self, files: ProjectFiles, **kwargs: Any) -> None:
        super().__init__(files, **kwargs)
        self.observer: Any = None
        self._scheduled: set[str] = set()
        self._handler: Any = None

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                # the observer thread only queues; the supervisor's loop acts
                if event.event_type in ("opened", "closed_no_write"):
                    return
                if event.is_directory:
                    if event.event_type in ("created", "moved"):
                        watcher._schedule_new(os.fsdecode(event.dest_path or event.src_path))
                    return
                watcher.push(event.src_path)
                if event.dest_path:
                    watcher.push(event.dest_path)

        self._handler = Handler()
        self.observer = Observer()
        root = self.files.root
        # the root alone, then each top-level folder recursively: a big
        # .venv or node_modules inside the project is never walked
        self.observer.schedule(self._handler, str(root), recursive=False)
        for child in sorted(root.iterdir()):
            if child.is_dir() and not self.files.ignored_dir(child.name):
                self._schedule(child)
        self.observer.start()
        self.name = "watchdog " + type(self.observer).__name__.replace("Observer", "").lower()

    def _schedule(self, folder: Path) -> None:
        key = str(folder)
        if key not in self._scheduled:
            self._scheduled.add(key)
            self.observer.schedule(self._handler, key, recursive=True)

    def _schedule_new(self, path: str) -> None:
        folder = Path(path)
        if folder.parent == self.files.root and not self.files.ignored_dir(folder.name):
            try:
                self._schedule(folder)
            except OSError:
                return
            # files written before the watch existed
            for inner in self.files.walk(folder):
                self.push(str(inner))

    def close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(5)
            self.observer = None


class StatWatcher(Watcher):
    """Compares the files' modification times every ``interval`` seconds:
    for file systems that send no events (network mounts, some container
    volumes)."""

    name = "stat"

    def __init__(self, files: ProjectFiles, interval: float = 0.25, **kwargs: Any) -> None:
        super().__init__(files, **kwargs)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[Path, tuple[int, int]] = {}

    def _snapshot(self) -> dict[Path, tuple[int, int]]:
        seen = {}
        for path in self.files.walk():
            try:
                st = path.stat()
            except OSError:
                continue
            seen[path] = (st.st_mtime_ns, st.st_size)
        return seen

    def start(self) -> None:
        self._seen = self._snapshot()
        self._thread = threading.Thread(target=self._run, name="wsio-stat-watcher", daemon=True)
        self._thread.start()
        self.name = f"stat polling every {self.interval:g} s"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def scan(self) -> None:
        """Compare once and queue what changed (also callable directly)."""
        now = self._snapshot()
        for path in now.keys() | self._seen.keys():
            if now.get(path) != self._seen.get(path):
                self.push(str(path))
        self._seen = now

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


WATCHERS: dict[str, type[Watcher]] = {"watchdog": WatchdogWatcher, "stat": StatWatcher}


def make_watcher(kind: str, files: ProjectFiles) -> Watcher:
    """Start a watcher of ``kind``; watchdog falls back to stat polling when
    the system refuses more watches.

    :raises OSError: when the stat watcher cannot start either.
    """
    watcher = WATCHERS[kind](files)
    try:
        watcher.start()
    except OSError as exc:
        if kind == "stat":
            raise
        watcher.close()
        say(f"file events unavailable ({exc}); polling for changes instead")
        watcher = StatWatcher(files)
        watcher.start()
    return watcher
