// Checks one benchmark server with the official socket.io-client before it is
// measured: echo over websocket, over polling and over polling upgraded to
// websocket, and a room broadcast of several messages to 20 subscribers, each
// received once and in order. Prints {"ok": true} or {"ok": false, "error"}.
//
//   node smoke.js http://127.0.0.1:PORT
"use strict";

const { io } = require("socket.io-client");

const url = process.argv[2];
const SUBSCRIBERS = 20;
const MESSAGES = 5;

setTimeout(() => finish("timed out after 20 s"), 20000).unref();

const sockets = [];
function open(transports) {
  const s = io(url, { transports, forceNew: true, reconnection: false, timeout: 5000 });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once("connect", () => resolve(s));
    s.once("connect_error", (err) => reject(new Error(`connect (${transports}): ${err.message}`)));
  });
}

function finish(error) {
  for (const s of sockets) s.close();
  process.stdout.write(JSON.stringify(error ? { ok: false, error } : { ok: true }) + "\n");
  process.exit(error ? 1 : 0);
}

async function echoCheck(transports) {
  const s = await open(transports);
  const data = { hello: "wörld", n: [1, 2, 3], t: transports.join("+") };
  const back = await s.timeout(5000).emitWithAck("echo", data);
  if (JSON.stringify(back) !== JSON.stringify(data)) {
    throw new Error(`echo over ${transports} returned ${JSON.stringify(back)}`);
  }
  if (transports.length > 1) {
    // the default client upgrades polling to websocket
    for (let i = 0; i < 50 && s.io.engine.transport.name !== "websocket"; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (s.io.engine.transport.name !== "websocket") throw new Error("did not upgrade");
    const again = await s.timeout(5000).emitWithAck("echo", data);
    if (JSON.stringify(again) !== JSON.stringify(data)) throw new Error("echo after upgrade");
  }
  return s;
}

async function main() {
  await echoCheck(["websocket"]);
  await echoCheck(["polling"]);
  const upgraded = await echoCheck(["polling", "websocket"]);
  const subs = [upgraded];
  for (let i = 1; i < SUBSCRIBERS; i++) subs.push(await open(["websocket"]));
  const got = subs.map(() => []);
  subs.forEach((s, i) => s.on("msg", (m) => got[i].push(m.s)));
  for (const s of subs) await s.timeout(5000).emitWithAck("join", "smoke");
  const sender = await open(["websocket"]);
  for (let s = 0; s < MESSAGES; s++) {
    await sender.timeout(5000).emitWithAck("bcast", { room: "smoke", ph: "smoke", s, t: 0, p: "" });
  }
  const want = JSON.stringify([...Array(MESSAGES).keys()]);
  for (let i = 0; i < 50 && !got.every((g) => JSON.stringify(g) === want); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const wrong = got.findIndex((g) => JSON.stringify(g) !== want);
  if (wrong >= 0) throw new Error(`subscriber ${wrong} got ${JSON.stringify(got[wrong])}`);
  finish(null);
}

main().catch((err) => finish(String(err.message || err)));
