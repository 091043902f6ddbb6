/*
 * webpy-socketio client extension: channels for the official socket.io-client 4.
 *
 * Load it after socket.io.min.js (the socketio_scripts.html include does). It adds:
 *
 *   socket.subscribe(channel[, callback])    -> Promise of {ok: true} or {ok: false, error}
 *   socket.unsubscribe(channel[, callback])  -> Promise of the same
 *   socket.channels                          -> the channels this socket is in
 *
 * After a reconnect the server has a new socket that is in no channel, so every
 * channel the page had is subscribed again. A channel the server refuses on that
 * occasion is dropped and reported with the local event "wsio:refused".
 *
 * In Node: require("./wsio.js")(require("socket.io-client")).
 *
 * When the official client did not load (offline and no local copy, a blocked
 * CDN, a wrong integrity hash), the page shows a notice naming the fix instead
 * of failing silently; see the block "loading and the development server".
 *
 * Under `wsio runserver` the include marks this script's tag with
 * data-wsio-dev and data-wsio-reload; then every socket the page opens with
 * io() listens for "wsio:reload", which a restarting server sends just before
 * it closes the socket: the socket reconnects at once instead of backing off
 * (and keeps retrying quickly while the app fails to load, showing so), and
 * the page reloads when the event says {reload: true} (a template or static
 * file changed). Without the marks nothing listens.
 */
(function (root, install) {
  // ---- loading and the development server (webpy-socketio issue 15) ----------
  //
  // Everything in this block runs in browsers only, around install() below:
  // a notice when the official client is missing, and what `wsio runserver`
  // pages do across a restart.

  var NOTICE_ID = "wsio-notice";

  function notice(doc, text, tone) {
    // a small fixed box, styled from script (a Content-Security-Policy that
    // forbids inline styles still allows this), removed when text is null
    var box = doc.getElementById(NOTICE_ID);
    if (text === null) {
      if (box) {
        box.remove();
      }
      return;
    }
    if (!box) {
      box = doc.createElement("div");
      box.id = NOTICE_ID;
      box.setAttribute("role", "status");
      Object.assign(box.style, {
        position: "fixed",
        right: "12px",
        bottom: "12px",
        zIndex: "2147483647",
        maxWidth: "min(420px, calc(100vw - 24px))",
        padding: "10px 14px",
        borderRadius: "8px",
        font: "14px/1.4 system-ui, sans-serif",
        boxShadow: "0 2px 10px rgba(0, 0, 0, .2)",
      });
      (doc.body || doc.documentElement).appendChild(box);
    }
    var error = tone === "error";
    box.style.background = error ? "#fdeceb" : "#fff6e0";
    box.style.color = error ? "#8a1c12" : "#6b3d00";
    box.style.border = "1px solid " + (error ? "#f1b0aa" : "#f5d78e");
    box.dataset.state = tone;
    box.textContent = text;
  }

  function whenReady(doc, callback) {
    if (doc.readyState === "loading") {
      doc.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  function clientMissing(win, tag) {
    var url = (tag && tag.getAttribute("data-client")) || "its URL";
    var text =
      "Realtime features are unavailable: the socket.io client did not load from " +
      url +
      " (this machine may be offline, or the address is blocked). To serve it from this " +
      "app instead, run `wsio client` in the project's folder: it puts " +
      "static/socket.io.min.js in place.";
    if (win.console) {
      win.console.error("webpy-socketio: " + text);
    }
    whenReady(win.document, function () {
      notice(win.document, text, "error");
    });
    // the page's own io() call fails with this message rather than
    // "io is not defined"
    win.io = function () {
      throw new Error("webpy-socketio: the socket.io client did not load; run `wsio client`");
    };
  }

  function devServer(lookup, win, reloadPages) {
    var doc = win.document;
    var FAST = { min: 1, max: 500, jitter: 0 };

    function fast(manager) {
      // the next reconnection attempts come at once, then every half second
      // at most: the restarted server is there within a few hundred ms, and
      // a failed one answers 503 until the fix is saved
      if (!manager._wsioSaved) {
        manager._wsioSaved = {
          min: manager.reconnectionDelay(),
          max: manager.reconnectionDelayMax(),
          jitter: manager.randomizationFactor(),
          rememberUpgrade: manager.opts.rememberUpgrade,
        };
      }
      manager.reconnectionDelay(FAST.min);
      manager.reconnectionDelayMax(FAST.max);
      manager.randomizationFactor(FAST.jitter);
      // the page was on a websocket: go straight back to one (skipping the
      // long-polling handshake and the upgrade); after a failure the client
      // starts with long-polling again by itself
      manager.opts.rememberUpgrade = true;
    }

    function restore(manager) {
      var saved = manager._wsioSaved;
      if (saved) {
        manager._wsioSaved = null;
        manager.reconnectionDelay(saved.min);
        manager.reconnectionDelayMax(saved.max);
        manager.randomizationFactor(saved.jitter);
        manager.opts.rememberUpgrade = saved.rememberUpgrade;
      }
    }

    function io() {
      var socket = lookup.apply(this, arguments);
      var manager = socket.io;
      var shown = null;
      socket.on("wsio:reload", function (info) {
        if (info && info.reload && reloadPages) {
          win.location.reload();
          return;
        }
        fast(manager);
        // a restart usually takes less than this: no flicker
        shown = win.setTimeout(function () {
          notice(doc, "Server reloading…", "info");
        }, 250);
      });
      socket.on("connect_error", function (err) {
        if (err && err.description === 503) {
          // the worker that answers cannot import the app (see the terminal)
          win.clearTimeout(shown);
          fast(manager);
          notice(
            doc,
            "The app failed to load: the traceback is in the terminal running " +
              "`wsio runserver`. This page reconnects as soon as you save a fix.",
            "error"
          );
        }
      });
      socket.on("connect", function () {
        win.clearTimeout(shown);
        restore(manager);
        notice(doc, null);
      });
      return socket;
    }
    Object.keys(lookup).forEach(function (key) {
      io[key] = lookup[key];
    });
    io.io = io.connect = io;
    return io;
  }
  // ---- end of the block --------------------------------------------------------

  if (typeof module === "object" && module.exports) {
    module.exports = install;
  } else {
    var tag = root.document && root.document.currentScript;
    if (!root.io || !root.io.Socket) {
      clientMissing(root, tag);
      return;
    }
    install(root.io);
    if (tag && tag.hasAttribute("data-wsio-dev")) {
      root.io = devServer(root.io, root, tag.hasAttribute("data-wsio-reload"));
    } else if (tag && tag.hasAttribute("data-wsio-reload")) {
      root.io = devServer(root.io, root, true);
    }
  }
})(typeof self !== "undefined" ? self : this, function (io) {
  "use strict";
  if (!io || !io.Socket) {
    throw new Error("webpy-socketio: load socket.io-client before wsio.js");
  }
  var proto = io.Socket.prototype;
  if (proto.subscribe) {
    return io;
  }

  function notify(socket, name, a, b) {
    // a local event for the page, never sent to the server
    if (typeof socket.emitReserved === "function") {
      socket.emitReserved(name, a, b);
    }
  }

  function state(socket) {
    if (!socket._wsio) {
      var st = { channels: new Set(), lost: false };
      socket._wsio = st;
      socket.on("disconnect", function () {
        st.lost = true;
      });
      socket.on("connect", function () {
        if (!st.lost) {
          return;
        }
        st.lost = false;
        st.channels.forEach(function (channel) {
          socket.emit("wsio:subscribe", channel, function (reply) {
            if (!reply || !reply.ok) {
              st.channels.delete(channel);
              notify(socket, "wsio:refused", channel, reply);
            }
          });
        });
      });
    }
    return socket._wsio;
  }

  function request(socket, name, channel, callback, done) {
    return new Promise(function (resolve) {
      socket.emit(name, channel, function (reply) {
        reply = reply || { ok: false, error: "no reply" };
        done(reply);
        if (typeof callback === "function") {
          callback(reply);
        }
        resolve(reply);
      });
    });
  }

  proto.subscribe = function (channel, callback) {
    var st = state(this);
    return request(this, "wsio:subscribe", channel, callback, function (reply) {
      if (reply.ok) {
        st.channels.add(channel);
      }
    });
  };

  proto.unsubscribe = function (channel, callback) {
    var st = state(this);
    st.channels.delete(channel);
    return request(this, "wsio:unsubscribe", channel, callback, function () {});
  };

  Object.defineProperty(proto, "channels", {
    configurable: true,
    get: function () {
      return Array.from(state(this).channels);
    },
  });

  return io;
});
