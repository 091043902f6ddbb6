// Reference: Node socket.io 4.8 with its defaults, one process.
// SIO_CSR=1 turns connection state recovery on.
// Usage: node node_sio.js PORT
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const httpServer = http.createServer();
// SIO_CSR=1: with connection state recovery (Node's counterpart of channel
// history: each packet gets an offset, missed packets are replayed)
const options = { serveClient: false };
if (process.env.SIO_CSR === "1") {
  options.connectionStateRecovery = { maxDisconnectionDuration: 2 * 60 * 1000 };
}
const io = new Server(httpServer, options);

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (ack) ack("ok");
  });
  socket.on("bcast", (data, ack) => {
    socket.to(data.room).emit("msg", data);
    if (ack) ack("ok");
  });
  socket.on("echo", (data, ack) => {
    if (ack) ack(data);
  });
});

httpServer.listen(port, "127.0.0.1", () => console.log(`node socket.io on ${port}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
