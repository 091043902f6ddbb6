/*
 * webpy-socketio client extension: channels for the official socket.io-client 4.
 *
 * Load it after socket.io.min.js (the socketio_scripts.html include does). It adds:
 *
 *   socket.subscribe(channel[, options][, callback]) -> Promise of {ok: true} or {ok: false, error}
 *   socket.unsubscribe(channel[, callback])  -> Promise of the same
 *   socket.channels                          -> the channels this socket is in
 *   socket.position(channel)                 -> {epoch, offset} of a channel with history
 *   socket.presence(channel)                 -> who is in a presence channel (see the
 *                                               presence block below)
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
    ack = presenceAck(socket, channel, ack); // presence: changes wait for the reply
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

  // -- presence ------------------------------------------------------------------
  //
  // A channel with presence (SOCKETIO_PRESENCE, or socket.track() on the server)
  // answers a subscribe with its state, {presence: {key: [meta, ...]}}, and then
  // sends every change as the event "wsio:presence": {channel, joins: {key: [meta]},
  // leaves: {key: [meta]}}, or its whole state again, {channel, state}. Each meta
  // carries "wsio:ref", unique to it. socket.presence(channel) returns the same
  // object each time, before or after the subscribe:
  //
  //   list([fn])   -> [{key, metas}] in the order keys arrived, or [fn(key, metas)]
  //   get(key)     -> the metas of key ([] when it is not there)
  //   synced       -> whether the server's state has arrived
  //   onSync(fn)   -> fn() after the state and after each change
  //   onJoin(fn)   -> fn(key, before, joined): before is undefined for a new key
  //   onLeave(fn)  -> fn(key, remaining, left): remaining is [] when the key left
  //
  // Changes that arrive before the state wait for it, then apply in order. In a
  // change the joins apply before the leaves, so an update (a new meta for a key,
  // the old one leaving) never looks like the key leaving. A state replaces the
  // list, with onJoin/onLeave for what differs (after a reconnect, say).

  var PRESENCE_EVENT = "wsio:presence";
  var REF = "wsio:ref";

  function Presence(channel) {
    this.channel = channel;
    this.synced = false;
    this._keys = new Map(); // key -> Map(ref -> meta)
    this._on = { sync: [], join: [], leave: [] };
  }

  function metasOf(refs) {
    return refs ? Array.from(refs.values()) : [];
  }

  Presence.prototype.list = function (fn) {
    var out = [];
    this._keys.forEach(function (refs, key) {
      out.push(fn ? fn(key, metasOf(refs)) : { key: key, metas: metasOf(refs) });
    });
    return out;
  };

  Presence.prototype.get = function (key) {
    return metasOf(this._keys.get(key));
  };

  ["Sync", "Join", "Leave"].forEach(function (name) {
    Presence.prototype["on" + name] = function (fn) {
      this._on[name.toLowerCase()].push(fn);
      return this;
    };
  });

  Presence.prototype._fire = function (name, args) {
    this._on[name].forEach(function (fn) {
      try {
        fn.apply(null, args);
      } catch (err) {
        // a page's callback that throws must not stop the others
        setTimeout(function () {
          throw err;
        });
      }
    });
  };

  Presence.prototype._join = function (key, metas) {
    var refs = this._keys.get(key);
    var added = (metas || []).filter(function (meta) {
      return meta && !(refs && refs.has(meta[REF]));
    });
    if (!added.length) {
      return;
    }
    var before = refs ? metasOf(refs) : undefined;
    if (!refs) {
      refs = new Map();
      this._keys.set(key, refs);
    }
    added.forEach(function (meta) {
      refs.set(meta[REF], meta);
    });
    this._fire("join", [key, before, added]);
  };

  Presence.prototype._leave = function (key, metas) {
    var refs = this._keys.get(key);
    if (!refs) {
      return;
    }
    var gone = [];
    (metas || []).forEach(function (meta) {
      if (meta && refs.has(meta[REF])) {
        gone.push(refs.get(meta[REF]));
        refs.delete(meta[REF]);
      }
    });
    if (!gone.length) {
      return;
    }
    if (!refs.size) {
      this._keys.delete(key);
    }
    this._fire("leave", [key, metasOf(refs), gone]);
  };

  Presence.prototype._state = function (state) {
    var self = this;
    state = state || {};
    Object.keys(state).forEach(function (key) {
      self._join(key, state[key]);
    });
    Array.from(this._keys.keys()).forEach(function (key) {
      var keep = new Set(
        (state[key] || []).map(function (meta) {
          return meta && meta[REF];
        })
      );
      self._leave(
        key,
        metasOf(self._keys.get(key)).filter(function (meta) {
          return !keep.has(meta[REF]);
        })
      );
    });
    this.synced = true;
  };

  Presence.prototype._change = function (change) {
    var self = this;
    if (change.state) {
      this._state(change.state);
      return;
    }
    Object.keys(change.joins || {}).forEach(function (key) {
      self._join(key, change.joins[key]);
    });
    Object.keys(change.leaves || {}).forEach(function (key) {
      self._leave(key, change.leaves[key]);
    });
  };

  function presenceState(socket) {
    var st = state(socket);
    if (!st.presence) {
      // channel -> Presence; channel -> changes waiting for a subscribe's reply
      st.presence = new Map();
      st.presenceHeld = new Map();
      socket.on("disconnect", function () {
        // the replies still out will never come (the client drops their acks);
        // the list stays as it was until the resubscribe's state fixes it
        st.presenceHeld.clear();
        st.presence.forEach(function (p) {
          p.synced = false;
        });
      });
    }
    return st;
  }

  function presenceOf(socket, channel) {
    var st = presenceState(socket);
    var p = st.presence.get(channel);
    if (!p) {
      p = new Presence(channel);
      st.presence.set(channel, p);
    }
    return p;
  }

  // wraps the ack of every subscribe that goes out: the changes that arrive
  // before its reply are held, then applied after the state the reply carries
  function presenceAck(socket, channel, ack) {
    var st = presenceState(socket);
    if (!st.presenceHeld.has(channel)) {
      st.presenceHeld.set(channel, []);
    }
    return function (reply) {
      var held = st.presenceHeld.get(channel) || [];
      st.presenceHeld.delete(channel);
      var p = st.presence.get(channel);
      if (reply && reply.ok && reply.presence) {
        p = presenceOf(socket, channel);
        p._state(reply.presence);
        held.forEach(function (change) {
          p._change(change);
        });
        p._fire("sync", []);
      } else if (p && (p.synced || p._keys.size)) {
        // refused, or no presence any more: nobody is shown
        p._state({});
        p.synced = false;
        p._fire("sync", []);
      }
      if (typeof ack === "function") {
        ack.apply(this, arguments);
      }
    };
  }

  function onPresence(socket, change) {
    if (!change || typeof change !== "object" || typeof change.channel !== "string") {
      return;
    }
    var st = presenceState(socket);
    var held = st.presenceHeld.get(change.channel);
    if (held) {
      held.push(change); // the subscribe's reply is not in yet
      return;
    }
    var p = change.state ? presenceOf(socket, change.channel) : st.presence.get(change.channel);
    if (!p || (!p.synced && !change.state)) {
      return;
    }
    p._change(change);
    p._fire("sync", []);
  }

  var presenceOnevent = proto.onevent;
  proto.onevent = function (packet) {
    var args = packet.data;
    if (args && args[0] === PRESENCE_EVENT) {
      onPresence(this, args[1]);
    }
    return presenceOnevent.call(this, packet);
  };

  var presenceUnsubscribe = proto.unsubscribe;
  proto.unsubscribe = function (channel) {
    var st = presenceState(this);
    st.presenceHeld.delete(channel);
    var p = st.presence.get(channel);
    if (p) {
      p._state({});
      p.synced = false;
      p._fire("sync", []);
    }
    return presenceUnsubscribe.apply(this, arguments);
  };

  proto.presence = function (channel) {
    return presenceOf(this, channel);
  };

  return io;
});
