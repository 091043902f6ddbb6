// A chat room: join with a name, then talk. The server refuses a name that
// is already in the room.
(function () {
  "use strict";
  var ui = window.chatUI;
  var $ = function (id) { return document.getElementById(id); };
  var page = $("room-page");
  var roomId = parseInt(page.dataset.roomId, 10);
  var channel = "room-" + roomId;
  var joinForm = $("join");
  var composer = $("composer");
  var messages = $("messages");
  var socket = null;
  var myName = null;

  function showChat(joined) {
    joinForm.hidden = joined;
    $("chat").hidden = !joined;
    if (joined) { composer.elements.text.focus(); } else { joinForm.elements.name.focus(); }
  }

  function messageItem(msg) {
    if (msg.type === "system") {
      return ui.el("li", "system", msg.text);
    }
    if (msg.type === "notice") {
      var notice = ui.el("li", "notice");
      notice.append(ui.el("strong", null, "Notice"), ui.el("span", "text", msg.text));
      return notice;
    }
    var item = ui.el("li", "msg" + (msg.name === myName ? " mine" : ""));
    var body = ui.el("div", "bubble");
    var meta = ui.el("div", "meta");
    meta.append(ui.el("span", "who", msg.name), ui.el("time", "when", ui.clock(msg.time)));
    body.append(meta, ui.el("p", "text", msg.text));
    item.append(ui.avatar(msg.name), body);
    return item;
  }

  function addMessages(list) {
    var atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    list.forEach(function (msg) { messages.append(messageItem(msg)); });
    if (atBottom || list.length > 1) { messages.scrollTop = messages.scrollHeight; }
  }

  function showMembers(names) {
    var list = $("members");
    list.replaceChildren();
    names.forEach(function (name) {
      var item = ui.el("li", name === myName ? "me" : "");
      item.append(ui.avatar(name), ui.el("span", "name", name));
      if (name === myName) { item.append(ui.el("span", "you", "you")); }
      list.append(item);
    });
    $("member-count").textContent = names.length === 1 ? "1 person here" : names.length + " people here";
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "history":
        messages.replaceChildren();
        addMessages(msg.messages);
        break;
      case "members":
        showMembers(msg.members);
        break;
      case "notice":
        addMessages([msg]);
        ui.showNotice(msg);
        break;
      case "chat":
      case "system":
        addMessages([msg]);
        break;
    }
  }

  function leave(error) {
    if (socket) {
      socket.off();
      socket.disconnect();
      socket = null;
    }
    $("join-error").textContent = error || "";
    ui.setStatus("not in the room", false);
    showChat(false);
  }

  joinForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (socket) { return; }
    myName = joinForm.elements.name.value.trim();
    $("join-error").textContent = "";
    socket = io({ auth: { name: myName } });
    socket.on("connect_error", function (err) {
      // a lost connection (the server restarting, a network blip): the client
      // retries by itself, then subscribes to the room again
      if (socket.active) { ui.setStatus("reconnecting…", false); return; }
      leave(err.message);  // refused by the server (on_connect)
    });
    socket.on("connect", function () { ui.setStatus("live", true); });
    socket.on("disconnect", function () { ui.setStatus("reconnecting…", false); });
    // after a reconnect the page subscribes again by itself; if the name is
    // taken by then, the room refuses us
    socket.on("wsio:refused", function (ch, reply) { leave(reply && reply.error); });
    socket.on("message", onMessage);
    socket.once("connect", function () {
      socket.subscribe(channel).then(function (reply) {
        if (reply.ok) { showChat(true); } else { leave(reply.error); }
      });
    });
  });

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = composer.elements.text;
    var text = input.value.trim();
    if (!socket || !text) { return; }
    socket.send({ room: roomId, text: text }, function (reply) {
      $("send-error").textContent = reply && reply.ok ? "" : (reply && reply.error) || "Not sent.";
    });
    input.value = "";
  });

  $("leave").addEventListener("click", function () { leave(""); });
})();
