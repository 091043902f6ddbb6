// The chat page: join a room with a name, then talk. User text is only ever
// put in the page with textContent, never as HTML.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var joinForm = $("join");
  var composer = $("composer");
  var socket = null;
  var room = null;

  function show(joined) {
    joinForm.hidden = joined;
    $("room").hidden = !joined;
    if (joined) { composer.elements.text.focus(); }
  }

  function status(text, online) {
    $("status").textContent = text;
    $("status").classList.toggle("online", !!online);
  }

  function addMessage(msg) {
    var item = document.createElement("li");
    if (msg.type === "system") {
      item.className = "system";
      item.textContent = msg.text;
    } else {
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = msg.name;
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = msg.text;
      item.append(who, text);
    }
    var list = $("messages");
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function showMembers(names) {
    var list = $("members");
    list.replaceChildren();
    names.forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = name;
      list.append(item);
    });
  }

  function leave() {
    if (socket) { socket.disconnect(); }
    socket = null;
    show(false);
    status("not in a room", false);
  }

  joinForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (socket) { return; }
    $("join-error").textContent = "";
    room = joinForm.elements.room.value.trim();
    var name = joinForm.elements.name.value.trim();
    $("messages").replaceChildren();
    $("members").replaceChildren();
    socket = io({ auth: { name: name } });
    socket.on("connect_error", function (err) {
      // a lost connection (a server restarting, a network blip): the client
      // keeps retrying by itself and subscribes to the room again
      if (socket.active) {
        status("reconnecting…", false);
        return;
      }
      // refused by the server (on_connect): say why
      $("join-error").textContent = err.message;
      leave();
    });
    socket.once("connect", function () {
      socket.subscribe("room-" + room).then(function (reply) {
        if (!reply.ok) {
          $("join-error").textContent = reply.error;
          leave();
          return;
        }
        $("room-name").textContent = room;
        show(true);
      });
    });
    socket.on("connect", function () { status("online", true); });
    socket.on("disconnect", function () { status("reconnecting…", false); });
    socket.on("wsio:refused", function (channel, reply) {
      $("join-error").textContent = (reply && reply.error) || "You left the room.";
      leave();
    });
    socket.on("message", function (msg) {
      if (msg.type === "members") { showMembers(msg.members); } else { addMessage(msg); }
    });
  });

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = composer.elements.text;
    if (!socket || !input.value.trim()) { return; }
    socket.send({ room: room, text: input.value }, function (reply) {
      $("send-error").textContent = reply && reply.ok ? "" : (reply && reply.error) || "Not sent.";
    });
    input.value = "";
  });

  $("leave").addEventListener("click", leave);
  status("not in a room", false);
})();
