/*
 * webpy-socketio client extension: channels for the official socket.io-client 4.
 *
 * Load it after socket.io.min.js (the socketio_scripts.html include does). It adds:
 *
 *   socket.subscribe(channel[, options][, callback]) -> Promise of {ok: true} or {ok: false, error}
 *   socket.unsubscribe(channel[, callback])  -> Promise of the same
 *   socket.channels                          -> the channels this socket is in
 *   socket.position(channel)                 -> {epoch, offset} of a channel with history
 *
 * After a reconnect the server has a new socket that is in no channel, so every
 * channel the page had is subscribed again. A channel the server refuses on that
 * occasion is dropped and reported with the local event "wsio:refused".
 *
 * Channels with history (SOCKETIO_HISTORY on the server): each message carries its
 * position as one more argument, {"wsio:position": {channel, epoch, offset}}, which
 * this extension takes off before handlers see the message. It remembers the last
 * position per channel, sends it when it subscribes again after a reconnect (the
 * server replays what was missed, in order), and never delivers an offset twice.
 * When the history could not cover the gap, the local event "wsio:recovery-failed"
 * fires with (channel, reason): reload what the page shows from the app's own data.
 * options.since (a position, e.g. from the server's history() at render time)
 * makes the first subscribe replay from there too.
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
        };
      }
      manager.reconnectionDelay(FAST.min);
      manager.reconnectionDelayMax(FAST.max);
      manager.randomizationFactor(FAST.jitter);
    }

    function restore(manager) {
      var saved = manager._wsioSaved;
      if (saved) {
        manager._wsioSaved = null;
        manager.reconnectionDelay(saved.min);
        manager.reconnectionDelayMax(saved.max);
        manager.randomizationFactor(saved.jitter);
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

  var POSITION = "wsio:position";
  var MAX_SIDS = 8;

  function state(socket) {
    if (!socket._wsio) {
      // channels: channel -> its last position ({epoch, offset}), or null for a
      // channel without history; sids: this socket's ids so far (the server skips
      // the client's own messages when it replays)
      var st = { channels: new Map(), lost: false, sids: [], failed: new Map() };
      socket._wsio = st;
      if (socket.id) {
        st.sids.push(socket.id);
      }
      socket.on("disconnect", function () {
        st.lost = true;
      });
      socket.on("connect", function () {
        st.sids = st.sids.concat([socket.id]).slice(-MAX_SIDS);
      });
    }
    return socket._wsio;
  }

  // Back after a reconnect: the server has a new socket, in no channel. The
  // subscriptions go out first, ahead of the emits the page made while it was
  // away (the client sends those as it connects): a message the page sent to
  // its channel meanwhile then reaches the channel, and the replay of what was
  // missed comes before anything newer.
  var onconnect = proto.onconnect;
  proto.onconnect = function () {
    var st = this._wsio;
    if (st && st.lost && this.sendBuffer) {
      st.lost = false;
      var queued = this.sendBuffer.length;
      resubscribe(this, st);
      var ours = this.sendBuffer.splice(queued);
      this.sendBuffer.unshift.apply(this.sendBuffer, ours);
    }
    return onconnect.apply(this, arguments);
  };

  function resubscribe(socket, st) {
    st.channels.forEach(function (position, channel) {
      var options = position ? { since: sinceOf(st, position) } : undefined;
      emitSubscribe(socket, channel, options, function (reply) {
        if (!reply || !reply.ok) {
          st.channels.delete(channel);
          notify(socket, "wsio:refused", channel, reply);
          return;
        }
        settle(socket, st, channel, reply);
      });
    });
  }

  function sinceOf(st, position) {
    return { epoch: position.epoch, offset: position.offset, sids: st.sids.slice() };
  }

  function emitSubscribe(socket, channel, options, ack) {
    if (options) {
      socket.emit("wsio:subscribe", channel, options, ack);
    } else {
      socket.emit("wsio:subscribe", channel, ack);
    }
  }

  // what a subscribe's reply says of the channel's position
  function settle(socket, st, channel, reply) {
    if (reply.epoch === undefined) {
      if (!st.channels.has(channel)) {
        st.channels.set(channel, null);
      }
      return;
    }
    var known = st.channels.get(channel);
    if (!known || known.epoch !== reply.epoch || known.offset < reply.offset) {
      st.channels.set(channel, { epoch: reply.epoch, offset: reply.offset });
    }
    if (reply.recovered === false) {
      recoveryFailed(socket, st, channel, reply.epoch, reply.reason);
    }
  }

  // once per channel and epoch: a live message may show the new epoch before
  // the reply of a resubscribe says it could not recover
  function recoveryFailed(socket, st, channel, epoch, reason) {
    if (st.failed.get(channel) === epoch) {
      return;
    }
    st.failed.set(channel, epoch);
    notify(socket, "wsio:recovery-failed", channel, reason);
  }

  function request(socket, name, channel, options, callback, done) {
    return new Promise(function (resolve) {
      function ack(reply) {
        reply = reply || { ok: false, error: "no reply" };
        done(reply);
        if (typeof callback === "function") {
          callback(reply);
        }
        resolve(reply);
      }
      if (name === "wsio:subscribe") {
        emitSubscribe(socket, channel, options, ack);
      } else {
        socket.emit(name, channel, ack);
      }
    });
  }

  // every channel message with a position: taken off before handlers see it,
  // remembered, and dropped when its offset was delivered already
  var onevent = proto.onevent;
  proto.onevent = function (packet) {
    var args = packet.data;
    var last = args && args.length > 1 ? args[args.length - 1] : null;
    if (last && typeof last === "object" && last[POSITION]) {
      var position = last[POSITION];
      var st = state(this);
      var known = st.channels.get(position.channel);
      if (known && known.epoch === position.epoch && position.offset <= known.offset) {
        return;
      }
      if (known && known.epoch !== position.epoch) {
        // the channel's history began again (lost on the server): what came
        // between is gone, and the page must reload it
        recoveryFailed(this, st, position.channel, position.epoch, "epoch changed");
      }
      if (known !== undefined) {
        st.channels.set(position.channel, { epoch: position.epoch, offset: position.offset });
      }
      packet = Object.assign({}, packet, { data: args.slice(0, -1) });
    }
    return onevent.call(this, packet);
  };

  proto.subscribe = function (channel, options, callback) {
    if (typeof options === "function") {
      callback = options;
      options = undefined;
    }
    var st = state(this);
    var socket = this;
    if (options && options.since) {
      // a position from the server (its history() at render time): messages
      // after it are replayed, and nothing at or before it is delivered
      st.channels.set(channel, { epoch: options.since.epoch, offset: options.since.offset });
      options = { since: sinceOf(st, options.since) };
    }
    return request(this, "wsio:subscribe", channel, options, callback, function (reply) {
      if (reply.ok) {
        settle(socket, st, channel, reply);
      } else if (options) {
        st.channels.delete(channel);
      }
    });
  };

  proto.unsubscribe = function (channel, callback) {
    var st = state(this);
    st.channels.delete(channel);
    return request(this, "wsio:unsubscribe", channel, undefined, callback, function () {});
  };

  proto.position = function (channel) {
    var position = state(this).channels.get(channel);
    return position ? { epoch: position.epoch, offset: position.offset } : null;
  };

  Object.defineProperty(proto, "channels", {
    configurable: true,
    get: function () {
      return Array.from(state(this).channels.keys());
    },
  });

  return io;
});
