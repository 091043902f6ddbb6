// Load generator for benchmarks/presence_bench.py: raw Socket.IO v5 clients
// over websocket (the "ws" package), spread round robin over several server
// URLs (the workers).
//
//   node presence_load.js --urls http://127.0.0.1:P1,http://127.0.0.1:P2 \
//        --mode burst|fanout --clients 1000 [--channel bench-presence] [--messages 100]
//
// burst: every client connects first; then all of them subscribe to one
//   channel at once. Each applies the state in its ack and the wsio:presence
//   changes to its own list of keys, and is complete when its list has every
//   client. Prints when the last list was complete, counted from the moment
//   the first subscribe went out, and the spread over clients.
// fanout: the clients subscribe, print {"ready": true} and wait for a line on
//   stdin; then a sender (on the first URL, not subscribed) broadcasts
//   --messages messages to the channel, each after the previous one's ack,
//   three times; prints deliveries per second (every subscriber must get
//   every message once, in order).
//
// Prints one JSON object on stdout, then keeps its clients until stdin
// closes. Every wait is bounded (--timeout seconds).
"use strict";

const WebSocket = require("ws");
const { performance } = require("perf_hooks");

function parseArgs(argv) {
  const opts = {
    urls: "http://127.0.0.1:8000",
    mode: "burst",
    clients: 1000,
    channel: "bench-presence",
    messages: 100,
    size: 128,
    concurrency: 100,
    timeout: 180,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  opts.urls = opts.urls.split(",");
  return opts;
}

const opts = parseArgs(process.argv);
const now = () => performance.now();
setTimeout(() => {
  process.stderr.write(`presence_load: global timeout of ${opts.timeout} s\n`);
  process.exit(3);
}, opts.timeout * 1000).unref();

class Client {
  constructor(url) {
    this.url = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.acks = new Map();
    this.nextAck = 0;
    this.onEvent = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = (this.ws = new WebSocket(this.url, { perMessageDeflate: false }));
      ws.on("error", reject);
      ws.on("message", (data) => {
        const text = data.toString();
        const type = text[0];
        if (type === "2") {
          ws.send("3"); // ping -> pong
        } else if (type === "0") {
          ws.send("40");
        } else if (type === "4") {
          const kind = text[1];
          if (kind === "0") {
            this.sid = JSON.parse(text.slice(2)).sid;
            resolve(this);
          } else if (kind === "2") {
            if (this.onEvent) this.onEvent(text);
          } else if (kind === "3") {
            let i = 2;
            while (text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
            const id = Number(text.slice(2, i));
            const done = this.acks.get(id);
            this.acks.delete(id);
            if (done) done(JSON.parse(text.slice(i)));
          }
        }
      });
    });
  }

  emit(event, ...args) {
    const id = this.nextAck++;
    return new Promise((resolve) => {
      this.acks.set(id, (reply) => resolve(reply.length === 1 ? reply[0] : reply));
      this.ws.send("42" + id + JSON.stringify([event, ...args]));
    });
  }

  close() {
    this.ws.terminate();
  }
}

async function connectAll(count) {
  const clients = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      clients[i] = await new Client(opts.urls[i % opts.urls.length]).open();
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, count) }, worker));
  return clients;
}

function quantile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

async function burst() {
  const N = opts.clients;
  const clients = await connectAll(N);
  let complete = 0;
  let finish;
  const allDone = new Promise((r) => (finish = r));
  const t0 = now();
  const doneAt = new Array(N).fill(null);
  let acked = 0;
  let lastAck = 0;
  let events = 0;
  clients.forEach((client, i) => {
    // key -> number of metas; changes are applied once the state is in
    const keys = new Map();
    let synced = false;
    const held = [];
    function apply(change) {
      for (const key in change.joins) keys.set(key, (keys.get(key) || 0) + change.joins[key].length);
      for (const key in change.leaves) {
        const left = (keys.get(key) || 0) - change.leaves[key].length;
        if (left > 0) keys.set(key, left);
        else keys.delete(key);
      }
    }
    function check() {
      if (doneAt[i] === null && keys.size === N) {
        doneAt[i] = now() - t0;
        if (++complete === N) finish();
      }
    }
    client.onEvent = (text) => {
      events++;
      const [name, change] = JSON.parse(text.slice(2));
      if (name !== "wsio:presence") return;
      if (!synced) held.push(change);
      else {
        apply(change);
        check();
      }
    };
    client.emit("wsio:subscribe", opts.channel).then((reply) => {
      acked++;
      lastAck = now() - t0;
      for (const key in reply.presence) keys.set(key, reply.presence[key].length);
      synced = true;
      held.forEach(apply);
      check();
    });
  });
  const timeout = new Promise((r) => setTimeout(() => r("timeout"), (opts.timeout - 10) * 1000));
  const result = await Promise.race([allDone, timeout]);
  const times = doneAt.filter((t) => t !== null).sort((a, b) => a - b);
  release = () => clients.forEach((c) => c.close());
  return {
    mode: "burst",
    clients: N,
    complete: result !== "timeout",
    complete_clients: times.length,
    all_complete_s: times.length === N ? times[N - 1] / 1000 : null,
    all_acked_s: acked === N ? lastAck / 1000 : null,
    p50_complete_s: quantile(times, 0.5) / 1000,
    p99_complete_s: quantile(times, 0.99) / 1000,
    events_received: events,
  };
}

async function fanout() {
  const N = opts.clients;
  const clients = await connectAll(N + 1);
  const sender = clients[N];
  const subs = clients.slice(0, N);
  await Promise.all(subs.map((c) => c.emit("wsio:subscribe", opts.channel)));
  // subscribed: the caller reads the servers' CPU counters, then says go
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  const pad = "x".repeat(opts.size);
  const reps = [];
  for (let rep = 0; rep < 3; rep++) {
    const id = `r${rep}`;
    let got = 0;
    let bad = 0;
    let finish;
    const done = new Promise((r) => (finish = r));
    const total = N * opts.messages;
    for (const sub of subs) {
      sub.expect = 0;
      sub.onEvent = (text) => {
        if (!text.startsWith('42["msg",')) return;
        const msg = JSON.parse(text.slice(2))[1];
        if (msg.ph !== id) return;
        if (msg.s === sub.expect) sub.expect++;
        else bad++;
        if (++got === total) finish();
      };
    }
    const t0 = now();
    for (let s = 0; s < opts.messages; s++) {
      await sender.emit("bcast", { room: opts.channel, ph: id, s, p: pad });
    }
    const timeout = new Promise((r) => setTimeout(() => r("timeout"), 60000));
    const result = await Promise.race([done, timeout]);
    const secs = (now() - t0) / 1000;
    reps.push({
      complete: result !== "timeout" && bad === 0,
      deliveries_per_s: Math.round(got / secs),
      seconds: secs,
    });
  }
  release = () => clients.forEach((c) => c.close());
  const rates = reps.map((r) => r.deliveries_per_s).sort((a, b) => a - b);
  return { mode: "fanout", clients: N, median_deliveries_per_s: rates[1], reps };
}

// the clients stay connected until stdin closes, so that what the caller
// measures after the result line (Redis's counters) does not include their
// leaving
let release = () => {};
(opts.mode === "burst" ? burst() : fanout()).then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.stdin.resume();
    process.stdin.on("end", () => {
      release();
      setTimeout(() => process.exit(0), 200);
    });
  },
  (err) => {
    process.stdout.write(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }) + "\n");
    process.exit(1);
  }
);
