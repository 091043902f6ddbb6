// Connect, send what is typed, and list the server's acknowledgements.
(function () {
  "use strict";

  var socket = io();
  var status = document.getElementById("status");
  var form = document.getElementById("echo");

  socket.on("connect", function () {
    status.textContent = "online";
    status.classList.add("online");
  });
  socket.on("disconnect", function () {
    status.textContent = "reconnecting…";
    status.classList.remove("online");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = form.elements.text.value;
    socket.send(text, function (reply) {
      var item = document.createElement("li");
      item.textContent = "#" + reply.count + " " + reply.echo;
      document.getElementById("log").prepend(item);
    });
    form.elements.text.value = "";
  });
})();
