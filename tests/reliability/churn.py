"""Connection churn: rounds of many raw clients that connect, subscribe to
random channels and drop, each in its own way.

    python churn.py HOST PORT --clients 2000 --rounds 10 --seed 7

It runs under gevent (every client is a greenlet with its own socket) and
is driven through stdin/stdout so the test can inspect the server between
phases. Each phase prints one JSON line and then waits for a line on stdin:

- ``{"phase": "connected", ...}`` once every client of the round is
  connected and subscribed (with the number of clients and of
  subscriptions the server should now hold);
- ``{"phase": "dropped", ...}`` once every client has dropped.

After the last round it prints ``{"phase": "done", "sids": [...]}`` with the
session ids it was given (for the entropy check) and exits. It exits on its
own after ``--max-seconds`` whatever happens.

How clients drop (chosen at random per client):

``clean``      Socket.IO disconnect, then the close handshake (or, over
               polling, a DISCONNECT and an Engine.IO CLOSE in one POST);
``reset``      a TCP reset with nothing said;
``fin``        a TCP close with no websocket close frame;
``silent``     the client just stops reading and answering pings, with the
               connection left open; the server's heartbeat must find it
               (polling clients that stop polling are this case too).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from rawsio import Closed, PollSession, Refused, Timeout, WsSession  # noqa: E402

DROPS = ["clean", "reset", "fin", "silent"]


class Client:
    def __init__(self, n: int, rng: random.Random, args: argparse.Namespace) -> None:
        self.n = n
        self.polling = rng.random() < args.polling_share
        self.drop = rng.choice(args.drops)
        if self.polling and self.drop == "fin":
            self.drop = "reset"
        self.channels = sorted(
            {f"churn-{rng.randrange(args.channels)}" for _ in range(rng.randint(1, 3))}
        )
        self.session: WsSession | PollSession | None = None
        self.reader: gevent.Greenlet | None = None
        self.sid: str | None = None
        self.error: str | None = None

    def connect(self, host: str, port: int) -> None:
        try:
            cls = PollSession if self.polling else WsSession
            self.session = cls(host, port, timeout=20)
            self.sid = self.session.connect(timeout=20)
            for channel in self.channels:
                reply = self.session.call("wsio:subscribe", channel, timeout=20)
                if reply != [{"ok": True}]:
                    raise RuntimeError(f"subscribe {channel} answered {reply}")
        except (Closed, Timeout, Refused, RuntimeError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return
        # keep answering the server's pings until told to drop
        self.reader = gevent.spawn(self._keep_alive)

    def _keep_alive(self) -> None:
        session = self.session
        assert session is not None
        try:
            session.pump(lambda: False, 3600)
        except (Closed, Timeout, OSError):
            pass

    def drop_now(self) -> None:
        if self.session is None or self.error:
            return
        if self.reader is not None:
            self.reader.kill(block=True)
        if self.drop == "silent":
            return  # left open; closed by forget() once the server gave up on it
        self.session.close(self.drop)

    def forget(self) -> None:
        if self.session is not None and self.drop == "silent":
            self.session.close("fin")


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for_go() -> None:
    if not sys.stdin.readline():
        sys.exit(0)  # the test went away


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--polling-share", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--drops", default=",".join(DROPS), type=lambda v: v.split(","))
    args = parser.parse_args()
    gevent.spawn_later(args.max_seconds, lambda: sys.exit(3))
    rng = random.Random(args.seed)
    sids: list[str] = []
    for round_no in range(1, args.rounds + 1):
        clients = [Client(i, rng, args) for i in range(args.clients)]
        started = time.monotonic()
        pool = Pool(args.concurrency)
        for client in clients:
            pool.spawn(client.connect, args.host, args.port)
        pool.join()
        ok = [c for c in clients if not c.error]
        sids += [c.sid for c in ok if c.sid]
        emit(
            {
                "phase": "connected",
                "round": round_no,
                "connected": len(ok),
                "polling": sum(c.polling for c in ok),
                "subscriptions": sum(len(c.channels) for c in ok),
                "channels": len({ch for c in ok for ch in c.channels}),
                "errors": [c.error for c in clients if c.error][:5],
                "error_count": len(clients) - len(ok),
                "seconds": round(time.monotonic() - started, 2),
            }
        )
        wait_for_go()
        started = time.monotonic()
        drops = {d: 0 for d in args.drops}
        for client in ok:
            drops[client.drop] += 1
        gevent.joinall([gevent.spawn(c.drop_now) for c in clients], timeout=60)
        emit(
            {
                "phase": "dropped",
                "round": round_no,
                "drops": drops,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
        wait_for_go()
        for client in clients:
            client.forget()
    emit({"phase": "done", "sids": sids})
    return 0


if __name__ == "__main__":
    sys.exit(main())
