// The rooms list: live member counts, new rooms and admin notices.
(function () {
  "use strict";
  var ui = window.chatUI;
  var list = document.getElementById("room-list");

  function card(room) {
    var item = ui.el("li", "room-card");
    item.dataset.roomId = room.id;
    var link = ui.el("a");
    link.href = "/rooms/" + room.id;
    var count = ui.el("span", "count");
    count.dataset.count = "";
    link.append(ui.el("span", "room-avatar", "#"), ui.el("span", "room-title", room.name), count);
    item.append(link);
    return item;
  }

  function update(rooms) {
    rooms.forEach(function (room) {
      var item = list.querySelector('[data-room-id="' + room.id + '"]');
      if (!item) {
        item = card(room);
        list.append(item);
      }
      var count = item.querySelector("[data-count]");
      count.textContent = room.members + " online";
      item.classList.toggle("busy", room.members > 0);
    });
  }

  list.querySelectorAll("[data-count]").forEach(function (count) {
    count.closest(".room-card").classList.toggle("busy", parseInt(count.textContent, 10) > 0);
  });

  var socket = io();
  socket.on("connect", function () {
    ui.setStatus("live", true);
    socket.subscribe("lobby");
  });
  socket.on("disconnect", function () { ui.setStatus("reconnecting…", false); });
  socket.on("message", function (msg) {
    if (msg.type === "rooms") { update(msg.rooms); }
    if (msg.type === "notice") { ui.showNotice(msg); }
  });
})();
