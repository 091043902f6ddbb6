"""A TCP proxy on 127.0.0.1 whose connections a test can cut, as a lost
network would: no close frame, no FIN, a reset (SO_LINGER 0). Clients that
reconnect come back through it once the outage is over.

Plain threads (the test process is not gevent-patched); every thread ends
when its sockets close, and :meth:`Proxy.stop` closes them all.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from support import free_port


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream``."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut: set[socket.socket] = set()
        self._down_until = 0.0
        self._stopped = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                _reset(client)  # the network is still down
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        # each thread reads one socket and closes only that one, after its
        # own recv has returned (a close from another thread would not
        # interrupt a recv, nor send anything while one is blocked)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                cut = source in self._cut
                self._open.discard(source)
            if cut:
                _reset(source)
            else:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)  # pass the end of stream on
                source.close()

    def cut(self, outage: float = 0.0) -> None:
        """Reset every connection now; refuse new ones for ``outage`` s."""
        self._down_until = time.monotonic() + outage
        with self._lock:
            victims, self._open = list(self._open), set()
            self._cut.update(victims)
        for sock in victims:
            # wake the pipe threads (a close from here would not interrupt
            # their recv); they close with a reset
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self.cuts += 1

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        self.cut()

    close = stop


def _reset(sock: socket.socket) -> None:
    # close with a reset, not a FIN: nothing reaches the peer in good order
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
