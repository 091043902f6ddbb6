// Opens a socket and joins room-1; the test reads window.state.
window.state = { connects: 0, loadedAt: Date.now() };
const socket = io();
socket.on("connect", () => {
  window.state.connects += 1;
});
socket.subscribe("room-1").then((reply) => {
  window.state.subscribed = reply.ok;
});
