"""Send a seeded corpus of hostile input (generators.py) to a server from
several raw clients at once, and report what happened to each input.

    python fuzz.py HOST PORT --count 100000 --seed 7 --workers 6 --out result.json

Inputs are drawn in a background thread while the workers send, so
generation and the server's work overlap. After every in-session input a
worker sends an Engine.IO probe (an UPGRADE packet, which the server
answers with a NOOP) and waits for the answer: packets of one connection are
handled in order, so the answer means the server has dealt with the input
and the session still works. Otherwise the server must have closed the
connection (recorded with its close code or HTTP status). An input that
gets neither within the deadline is recorded as ``hung``: the test fails on
any.

Socket.IO probes would not do: an input that announces binary attachments
makes the server take the next messages as those attachments, exactly as
the protocol says.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from generators import Input, corpus
from rawsio import (
    OP_TEXT,
    RECORD_SEP,
    Closed,
    PollSession,
    Refused,
    Stream,
    Timeout,
    WsSession,
    read_response,
    ws_frame,
)

PROBE_TIMEOUT = 5.0
#: re-join the default namespace this often, in case an input left it
REJOIN_EVERY = 50


def _leaves_namespace(packets: list[bytes]) -> bool:
    return any(p.startswith(b"41") for p in packets)


class Worker(threading.Thread):
    def __init__(self, host: str, port: int, inputs: queue.Queue, results: Results) -> None:
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.inputs = inputs
        self.results = results
        self.ws: WsSession | None = None
        self.poll: PollSession | None = None
        self.sent_since_join = 0

    def run(self) -> None:
        while True:
            item = self.inputs.get()
            if item is None:
                break
            start = time.monotonic()
            try:
                outcome = self.deliver(item)
            except Exception as exc:  # a bug in the sender, not in the server
                outcome = f"sender error: {type(exc).__name__}: {exc}"[:120]
            self.results.add(item, outcome, time.monotonic() - start)
        for session in (self.ws, self.poll):
            if session is not None:
                session.close("clean")

    # -- sessions ----------------------------------------------------------

    def _ws(self) -> WsSession:
        if self.ws is None:
            self.ws = WsSession(self.host, self.port, timeout=PROBE_TIMEOUT)
            self.ws.connect()
            self.sent_since_join = 0
        return self.ws

    def _poll(self) -> PollSession:
        if self.poll is None:
            self.poll = PollSession(self.host, self.port, timeout=PROBE_TIMEOUT)
            self.poll.connect()
        return self.poll

    @staticmethod
    def _probe(session: WsSession | PollSession) -> None:
        session.inbox.events.clear()
        session.inbox.acks.clear()
        noops = session.inbox.noops
        session.send_packet("5")
        session.pump(lambda: session.inbox.noops > noops, PROBE_TIMEOUT)

    def _rejoin(self, session: WsSession | PollSession, packets: list[bytes]) -> None:
        self.sent_since_join += 1
        if _leaves_namespace(packets) or self.sent_since_join >= REJOIN_EVERY:
            # "40" on a joined session is refused with a CONNECT_ERROR,
            # harmlessly; on a session that left, it joins again
            session.send_packet("40")
            self.sent_since_join = 0

    # -- delivery ----------------------------------------------------------

    def deliver(self, item: Input) -> str:
        if item.kind in ("ws-text", "ws"):
            return self._deliver_ws(item)
        if item.kind == "poll":
            return self._deliver_poll(item)
        if item.kind == "ws-eof":
            return self._deliver_ws_eof(item)
        return self._deliver_http(item)

    def _deliver_ws(self, item: Input) -> str:
        session = self._ws()
        try:
            if item.kind == "ws-text":
                session.send_raw(b"".join(ws_frame(OP_TEXT, p) for p in item.payload))
                self._rejoin(session, list(item.payload))
            else:
                session.send_raw(b"".join(item.payload))
            self._probe(session)
            return "answered"
        except Closed as exc:
            session.close("fin")
            self.ws = None
            return f"closed ({exc.code})" if exc.code else "closed"
        except Timeout:
            session.close("reset")
            self.ws = None
            return "hung"

    def _deliver_poll(self, item: Input) -> str:
        session = self._poll()
        try:
            # a GET pending while posting, as the official client always has
            session.start_poll()
            session.headers["Content-Type"] = item.content_type
            statuses = [session.post(body).status for body in item.payload]
            session.headers["Content-Type"] = "text/plain;charset=UTF-8"
            if any(s != 200 for s in statuses):
                raise Closed(f"HTTP {statuses[-1]}")
            packets = [p for body in item.payload for p in body.split(RECORD_SEP.encode())]
            if _leaves_namespace(packets):
                session.send_packet("40")
            self._probe(session)
            return "answered"
        except Closed as exc:
            session.close("fin")
            self.poll = None
            return "refused (" + str(exc).split(":")[0].replace("POST answered ", "HTTP ") + ")"
        except Timeout:
            session.close("reset")
            self.poll = None
            return "hung"

    def _deliver_ws_eof(self, item: Input) -> str:
        session = WsSession(self.host, self.port, timeout=PROBE_TIMEOUT)
        session.connect()
        session.send_raw(item.payload[0])
        session.stream.shutdown_write()
        closed = session.stream.wait_eof(PROBE_TIMEOUT)
        session.close("fin")
        return "closed" if closed else "hung"

    def _deliver_http(self, item: Input) -> str:
        stream = Stream(self.host, self.port, PROBE_TIMEOUT)
        try:
            stream.send(item.payload[0])
            stream.shutdown_write()
            deadline = time.monotonic() + PROBE_TIMEOUT
            try:
                response = read_response(stream, deadline)
                outcome = f"HTTP {response.status}"
            except Closed:
                outcome = "closed"
            if not stream.wait_eof(PROBE_TIMEOUT):
                outcome = "hung"
            return outcome
        except Timeout:
            return "hung"
        except Closed:
            return "closed"
        finally:
            stream.close()


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_category: dict[str, Counter] = defaultdict(Counter)
        self.inputs = 0
        self.units = 0
        self.bytes = 0
        self.mutants = 0
        self.hung: list[dict[str, Any]] = []
        self.seconds: Counter = Counter()

    def add(self, item: Input, outcome: str, seconds: float) -> None:
        with self.lock:
            self.seconds[item.category] += seconds
            self.inputs += 1
            self.units += item.units
            self.bytes += item.size
            self.mutants += item.mutant
            self.by_category[item.category][outcome] += 1
            failed = outcome == "hung" or outcome.startswith("sender error")
            if failed and len(self.hung) < 20:
                self.hung.append(
                    {"category": item.category, "outcome": outcome, "input": repr(item)[:500]}
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mutants", type=int, default=4)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    # the generating thread holds the GIL for its whole switch interval; the
    # senders, which only wait for the network, should not wait for it
    sys.setswitchinterval(0.0005)
    inputs: queue.Queue = queue.Queue(maxsize=2000)
    results = Results()
    started = time.monotonic()

    def produce() -> None:
        for item in corpus(args.count, args.seed, mutants=args.mutants):
            inputs.put(item)
        for _ in range(args.workers):
            inputs.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    workers = [Worker(args.host, args.port, inputs, results) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    producer.join()
    report = {
        "seed": args.seed,
        "workers": args.workers,
        "inputs": results.inputs,
        "mutants": results.mutants,
        "units": results.units,
        "bytes": results.bytes,
        "seconds": round(time.monotonic() - started, 1),
        "hung": results.hung,
        "by_category": {k: dict(v) for k, v in sorted(results.by_category.items())},
        "worker_seconds": {k: round(v, 1) for k, v in results.seconds.most_common()},
    }
    with open(args.out, "w") as out:
        json.dump(report, out, indent=2, sort_keys=True)
    print(json.dumps({k: report[k] for k in ("inputs", "units", "seconds")}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Refused as exc:  # the server refused a plain session: it is broken
        print(f"server refused a well-formed session: {exc}", file=sys.stderr)
        sys.exit(2)
