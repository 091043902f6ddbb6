// A test agent around the official socket.io-client (npm), driven by pytest.
//
// It reads one JSON command per line on stdin and writes one JSON line per
// reply or received event on stdout:
//   {"id": 1, "op": "connect", "client": "a", "url": "...", "options": {...}}
//   {"id": 2, "op": "subscribe", "client": "a", "channel": "room-1", "options": {"since": ...}}
//   {"id": 3, "op": "send", "client": "a", "data": {...}}          (acked)
//   {"id": 4, "op": "emit", "client": "a", "event": "x", "args": [...]}
//   {"id": 5, "op": "unsubscribe" | "disconnect" | "channels" | "transport", "client": "a"}
//   {"id": 6, "op": "namespace", "client": "b", "parent": "a", "namespace": "/admin", "options": {...}}
// Replies:  {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "error": "..."}
// Events:   {"client": "a", "event": "message", "args": [...]}, also connect,
//           disconnect, connect_error and the extension's wsio:refused.
// Every wait is bounded: a reply that does not come within the command's
// "timeout" (ms, default 5000) is reported as an error. The agent exits when
// stdin closes, or after AGENT_MAX_SECONDS (default 300) whatever happens.
"use strict";

const readline = require("readline");
const path = require("path");

const io = require("socket.io-client");
require(path.join(__dirname, "..", "..", "webpy_socketio", "static", "wsio.js"))(io);

const clients = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function connect(cmd) {
  const options = Object.assign({ forceNew: true, reconnection: false }, cmd.options || {});
  if (options.localAddress && !options.agent) {
    // the websocket transport binds localAddress itself; the polling XHR
    // ignores it but uses an http(s) agent bound to that source address
    const mod = cmd.url.startsWith("https:") ? require("https") : require("http");
    options.agent = new mod.Agent({ localAddress: options.localAddress });
  }
  return watch(cmd, io(cmd.url, options));
}

// another namespace over the connection of client cmd.parent (one Engine.IO
// session for both, as io(url + "/admin") does in a page that has io(url))
function namespace(cmd) {
  const manager = socketOf({ client: cmd.parent }).io;
  const socket = manager.socket(cmd.namespace, cmd.options || {});
  const connected = watch(cmd, socket);
  socket.connect();
  return connected;
}

function watch(cmd, socket) {
  clients.set(cmd.client, socket);
  socket.onAny((event, ...args) => out({ client: cmd.client, event, args }));
  for (const name of ["disconnect", "wsio:refused", "wsio:recovery-failed"]) {
    socket.on(name, (...args) => out({ client: cmd.client, event: name, args }));
  }
  socket.on("connect", () => out({ client: cmd.client, event: "connect", args: [socket.id] }));
  socket.io.on("reconnect", () => out({ client: cmd.client, event: "reconnect", args: [] }));
  return new Promise((resolve, reject) => {
    socket.once("connect", () =>
      resolve({ id: socket.id, transport: socket.io.engine.transport.name })
    );
    socket.once("connect_error", (err) => {
      out({ client: cmd.client, event: "connect_error", args: [String(err.message)] });
      reject(new Error("connect_error: " + err.message));
    });
  });
}

function socketOf(cmd) {
  const socket = clients.get(cmd.client);
  if (!socket) throw new Error(`no client named ${cmd.client}`);
  return socket;
}

function emitWithAck(socket, event, args) {
  return new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply.length <= 1 ? reply[0] : reply)));
}

async function handle(cmd) {
  const ms = cmd.timeout || 5000;
  switch (cmd.op) {
    case "connect":
      return withTimeout(connect(cmd), ms, "connect");
    case "namespace":
      return withTimeout(namespace(cmd), ms, "namespace connect");
    case "subscribe":
      return withTimeout(socketOf(cmd).subscribe(cmd.channel, cmd.options), ms, "subscribe ack");
    case "unsubscribe":
      return withTimeout(socketOf(cmd).unsubscribe(cmd.channel), ms, "unsubscribe ack");
    case "send":
      return withTimeout(emitWithAck(socketOf(cmd), "message", [cmd.data]), ms, "message ack");
    case "send_noack":
      socketOf(cmd).send(cmd.data);
      return null;
    case "emit":
      return withTimeout(emitWithAck(socketOf(cmd), cmd.event, cmd.args || []), ms, "event ack");
    case "channels":
      return socketOf(cmd).channels;
    case "transport": {
      const socket = socketOf(cmd);
      return socket.connected ? socket.io.engine.transport.name : null;
    }
    case "drop": {
      // close the underlying transport without a Socket.IO disconnect, like a
      // lost network; with reconnection enabled the client comes back
      socketOf(cmd).io.engine.close();
      return null;
    }
    case "disconnect": {
      const socket = socketOf(cmd);
      socket.disconnect();
      clients.delete(cmd.client);
      return null;
    }
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    out({ id: null, ok: false, error: "bad command: " + err.message });
    return;
  }
  Promise.resolve()
    .then(() => handle(cmd))
    .then(
      (result) => out({ id: cmd.id, ok: true, result: result === undefined ? null : result }),
      (err) => out({ id: cmd.id, ok: false, error: String(err && err.message ? err.message : err) })
    );
});
rl.on("close", () => {
  for (const socket of clients.values()) socket.disconnect();
  setTimeout(() => process.exit(0), 100);
});
setTimeout(() => process.exit(3), 1000 * Number(process.env.AGENT_MAX_SECONDS || 300)).unref();
