// Load generator for benchmarks/run.py.
//
// A deliberately small Socket.IO v5 / Engine.IO v4 client over raw TCP and
// RFC 6455 framing, so that the load generator costs less CPU per delivery
// than the servers it measures (the official client costs about three times
// as much). run.py first checks every server with the official client
// (smoke.js), so this one speaks nothing the real one would not.
//
//   node loadgen.js --url http://127.0.0.1:PORT --mode fanout|echo|conns [options]
//
// Prints one JSON object on stdout (conns mode: one line when connected, then
// waits for a line on stdin before checking and closing).
"use strict";

const net = require("net");
const http = require("http");
const fs = require("fs");
const crypto = require("crypto");
const { performance } = require("perf_hooks");

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    url: "http://127.0.0.1:8000",
    mode: "fanout",
    clients: 100,
    messages: 200,
    rateMessages: 100,
    offered: 8000,
    size: 128,
    reps: 3,
    maxExtra: 2,
    warmup: 20,
    duration: 3,
    concurrency: 100,
    serverPid: "",
    serverCpu: -1,
    clientCpu: -1,
    maxInterference: 15,
    timeout: 120,
    alive: 20,
    window: 64,
    slow: 200,
    healthy: 20,
    rate: 400,
    pauseMs: 6000,
    readMs: 50,
    flood: 0,
    pollers: 500,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

const opts = parseArgs(process.argv);
const target = new URL(opts.url);
const host = target.hostname;
const port = Number(target.port);
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// a hard stop, so a stuck server can never keep this process alive
setTimeout(() => {
  process.stderr.write(`loadgen: global timeout of ${opts.timeout} s\n`);
  process.exit(3);
}, opts.timeout * 1000).unref();

// ---------------------------------------------------------------- CPU accounting

// Busy jiffies of one core, from /proc/stat (steal counts as busy: the
// hypervisor took it from whoever was pinned there).
function coreBusy(cpu) {
  if (cpu < 0) return 0;
  const line = fs
    .readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`cpu${cpu} `));
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
}

// utime + stime of the server's processes (all threads): "PID" or
// "PID,PID" (a server with a redis-server of its own on the same core)
function procJiffies(pids) {
  let total = 0;
  for (const pid of String(pids || "").split(",").filter(Boolean)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += Number(f[11]) + Number(f[12]);
    } catch (e) {
      // gone: counts nothing more
    }
  }
  return total;
}

const HZ = 100; // USER_HZ on Linux

function cpuSnapshot() {
  return {
    t: now(),
    core0: coreBusy(opts.serverCpu),
    core1: coreBusy(opts.clientCpu),
    server: procJiffies(opts.serverPid),
    self: process.cpuUsage(),
  };
}

// CPU use between two snapshots, in % of one core, and how much of each
// pinned core went to something other than the process pinned there.
function cpuDelta(a, b) {
  const secs = (b.t - a.t) / 1000;
  const server = ((b.server - a.server) / HZ / secs) * 100;
  const selfUs = b.self.user + b.self.system - (a.self.user + a.self.system);
  const loadgen = (selfUs / 1e6 / secs) * 100;
  const out = { server_cpu: round(server), loadgen_cpu: round(loadgen) };
  if (opts.serverCpu >= 0 && opts.clientCpu >= 0) {
    const busy0 = ((b.core0 - a.core0) / HZ / secs) * 100;
    const busy1 = ((b.core1 - a.core1) / HZ / secs) * 100;
    out.interference_server_core = round(Math.max(0, busy0 - server));
    out.interference_client_core = round(Math.max(0, busy1 - loadgen));
    out.clean =
      out.interference_server_core < opts.maxInterference &&
      out.interference_client_core < opts.maxInterference;
  } else {
    out.clean = true;
  }
  return out;
}

function round(x, digits = 1) {
  const m = 10 ** digits;
  return Math.round(x * m) / m;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return round(sorted[i], 2);
}

function latencyStats(values, count) {
  const v = Float64Array.from(values.subarray ? values.subarray(0, count) : values).sort();
  return { p50: percentile(v, 50), p99: percentile(v, 99), max: percentile(v, 100) };
}

// ---------------------------------------------------------------- the client

const MASK_POOL = crypto.randomBytes(4096);
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
let maskAt = 0;

// One client frame: FIN, the opcode, a masked payload (RFC 6455 5.3).
function frame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (len < 126) {
    out[1] = 0x80 | len;
  } else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  if (maskAt > MASK_POOL.length - 4) maskAt = 0;
  const m = head - 4;
  MASK_POOL.copy(out, m, maskAt, maskAt + 4);
  maskAt += 4;
  for (let i = 0; i < len; i++) out[head + i] = payload[i] ^ out[m + (i & 3)];
  return out;
}

class Client {
  constructor() {
    this.sock = null;
    this.buf = null;
    this.handshaken = false;
    this.acks = new Map();
    this.nextId = 0;
    this.onEvent = null; // (packetText) => void
    this.onRawEvent = null; // (buf, start, end) => handled?
    this.fragments = null;
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString("base64");
      // every socket reads into one shared buffer (no allocation per read);
      // _data copies only an incomplete frame left at the end
      this.sock = net.connect({
        host,
        port,
        onread: { buffer: READ_BUFFER, callback: (n, buf) => this._data(buf.subarray(0, n)) },
      });
      this.sock.setNoDelay(true);
      this._onConnected = resolve;
      this._onFailed = reject;
      this.sock.on("connect", () => {
        this.sock.write(
          `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n` +
            `Host: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
        );
      });
      this.sock.on("error", (err) => this._fail(err));
      this.sock.on("close", () => {
        this.closed = true;
        this._fail(new Error("connection closed"));
      });
    });
  }

  _fail(err) {
    if (this._onFailed) {
      const f = this._onFailed;
      this._onFailed = this._onConnected = null;
      f(err);
    }
  }

  _data(chunk) {
    this.buf = this.buf && this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.handshaken) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) {
        this.buf = Buffer.from(this.buf);
        return;
      }
      const head = this.buf.toString("latin1", 0, end);
      if (!head.startsWith("HTTP/1.1 101")) {
        this._fail(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
        this.sock.destroy();
        return;
      }
      this.handshaken = true;
      this.buf = this.buf.subarray(end + 4);
    }
    let buf = this.buf;
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (b1 & 0x80) throw new Error("server frames must not be masked");
      if (buf.length - at < head + len) break;
      const start = at + head;
      this._frame(b0 & 0x80, b0 & 0x0f, buf, start, start + len);
      at = start + len;
    }
    this.buf = at === buf.length ? null : Buffer.from(buf.subarray(at));
  }

  _frame(fin, opcode, buf, start, end) {
    if (opcode === 0x9) {
      this.sock.write(frame(0xa, buf.subarray(start, end)));
      return;
    }
    if (opcode === 0x8 || opcode === 0xa) return;
    if (opcode === 0x0 || !fin) {
      // fragmented message: collect until the final frame
      if (opcode !== 0x0) this.fragments = { opcode, parts: [] };
      this.fragments.parts.push(Buffer.from(buf.subarray(start, end)));
      if (!fin) return;
      const whole = Buffer.concat(this.fragments.parts);
      const op = this.fragments.opcode;
      this.fragments = null;
      if (op === 0x1) this._packet(whole.toString("utf8"));
      return;
    }
    if (opcode === 0x1) {
      // fan-out subscribers read their events straight from the bytes
      if (this.onRawEvent && buf[start] === 0x34 && buf[start + 1] === 0x32) {
        if (this.onRawEvent(buf, start, end)) return;
      }
      this._packet(buf.toString("utf8", start, end));
    }
  }

  _packet(text) {
    const type = text.charCodeAt(0);
    if (type === 0x32 /* 2 ping */) {
      this.sendText("3");
    } else if (type === 0x30 /* 0 open */) {
      this.sendText("40");
    } else if (type === 0x34 /* 4 message */) {
      const sio = text.charCodeAt(1);
      if (sio === 0x30 /* 0 connect */) {
        if (this._onConnected) {
          const f = this._onConnected;
          this._onConnected = this._onFailed = null;
          f(this);
        }
      } else if (sio === 0x32 /* 2 event */) {
        if (this.onEvent) this.onEvent(text);
      } else if (sio === 0x33 /* 3 ack */) {
        const open = text.indexOf("[", 2);
        const id = Number(text.slice(2, open));
        const cb = this.acks.get(id);
        if (cb) {
          this.acks.delete(id);
          cb(text.slice(open));
        }
      } else if (sio === 0x34 /* 4 connect error */) {
        this._fail(new Error(`connect refused: ${text}`));
      }
    }
  }

  sendText(text) {
    this.sock.write(frame(0x1, Buffer.from(text, "utf8")));
  }

  // emit with an ack; resolves with the ack's JSON array text
  emit(event, data) {
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.acks.set(id, resolve);
      this.sendText(`42${id}${JSON.stringify([event, data])}`);
    });
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this._onFailed = null;
    try {
      this.sock.end(frame(0x8, Buffer.from([0x03, 0xe8])));
    } catch (e) {
      // already gone
    }
    setTimeout(() => this.sock.destroy(), 200).unref();
  }
}

async function connectMany(count, concurrency) {
  const clients = new Array(count);
  let next = 0;
  let failures = 0;
  const t0 = now();
  async function worker() {
    while (next < count) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          clients[i] = await new Client().connect();
          break;
        } catch (err) {
          failures++;
          if (attempt >= 3) throw err;
          await sleep(100 * (attempt + 1));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { clients, seconds: (now() - t0) / 1000, failures };
}

// ---------------------------------------------------------------- fan-out

async function fanout() {
  const N = opts.clients;
  const pad = "x".repeat(opts.size);
  const conn = await connectMany(N + 1, opts.concurrency);
  const sender = conn.clients[N];
  const subs = conn.clients.slice(0, N);
  await Promise.all(subs.map((c) => c.emit("join", "bench")));

  let phase = null; // the phase being received
  const strays = { count: 0 };
  // Subscribers pick the three fields they need out of the frame bytes
  // (42["msg",{"room":..,"ph":..,"s":..,"t":..,"p":..}]) instead of
  // decoding and parsing it: at 100,000 deliveries/s the load generator's
  // own CPU per delivery decides what it can measure.
  const MSG = Buffer.from('42["msg",');
  const PH = Buffer.from('"ph":"');
  const S = Buffer.from('"s":');
  const T = Buffer.from('"t":');
  function field(buf, key, start, end) {
    const i = buf.indexOf(key, start);
    return i < 0 || i >= end ? -1 : i + key.length;
  }
  for (const sub of subs) {
    sub.expect = 0;
    sub.bad = 0;
    sub.onRawEvent = (buf, start, end) => {
      const t = now();
      if (buf.compare(MSG, 0, MSG.length, start, start + MSG.length) !== 0) return false;
      const ph = phase;
      const p = field(buf, PH, start, end);
      if (
        !ph ||
        p < 0 ||
        buf.compare(ph.idBuf, 0, ph.idBuf.length, p, p + ph.idBuf.length) !== 0 ||
        buf[p + ph.idBuf.length] !== 0x22
      ) {
        strays.count++;
        return true;
      }
      let i = field(buf, S, start, end);
      let s = 0;
      for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) s = s * 10 + (c - 0x30);
      const a = field(buf, T, start, end);
      let b = a;
      while (b < end && buf[b] !== 0x2c && buf[b] !== 0x7d) b++;
      const sent = Number(buf.toString("latin1", a, b));
      if (s === sub.expect) sub.expect++;
      else sub.bad++;
      ph.lat[ph.got++] = t - sent;
      ph.last = t;
      if (ph.got === ph.total) ph.done();
      return true;
    };
  }

  let phaseNo = 0;
  async function runPhase(kind, M, record) {
    const id = `${kind}${phaseNo++}`;
    for (const sub of subs) {
      sub.expect = 0;
      sub.bad = 0;
    }
    const total = N * M;
    let finished;
    const doneP = new Promise((r) => (finished = r));
    phase = {
      id,
      idBuf: Buffer.from(id),
      lat: new Float64Array(total),
      got: 0,
      total,
      last: 0,
      done: finished,
    };
    const timeout = sleep(60000).then(() => "timeout");
    const before = cpuSnapshot();
    const t0 = now();
    const lags = [];
    if (kind === "flood") {
      for (let s = 0; s < M; s++) {
        await sender.emit("bcast", { room: "bench", ph: id, s, t: now(), p: pad });
      }
    } else {
      // open loop: send on schedule whatever the acks do
      const interval = (1000 * N) / opts.offered;
      for (let s = 0; s < M; s++) {
        const due = t0 + s * interval;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        lags.push(Math.max(0, now() - due));
        sender.emit("bcast", { room: "bench", ph: id, s, t: now(), p: pad });
      }
    }
    const result = await Promise.race([doneP, timeout]);
    const after = cpuSnapshot();
    const ph = phase;
    phase = null;
    if (!record) return null;
    const secs = ((ph.last || now()) - t0) / 1000;
    let incomplete = 0;
    let bad = 0;
    for (const sub of subs) {
      if (sub.expect !== M) incomplete++;
      bad += sub.bad;
    }
    const lat = latencyStats(ph.lat, ph.got);
    lags.sort((a, b) => a - b);
    return {
      phase: kind,
      messages: M,
      deliveries: ph.got,
      expected: total,
      seconds: round(secs, 3),
      deliveries_per_s: Math.round(ph.got / secs),
      complete: result !== "timeout" && incomplete === 0 && bad === 0,
      subscribers_incomplete: incomplete,
      dup_or_out_of_order: bad,
      p50_ms: lat.p50,
      p99_ms: lat.p99,
      max_ms: lat.max,
      sender_lag_p99_ms: kind === "rate" ? percentile(lags, 99) : null,
      ...cpuDelta(before, after),
    };
  }

  await runPhase("flood", opts.warmup, false);
  const reps = { rate: [], flood: [] };
  for (const kind of ["rate", "flood"]) {
    const M = kind === "rate" ? opts.rateMessages : opts.messages;
    let clean = 0;
    for (let i = 0; i < opts.reps + opts.maxExtra && clean < opts.reps; i++) {
      const r = await runPhase(kind, M, true);
      reps[kind].push(r);
      if (r.clean) clean++;
      // after a disturbed repetition, give the other load a moment to pass
      await sleep(r.clean ? 200 : 1500);
    }
  }
  for (const c of conn.clients) c.close();
  return {
    mode: "fanout",
    clients: N,
    connect_s: round(conn.seconds, 3),
    connect_retries: conn.failures,
    strays: strays.count,
    reps,
  };
}

// ---------------------------------------------------------------- echo

async function echo() {
  const E = opts.clients;
  const pad = "x".repeat(opts.size);
  const conn = await connectMany(E, opts.concurrency);
  let window = null;
  let running = true;
  let mismatches = 0;
  async function loop(c, k) {
    let s = 0;
    while (running) {
      const sent = { t: now(), s: s++, c: k, p: pad };
      const reply = await c.emit("echo", sent);
      const t = now();
      const back = JSON.parse(reply)[0];
      if (!back || back.s !== sent.s || back.c !== k || back.p !== pad) mismatches++;
      const w = window;
      if (w && sent.t >= w.t0) {
        w.count++;
        if (w.lat.length < 2e6) w.lat.push(t - sent.t);
      }
    }
  }
  const loops = conn.clients.map((c, k) => loop(c, k));
  await sleep(1000); // warm-up
  const reps = [];
  let clean = 0;
  for (let i = 0; i < opts.reps + opts.maxExtra && clean < opts.reps; i++) {
    const w = { t0: now(), count: 0, lat: [] };
    const before = cpuSnapshot();
    window = w;
    await sleep(opts.duration * 1000);
    window = null;
    const after = cpuSnapshot();
    const secs = (now() - w.t0) / 1000;
    const lat = latencyStats(w.lat, w.lat.length);
    const r = {
      requests: w.count,
      requests_per_s: Math.round(w.count / secs),
      p50_ms: lat.p50,
      p99_ms: lat.p99,
      ...cpuDelta(before, after),
    };
    reps.push(r);
    if (r.clean) clean++;
    else await sleep(1500);
  }
  running = false;
  await Promise.race([Promise.all(loops), sleep(5000)]);
  for (const c of conn.clients) c.close();
  return { mode: "echo", clients: E, mismatches, reps };
}

// ---------------------------------------------------------------- idle connections

function readLine() {
  return new Promise((resolve) => {
    let text = "";
    const onData = (d) => {
      text += d;
      if (text.includes("\n")) {
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve(text.trim());
      }
    };
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", onData);
    process.stdin.on("end", () => resolve(text.trim()));
  });
}

async function conns() {
  const before = cpuSnapshot();
  const conn = await connectMany(opts.clients, opts.concurrency);
  const after = cpuSnapshot();
  process.stdout.write(
    JSON.stringify({
      event: "connected",
      connect_s: round(conn.seconds, 3),
      retries: conn.failures,
      ...cpuDelta(before, after),
    }) + "\n"
  );
  await readLine();
  // prove that the idle connections are alive: a few random ones echo
  let alive = 0;
  const picks = Array.from({ length: opts.alive }, () =>
    Math.floor(Math.random() * conn.clients.length)
  );
  await Promise.race([
    Promise.all(
      picks.map(async (i) => {
        const reply = await conn.clients[i].emit("echo", { i });
        if (JSON.parse(reply)[0].i === i) alive++;
      })
    ),
    sleep(10000),
  ]);
  for (const c of conn.clients) c.close();
  await sleep(300);
  return { mode: "conns", clients: opts.clients, alive, checked: opts.alive };
}


// ---------------------------------------------------------------- one greedy client

// E polite clients echo in closed loops (one request out each); then one
// greedy client joins with `window` requests always out, sent as fast as
// its acks return. Reported: the polite clients' requests/s and their
// longest wait, without and with the greedy one.
async function greedy() {
  const E = opts.clients;
  const pad = "x".repeat(opts.size);
  const conn = await connectMany(E + 1, opts.concurrency);
  const polite = conn.clients.slice(0, E);
  const hog = conn.clients[E];
  let running = true;
  let window = null;
  async function loop(c, k) {
    let s = 0;
    while (running) {
      const sent = now();
      await c.emit("echo", { s: s++, c: k, p: pad });
      const w = window;
      if (w && sent >= w.t0) {
        w.count++;
        const lat = now() - sent;
        w.lat.push(lat);
      }
    }
  }
  let hogging = false;
  let hogCount = 0;
  async function hogLoop() {
    while (running) {
      if (!hogging) {
        await sleep(20);
        continue;
      }
      hogCount++;
      await hog.emit("echo", { hog: true, p: pad });
    }
  }
  const loops = polite.map((c, k) => loop(c, k));
  const hogs = Array.from({ length: opts.window }, () => hogLoop());
  await sleep(1000); // warm-up
  const phases = {};
  for (const phase of ["alone", "with_greedy"]) {
    hogging = phase === "with_greedy";
    if (hogging) await sleep(500);
    const reps = [];
    for (let i = 0; i < opts.reps; i++) {
      const w = { t0: now(), count: 0, lat: [] };
      const before = cpuSnapshot();
      const hog0 = hogCount;
      window = w;
      await sleep(opts.duration * 1000);
      window = null;
      const after = cpuSnapshot();
      const secs = (now() - w.t0) / 1000;
      const lat = latencyStats(w.lat, w.lat.length);
      reps.push({
        requests_per_s: Math.round(w.count / secs),
        greedy_requests_per_s: Math.round((hogCount - hog0) / secs),
        p50_ms: lat.p50,
        p99_ms: lat.p99,
        max_ms: lat.max,
        ...cpuDelta(before, after),
      });
    }
    phases[phase] = reps;
  }
  running = false;
  await Promise.race([Promise.all([...loops, ...hogs]), sleep(5000)]);
  for (const c of conn.clients) c.close();
  return { mode: "greedy", clients: E, window: opts.window, phases };
}

// ---------------------------------------------------------------- trickle readers

function rssMb(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const m = status.match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) / 1024 : 0;
  } catch (e) {
    return 0;
  }
}

// `slow` subscribers that read for `readMs` every `pauseMs`, and `healthy`
// ones that read at once, all in one room; a sender broadcasts `rate`
// messages/s of `size` bytes for `duration` s. Reported: the server's
// largest resident memory, the healthy subscribers' delivery latency and
// completeness, and how many slow ones the server disconnected.
async function trickle() {
  const pad = "x".repeat(opts.size);
  const conn = await connectMany(opts.slow + opts.healthy + 1, opts.concurrency);
  const slow = conn.clients.slice(0, opts.slow);
  const healthy = conn.clients.slice(opts.slow, opts.slow + opts.healthy);
  const sender = conn.clients[opts.slow + opts.healthy];
  await Promise.all([...slow, ...healthy].map((c) => c.emit("join", "trickle")));
  const lat = [];
  const T = Buffer.from('"t":');
  for (const h of healthy) {
    h.got = 0;
    h.onRawEvent = (buf, start, end) => {
      const i = buf.indexOf(T, start);
      if (i < 0 || i >= end) return true;
      let b = i + T.length;
      while (b < end && buf[b] !== 0x2c && buf[b] !== 0x7d) b++;
      lat.push(now() - Number(buf.toString("latin1", i + T.length, b)));
      h.got++;
      return true;
    };
  }
  for (const c of slow) c.onRawEvent = () => true;
  // each slow reader: paused, then reading for readMs, at its own phase
  const timers = slow.map((c, k) => {
    c.sock.pause();
    const cycle = () => {
      if (c.closed) return;
      c.sock.resume();
      setTimeout(() => c.closed || c.sock.pause(), opts.readMs);
    };
    const first = setTimeout(() => {
      cycle();
      c.timer = setInterval(cycle, opts.pauseMs);
    }, (k * opts.pauseMs) / opts.slow);
    return first;
  });
  let rssMax = rssMb(opts.serverPid);
  const rssStart = rssMax;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rssMb(opts.serverPid));
  }, 100);
  const before = cpuSnapshot();
  const t0 = now();
  let total = Math.round(opts.rate * opts.duration);
  let deliveredInWindow = null;
  if (opts.flood) {
    // --flood 1: the next broadcast as soon as the previous one is acked,
    // for the whole duration; what counts is how many reach the healthy
    // subscribers meanwhile
    const end = t0 + opts.duration * 1000;
    total = 0;
    while (now() < end) {
      await sender.emit("bcast", { room: "trickle", s: total, t: now(), p: pad });
      total++;
    }
    deliveredInWindow = healthy.reduce((n, h) => n + h.got, 0);
  } else {
    for (let s = 0; s < total; s++) {
      const due = t0 + (s * 1000) / opts.rate;
      const wait = due - now();
      if (wait > 1) await sleep(wait);
      sender.emit("bcast", { room: "trickle", s, t: now(), p: pad });
    }
  }
  // the healthy ones get everything (or the run says not)
  const deadline = now() + 10000;
  while (healthy.some((h) => h.got < total) && now() < deadline) await sleep(50);
  const after = cpuSnapshot();
  clearInterval(sampler);
  for (const t of timers) clearTimeout(t);
  let cut = 0;
  for (const c of slow) {
    clearInterval(c.timer);
    if (c.closed) cut++;
  }
  const stats = latencyStats(lat, lat.length);
  for (const c of conn.clients) c.close();
  return {
    mode: "trickle",
    slow: opts.slow,
    healthy: opts.healthy,
    messages: total,
    rss_start_mb: round(rssStart),
    rss_max_mb: round(rssMax),
    healthy_complete: healthy.every((h) => h.got === total),
    healthy_deliveries_per_s:
      deliveredInWindow === null ? null : Math.round(deliveredInWindow / opts.duration),
    healthy_p50_ms: stats.p50,
    healthy_p99_ms: stats.p99,
    healthy_max_ms: stats.max,
    slow_disconnected: cut,
    ...cpuDelta(before, after),
  };
}

// ---------------------------------------------------------------- pollers

// One Engine.IO v4 long-polling client (HTTP/1.1 keep-alive, two sockets:
// the pending GET and the POSTs, which go one at a time as the protocol
// wants). The packets it receives and its acked emits are the websocket
// Client's: only the transport differs (sendText posts).
class Poller extends Client {
  constructor() {
    super();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    this.sid = null;
    this.running = true;
    this.errors = 0;
    this.posts = Promise.resolve();
  }

  request(method, body) {
    const q = this.sid ? `&sid=${this.sid}` : "";
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host,
          port,
          method,
          agent: this.agent,
          path: `/socket.io/?EIO=4&transport=polling${q}`,
          headers: body == null ? {} : { "Content-Type": "text/plain;charset=UTF-8" },
        },
        (res) => {
          const parts = [];
          res.on("data", (d) => parts.push(d));
          res.on("end", () => {
            const text = Buffer.concat(parts).toString("utf8");
            if (res.statusCode === 200) resolve(text);
            else reject(new Error(`${method} ${res.statusCode}: ${text.slice(0, 80)}`));
          });
        }
      );
      req.on("error", reject);
      req.end(body == null ? undefined : body);
    });
  }

  post(body) {
    const p = this.posts.then(() => this.request("POST", body));
    this.posts = p.catch(() => {});
    return p;
  }

  sendText(text) {
    this.post(text).catch(() => this.errors++);
  }

  async open() {
    const text = await this.request("GET", null);
    this.sid = JSON.parse(text.slice(1)).sid;
    const connected = new Promise((resolve, reject) => {
      this._onConnected = resolve;
      this._onFailed = reject;
    });
    await this.post("40");
    this.loop();
    return connected;
  }

  async loop() {
    while (this.running) {
      let body;
      try {
        body = await this.request("GET", null);
      } catch (err) {
        if (!this.running) return;
        this.errors++;
        await sleep(100);
        continue;
      }
      for (const packet of body.split("\x1e")) {
        if (packet === "1" /* close */) this.running = false;
        else this._packet(packet);
      }
    }
  }

  close() {
    this.running = false;
    this.sendText("1");
    setTimeout(() => this.agent.destroy(), 500).unref();
  }
}

// opts.pollers long-polling subscribers in one room, a websocket sender
// broadcasting opts.rate messages/s for opts.duration s (repeated
// opts.reps times): deliveries, latency, and the server's CPU per
// delivered message.
async function pollers() {
  const N = opts.pollers;
  const pad = "x".repeat(opts.size);
  const subs = new Array(N);
  let next = 0;
  const t0 = now();
  async function worker() {
    while (next < N) {
      const i = next++;
      subs[i] = await new Poller().open();
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, N) }, worker));
  const connectS = (now() - t0) / 1000;
  await Promise.all(subs.map((c) => c.emit("join", "bench")));
  const [sender] = (await connectMany(1, 1)).clients;
  let window = null;
  for (const sub of subs) {
    sub.onEvent = (text) => {
      const w = window;
      const t = now();
      const [event, data] = JSON.parse(text.slice(2));
      if (event !== "msg" || !w || data.ph !== w.id) return;
      w.got++;
      w.lat.push(t - data.t);
    };
  }
  async function phase(id, seconds, record) {
    const w = { id, got: 0, lat: [] };
    window = w;
    const before = cpuSnapshot();
    const gap = 1000 / opts.rate;
    const start = now();
    let sent = 0;
    while (now() - start < seconds * 1000) {
      sender.emit("bcast", { room: "bench", ph: id, s: sent++, t: now(), p: pad });
      const due = start + sent * gap;
      await sleep(Math.max(0, due - now()));
    }
    await sleep(2000); // the last polls come back
    const after = cpuSnapshot();
    if (!record) return null;
    const lat = Float64Array.from(w.lat).sort();
    const cpu = cpuDelta(before, after);
    const serverSeconds = (after.server - before.server) / HZ;
    return {
      messages: sent,
      deliveries: w.got,
      expected: sent * N,
      complete: w.got === sent * N,
      p50_ms: percentile(lat, 50),
      p99_ms: percentile(lat, 99),
      server_us_per_delivery: w.got ? round((serverSeconds / w.got) * 1e6, 2) : null,
      ...cpu,
    };
  }
  await phase("warm", 2, false);
  const reps = [];
  for (let i = 0; i < opts.reps; i++) reps.push(await phase(`p${i}`, opts.duration, true));
  const errors = subs.reduce((n, c) => n + c.errors, 0);
  for (const c of subs) c.close();
  sender.close();
  return { mode: "pollers", pollers: N, rate: opts.rate, connect_s: round(connectS, 2), errors, reps };
}

// ---------------------------------------------------------------- main

const modes = { fanout, echo, conns, greedy, trickle, pollers };
if (!modes[opts.mode]) {
  process.stderr.write(`unknown mode ${opts.mode}\n`);
  process.exit(2);
}
modes[opts.mode]()
  .then((result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  })
  .catch((err) => {
    process.stderr.write(`loadgen: ${err.stack || err}\n`);
    process.stdout.write(JSON.stringify({ error: String(err.message || err) }) + "\n");
    process.exit(1);
  });
