// Helpers shared by the pages. User text only ever reaches the page through
// textContent, never as HTML.
(function (root) {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function clock(iso) {
    var date = iso ? new Date(iso) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // a stable colour per name, so people are easy to tell apart
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) { h = (h * 31 + name.charCodeAt(i)) % 360; }
    return h;
  }

  function avatar(name) {
    var node = el("span", "avatar", (name || "?").trim().charAt(0).toUpperCase());
    node.style.backgroundColor = "hsl(" + hue(name || "") + ", 55%, 46%)";
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function setStatus(text, online) {
    var status = document.getElementById("status");
    status.hidden = false;
    status.textContent = text;
    status.classList.toggle("online", !!online);
  }

  // an admin notice as a banner at the top of any page
  function showNotice(msg) {
    var box = el("div", "notice-banner");
    box.append(el("strong", null, "Notice"), el("span", null, msg.text));
    var close = el("button", "close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", function () { box.remove(); });
    box.append(close);
    document.getElementById("notices").append(box);
    setTimeout(function () { box.remove(); }, 12000);
  }

  root.chatUI = { el: el, clock: clock, avatar: avatar, setStatus: setStatus, showNotice: showNotice };
})(window);
